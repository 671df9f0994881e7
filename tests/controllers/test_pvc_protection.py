"""A PersistentVolumeClaim in use by a pod is not removed until the pod is done with it:
the ``kubernetes.io/pvc-protection`` finalizer (admission) and its controller, through the
real API."""

from __future__ import annotations

import asyncio
from typing import Any

from procorch.api import errors, resources
from procorch.client.http import HttpClient

PVCS = resources.must("core/persistentvolumeclaims")
PODS = resources.must("core/pods")
FINALIZER = "kubernetes.io/pvc-protection"


def claim(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
    }


def pod_using(name: str, claim_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "command": ["sleep", "1000"],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


async def gone(http: HttpClient, name: str, timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            await http.get(PVCS, name, namespace="default")
        except errors.NotFound:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_new_claims_get_the_protection_finalizer(http: HttpClient) -> None:
    created = await http.create(PVCS, claim("fresh"))
    assert created["metadata"]["finalizers"] == [FINALIZER]


async def test_an_unused_claim_goes_at_once(http: HttpClient) -> None:
    await http.create(PVCS, claim("unused"))
    await http.delete(PVCS, "unused", namespace="default")
    assert await gone(http, "unused")


async def test_a_claim_in_use_stays_until_its_pod_is_gone(http: HttpClient) -> None:
    await http.create(PVCS, claim("busy"))
    await http.create(PODS, pod_using("user", "busy"))
    await http.delete(PVCS, "busy", namespace="default")
    await asyncio.sleep(1.0)
    held = await http.get(PVCS, "busy", namespace="default")
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["finalizers"] == [FINALIZER]
    await http.delete(PODS, "user", namespace="default", grace_period_seconds=0)
    assert await gone(http, "busy")


async def test_a_finished_pod_does_not_hold_its_claim(http: HttpClient) -> None:
    await http.create(PVCS, claim("done"))
    pod = await http.create(PODS, pod_using("finished", "done"))
    pod["status"] = {**(pod.get("status") or {}), "phase": "Succeeded"}
    for _ in range(5):
        try:
            await http.update_status(PODS, pod)
            break
        except errors.Conflict:
            pod = await http.get(PODS, "finished", namespace="default")
            pod["status"] = {**(pod.get("status") or {}), "phase": "Succeeded"}
    await http.delete(PVCS, "done", namespace="default")
    assert await gone(http, "done")
    await http.delete(PODS, "finished", namespace="default", grace_period_seconds=0)


async def test_a_pod_using_another_claim_does_not_hold_this_one(http: HttpClient) -> None:
    await http.create(PVCS, claim("mine"))
    await http.create(PODS, pod_using("elsewhere", "other-claim"))
    await http.delete(PVCS, "mine", namespace="default")
    assert await gone(http, "mine")
    await http.delete(PODS, "elsewhere", namespace="default", grace_period_seconds=0)


async def test_a_new_claim_is_bound_to_local_storage(procorch) -> None:
    pvcs = resources.must("core/persistentvolumeclaims")
    await procorch.admin.create(
        pvcs,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        namespace="default",
    )
    for _ in range(100):
        claim = await procorch.admin.get(pvcs, "data", namespace="default")
        if (claim.get("status") or {}).get("phase") == "Bound":
            break
        await asyncio.sleep(0.05)
    assert claim["status"] == {
        "phase": "Bound",
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "1Gi"},
    }
    assert claim["spec"]["volumeName"] == f"pvc-{claim['metadata']['uid']}"
