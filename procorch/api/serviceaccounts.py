"""What every pod gets of its ServiceAccount, as Kubernetes' ServiceAccount admission gives
it: a projected volume with the account's token, the cluster's CA and the namespace, mounted
at :data:`SERVICE_ACCOUNT_DIR`. Pure data.
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol

Obj = dict[str, Any]


class Reads(Protocol):
    def get(self, key: str, namespace: str, name: str) -> Obj | None: ...


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API_ACCESS_PREFIX = "kube-api-access-"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
TOKEN_SECONDS = 3607
_SUFFIX_LETTERS = "bcdfghjklmnpqrstvwxz2456789"


def service_account_volume(pod: Obj, stored: Reads) -> None:
    """Kubernetes' ServiceAccount admission: unless the pod or its ServiceAccount says
    ``automountServiceAccountToken: false``, a projected ``kube-api-access-<5>`` volume (the
    token, ``ca.crt`` from ``kube-root-ca.crt``, the ``namespace``) mounted read-only at
    :data:`SERVICE_ACCOUNT_DIR` in every container that mounts nothing there itself."""
    spec = pod["spec"]
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        name = str(spec.get("serviceAccountName") or "default")
        namespace = str((pod.get("metadata") or {}).get("namespace") or "")
        account = stored.get("core/serviceaccounts", namespace, name)
        automount = None if account is None else account.get("automountServiceAccountToken")
    if automount is False:
        return
    volumes = spec.get("volumes")
    if not isinstance(volumes, list):
        volumes = spec["volumes"] = [] if volumes is None else volumes
    if not isinstance(volumes, list):
        return
    if any(
        isinstance(v, dict) and str(v.get("name") or "").startswith(API_ACCESS_PREFIX)
        for v in volumes
    ):
        return
    volume = API_ACCESS_PREFIX + "".join(secrets.choice(_SUFFIX_LETTERS) for _ in range(5))
    mounted = False
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            if not isinstance(container, dict):
                continue
            mounts = container.get("volumeMounts")
            if mounts is None:
                mounts = container["volumeMounts"] = []
            if not isinstance(mounts, list) or any(
                isinstance(m, dict) and m.get("mountPath") == SERVICE_ACCOUNT_DIR for m in mounts
            ):
                continue
            mounts.append({"name": volume, "readOnly": True, "mountPath": SERVICE_ACCOUNT_DIR})
            mounted = True
    if not mounted:
        return
    volumes.append(
        {
            "name": volume,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                    {
                        "configMap": {
                            "name": ROOT_CA_CONFIG_MAP,
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": "metadata.namespace",
                                    },
                                }
                            ]
                        }
                    },
                ],
            },
        }
    )
