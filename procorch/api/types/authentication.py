"""authentication.k8s.io/v1 bodies: TokenRequest (``serviceaccounts/token``). Pure data."""

from __future__ import annotations

from procorch.api.types.base import Int64, K8sModel, K8sObject, Time


class BoundObjectReference(K8sModel):
    kind: str | None = None
    apiVersion: str | None = None
    name: str | None = None
    uid: str | None = None


class TokenRequestSpec(K8sModel):
    audiences: list[str] | None = None  # atomic
    expirationSeconds: Int64 | None = None
    boundObjectRef: BoundObjectReference | None = None


class TokenRequestStatus(K8sModel):
    token: str | None = None
    expirationTimestamp: Time | None = None


class TokenRequest(K8sObject):
    spec: TokenRequestSpec | None = None
    status: TokenRequestStatus | None = None
