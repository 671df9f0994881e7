"""Fuzzed manifests: the server never answers 5xx, and what it refuses it does not store.

Hypothesis draws multi-document manifests: valid ConfigMaps, Secrets, Services, Deployments,
Ingresses and Namespaces over a small pool of names (so documents meet existing objects and
each other), each possibly broken - a value of the wrong type, a bad name, an unknown field, a
huge value, deep nesting, a field dropped, a wrong kind - and sets with traps between
documents: the same object twice, two Services asking for the same nodePort or clusterIP,
objects in a namespace the set creates. Each manifest goes, as Hypothesis chooses, through:

* ``procorch apply -f`` (and ``procorch up -f``): the file read by the CLI's loader and
  applied all-or-nothing by :func:`procorch.client.apply.apply_all`. Refused (by the loader or
  the server's dry run), the store's object set must be unchanged - the partial-write check;
  accepted, every document's object must be there.
* ``kubectl apply -f`` (client-side or ``--server-side``; not all-or-nothing, so: only the
  objects the file names may change), with ``-v=6`` to see every status code.
* plain HTTP: each document POSTed alone (JSON, or YAML); a refused one stores nothing.

Never a 5xx, never an unreachable server. ``PROCORCH_RELIABILITY_TRIALS=N`` draws 25×N
manifests (50 by default, the same ones every time; by hand, new ones each run).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import ipaddress
import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from reliability_harness import (
    UpProcess,
    procorch_up,
    report,
    scaled,
    service_cidr,
    trials,
)

from procorch.api import errors, resources
from procorch.client.apply import ApplyError, apply_all
from procorch.client.http import HttpClient
from procorch.client.manifests import ManifestError, load

KINDS = {
    "Namespace": resources.must("core/namespaces"),
    "ConfigMap": resources.must("core/configmaps"),
    "Secret": resources.must("core/secrets"),
    "Service": resources.must("core/services"),
    "Deployment": resources.must("apps/deployments"),
    "Ingress": resources.must("networking.k8s.io/ingresses"),
}
NAMESPACES = ["default", "fz-a", "fz-b"]
NAMES = st.sampled_from(["a", "b", "web", "x-1"])
KUBECTL = shutil.which("kubectl")

Key = tuple[str, str, str]  # kind, namespace, name
Doc = dict[str, Any]


class Drawn:
    """A drawn manifest; shown as YAML (Hypothesis' printer recurses into deep nesting)."""

    def __init__(self, docs: list[Doc]) -> None:
        self.docs = docs

    def __repr__(self) -> str:
        text = _dump(self.docs)
        return text if len(text) < 3000 else text[:3000] + f"... ({len(text)} characters)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


# -- valid objects ------------------------------------------------------------------------------


def _labels(draw: st.DrawFn) -> dict[str, str]:
    return {"app": draw(st.sampled_from(["web", "api"]))}


def _configmap(draw: st.DrawFn, name: str, ns: str) -> Doc:
    keys = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True)
    data = draw(st.dictionaries(keys, st.text(max_size=40), max_size=4))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


def _secret(draw: st.DrawFn, name: str, ns: str) -> Doc:
    keys = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True)
    data = draw(st.dictionaries(keys, st.text(max_size=40), max_size=3))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "Opaque",
        "stringData": data,
    }


def _service(draw: st.DrawFn, name: str, ns: str, cidr: str) -> Doc:
    port: dict[str, Any] = {
        "name": "http",
        "port": draw(st.sampled_from([80, 8080])),
        "targetPort": "http",
    }
    spec: dict[str, Any] = {"selector": _labels(draw), "ports": [port]}
    if draw(st.booleans()):
        spec["type"] = "NodePort"
        if draw(st.booleans()):
            port["nodePort"] = draw(st.sampled_from([30080, 30081]))
    if draw(st.integers(0, 3)) == 0:
        hosts = list(ipaddress.ip_network(cidr).hosts())
        spec["clusterIP"] = str(hosts[draw(st.sampled_from([10, 11]))])
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def _deployment(draw: st.DrawFn, name: str, ns: str) -> Doc:
    labels = _labels(draw)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": draw(st.integers(0, 3)),
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "command": ["sleep", "1000"]}]},
            },
        },
    }


def _ingress(draw: st.DrawFn, name: str, ns: str) -> Doc:
    backend = {"service": {"name": draw(NAMES), "port": {"number": 80}}}
    path = {"path": draw(st.sampled_from(["/", "/api"])), "pathType": "Prefix", "backend": backend}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"rules": [{"host": f"{name}.test", "http": {"paths": [path]}}]},
    }


def _namespace(name: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


# -- ways to break them ---------------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``value`` (dict keys and list indexes), the root excluded."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        items: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return out
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


ODD_VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
BAD_NAMES = st.one_of(
    st.sampled_from(
        [
            "",
            "UPPER",
            "under_score",
            "-lead",
            "trail-",
            "a" * 254,
            "dot.",
            "ünï",
            "a/b",
            "..",
            "a b",
            "%2e%2e",
            "a\x00b",
            "x" * 64,
        ]
    ),
    st.text(max_size=12),
)


FIELD_NAMES = st.one_of(
    # Names that once confused the server: pydantic's own tags in error locations.
    st.sampled_from(["str", "int", "none", "x[", "function-after", "spec", "metadata", "0"]),
    st.text(min_size=1, max_size=8),
)


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = {"n": value} if i % 2 else [value]
    return value


@st.composite
def _broken(draw: st.DrawFn, doc: Doc) -> Doc:
    doc = copy.deepcopy(doc)
    how = draw(
        st.sampled_from(
            ["type", "name", "unknown", "huge", "nesting", "drop", "kind", "version", "number"]
        )
    )
    paths = _paths(doc)
    if how == "type":
        path = draw(st.sampled_from(paths))
        _at(doc, path[:-1])[path[-1]] = draw(ODD_VALUES)
    elif how == "name":
        doc["metadata"]["name"] = draw(BAD_NAMES)
    elif how == "unknown":
        dicts = [()] + [p for p in paths if isinstance(_at(doc, p), dict)]
        _at(doc, draw(st.sampled_from(dicts)))[draw(FIELD_NAMES)] = draw(ODD_VALUES)
    elif how == "huge":
        size = draw(st.sampled_from([70_000, 300_000, 1_100_000, 3_200_000]))
        where = draw(st.sampled_from(["label", "annotation", "name", "data"]))
        meta = doc["metadata"]
        if where == "label":
            meta["labels"] = {"big": "v" * size}
        elif where == "annotation":
            meta["annotations"] = {"big": "v" * size}
        elif where == "name":
            meta["name"] = "n" * size
        else:
            doc["data"] = {"big": "v" * size}
    elif how == "nesting":
        depth = draw(st.sampled_from([20, 99, 101, 250, 900]))
        where = draw(st.sampled_from(["annotations", "spec", "root"]))
        if where == "annotations":
            doc["metadata"]["annotations"] = {"deep": _nested(depth)}
        elif where == "spec":
            doc["spec"] = _nested(depth)
        else:
            doc["deep"] = _nested(depth)
    elif how == "drop":
        path = draw(st.sampled_from(paths))
        container = _at(doc, path[:-1])
        del container[path[-1]]
    elif how == "kind":
        doc["kind"] = draw(st.sampled_from(["Widget", "", "configmap", "ConfigMapList", "Pod"]))
    elif how == "version":
        doc["apiVersion"] = draw(st.sampled_from(["v2", "apps/v1beta1", "", "v1/", "batch/v1"]))
    else:
        spec = doc.get("spec")
        if isinstance(spec, dict):
            spec["replicas"] = draw(st.sampled_from([-1, 2**31, 2**63, 1.5, "3", None]))
        else:
            doc["metadata"]["generation"] = draw(st.sampled_from([-1, 2**64, "x"]))
    return doc


@st.composite
def documents(draw: st.DrawFn, cidr: str) -> Doc:
    kind = draw(st.sampled_from(sorted(KINDS)))
    name, ns = draw(NAMES), draw(st.sampled_from(["default", *NAMESPACES]))
    if kind == "Namespace":
        doc = _namespace(draw(st.sampled_from(NAMESPACES[1:] + ["fz-c"])))
    elif kind == "ConfigMap":
        doc = _configmap(draw, name, ns)
    elif kind == "Secret":
        doc = _secret(draw, name, ns)
    elif kind == "Service":
        doc = _service(draw, name, ns, cidr)
    elif kind == "Deployment":
        doc = _deployment(draw, name, ns)
    else:
        doc = _ingress(draw, name, ns)
    if draw(st.integers(0, 3)) == 0:
        doc = draw(_broken(doc))
    return doc


@st.composite
def manifests(draw: st.DrawFn, cidr: str) -> Drawn:
    docs = draw(st.lists(documents(cidr), min_size=1, max_size=4))
    trap = draw(st.sampled_from(["none", "none", "twice", "namespace", "nodeport", "clusterip"]))
    if trap == "twice":
        docs.append(copy.deepcopy(draw(st.sampled_from(docs))))
    elif trap == "namespace":
        docs.insert(0, _namespace(draw(st.sampled_from(NAMESPACES[1:]))))
    elif trap in ("nodeport", "clusterip"):
        ns = draw(st.sampled_from(NAMESPACES))
        hosts = list(ipaddress.ip_network(cidr).hosts())
        for name in ("twin-1", "twin-2"):
            svc = _service(draw, name, ns, cidr)
            if trap == "nodeport":
                svc["spec"]["type"] = "NodePort"
                svc["spec"]["ports"][0]["nodePort"] = 30090
            else:
                svc["spec"]["clusterIP"] = str(hosts[20])
            docs.append(svc)
    return Drawn(docs)


def _twins(node_port: int) -> list[Doc]:
    """Two Services asking for one node port: each dry run passes alone."""
    docs = []
    for name in ("twin-a", "twin-b"):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "type": "NodePort",
                    "selector": {"app": name},
                    "ports": [{"port": 80, "nodePort": node_port}],
                },
            }
        )
    return docs


def _odd_configmap() -> Doc:
    """Unknown fields named like pydantic's union tags, and with a line break (a Warning)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "odd"},
        "x[": 1,
        "str": 2,
        "a\nb": 3,
    }


# -- the store's object set -----------------------------------------------------------------------


def _fingerprint(obj: Doc) -> str:
    """What a user wrote (no status, no server bookkeeping, no controller's annotation)."""
    meta = obj.get("metadata") or {}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith("deployment.kubernetes.io/")
    }
    kept = {
        "uid": meta.get("uid"),
        "labels": meta.get("labels"),
        "annotations": annotations,
        **{k: obj.get(k) for k in ("data", "binaryData", "stringData", "type", "spec")},
    }
    return hashlib.sha256(orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def _snapshot(client: HttpClient) -> dict[Key, str]:
    snap: dict[Key, str] = {}
    for kind, rt in KINDS.items():
        for obj in (await client.list(rt)).items:
            meta = obj["metadata"]
            if kind == "ConfigMap" and meta["name"] == "kube-root-ca.crt":
                continue  # written by the ServiceAccount controller into every new namespace
            snap[(kind, meta.get("namespace") or "", meta["name"])] = _fingerprint(obj)
    return snap


def _key(doc: Any) -> Key | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
        return None
    rt = KINDS.get(str(doc.get("kind")))
    name = doc["metadata"].get("name")
    if rt is None or not isinstance(name, str):
        return None
    ns = str(doc["metadata"].get("namespace") or "default") if rt.namespaced else ""
    return (str(doc["kind"]), ns, name)


def _changed(before: dict[Key, str], after: dict[Key, str]) -> set[Key]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


# -- the three ways in --------------------------------------------------------------------------


@dataclass
class Figures:
    examples: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    accepted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    partial_writes: list[str] = field(default_factory=list)


def _dump(docs: list[Doc]) -> str:
    parts = []
    for doc in docs:
        try:
            parts.append(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
        except (RecursionError, yaml.YAMLError):
            parts.append(json.dumps(doc))  # JSON is YAML too
    return "---\n".join(parts)


def _api_error(exc: BaseException, figures: Figures, what: str) -> None:
    if isinstance(exc, errors.ApiError):
        if isinstance(exc.__cause__, (aiohttp.ClientError, TimeoutError)) or exc.code >= 500:
            figures.server_errors.append(f"{what}: {exc.code} {exc.reason}: {exc.message[:200]}")
        figures.statuses[exc.code] += 1


async def _through_procorch_apply(
    client: HttpClient, docs: list[Doc], path: Path, figures: Figures
) -> None:
    before = await _snapshot(client)
    path.write_text(_dump(docs))
    refused: str | None = None
    try:
        applied = await apply_all(client, load([path]), field_manager="fuzz")
    except ManifestError as exc:
        refused = f"the loader: {exc}"
    except ApplyError as exc:
        refused = f"the dry run: {exc}"
        for _, problem in exc.problems:
            _api_error(problem, figures, "procorch apply (dry run)")
            figures.reasons[getattr(problem, "reason", type(problem).__name__)] += 1
    except errors.ApiError as exc:
        refused = f"the real apply, after a dry run passed: {exc}"
        _api_error(exc, figures, "procorch apply")
    after = await _snapshot(client)
    if refused is None:
        figures.accepted += 1
        missing = [
            a.describe()
            for a in applied
            if _key({"kind": a.rt.kind, "metadata": a.obj["metadata"]}) not in after
        ]
        assert not missing, f"applied but not stored: {missing}"
        return
    figures.refused += 1
    changed = _changed(before, after)
    if changed:
        figures.partial_writes.append(
            f"refused by {refused[:300]}\nyet changed {sorted(changed)}\n{_dump(docs)[:2000]}"
        )


async def _through_kubectl(
    up: UpProcess,
    client: HttpClient,
    docs: list[Doc],
    path: Path,
    figures: Figures,
    *,
    server_side: bool,
) -> None:
    assert KUBECTL is not None
    before = await _snapshot(client)
    path.write_text(_dump(docs))
    args = [
        f"--kubeconfig={up.data_dir / 'kubeconfig'}",
        f"--cache-dir={up.data_dir.parent / 'kube-cache'}",
        "apply",
        "-f",
        str(path),
        "-v=6",
    ]
    if server_side:
        args += ["--server-side", "--force-conflicts"]
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    log = err.decode(errors="replace")
    for method, url, code in re.findall(r"\] (GET|POST|PUT|PATCH|DELETE) (\S+) (\d{3}) ", log):
        figures.statuses[int(code)] += 1
        if int(code) >= 500:
            figures.server_errors.append(f"kubectl {method} {url}: {code}")
    if "connection refused" in log or "i/o timeout" in log:
        figures.server_errors.append(f"kubectl: server unreachable: {log[-500:]}")
    after = await _snapshot(client)
    named = {k for k in map(_key, docs) if k is not None}
    if proc.returncode == 0:
        figures.accepted += 1
    else:
        figures.refused += 1
    stray = _changed(before, after) - named
    if stray:
        figures.partial_writes.append(f"kubectl apply changed {sorted(stray)}, not in the file")


async def _through_http(
    up: UpProcess, client: HttpClient, docs: list[Doc], figures: Figures, *, as_yaml: bool
) -> None:
    before = await _snapshot(client)
    creds = up.credentials
    created: set[Key] = set()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=up.tls()),
        headers={"Authorization": f"Bearer {creds.token}"},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:
        for doc in docs:
            key = _key(doc)
            rt = KINDS.get(str(doc.get("kind"))) or KINDS["ConfigMap"]
            ns = key[1] if key is not None and rt.namespaced else "default"
            url = creds.server + rt.path(ns if rt.namespaced else None, None)
            if as_yaml:
                try:
                    body = yaml.safe_dump(doc).encode()
                except RecursionError:
                    body = json.dumps(doc).encode()
                content_type = "application/yaml"
            else:
                body, content_type = json.dumps(doc).encode(), "application/json"
            try:
                async with session.post(
                    url, data=body, headers={"Content-Type": content_type}
                ) as reply:
                    answer = await reply.read()
                    status = reply.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                figures.server_errors.append(f"POST {url}: {exc!r}")
                continue
            figures.statuses[status] += 1
            if status >= 500:
                figures.server_errors.append(f"POST {url}: {status} {answer[:300]!r}")
            if status < 300:
                # What was stored, as the answer says (a document without a kind is taken as
                # the kind of the URL, as Kubernetes does).
                obj = json.loads(answer)
                meta = obj["metadata"]
                created.add((obj["kind"], meta.get("namespace") or "", meta["name"]))
                figures.accepted += 1
            else:
                figures.refused += 1
    after = await _snapshot(client)
    stray = _changed(before, after) - created
    if stray:
        figures.partial_writes.append(f"refused POSTs changed {sorted(stray)}")


# -- the test --------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_fuzzed_manifests_never_get_a_5xx_and_a_refused_apply_stores_nothing(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    cidr = service_cidr(data)
    figures = Figures()
    ways = ["procorch apply", "http"] + (["kubectl"] if KUBECTL else [])
    async with procorch_up(data, "--no-node") as up:
        await up.wait_ready()
        client = up.client(field_manager="fuzz")
        loop = asyncio.get_running_loop()
        try:
            # fz-a exists from the start; fz-b and fz-c once a manifest creates them.
            await client.create(KINDS["Namespace"], _namespace("fz-a"))

            async def run_one(docs: list[Doc], way: str, flag: bool) -> None:
                figures.examples[way] += 1
                path = tmp_path / "manifest.yaml"
                if way == "procorch apply":
                    await _through_procorch_apply(client, docs, path, figures)
                elif way == "kubectl":
                    await _through_kubectl(up, client, docs, path, figures, server_side=flag)
                else:
                    await _through_http(up, client, docs, figures, as_yaml=flag)
                assert up.proc.returncode is None, f"procorch exited:\n{up.log_tail()}"
                assert not figures.server_errors, figures.server_errors[:3]
                assert not figures.partial_writes, figures.partial_writes[0]

            @settings(
                max_examples=25 * trials(2),
                deadline=None,
                database=None,
                derandomize=not scaled(),
                # Each example costs requests: report the first failure as found, unshrunk
                # (the messages carry the manifest).
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            # Regressions first, each on its way in (the ways take turns: apply, http, kubectl).
            @example(Drawn(_twins(30092)), False)
            @example(Drawn([_odd_configmap()]), False)
            @example(Drawn([_odd_configmap(), _namespace("fz-c")]), True)
            @given(manifests(cidr), st.booleans())
            def fuzz(drawn: Drawn, flag: bool) -> None:
                # Each way in turn (drawn, the simplest would get most examples).
                way = ways[sum(figures.examples.values()) % len(ways)]
                # Hypothesis runs on a thread of its own; the requests on the test's loop.
                asyncio.run_coroutine_threadsafe(run_one(drawn.docs, way, flag), loop).result()

            await asyncio.to_thread(fuzz)
        finally:
            await client.close()
        assert await up.stop() == 0
    report(
        "manifest fuzz",
        examples=sum(figures.examples.values()),
        **{f"via {k}": v for k, v in figures.examples.items()},
        refused=figures.refused,
        accepted=figures.accepted,
        server_errors=len(figures.server_errors),
        partial_writes=len(figures.partial_writes),
        statuses=dict(sorted(figures.statuses.items())),
        reasons=dict(figures.reasons.most_common()),
    )
