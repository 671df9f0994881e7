"""ObjectMeta, labels, annotations, label selectors and name rules.

Mirrors apimachinery's ``ValidateObjectMeta``/``ValidateObjectMetaUpdate``, ``ValidateLabels``,
``ValidateAnnotations`` and ``ValidateLabelSelector``, plus the per-kind name functions
(``NameIsDNSSubdomain``, ``NameIsDNSLabel``, ``NameIsDNS1035Label``, RBAC's path-segment
names). Pure data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from procorch.api.errors import forbidden, invalid, required, too_long
from procorch.api.validation import formats
from procorch.api.validation._base import (
    Causes,
    as_dict,
    as_int,
    as_list,
    as_str,
    child,
    immutable,
    index,
    items,
    str_map,
)

NameFn = Callable[[str, bool], list[str]]

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
_STANDARD_FINALIZERS = {
    "kubernetes",
    "orphan",
    "foregroundDeletion",
    "customresourcecleanup.apiextensions.k8s.io",
}
# Kinds Kubernetes refuses as owners.
_BANNED_OWNERS = {("v1", "Event")}


def _mask_trailing_dash(name: str) -> str:
    # A generateName prefix may end in '-': validate it as if a suffix followed.
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    return formats.is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    return formats.is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return formats.is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def name_is_path_segment(name: str, prefix: bool) -> list[str]:
    if prefix:
        return formats.is_valid_path_segment_prefix(name)
    return formats.is_valid_path_segment_name(name)


# Name rules per kind (Kubernetes' Validate<Kind>Name functions); the rest use subdomains.
NAME_RULES: dict[str, NameFn] = {
    "Namespace": name_is_dns_label,
    "Service": name_is_dns1035_label,
    "Role": name_is_path_segment,
    "ClusterRole": name_is_path_segment,
    "RoleBinding": name_is_path_segment,
    "ClusterRoleBinding": name_is_path_segment,
}


def name_rule(kind: str) -> NameFn:
    return NAME_RULES.get(kind, name_is_dns_subdomain)


def validate_label_name(name: str, path: str) -> Causes:
    return [invalid(path, name, msg) for msg in formats.is_qualified_name(name)]


def validate_labels(labels: Any, path: str) -> Causes:
    causes: Causes = []
    for k, v in str_map(labels).items():
        causes += validate_label_name(k, path)
        causes += [invalid(path, v, msg) for msg in formats.is_label_value(v)]
    return causes


def validate_annotations(annotations: Any, path: str) -> Causes:
    causes: Causes = []
    values = str_map(annotations)
    for k in values:
        # Annotation keys are qualified names, case aside.
        causes += [invalid(path, k, msg) for msg in formats.is_qualified_name(k.lower())]
    size = sum(len(k.encode()) + len(v.encode()) for k, v in values.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(path, "", TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def validate_qualified_name(value: str, path: str) -> Causes:
    return [invalid(path, value, msg) for msg in formats.is_qualified_name(value)]


def validate_dns1123_label(value: str, path: str) -> Causes:
    return [invalid(path, value, msg) for msg in formats.is_dns1123_label(value)]


def validate_dns1123_subdomain(value: str, path: str) -> Causes:
    return [invalid(path, value, msg) for msg in formats.is_dns1123_subdomain(value)]


def _validate_owner_references(refs: Any, path: str) -> Causes:
    causes: Causes = []
    first_controller = ""
    for _, ref in items(refs):
        api_version = as_str(ref.get("apiVersion"))
        kind = as_str(ref.get("kind"))
        version = api_version.rsplit("/", 1)[-1] if api_version else ""
        if not version:
            causes.append(
                invalid(child(path, "apiVersion"), api_version, "version must not be empty")
            )
        if not kind:
            causes.append(invalid(child(path, "kind"), kind, "kind must not be empty"))
        if not as_str(ref.get("name")):
            causes.append(
                invalid(child(path, "name"), as_str(ref.get("name")), "name must not be empty")
            )
        if not as_str(ref.get("uid")):
            causes.append(
                invalid(child(path, "uid"), as_str(ref.get("uid")), "uid must not be empty")
            )
        if (api_version, kind) in _BANNED_OWNERS:
            causes.append(
                invalid(path, ref, f"/{api_version}, Kind={kind} is disallowed from being an owner")
            )
        if ref.get("controller") is True:
            name = f"{kind}/{as_str(ref.get('name'))}"
            if first_controller:
                causes.append(
                    invalid(
                        path,
                        refs,
                        'Only one reference can have Controller set to true. Found "true" in '
                        f"references for {first_controller} and {name}",
                    )
                )
            else:
                first_controller = name
    return causes


def _validate_finalizers(finalizers: Any, path: str) -> Causes:
    causes: Causes = []
    names = [as_str(f) for f in as_list(finalizers)]
    for i, name in enumerate(names):
        causes += validate_qualified_name(name, path)
        # Kubernetes' core group also refuses unqualified names it does not know.
        if "/" not in name and name not in _STANDARD_FINALIZERS:
            causes.append(
                invalid(
                    index(path, i),
                    name,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    if "orphan" in names and "foregroundDeletion" in names:
        causes.append(
            invalid(path, names, "finalizer orphan and foregroundDeletion cannot be both set")
        )
    return causes


def _validate_managed_fields(entries: Any, path: str) -> Causes:
    causes: Causes = []
    for i, entry in items(entries):
        entry_path = index(path, i)
        operation = as_str(entry.get("operation"))
        if operation not in ("Apply", "Update"):
            causes.append(
                invalid(child(entry_path, "operation"), operation, "must be `Apply` or `Update`")
            )
        fields_type = as_str(entry.get("fieldsType"))
        if fields_type and fields_type != "FieldsV1":
            causes.append(
                invalid(child(entry_path, "fieldsType"), fields_type, "must be `FieldsV1`")
            )
    return causes


def validate_object_meta(
    meta: Any, *, namespaced: bool, name_fn: NameFn, path: str = "metadata"
) -> Causes:
    """Kubernetes' ValidateObjectMeta (creation), with the core group's finalizer check."""
    meta = as_dict(meta)
    causes: Causes = []
    generate_name = as_str(meta.get("generateName"))
    if generate_name:
        causes += [
            invalid(child(path, "generateName"), generate_name, msg)
            for msg in name_fn(generate_name, True)
        ]
    name = as_str(meta.get("name"))
    if not name:
        causes.append(required(child(path, "name"), "name or generateName is required"))
    else:
        causes += [invalid(child(path, "name"), name, msg) for msg in name_fn(name, False)]
    namespace = as_str(meta.get("namespace"))
    if namespaced:
        if not namespace:
            causes.append(required(child(path, "namespace")))
        else:
            causes += [
                invalid(child(path, "namespace"), namespace, msg)
                for msg in name_is_dns_label(namespace, False)
            ]
    elif namespace:
        causes.append(forbidden(child(path, "namespace"), "not allowed on this type"))
    generation = as_int(meta.get("generation"))
    if generation is not None and generation < 0:
        causes.append(
            invalid(child(path, "generation"), generation, "must be greater than or equal to 0")
        )
    causes += validate_labels(meta.get("labels"), child(path, "labels"))
    causes += validate_annotations(meta.get("annotations"), child(path, "annotations"))
    causes += _validate_owner_references(
        meta.get("ownerReferences"), child(path, "ownerReferences")
    )
    causes += _validate_finalizers(meta.get("finalizers"), child(path, "finalizers"))
    causes += _validate_managed_fields(meta.get("managedFields"), child(path, "managedFields"))
    return causes


def validate_object_meta_update(new: Any, old: Any, path: str = "metadata") -> Causes:
    """Kubernetes' ValidateObjectMetaUpdate. The resourceVersion precondition is the API
    server's business (it fills it in for unconditional updates), so it is not checked."""
    new, old = as_dict(new), as_dict(old)
    causes: Causes = []
    if old.get("deletionTimestamp"):
        added = sorted(
            set(map(str, as_list(new.get("finalizers"))))
            - set(map(str, as_list(old.get("finalizers"))))
        )
        if added:
            shown = "[]string{" + ", ".join(f'"{f}"' for f in added) + "}"
            causes.append(
                forbidden(
                    child(path, "finalizers"),
                    "no new finalizers can be added if the object is being "
                    f"deleted, found new finalizers {shown}",
                )
            )
    new_generation = as_int(new.get("generation")) or 0
    if new_generation < (as_int(old.get("generation")) or 0):
        causes.append(invalid(child(path, "generation"), new_generation, "must not be decremented"))
    for name in (
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ):
        causes += immutable(child(path, name), new.get(name), old.get(name))
    return causes


# Label selectors.


def validate_label_selector(selector: Any, path: str) -> Causes:
    selector = as_dict(selector)
    causes = validate_labels(selector.get("matchLabels"), child(path, "matchLabels"))
    for i, req in items(selector.get("matchExpressions")):
        req_path = index(child(path, "matchExpressions"), i)
        operator = req.get("operator")
        values = as_list(req.get("values"))
        if operator in ("In", "NotIn"):
            if not values:
                causes.append(
                    required(
                        child(req_path, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    )
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                causes.append(
                    forbidden(
                        child(req_path, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            causes.append(
                invalid(child(req_path, "operator"), operator, "not a valid selector operator")
            )
        causes += validate_label_name(as_str(req.get("key")), child(req_path, "key"))
        for j, value in enumerate(values):
            causes += [
                invalid(index(child(req_path, "values"), j), value, msg)
                for msg in formats.is_label_value(as_str(value))
            ]
    return causes


def selector_is_valid(selector: Any) -> bool:
    """Whether a selector converts to a label selector at all (Go's LabelSelectorAsSelector)."""
    for _, req in items(as_dict(selector).get("matchExpressions")):
        operator = req.get("operator")
        values = as_list(req.get("values"))
        if operator in ("In", "NotIn") and not values:
            return False
        if operator in ("Exists", "DoesNotExist") and values:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def selector_is_empty(selector: Any) -> bool:
    selector = as_dict(selector)
    return not as_dict(selector.get("matchLabels")) and not as_list(
        selector.get("matchExpressions")
    )


def selector_matches(selector: Any, labels: Any) -> bool:
    """Whether a (valid) label selector selects the given labels; an empty one selects all."""
    selector = as_dict(selector)
    labels = str_map(labels)
    for k, v in str_map(selector.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for _, req in items(selector.get("matchExpressions")):
        k = as_str(req.get("key"))
        values = {as_str(v) for v in as_list(req.get("values"))}
        operator = req.get("operator")
        if operator == "In" and labels.get(k) not in values:
            return False
        if operator == "NotIn" and k in labels and labels[k] in values:
            return False
        if operator == "Exists" and k not in labels:
            return False
        if operator == "DoesNotExist" and k in labels:
            return False
    return True


def validate_template_meta(meta: Any, path: str) -> Causes:
    """Metadata of a pod template: only labels and annotations are checked."""
    meta = as_dict(meta)
    causes = validate_labels(meta.get("labels"), child(path, "labels"))
    causes += validate_annotations(meta.get("annotations"), child(path, "annotations"))
    return causes
