"""Secret and ConfigMap (core/v1): keys, base64 data, size, type-specific keys, immutability.

Mirrors Kubernetes' ``ValidateSecret``/``ValidateSecretUpdate`` and
``ValidateConfigMap``/``ValidateConfigMapUpdate``. A Secret's ``data`` (and a ConfigMap's
``binaryData``) arrive base64-encoded in JSON; a value that does not decode is reported here
(Kubernetes refuses it while decoding). Runs after defaulting, which has already folded
``stringData`` into ``data``. Pure data.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from procorch.api.errors import forbidden, invalid, required, too_long
from procorch.api.validation import formats
from procorch.api.validation._base import Causes, as_dict, as_str, immutable, key
from procorch.api.validation.meta import name_is_dns_subdomain, validate_object_meta

MAX_SECRET_SIZE = 1024 * 1024
IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"


def decode_base64(value: Any) -> bytes | None:
    """Decode standard base64 as Go's encoding/json does for []byte; None when invalid."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _bytes_map(values: Any, path: str) -> tuple[dict[str, bytes], Causes]:
    decoded: dict[str, bytes] = {}
    causes: Causes = []
    for k, v in as_dict(values).items():
        raw = decode_base64(v)
        if raw is None:
            causes.append(
                invalid(
                    key(path, k),
                    "<value omitted>",
                    "illegal base64 data: values must be base64-encoded",
                )
            )
            continue
        decoded[k] = raw
    return decoded, causes


def validate_secret(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    data, data_causes = _bytes_map(obj.get("data"), "data")
    causes += data_causes
    for k in as_dict(obj.get("data")):
        causes += [invalid(key("data", k), k, msg) for msg in formats.is_config_map_key(k)]
    total = sum(len(v) for v in data.values())
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("data", "", MAX_SECRET_SIZE))
    secret_type = as_str(obj.get("type"))
    annotations = as_dict(as_dict(obj.get("metadata")).get("annotations"))
    if secret_type == "kubernetes.io/service-account-token":
        if not as_str(annotations.get("kubernetes.io/service-account.name")):
            causes.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif secret_type in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        data_key = ".dockercfg" if secret_type == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if data_key not in as_dict(obj.get("data")):
            causes.append(required(key("data", data_key)))
        elif data_key in data:
            try:
                parsed = json.loads(data[data_key])
            except (ValueError, UnicodeDecodeError) as exc:
                causes.append(
                    invalid(key("data", data_key), "<secret contents redacted>", str(exc))
                )
            else:
                if not isinstance(parsed, dict):
                    causes.append(
                        invalid(
                            key("data", data_key),
                            "<secret contents redacted>",
                            "json: cannot unmarshal into a JSON object",
                        )
                    )
    elif secret_type == "kubernetes.io/basic-auth":
        present_keys = set(as_dict(obj.get("data")))
        if not {"username", "password"} & present_keys:
            causes.append(required(key("data", "username")))
            causes.append(required(key("data", "password")))
    elif secret_type == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            causes.append(required(key("data", "ssh-privatekey")))
    elif secret_type == "kubernetes.io/tls":
        for tls_key in ("tls.crt", "tls.key"):
            if tls_key not in as_dict(obj.get("data")):
                causes.append(required(key("data", tls_key)))
    if old is not None:
        causes += immutable("type", obj.get("type"), old.get("type"))
        if old.get("immutable") is True:
            if obj.get("immutable") is not True:
                causes.append(forbidden("immutable", IMMUTABLE_WHEN_SET))
            if as_dict(obj.get("data")) != as_dict(old.get("data")):
                causes.append(forbidden("data", IMMUTABLE_WHEN_SET))
    return causes


def validate_config_map(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    data = as_dict(obj.get("data"))
    binary = as_dict(obj.get("binaryData"))
    total = 0
    for k, v in data.items():
        causes += [invalid(key("data", k), k, msg) for msg in formats.is_config_map_key(k)]
        if k in binary:
            causes.append(invalid(key("data", k), k, "duplicate of key present in binaryData"))
        total += len(v.encode()) if isinstance(v, str) else 0
    decoded, binary_causes = _bytes_map(binary, "binaryData")
    causes += binary_causes
    for k in binary:
        causes += [invalid(key("binaryData", k), k, msg) for msg in formats.is_config_map_key(k)]
    total += sum(len(v) for v in decoded.values())
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("", "", MAX_SECRET_SIZE))
    if old is not None and old.get("immutable") is True:
        if obj.get("immutable") is not True:
            causes.append(forbidden("immutable", IMMUTABLE_WHEN_SET))
        for field in ("data", "binaryData"):
            if as_dict(obj.get(field)) != as_dict(old.get(field)):
                causes.append(forbidden(field, IMMUTABLE_WHEN_SET))
    return causes
