"""Applying a set of manifests all-or-nothing, with server-side apply.

First every document is sent as a dry run, so the server validates each one completely
(schema, semantics, admission); if any is refused, every problem is reported and nothing is
written. Then the documents are applied for real, in dependency order (namespaces first,
then configuration, then workloads), each with server-side apply so that fields removed from a
manifest are removed from the object.

An object in a namespace that the same set creates cannot pass admission in the dry run (the
namespace does not exist yet); that one refusal is expected, and the object is dry-run in the
``default`` namespace instead, for what comes after admission (a cluster IP or node port
already taken). Nor can one document's dry run see another's: Services of the set asking for
the same node port or cluster IP are refused before anything is written.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from procorch.api import errors, resources
from procorch.api.resources import ResourceType
from procorch.client.base import Client
from procorch.client.manifests import Manifest

Outcome = Literal["created", "configured", "unchanged"]

_KIND_ORDER = [
    "Namespace",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "IngressClass",
    "Service",
    "Endpoints",
    "EndpointSlice",
    "Pod",
    "ReplicaSet",
    "Deployment",
    "DaemonSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "Ingress",
]


@dataclass
class Applied:
    manifest: Manifest
    rt: ResourceType
    outcome: Outcome
    obj: dict[str, Any]

    def describe(self) -> str:
        return (
            f"{self.rt.singular_name}{'.' + self.rt.group if self.rt.group else ''}/"
            f"{self.obj['metadata']['name']} {self.outcome}"
        )


class ApplyError(Exception):
    """Some documents were refused; ``problems`` lists each with its source."""

    def __init__(self, problems: list[tuple[Manifest, Exception]]) -> None:
        self.problems = problems
        lines = [f"{m.source}: {_message(exc)}" for m, exc in problems]
        super().__init__("\n".join(lines))


def _message(exc: Exception) -> str:
    if isinstance(exc, errors.ApiError):
        return f"{exc.reason}: {exc.message}" if exc.reason else exc.message
    return str(exc)


def _identity_problem(manifest: Manifest) -> errors.ApiError | None:
    """What is wrong with the fields naming the object, which go into request paths: a
    ``metadata`` that is not a mapping, a name or namespace that is not a string or not a
    path segment (``..`` or ``a/b`` would address another object; kubectl refuses them too)."""
    meta = manifest.obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        return _invalid(manifest, errors.type_invalid("metadata", meta, "must be an object"))
    for field in ("name", "generateName", "namespace"):
        value = (meta or {}).get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            return _invalid(
                manifest, errors.type_invalid(f"metadata.{field}", value, "must be a string")
            )
        if value in (".", "..") or "/" in value or "%" in value:
            return _invalid(
                manifest,
                errors.invalid(
                    f"metadata.{field}", value, 'may not be "." or "..", nor contain "/" or "%"'
                ),
            )
    return None


def _invalid(manifest: Manifest, cause: errors.Cause) -> errors.Invalid:
    return errors.Invalid(kind=manifest.kind, name="", causes=[cause])


def order_key(manifest: Manifest) -> int:
    try:
        return _KIND_ORDER.index(manifest.kind)
    except ValueError:
        return len(_KIND_ORDER)


def resolve(manifest: Manifest) -> ResourceType:
    rt = resources.by_kind(manifest.api_version, manifest.kind)
    if rt is None:
        raise errors.NotFound(
            f'no matches for kind "{manifest.kind}" in version "{manifest.api_version}"'
            " (procorch serves: " + ", ".join(sorted({r.kind for r in resources.RESOURCES})) + ")"
        )
    return rt


async def apply_all(
    client: Client,
    manifests: list[Manifest],
    *,
    default_namespace: str = "default",
    field_manager: str = "procorch",
    force: bool = True,
) -> list[Applied]:
    plan: list[tuple[Manifest, ResourceType, str]] = []
    problems: list[tuple[Manifest, Exception]] = []
    new_namespaces = {m.name for m in manifests if m.kind == "Namespace"}
    for manifest in manifests:
        try:
            rt = resolve(manifest)
        except errors.ApiError as exc:
            problems.append((manifest, exc))
            continue
        problem = _identity_problem(manifest)
        if problem is not None:
            problems.append((manifest, problem))
            continue
        namespace = (manifest.namespace or default_namespace) if rt.namespaced else ""
        if not manifest.name:
            problems.append(
                (
                    manifest,
                    errors.Invalid(
                        kind=manifest.kind, name="", causes=[errors.required("metadata.name")]
                    ),
                )
            )
            continue
        plan.append((manifest, rt, namespace))
    seen: set[tuple[str, str, str]] = set()
    for manifest, rt, namespace in plan:
        key = (rt.key, namespace, manifest.name)
        if key in seen:
            problems.append(
                (
                    manifest,
                    errors.BadRequest(
                        f"{rt.kind} {namespace + '/' if namespace else ''}{manifest.name} appears more "
                        "than once"
                    ),
                )
            )
        seen.add(key)
    problems.extend(_shared_allocations(plan))
    for manifest, rt, namespace in plan:
        try:
            await _apply_one(
                client,
                manifest,
                rt,
                namespace,
                dry_run=True,
                field_manager=field_manager,
                force=force,
            )
        except errors.NotFound as exc:
            if exc.details.get("kind") == "namespaces" and namespace in new_namespaces:
                try:
                    await _dry_run_in_default(client, manifest, rt, field_manager=field_manager)
                except errors.ApiError as elsewhere:
                    problems.append((manifest, elsewhere))
                continue
            problems.append((manifest, exc))
        except errors.ApiError as exc:
            problems.append((manifest, exc))
    if problems:
        raise ApplyError(problems)
    applied: list[Applied] = []
    for manifest, rt, namespace in sorted(plan, key=lambda p: order_key(p[0])):
        applied.append(
            await _apply_one(
                client,
                manifest,
                rt,
                namespace,
                dry_run=False,
                field_manager=field_manager,
                force=force,
            )
        )
    return applied


def _shared_allocations(
    plan: list[tuple[Manifest, ResourceType, str]],
) -> list[tuple[Manifest, Exception]]:
    """Services of the set asking for the same node port or cluster IP. Each one's dry run
    passes alone; applied, the second would be refused after the first was written."""
    problems: list[tuple[Manifest, Exception]] = []
    taken: dict[tuple[str, str], tuple[Manifest, str]] = {}
    for manifest, rt, namespace in plan:
        if rt.key != "core/services":
            continue
        for path, value in _asked_allocations(manifest):
            first = taken.get(value)
            if first is None:
                taken[value] = (manifest, namespace + "/" + manifest.name)
                continue
            if first[1] == namespace + "/" + manifest.name:
                continue  # the same Service (listed twice: reported as such)
            cause = errors.invalid(path, value[1], f"also asked for by {first[0].source}")
            problems.append(
                (manifest, errors.Invalid(kind=rt.kind, name=manifest.name, causes=[cause]))
            )
    return problems


def _asked_allocations(manifest: Manifest) -> list[tuple[str, tuple[str, str]]]:
    """(field path, (what, value)) of the node ports and cluster IPs a Service asks for."""
    spec = manifest.obj.get("spec")
    if not isinstance(spec, dict):
        return []
    out: list[tuple[str, tuple[str, str]]] = []
    ips = spec.get("clusterIPs")
    candidates = [("spec.clusterIP", spec.get("clusterIP"))]
    if isinstance(ips, list):
        candidates += [(f"spec.clusterIPs[{i}]", ip) for i, ip in enumerate(ips)]
    seen_ips: set[str] = set()
    for path, ip in candidates:
        if isinstance(ip, str) and ip not in ("", "None") and ip not in seen_ips:
            seen_ips.add(ip)
            out.append((path, ("clusterIP", ip)))
    ports = spec.get("ports")
    seen_ports: set[int] = set()
    for i, port in enumerate(ports if isinstance(ports, list) else []):
        node_port = port.get("nodePort") if isinstance(port, dict) else None
        # One Service may use a node port for TCP and UDP alike.
        if isinstance(node_port, int) and node_port and node_port not in seen_ports:
            seen_ports.add(node_port)
            out.append((f"spec.ports[{i}].nodePort", ("nodePort", str(node_port))))
    return out


async def _dry_run_in_default(
    client: Client, manifest: Manifest, rt: ResourceType, *, field_manager: str
) -> None:
    """A dry-run create of ``manifest`` in the ``default`` namespace: for a document whose
    own namespace the set creates, no dry run there can pass admission, so what comes after
    it (a cluster IP or node port already taken) is checked here. Under its own name unless
    ``default`` has one so named (then a generated one: the check must not meet it)."""
    body = copy.deepcopy(manifest.obj)
    meta = body["metadata"] = dict(body.get("metadata") or {})
    meta["namespace"] = "default"
    try:
        await client.get(rt, manifest.name, namespace="default")
        meta.pop("name", None)
        meta["generateName"] = "procorch-apply-check-"
    except errors.NotFound:
        pass
    await client.create(rt, body, namespace="default", dry_run=True, field_manager=field_manager)


async def _apply_one(
    client: Client,
    manifest: Manifest,
    rt: ResourceType,
    namespace: str,
    *,
    dry_run: bool,
    field_manager: str,
    force: bool,
) -> Applied:
    body = dict(manifest.obj)
    body["metadata"] = dict(body.get("metadata") or {})
    if rt.namespaced:
        body["metadata"]["namespace"] = namespace
    try:
        before = await client.get(rt, manifest.name, namespace=namespace)
    except errors.NotFound:
        before = None
    result = await client.patch(
        rt,
        manifest.name,
        body,
        namespace=namespace,
        patch_type="apply",
        dry_run=dry_run,
        field_manager=field_manager,
        force=force,
        field_validation="Strict",
    )
    if before is None:
        outcome: Outcome = "created"
    elif (before.get("metadata") or {}).get("resourceVersion") == (
        result.get("metadata") or {}
    ).get("resourceVersion"):
        outcome = "unchanged"
    else:
        outcome = "configured"
    return Applied(manifest, rt, outcome, result)
