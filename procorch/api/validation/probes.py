"""Probes and lifecycle hooks: exactly one handler, its ports and paths, thresholds.

Mirrors Kubernetes' ``validateProbe``/``validateLivenessProbe``/... and ``validateHandler``.
Pure data.
"""

from __future__ import annotations

from typing import Any

from procorch.api.errors import forbidden, invalid, not_supported, required
from procorch.api.validation import formats
from procorch.api.validation._base import (
    Causes,
    as_dict,
    as_int,
    as_list,
    as_str,
    child,
    items,
    nonnegative,
    present,
)


def validate_port_num_or_name(port: Any, path: str) -> Causes:
    if isinstance(port, str):
        return [invalid(path, port, msg) for msg in formats.is_valid_port_name(port)]
    number = as_int(port)
    if number is None:
        number = 0
    return [invalid(path, number, msg) for msg in formats.is_valid_port_num(number)]


_HANDLERS_PROBE = ("exec", "httpGet", "tcpSocket", "grpc")
_HANDLERS_LIFECYCLE = ("exec", "httpGet", "tcpSocket", "sleep")


def validate_handler(
    handler: dict[str, Any], kinds: tuple[str, ...], grace: int | None, path: str
) -> Causes:
    causes: Causes = []
    count = 0
    for kind in kinds:
        if not present(handler, kind):
            continue
        kind_path = child(path, kind)
        if count > 0:
            causes.append(forbidden(kind_path, "may not specify more than 1 handler type"))
            continue
        count += 1
        action = as_dict(handler[kind])
        if kind == "exec":
            if not as_list(action.get("command")):
                causes.append(required(child(kind_path, "command")))
        elif kind == "httpGet":
            if not as_str(action.get("path")):
                causes.append(required(child(kind_path, "path")))
            causes += validate_port_num_or_name(action.get("port"), child(kind_path, "port"))
            scheme = as_str(action.get("scheme"))
            if scheme not in ("HTTP", "HTTPS"):
                causes.append(not_supported(child(kind_path, "scheme"), scheme, ["HTTP", "HTTPS"]))
            for _, header in items(action.get("httpHeaders")):
                header_name = as_str(header.get("name"))
                causes += [
                    invalid(child(kind_path, "httpHeaders"), header_name, msg)
                    for msg in formats.is_http_header_name(header_name)
                ]
        elif kind == "tcpSocket":
            causes += validate_port_num_or_name(action.get("port"), child(kind_path, "port"))
        elif kind == "grpc":
            port = as_int(action.get("port")) or 0
            causes += [
                invalid(child(kind_path, "port"), port, msg)
                for msg in formats.is_valid_port_num(port)
            ]
        elif kind == "sleep":
            seconds = as_int(action.get("seconds")) or 0
            if grace is not None and (seconds <= 0 or seconds > grace):
                causes.append(
                    invalid(
                        kind_path,
                        seconds,
                        "must be greater than 0 and less than "
                        f"terminationGracePeriodSeconds ({grace})",
                    )
                )
    if count == 0:
        causes.append(required(path, "must specify a handler type"))
    return causes


def validate_probe(probe: Any, which: str, grace: int | None, path: str) -> Causes:
    if probe is None:
        return []
    probe = as_dict(probe)
    causes = validate_handler(probe, _HANDLERS_PROBE, grace, path)
    for field in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        causes += nonnegative(child(path, field), probe.get(field))
    probe_grace = probe.get("terminationGracePeriodSeconds")
    if probe_grace is not None:
        number = as_int(probe_grace)
        if which == "readiness":
            causes.append(
                invalid(
                    child(path, "terminationGracePeriodSeconds"),
                    probe_grace,
                    "must not be set for readinessProbes",
                )
            )
        elif number is not None and number <= 0:
            causes.append(
                invalid(
                    child(path, "terminationGracePeriodSeconds"), number, "must be greater than 0"
                )
            )
    if which in ("liveness", "startup"):
        success = as_int(probe.get("successThreshold"))
        if success != 1:
            causes.append(invalid(child(path, "successThreshold"), success or 0, "must be 1"))
    return causes


def validate_lifecycle(lifecycle: Any, grace: int | None, path: str) -> Causes:
    lifecycle = as_dict(lifecycle)
    causes: Causes = []
    for hook in ("postStart", "preStop"):
        if present(lifecycle, hook):
            causes += validate_handler(
                as_dict(lifecycle[hook]), _HANDLERS_LIFECYCLE, grace, child(path, hook)
            )
    return causes
