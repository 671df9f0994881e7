"""Pod volumes: names, exactly one source each, and the sources procorch runs (emptyDir,
hostPath, configMap, secret, downwardAPI, projected, persistentVolumeClaim) in detail.

Mirrors Kubernetes' ``ValidateVolumes`` and ``validateVolumeSource``. Pure data.
"""

from __future__ import annotations

from typing import Any

from procorch.api.errors import duplicate, forbidden, invalid, not_supported, required
from procorch.api.validation._base import (
    Causes,
    as_dict,
    as_int,
    as_str,
    child,
    index,
    items,
    present,
)
from procorch.api.validation.containers import (
    validate_object_field_selector,
    validate_resource_field_selector,
)
from procorch.api.validation.meta import validate_dns1123_label

FILE_MODE_ERROR = "must be a number between 0 and 0777 (octal), both inclusive"
# Every volume source Kubernetes knows; procorch runs a few of them, the rest are still
# counted so that "more than 1 volume type" is reported as Kubernetes would.
VOLUME_SOURCES = (
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "quobyte",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
)
_HOST_PATH_TYPES = [
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
]
_VOLUME_FIELD_PATHS = [
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
]


def _mode(path: str, value: Any) -> Causes:
    number = as_int(value)
    if number is not None and not 0 <= number <= 0o777:
        return [invalid(path, number, FILE_MODE_ERROR)]
    return []


def _local_path(value: str, path: str) -> Causes:
    """ValidateLocalNonReservedPath: relative, no '..' element, not starting with '..'."""
    causes: Causes = []
    if value.startswith("/"):
        causes.append(invalid(path, value, "must be a relative path"))
    if ".." in value.split("/"):
        causes.append(invalid(path, value, "must not contain '..'"))
    if value.startswith("..") and not value.startswith("../"):
        causes.append(invalid(path, value, "must not start with '..'"))
    return causes


def _key_to_path(item: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    if not as_str(item.get("key")):
        causes.append(required(child(path, "key")))
    target = as_str(item.get("path"))
    if not target:
        causes.append(required(child(path, "path")))
    causes += _local_path(target, child(path, "path"))
    causes += _mode(child(path, "mode"), item.get("mode"))
    return causes


def _downward_file(item: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    target = as_str(item.get("path"))
    if not target:
        causes.append(required(child(path, "path")))
    causes += _local_path(target, child(path, "path"))
    if present(item, "fieldRef"):
        causes += validate_object_field_selector(
            as_dict(item["fieldRef"]), _VOLUME_FIELD_PATHS, child(path, "fieldRef")
        )
        if present(item, "resourceFieldRef"):
            causes.append(
                invalid(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                )
            )
    elif present(item, "resourceFieldRef"):
        causes += validate_resource_field_selector(
            as_dict(item["resourceFieldRef"]), child(path, "resourceFieldRef"), volume=True
        )
    else:
        causes.append(required(path, "one of fieldRef and resourceFieldRef is required"))
    causes += _mode(child(path, "mode"), item.get("mode"))
    return causes


def _volume_source(kind: str, source: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    if kind == "hostPath":
        where = as_str(source.get("path"))
        if not where:
            return [required(child(path, "path"))]
        if ".." in where.split("/"):
            causes.append(invalid(child(path, "path"), where, "must not contain '..'"))
        host_type = source.get("type")
        if host_type is not None and host_type not in _HOST_PATH_TYPES:
            causes.append(not_supported(child(path, "type"), host_type, _HOST_PATH_TYPES))
    elif kind in ("secret", "configMap"):
        name_field = "secretName" if kind == "secret" else "name"
        if not as_str(source.get(name_field)):
            causes.append(required(child(path, name_field)))
        causes += _mode(child(path, "defaultMode"), source.get("defaultMode"))
        for i, item in items(source.get("items")):
            causes += _key_to_path(item, index(child(path, "items"), i))
    elif kind == "persistentVolumeClaim":
        if not as_str(source.get("claimName")):
            causes.append(required(child(path, "claimName")))
    elif kind == "emptyDir":
        limit = source.get("sizeLimit")
        if isinstance(limit, str) and limit.startswith("-"):
            causes.append(
                forbidden(
                    child(path, "sizeLimit"), "SizeLimit field must be a valid resource quantity"
                )
            )
    elif kind == "downwardAPI":
        causes += _mode(child(path, "defaultMode"), source.get("defaultMode"))
        for _, item in items(source.get("items")):
            causes += _downward_file(item, path)
    elif kind == "projected":
        causes += _mode(child(path, "defaultMode"), source.get("defaultMode"))
        causes += _projection_sources(source, path)
    return causes


def _projection_sources(source: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    seen_paths: set[str] = set()

    def claim(target: str, shown: Any) -> None:
        if target in seen_paths:
            causes.append(invalid(path, shown, "conflicting duplicate paths"))
        seen_paths.add(target)

    for i, projection in items(source.get("sources")):
        src_path = index(child(path, "sources"), i)
        count = 0
        for kind in ("secret", "configMap"):
            if not present(projection, kind):
                continue
            count += 1
            ref = as_dict(projection[kind])
            if not as_str(ref.get("name")):
                causes.append(required(child(src_path, kind, "name")))
            for j, item in items(ref.get("items")):
                causes += _key_to_path(item, index(child(src_path, kind, "items"), j))
                if as_str(item.get("path")):
                    claim(as_str(item.get("path")), as_str(ref.get("name")))
        if present(projection, "downwardAPI"):
            count += 1
            for _, item in items(as_dict(projection["downwardAPI"]).get("items")):
                causes += _downward_file(item, child(src_path, "downwardAPI"))
                if as_str(item.get("path")):
                    claim(as_str(item.get("path")), as_str(item.get("path")))
        if present(projection, "serviceAccountToken"):
            count += 1
            token = as_dict(projection["serviceAccountToken"])
            token_path = child(src_path, "serviceAccountToken")
            expiration = as_int(token.get("expirationSeconds"))
            if expiration is not None and expiration < 600:
                causes.append(
                    invalid(
                        child(token_path, "expirationSeconds"),
                        expiration,
                        "may not specify a duration less than 10 minutes",
                    )
                )
            if expiration is not None and expiration > 1 << 32:
                causes.append(
                    invalid(
                        child(token_path, "expirationSeconds"),
                        expiration,
                        "may not specify a duration larger than 2^32 seconds",
                    )
                )
            target = as_str(token.get("path"))
            if not target:
                causes.append(required(child(path, "path")))
            else:
                causes += _local_path(target, child(path, "path"))
        if count > 1:
            causes.append(forbidden(src_path, "may not specify more than 1 volume type per source"))
    return causes


def validate_volumes(volumes: Any, path: str) -> tuple[set[str], Causes]:
    """The names of the valid volumes, and every problem found."""
    names: set[str] = set()
    causes: Causes = []
    for i, volume in items(volumes):
        vol_path = index(path, i)
        errs: Causes = []
        count = 0
        for kind in VOLUME_SOURCES:
            if not present(volume, kind):
                continue
            if count > 0:
                errs.append(
                    forbidden(child(vol_path, kind), "may not specify more than 1 volume type")
                )
                continue
            count += 1
            errs += _volume_source(kind, as_dict(volume[kind]), child(vol_path, kind))
        if count == 0:
            errs.append(required(vol_path, "must specify a volume type"))
        name = as_str(volume.get("name"))
        if not name:
            errs.append(required(child(vol_path, "name")))
        else:
            errs += validate_dns1123_label(name, child(vol_path, "name"))
        if name in names:
            errs.append(duplicate(child(vol_path, "name"), name))
        if errs:
            causes += errs
        else:
            names.add(name)
    return names, causes
