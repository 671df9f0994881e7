"""Pod (core/v1): metadata and spec on create, and what an update may change.

Mirrors Kubernetes' ``ValidatePodCreate`` and ``ValidatePodUpdate``: on update only container
images, ``activeDeadlineSeconds`` (set or lowered), added tolerations, removed scheduling
gates and a negative grace period raised to 1 may change. Pure data.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from procorch.api.errors import duplicate, forbidden, invalid
from procorch.api.validation import formats
from procorch.api.validation._base import (
    Causes,
    as_dict,
    as_int,
    as_list,
    as_str,
    child,
    index,
    items,
    present,
)
from procorch.api.validation.containers import validate_container_common
from procorch.api.validation.meta import name_is_dns_subdomain, validate_object_meta
from procorch.api.validation.podspec import MAX_INT32, validate_pod_spec, validate_tolerations

_UPDATABLE = (
    "`spec.containers[*].image`,"
    "`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def validate_pod(obj: dict[str, Any]) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    spec = as_dict(obj.get("spec"))
    causes += validate_pod_spec(spec, "spec", is_pod=True)
    if not as_str(spec.get("serviceAccountName")):
        for vi, volume in items(spec.get("volumes")):
            for si, source in items(as_dict(volume.get("projected")).get("sources")):
                if present(source, "serviceAccountToken"):
                    causes.append(
                        forbidden(
                            child(
                                index(child(index("spec.volumes", vi), "projected", "sources"), si),
                                "serviceAccountToken",
                            ),
                            "must not be specified when serviceAccountName is not set",
                        )
                    )
    for field in ("containers", "initContainers"):
        for i, ctr in items(spec.get(field)):
            image = as_str(ctr.get("image"))
            if image != image.strip():
                causes.append(
                    invalid(
                        child(index(child("spec", field), i), "image"),
                        image,
                        "must not have leading or trailing whitespace",
                    )
                )
    return causes


def _diff(old: Any, new: Any, path: str, out: list[str]) -> None:
    """A short description of what differs, for the refusal message."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            _diff(old.get(k), new.get(k), child(path, k), out)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            _diff(a, b, index(path, i), out)
    elif old != new:
        shown = [json.dumps(v, sort_keys=True, separators=(",", ":")) for v in (old, new)]
        out.append(f"  {path}: {shown[0]} -> {shown[1]}")


def _only_added_tolerations(new: list[Any], old: list[Any], path: str) -> Causes:
    for old_tol in old:
        found = False
        for new_tol in new:
            candidate = dict(as_dict(old_tol))
            candidate["tolerationSeconds"] = as_dict(new_tol).get("tolerationSeconds")
            if {k: v for k, v in candidate.items() if v is not None} == {
                k: v for k, v in as_dict(new_tol).items() if v is not None
            }:
                found = True
                break
        if not found:
            return [
                forbidden(
                    path, "existing toleration can not be modified except its tolerationSeconds"
                )
            ]
    return validate_tolerations(new, path)


EPHEMERAL_FORBIDDEN = (
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resources",
    "resizePolicy",
    "restartPolicy",
)
"""Container fields an ephemeral container may not have (Kubernetes' list)."""


def validate_ephemeral_containers(new_spec: dict[str, Any], old_spec: dict[str, Any]) -> Causes:
    """What the ``ephemeralcontainers`` subresource may do: add containers (valid as any
    container, with names no other container of the pod has, none of the fields above, and a
    target that is one of the pod's containers); never change or remove one."""
    causes: Causes = []
    path = "spec.ephemeralContainers"
    new_list = as_list(new_spec.get("ephemeralContainers"))
    old_by_name = {as_str(c.get("name")): c for _, c in items(old_spec.get("ephemeralContainers"))}
    new_by_name = {as_str(c.get("name")): (i, c) for i, c in items(new_list)}
    for name, old_ctr in old_by_name.items():
        if name not in new_by_name:
            causes.append(
                forbidden(path, f'existing ephemeral containers "{name}" may not be removed')
            )
        elif new_by_name[name][1] != old_ctr:
            causes.append(
                forbidden(
                    index(path, new_by_name[name][0]),
                    f'existing ephemeral containers "{name}" may not be changed',
                )
            )
    regular = {
        as_str(c.get("name"))
        for field in ("containers", "initContainers")
        for _, c in items(new_spec.get(field))
    }
    taken = set(regular)
    volumes = {as_str(v.get("name")) for _, v in items(new_spec.get("volumes"))}
    for i, ctr in items(new_list):
        at = index(path, i)
        name = as_str(ctr.get("name"))
        if name in old_by_name:
            taken.add(name)
            continue
        # Everything a container must be (a DNS-label name, its env, its mounts of the
        # pod's volumes, a command), then what only an ephemeral one may not have.
        causes += validate_container_common(ctr, volumes, at)
        if name and name in taken:
            causes.append(duplicate(child(at, "name"), name))
        taken.add(name)
        for field in EPHEMERAL_FORBIDDEN:
            if ctr.get(field) not in (None, {}, [], ""):  # empty is unset, as Go compares
                causes.append(
                    forbidden(child(at, field), "cannot be set for an Ephemeral Container")
                )
        target = as_str(ctr.get("targetContainerName"))
        if target and target not in regular:
            causes.append(
                invalid(child(at, "targetContainerName"), target, "must be a container of the pod")
            )
    return causes


def validate_pod_write(obj: dict[str, Any], old: dict[str, Any] | None) -> Causes:
    """A pod as created (``old`` is ``None``) or as changed from ``old``."""
    causes = validate_pod(obj)
    if old is not None:
        causes += validate_pod_update(obj, old)
    elif as_dict(obj.get("spec")).get("ephemeralContainers"):
        causes.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
    return causes


def validate_pod_update(new: dict[str, Any], old: dict[str, Any]) -> Causes:
    causes: Causes = []
    new_spec = as_dict(new.get("spec"))
    old_spec = as_dict(old.get("spec"))
    if new_spec.get("ephemeralContainers") != old_spec.get("ephemeralContainers"):
        causes += validate_ephemeral_containers(new_spec, old_spec)
    for field in ("containers", "initContainers"):
        if len(as_list(new_spec.get(field))) != len(as_list(old_spec.get(field))):
            causes.append(
                forbidden(child("spec", field), "pod updates may not add or remove containers")
            )
            return causes
    new_deadline = new_spec.get("activeDeadlineSeconds")
    old_deadline = as_int(old_spec.get("activeDeadlineSeconds"))
    if new_deadline is not None:
        number = as_int(new_deadline)
        if number is None or not 0 <= number <= MAX_INT32:
            causes.append(
                invalid(
                    "spec.activeDeadlineSeconds",
                    new_deadline,
                    formats.inclusive_range_error(0, MAX_INT32),
                )
            )
            return causes
        if old_deadline is not None and old_deadline < number:
            causes.append(
                invalid(
                    "spec.activeDeadlineSeconds",
                    number,
                    "must be less than or equal to previous value",
                )
            )
            return causes
    elif old_deadline is not None:
        causes.append(
            invalid(
                "spec.activeDeadlineSeconds",
                None,
                "must not update from a positive integer to nil value",
            )
        )
    causes += _only_added_tolerations(
        as_list(new_spec.get("tolerations")),
        as_list(old_spec.get("tolerations")),
        "spec.tolerations",
    )
    new_gates = {as_str(g.get("name")): i for i, g in items(new_spec.get("schedulingGates"))}
    for _, gate in items(old_spec.get("schedulingGates")):
        new_gates.pop(as_str(gate.get("name")), None)
    for gate_name, i in new_gates.items():
        causes.append(
            forbidden(
                child(index("spec.schedulingGates", i), "name"),
                f"only deletion is allowed, but found new scheduling gate '{gate_name}'",
            )
        )
    if new_spec == old_spec:
        return causes
    munged = copy.deepcopy(new_spec)
    for field in ("containers", "initContainers"):
        for ctr, old_ctr in zip(as_list(munged.get(field)), as_list(old_spec.get(field))):
            if isinstance(ctr, dict):
                ctr.pop("image", None)
                if isinstance(old_ctr, dict) and "image" in old_ctr:
                    ctr["image"] = old_ctr["image"]
    # Ephemeral containers change through their subresource (checked above), not here.
    for field in ("activeDeadlineSeconds", "schedulingGates", "tolerations", "ephemeralContainers"):
        munged.pop(field, None)
        if field in old_spec:
            munged[field] = old_spec[field]
    old_grace = as_int(old_spec.get("terminationGracePeriodSeconds"))
    if old_grace is not None and old_grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if munged != old_spec:
        lines: list[str] = []
        _diff(old_spec, munged, "spec", lines)
        causes.append(
            forbidden(
                "spec",
                f"pod updates may not change fields other than {_UPDATABLE}\n" + "\n".join(lines),
            )
        )
    return causes
