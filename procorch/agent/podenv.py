"""A container's environment and command line, resolved the way the kubelet does it.

Owns: :func:`container_env` (kubelet's ``makeEnvironmentVariables``: procorch's injected
variables, ``envFrom``, ``env`` with ``valueFrom`` and ``$(VAR)`` expansion, then the service
variables), :func:`expand` (Kubernetes' ``$(VAR)`` syntax, third_party/forked/golang/expansion),
:func:`command_line`, the downward API helpers shared with volumes (:func:`field_value`,
:func:`resource_value`, :func:`format_map`), the :class:`Lookups` the agent provides over its
informer caches, and :class:`ConfigError`, the CreateContainerConfigError a user sees.

Pure functions over plain dicts in Kubernetes JSON shape: no I/O, no shared state, safe to
call from any task or thread. Never log a value here: it may come from a Secret.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol

from procorch.api.quantity import parse_quantity
from procorch.api.validation.formats import is_relaxed_env_var_name
from procorch.kit.logging import get_logger

log = get_logger("agent.podenv")

EMPTY: Mapping[str, str] = MappingProxyType({})

# Limits the kubelet fills from the node's allocatable when a container sets none
# (defaultPodLimitsForDownwardAPI), so a downward-API limit is never "unlimited".
_DEFAULTED_LIMITS = ("cpu", "memory", "ephemeral-storage")

_GO_ESCAPES = {ch: "\\" + letter for ch, letter in zip("\a\b\f\n\r\t\v", "abfnrtv")}


class ConfigError(Exception):
    """A container cannot be configured (Kubernetes reason CreateContainerConfigError).

    ``str()`` is the message the user sees, worded as the kubelet words it.
    """


class Lookups(Protocol):
    """Read access to the objects a pod refers to; the agent implements it over informer
    caches. Each returns the object as the API returns it, or ``None`` when it does not exist."""

    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def pvc(self, namespace: str, name: str) -> dict[str, Any] | None: ...


# --- $(VAR) expansion ------------------------------------------------------------------------


def expand(value: str, env: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` references exactly as Kubernetes does.

    ``$$`` is an escaped ``$``; ``$(VAR)`` becomes the value of VAR when ``env`` defines it and
    stays ``$(VAR)`` when it does not; an unterminated ``$(`` and a ``$`` followed by anything
    else are kept as written.
    """
    return expand_with(value, env.get)


def expand_with(value: str, lookup: Callable[[str], str | None]) -> str:
    """:func:`expand` with a lookup function (``None``: not defined)."""
    if "$" not in value:
        return value
    out: list[str] = []
    checkpoint = cursor = 0
    end = len(value)
    while cursor < end:
        if value[cursor] == "$" and cursor + 1 < end:
            out.append(value[checkpoint:cursor])
            following = value[cursor + 1]
            advance = 1
            close = value.find(")", cursor + 2) if following == "(" else -1
            if following == "$":
                out.append("$")
            elif close != -1:
                name = value[cursor + 2 : close]
                found = lookup(name)
                out.append(found if found is not None else f"$({name})")
                advance = close - cursor
            else:
                # "$(" with no closing parenthesis, or "$" and any other character.
                out.append("$" + following)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(value[checkpoint:])
    return "".join(out)


def command_line(container: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    """``command + args``, each expanded against the container's environment."""
    parts = list(container.get("command") or []) + list(container.get("args") or [])
    return [expand(str(part), env) for part in parts]


# --- downward API -----------------------------------------------------------------------------


def go_quote(text: str) -> str:
    """Go's ``%q`` (strconv.Quote) of a string: how the kubelet quotes label values."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def format_map(values: Mapping[str, str]) -> str:
    """Labels or annotations as the downward API renders them: ``key="value"`` lines, sorted
    by key, no trailing newline (fieldpath.FormatMap)."""
    return "\n".join(f"{key}={go_quote(str(values[key]))}" for key in sorted(values))


def _subscript(path: str) -> tuple[str, str] | None:
    if not path.endswith("']"):
        return None
    head, sep, key = path[:-2].partition("['")
    return (head, key) if sep and head else None


def field_value(
    pod: dict[str, Any],
    field_path: str,
    *,
    api_version: str = "v1",
    node_name: str = "",
    pod_ip: str = "",
    host_ip: str = "",
) -> str:
    """The value of a pod field as ``fieldRef`` sees it (podFieldSelectorRuntimeValue and
    fieldpath.ExtractFieldPathAsString)."""
    if api_version and api_version != "v1":
        raise ConfigError(f"unsupported pod version: {api_version}")
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    split = _subscript(field_path)
    if split is not None:
        head, key = split
        if head == "metadata.labels":
            return str((meta.get("labels") or {}).get(key, ""))
        if head == "metadata.annotations":
            return str((meta.get("annotations") or {}).get(key, ""))
        raise ConfigError(f"field label does not support subscript: {field_path}")
    if field_path in ("spec.nodeName", "spec.host"):
        return str(spec.get("nodeName") or node_name)
    if field_path == "spec.serviceAccountName":
        return str(spec.get("serviceAccountName") or "")
    if field_path in ("status.hostIP", "status.hostIPs"):
        return host_ip
    if field_path in ("status.podIP", "status.podIPs"):
        # One address per pod (procorch pods are single-stack loopback addresses).
        return pod_ip
    if field_path == "metadata.labels":
        return format_map(meta.get("labels") or {})
    if field_path == "metadata.annotations":
        return format_map(meta.get("annotations") or {})
    if field_path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta.get(field_path.removeprefix("metadata.")) or "")
    raise ConfigError(f"unsupported fieldPath: {field_path}")


def _container_named(pod: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod.get("spec") or {}
    for ctr in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        if ctr.get("name") == name:
            return dict(ctr)
    raise ConfigError(f"container {name} not found")


def resource_value(
    ref: Mapping[str, Any],
    *,
    pod: dict[str, Any],
    container: dict[str, Any] | None,
    node_allocatable: Mapping[str, str] = EMPTY,
) -> str:
    """A ``resourceFieldRef``'s value (ExtractContainerResourceValue): the quantity divided by
    ``divisor`` (default 1) and rounded up; cpu in whole divisor units of milli-cores. A limit the
    container does not set is the node's allocatable, as the kubelet defaults it."""
    name = str(ref.get("containerName") or "")
    target = _container_named(pod, name) if name else (container or {})
    resource = str(ref.get("resource") or "")
    kind, _, res = resource.partition(".")
    if kind not in ("limits", "requests") or not (
        res in _DEFAULTED_LIMITS or res.startswith("hugepages-")
    ):
        raise ConfigError(f"unsupported container resource : {resource}")
    raw_divisor = ref.get("divisor")
    try:
        divisor = parse_quantity(raw_divisor) if raw_divisor not in (None, "") else Decimal(0)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid divisor {raw_divisor!r}: {exc}") from exc
    if divisor == 0:
        divisor = Decimal(1)
    amounts = ((target.get("resources") or {}).get(kind)) or {}
    raw = amounts.get(res)
    if raw is None and kind == "limits" and res in _DEFAULTED_LIMITS:
        raw = node_allocatable.get(res)
    try:
        amount = parse_quantity(raw) if raw is not None else Decimal(0)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid quantity {raw!r} for {resource}: {exc}") from exc
    if res == "cpu":
        # Go compares MilliValue()s, each rounded up to a whole milli-core.
        value = math.ceil(math.ceil(amount * 1000) / math.ceil(divisor * 1000))
    else:
        value = math.ceil(math.ceil(amount) / math.ceil(divisor))
    return str(value)


# --- references to ConfigMaps and Secrets ------------------------------------------------------


def decode_secret_value(value: Any) -> bytes:
    """A Secret's ``data`` value (base64) as bytes."""
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("secret data is not valid base64") from exc


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class _Refs:
    """ConfigMaps and Secrets fetched once per call, as the kubelet caches them per container."""

    def __init__(self, lookups: Lookups, namespace: str) -> None:
        self.lookups = lookups
        self.namespace = namespace
        self._config_maps: dict[str, dict[str, Any] | None] = {}
        self._secrets: dict[str, dict[str, Any] | None] = {}

    def config_map(self, name: str, *, optional: bool) -> dict[str, Any] | None:
        if name not in self._config_maps:
            self._config_maps[name] = self.lookups.config_map(self.namespace, name)
        found = self._config_maps[name]
        if found is None and not optional:
            raise ConfigError(f'configmap "{name}" not found')
        return found

    def secret(self, name: str, *, optional: bool) -> dict[str, Any] | None:
        if name not in self._secrets:
            self._secrets[name] = self.lookups.secret(self.namespace, name)
        found = self._secrets[name]
        if found is None and not optional:
            raise ConfigError(f'secret "{name}" not found')
        return found


def _env_from(env_from: dict[str, Any], refs: _Refs, env: dict[str, str]) -> None:
    prefix = str(env_from.get("prefix") or "")
    values: dict[str, str] = {}
    if env_from.get("configMapRef"):
        ref = env_from["configMapRef"]
        source = refs.config_map(str(ref.get("name") or ""), optional=bool(ref.get("optional")))
        if source is None:
            return
        values = {str(k): str(v) for k, v in (source.get("data") or {}).items()}
        what = f"configMap {refs.namespace}/{ref.get('name')}"
    elif env_from.get("secretRef"):
        ref = env_from["secretRef"]
        source = refs.secret(str(ref.get("name") or ""), optional=bool(ref.get("optional")))
        if source is None:
            return
        values = {
            str(k): _text(decode_secret_value(v)) for k, v in (source.get("data") or {}).items()
        }
        what = f"secret {refs.namespace}/{ref.get('name')}"
    else:
        return
    invalid: list[str] = []
    for key, value in values.items():
        name = prefix + key
        # A name the OS cannot carry (empty, '=', non-printable) is skipped, as the kubelet
        # skips keys that are not valid environment variable names.
        if is_relaxed_env_var_name(name):
            invalid.append(name)
            continue
        env[name] = value
    if invalid:
        log.warning(
            "skipped invalid environment variable names from envFrom",
            source=what,
            keys=sorted(invalid),
        )


def _value_from(
    source: dict[str, Any],
    *,
    pod: dict[str, Any],
    container: dict[str, Any],
    refs: _Refs,
    node_name: str,
    pod_ip: str,
    host_ip: str,
    node_allocatable: Mapping[str, str],
) -> str | None:
    """The value of an ``env[].valueFrom``; ``None`` when an optional reference is missing
    (the variable is then not set at all)."""
    if source.get("fieldRef"):
        ref = source["fieldRef"]
        return field_value(
            pod,
            str(ref.get("fieldPath") or ""),
            api_version=str(ref.get("apiVersion") or "v1"),
            node_name=node_name,
            pod_ip=pod_ip,
            host_ip=host_ip,
        )
    if source.get("resourceFieldRef"):
        return resource_value(
            source["resourceFieldRef"],
            pod=pod,
            container=container,
            node_allocatable=node_allocatable,
        )
    if source.get("configMapKeyRef"):
        ref = source["configMapKeyRef"]
        name, key, optional = str(ref.get("name") or ""), str(ref.get("key")), ref.get("optional")
        config_map = refs.config_map(name, optional=bool(optional))
        if config_map is None:
            return None
        data = config_map.get("data") or {}
        if key not in data:
            if optional:
                return None
            raise ConfigError(f"couldn't find key {key} in ConfigMap {refs.namespace}/{name}")
        return str(data[key])
    if source.get("secretKeyRef"):
        ref = source["secretKeyRef"]
        name, key, optional = str(ref.get("name") or ""), str(ref.get("key")), ref.get("optional")
        secret = refs.secret(name, optional=bool(optional))
        if secret is None:
            return None
        data = secret.get("data") or {}
        if key not in data:
            if optional:
                return None
            raise ConfigError(f"couldn't find key {key} in Secret {refs.namespace}/{name}")
        return _text(decode_secret_value(data[key]))
    return ""


def injected_env(
    pod: dict[str, Any], container: dict[str, Any], *, node_name: str, pod_ip: str
) -> dict[str, str]:
    """The variables procorch gives every container before its own: where to bind and who it is."""
    meta = pod.get("metadata") or {}
    env = {
        "POD_IP": pod_ip,
        "POD_NAME": str(meta.get("name") or ""),
        "POD_NAMESPACE": str(meta.get("namespace") or ""),
        "NODE_NAME": node_name,
    }
    for port in container.get("ports") or []:
        if port.get("containerPort"):
            env["PORT"] = str(port["containerPort"])
            break
    env["PYTHONUNBUFFERED"] = "1"
    return env


def container_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    lookups: Lookups,
    node_name: str,
    pod_ip: str,
    host_ip: str,
    service_env: Mapping[str, str] = EMPTY,
    extra: Mapping[str, str] = EMPTY,
    node_allocatable: Mapping[str, str] = EMPTY,
) -> dict[str, str]:
    """The container's environment, in Kubernetes' order of precedence.

    procorch's variables (``POD_IP``, ``POD_NAME``, ``POD_NAMESPACE``, ``NODE_NAME``,
    ``PORT``, ``PYTHONUNBUFFERED``, then ``extra``), then ``envFrom`` in order, then ``env`` in
    order (a ``value`` expands ``$(VAR)`` against what is defined so far, then the service
    variables), then the service variables not defined yet. Later definitions win. Raises
    :class:`ConfigError` for a missing ConfigMap, Secret or key that is not ``optional``.
    """
    env = injected_env(pod, container, node_name=node_name, pod_ip=pod_ip)
    env.update(extra)
    refs = _Refs(lookups, str((pod.get("metadata") or {}).get("namespace") or ""))
    for env_from in container.get("envFrom") or []:
        _env_from(env_from, refs, env)

    def lookup(name: str) -> str | None:
        return env[name] if name in env else service_env.get(name)

    for var in container.get("env") or []:
        name = str(var.get("name") or "")
        value = var.get("value")
        resolved: str | None
        if value:
            resolved = expand_with(str(value), lookup)
        elif var.get("valueFrom"):
            resolved = _value_from(
                var["valueFrom"],
                pod=pod,
                container=container,
                refs=refs,
                node_name=node_name,
                pod_ip=pod_ip,
                host_ip=host_ip,
                node_allocatable=node_allocatable,
            )
            if resolved is None:
                continue
        else:
            resolved = ""
        env[name] = resolved
    for name, value in service_env.items():
        env.setdefault(name, value)
    return env
