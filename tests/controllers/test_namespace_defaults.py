"""Every active namespace gets the ``default`` ServiceAccount and the ``kube-root-ca.crt``
ConfigMap, kept there by the serviceaccount controller, through the real API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from procorch.api import errors, resources
from procorch.client.http import HttpClient

NS = resources.must("core/namespaces")
SA = resources.must("core/serviceaccounts")
CM = resources.must("core/configmaps")
PODS = resources.must("core/pods")

DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """The first truthy result of ``check``; fails the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            result = await check()
        except errors.NotFound:
            result = None
        if result:
            return result
        if loop.time() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.05)


async def test_every_namespace_gets_a_default_service_account_and_the_root_ca(
    procorch, http: HttpClient
) -> None:
    ca = procorch.control_plane.ca_pem.decode()
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    await http.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    for namespace in ("default", "kube-system", "kube-public", "kube-node-lease", "team"):
        sa = await eventually(lambda ns=namespace: http.get(SA, "default", namespace=ns))
        assert sa["metadata"]["namespace"] == namespace
        cm = await eventually(lambda ns=namespace: http.get(CM, "kube-root-ca.crt", namespace=ns))
        assert cm["data"] == {"ca.crt": ca}
        assert cm["metadata"]["annotations"]["kubernetes.io/description"] == DESCRIPTION


async def test_deleted_or_edited_defaults_are_put_back(procorch, http: HttpClient) -> None:
    ca = procorch.control_plane.ca_pem.decode()
    first = await eventually(lambda: http.get(SA, "default", namespace="default"))
    await eventually(lambda: http.get(CM, "kube-root-ca.crt", namespace="default"))
    await http.delete(SA, "default", namespace="default")
    again = await eventually(lambda: http.get(SA, "default", namespace="default"))
    assert again["metadata"]["uid"] != first["metadata"]["uid"]
    await http.delete(CM, "kube-root-ca.crt", namespace="default")
    await eventually(lambda: http.get(CM, "kube-root-ca.crt", namespace="default"))
    await http.patch(
        CM,
        "kube-root-ca.crt",
        {"data": {"ca.crt": "forged", "extra": "x"}, "metadata": {"annotations": None}},
        namespace="default",
    )

    async def restored() -> bool:
        cm = await http.get(CM, "kube-root-ca.crt", namespace="default")
        annotations = cm["metadata"].get("annotations") or {}
        return cm["data"] == {"ca.crt": ca} and bool(annotations.get("kubernetes.io/description"))

    await eventually(restored)


async def test_pods_run_as_the_default_service_account_that_exists(http: HttpClient) -> None:
    await eventually(lambda: http.get(SA, "default", namespace="default"))
    pod = await http.create(
        PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "sa-user", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "command": ["sleep", "1"]}]},
        },
    )
    assert pod["spec"]["serviceAccountName"] == "default"
    await http.delete(PODS, "sa-user", namespace="default", grace_period_seconds=0)
