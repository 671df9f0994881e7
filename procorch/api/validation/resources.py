"""Resource names and quantities: container requests and limits, node capacity, PVC storage.

Mirrors Kubernetes' ``ValidateResourceRequirements``, ``validateContainerResourceName`` and
``ValidateResourceQuantityValue``. A quantity that does not parse, which Kubernetes refuses
while decoding, is reported here as an invalid value with the decoder's message.
Pure data.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from procorch.api.errors import forbidden, invalid, required
from procorch.api.quantity import canonical_quantity, parse_quantity_format
from procorch.api.validation import formats
from procorch.api.validation._base import Causes, as_dict, child, invalid_shown, key

_STANDARD_CONTAINER = {"cpu", "memory", "ephemeral-storage"}
_STANDARD = {
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
}
_INTEGER = {
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
}


def is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-")


def is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def is_extended(name: str) -> bool:
    if is_native(name) or name.startswith("requests."):
        return False
    return not formats.is_qualified_name("requests." + name)


def overcommit_allowed(name: str) -> bool:
    return is_native(name) and not is_hugepages(name)


def _is_standard(name: str) -> bool:
    return name in _STANDARD or name.startswith("requests.hugepages-") or is_hugepages(name)


def quantity(path: str, value: Any) -> tuple[Decimal | None, Causes]:
    """Parse a quantity field; a bad one gives the decoder's message as a cause."""
    try:
        number, _ = parse_quantity_format(value)
    except (ValueError, TypeError) as exc:
        return None, [invalid(path, value, str(exc))]
    return number, []


def shown(value: Any) -> str:
    """A quantity as Kubernetes prints it in messages (its canonical text)."""
    try:
        return canonical_quantity(value)
    except (ValueError, TypeError):
        return str(value)


def validate_resource_name(name: str, path: str) -> Causes:
    causes = [invalid(path, name, msg) for msg in formats.is_qualified_name(name)]
    if causes:
        return causes
    if "/" not in name and not _is_standard(name):
        causes.append(invalid(path, name, "must be a standard resource type or fully qualified"))
    return causes


def validate_container_resource_name(name: str, path: str) -> Causes:
    causes = validate_resource_name(name, path)
    if "/" not in name:
        if not (name in _STANDARD_CONTAINER or is_hugepages(name)):
            causes.append(invalid(path, name, "must be a standard resource for containers"))
    elif not is_native(name) and not is_extended(name):
        causes.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return causes


def validate_quantity_value(name: str, raw: Any, path: str) -> Causes:
    """ValidateResourceQuantityValue: not negative, whole for integer resources."""
    try:
        value, _ = parse_quantity_format(raw)
    except (ValueError, TypeError):
        return []
    causes: Causes = []
    if value < 0:
        causes.append(invalid(path, shown(raw), "must be greater than or equal to 0"))
    if (name in _INTEGER or is_extended(name)) and (value * 1000) % 1000 != 0:
        causes.append(invalid_shown(path, shown(raw), "must be an integer"))
    return causes


def validate_resource_list(resources: Any, path: str, *, dotted: bool = False) -> Causes:
    """A plain resource list (node capacity): parseable, non-negative quantities. Kubernetes
    names node entries ``status.capacity.cpu`` rather than ``[cpu]``: ``dotted`` does that."""
    causes: Causes = []
    for name, value in as_dict(resources).items():
        field = child(path, name) if dotted else key(path, name)
        number, errs = quantity(field, value)
        causes += errs
        if number is not None:
            causes += validate_quantity_value(name, value, field)
    return causes


def validate_requirements(requirements: Any, path: str) -> Causes:
    requirements = as_dict(requirements)
    limits_path = child(path, "limits")
    requests_path = child(path, "requests")
    limits: dict[str, Decimal] = {}
    causes: Causes = []
    has_compute = False
    has_hugepages = False
    for name, value in as_dict(requirements.get("limits")).items():
        field = key(limits_path, name)
        causes += validate_container_resource_name(name, field)
        number, errs = quantity(field, value)
        causes += errs
        if number is not None:
            causes += validate_quantity_value(name, value, field)
            limits[name] = number
        has_hugepages |= is_hugepages(name)
        has_compute |= name in ("cpu", "memory")
    for name, value in as_dict(requirements.get("requests")).items():
        field = key(requests_path, name)
        causes += validate_container_resource_name(name, field)
        number, errs = quantity(field, value)
        causes += errs
        if number is not None:
            causes += validate_quantity_value(name, value, field)
            limit = limits.get(name)
            raw_limit = as_dict(requirements.get("limits")).get(name)
            if limit is not None:
                if number != limit and not overcommit_allowed(name):
                    causes.append(
                        invalid(
                            requests_path,
                            shown(value),
                            f"must be equal to {name} limit of {shown(raw_limit)}",
                        )
                    )
                elif number > limit:
                    causes.append(
                        invalid(
                            requests_path,
                            shown(value),
                            f"must be less than or equal to {name} limit of {shown(raw_limit)}",
                        )
                    )
            elif name not in as_dict(requirements.get("limits")) and not overcommit_allowed(name):
                causes.append(
                    required(limits_path, "Limit must be set for non overcommitable resources")
                )
        has_hugepages |= is_hugepages(name)
        has_compute |= name in ("cpu", "memory")
    if has_hugepages and not has_compute:
        causes.append(forbidden(path, "HugePages require cpu or memory"))
    return causes
