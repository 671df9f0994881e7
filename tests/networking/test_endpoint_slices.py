"""The endpoints controller: EndpointSlices and Endpoints from the pods a Service selects.

Pods here are API objects whose status the test writes (no node runs them), so every
condition can be set exactly and quickly.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from procorch.api import errors
from procorch.launcher.up import Procorch
from tests.conftest import Kubectl
from tests.networking.conftest import ENDPOINTS, PODS, SERVICES, SLICES, Api, eventually

WEB = {"app": "web"}


def conditions(slices: list[dict[str, Any]]) -> dict[str, dict[str, bool]]:
    return {e["addresses"][0]: e["conditions"] for s in slices for e in s.get("endpoints") or []}


async def wait_slices(api: Api, service: str, predicate: Any, timeout: float = 5.0) -> list[Any]:
    found: list[Any] = []

    async def check() -> bool:
        nonlocal found
        found = await api.slices_of(service)
        return bool(predicate(found))

    await eventually(check, timeout=timeout)
    return found


async def test_ready_unready_and_terminating_pods_get_their_conditions(
    plane: Procorch, api: Api
) -> None:
    await api.service(
        "web", {"selector": WEB, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    )
    await api.pod("a", labels=WEB, ip="127.1.200.1")
    await api.pod("b", labels=WEB, ip="127.1.200.2", ready=False)
    held = await api.pod("c", labels=WEB, ip="127.1.200.3", finalizers=["test/hold"])
    await api.pod("other", labels={"app": "db"}, ip="127.1.200.4")
    slices = await wait_slices(api, "web", lambda s: len(conditions(s)) == 3)
    assert len(slices) == 1
    slice_ = slices[0]
    meta = slice_["metadata"]
    assert meta["name"].startswith("web-")
    assert meta["labels"] == {
        "kubernetes.io/service-name": "web",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    }
    assert meta["ownerReferences"][0]["kind"] == "Service"
    assert slice_["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert conditions(slices) == {
        "127.1.200.1": {"ready": True, "serving": True, "terminating": False},
        "127.1.200.2": {"ready": False, "serving": False, "terminating": False},
        "127.1.200.3": {"ready": True, "serving": True, "terminating": False},
    }
    assert slice_["endpoints"][0]["targetRef"]["name"] == "a"
    # The Endpoints object is a separate write after the slice's: wait for it too.
    eps: dict[str, Any] = {}

    async def endpoints_written() -> bool:
        nonlocal eps
        eps = await plane.admin.get(ENDPOINTS, "web", namespace="default")
        subsets = eps.get("subsets") or [{}]
        found = len(subsets[0].get("addresses") or []) + len(
            subsets[0].get("notReadyAddresses") or []
        )
        return found == 3

    await eventually(endpoints_written, timeout=5.0)
    assert eps["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
    assert eps["subsets"] == [
        {
            "addresses": [
                {"ip": ip, "targetRef": eps["subsets"][0]["addresses"][i]["targetRef"]}
                for i, ip in enumerate(["127.1.200.1", "127.1.200.3"])
            ],
            "notReadyAddresses": [
                {
                    "ip": "127.1.200.2",
                    "targetRef": eps["subsets"][0]["notReadyAddresses"][0]["targetRef"],
                }
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }
    ]
    # Deletion begins: the pod is still Ready, but no longer a ready endpoint; it still serves.
    await plane.admin.delete(PODS, "c", namespace="default")
    slices = await wait_slices(
        api, "web", lambda s: conditions(s).get("127.1.200.3", {}).get("terminating")
    )
    assert conditions(slices)["127.1.200.3"] == {
        "ready": False,
        "serving": True,
        "terminating": True,
    }

    async def endpoints_follow() -> bool:
        # Endpoints are written after the slice: wait for them too.
        eps = await plane.admin.get(ENDPOINTS, "web", namespace="default")
        return [a["ip"] for a in eps["subsets"][0]["addresses"]] == ["127.1.200.1"]

    await eventually(endpoints_follow, timeout=5.0)
    # Gone for good: out of the slice.
    await plane.admin.patch(PODS, "c", {"metadata": {"finalizers": None}}, namespace="default")
    await wait_slices(api, "web", lambda s: "127.1.200.3" not in conditions(s))
    del held


async def test_a_pod_leaves_the_ready_set_within_milliseconds(plane: Procorch, api: Api) -> None:
    await api.service("fast", {"selector": {"app": "fast"}, "ports": [{"port": 80}]})
    pod = await api.pod("f", labels={"app": "fast"}, ip="127.1.200.9")
    await wait_slices(api, "fast", lambda s: conditions(s).get("127.1.200.9", {}).get("ready"))
    slices_informer = plane.informers.get(SLICES)
    started = time.monotonic()
    await api.set_pod(pod, ready=False)
    while True:
        cached = [
            s
            for s in slices_informer.list("default")
            if s["metadata"]["labels"].get("kubernetes.io/service-name") == "fast"
        ]
        if conditions(cached).get("127.1.200.9", {}).get("ready") is False:
            break
        assert time.monotonic() - started < 1.0
        await __import__("asyncio").sleep(0.001)
    elapsed = time.monotonic() - started
    assert elapsed < 0.25, f"took {elapsed * 1000:.0f} ms"


async def test_publish_not_ready_addresses_makes_every_endpoint_ready(
    plane: Procorch, api: Api
) -> None:
    await api.service(
        "peers",
        {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {"app": "peers"},
            "ports": [{"port": 7000}],
        },
    )
    await api.pod("p0", labels={"app": "peers"}, ip="127.1.200.20", ready=False)
    slices = await wait_slices(api, "peers", lambda s: conditions(s))
    assert conditions(slices)["127.1.200.20"] == {
        "ready": True,
        "serving": True,
        "terminating": False,
    }
    assert slices[0]["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    eps = await plane.admin.get(ENDPOINTS, "peers", namespace="default")
    assert [a["ip"] for a in eps["subsets"][0]["addresses"]] == ["127.1.200.20"]


async def test_a_named_target_port_resolves_per_pod(plane: Procorch, api: Api) -> None:
    await api.service(
        "mixed",
        {
            "selector": {"app": "mixed"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "web"},
                {"name": "admin", "port": 81, "targetPort": 9901},
            ],
        },
    )
    await api.pod(
        "old",
        labels={"app": "mixed"},
        ip="127.1.200.30",
        ports=[{"name": "web", "containerPort": 8080}],
    )
    await api.pod(
        "new",
        labels={"app": "mixed"},
        ip="127.1.200.31",
        ports=[{"name": "web", "containerPort": 9090}],
    )
    await api.pod("bare", labels={"app": "mixed"}, ip="127.1.200.32")
    slices = await wait_slices(api, "mixed", lambda s: len(conditions(s)) == 3)
    by_ports = {
        tuple((p["name"], p["port"]) for p in s["ports"]): [
            e["addresses"][0] for e in s["endpoints"]
        ]
        for s in slices
    }
    assert by_ports == {
        (("http", 8080), ("admin", 9901)): ["127.1.200.30"],
        (("http", 9090), ("admin", 9901)): ["127.1.200.31"],
        (("admin", 9901),): ["127.1.200.32"],
    }


async def test_slices_follow_labels_and_go_with_the_service(plane: Procorch, api: Api) -> None:
    await api.service("sel", {"selector": {"app": "sel"}, "ports": [{"port": 80}]})
    empty = await wait_slices(api, "sel", lambda s: len(s) == 1)
    assert empty[0]["endpoints"] == []  # the placeholder slice
    await api.pod("x", labels={"app": "other"}, ip="127.1.200.40")
    await plane.admin.patch(
        PODS, "x", {"metadata": {"labels": {"app": "sel"}}}, namespace="default"
    )
    slices = await wait_slices(api, "sel", lambda s: "127.1.200.40" in conditions(s))
    name = slices[0]["metadata"]["name"]
    assert name == empty[0]["metadata"]["name"]  # updated in place
    await plane.admin.patch(
        PODS, "x", {"metadata": {"labels": {"app": "gone"}}}, namespace="default"
    )
    await wait_slices(api, "sel", lambda s: not conditions(s))
    # Someone deletes the slice: it comes back.
    await plane.admin.delete(SLICES, name, namespace="default")
    await wait_slices(api, "sel", lambda s: len(s) == 1 and s[0]["metadata"]["name"] != name)
    await plane.admin.delete(SERVICES, "sel", namespace="default")
    await wait_slices(api, "sel", lambda s: not s)

    async def endpoints_gone() -> bool:
        try:
            await plane.admin.get(ENDPOINTS, "sel", namespace="default")
        except errors.NotFound:
            return True
        return False

    await eventually(endpoints_gone)


async def test_hand_made_slices_of_a_selectorless_service_are_left_alone(
    plane: Procorch, api: Api
) -> None:
    await api.service("ext", {"ports": [{"port": 5432}]})
    await api.slice("ext", [("127.1.200.50", True)], port=5432)
    await plane.admin.create(
        ENDPOINTS,
        {
            "metadata": {"name": "ext"},
            "subsets": [{"addresses": [{"ip": "127.1.200.50"}], "ports": [{"port": 5432}]}],
        },
        namespace="default",
    )
    # Let the controller see all of it, then check nothing was touched.
    await api.service("tick", {"selector": {"app": "tick"}, "ports": [{"port": 1}]})
    await wait_slices(api, "tick", lambda s: len(s) == 1)
    slices = await api.slices_of("ext")
    assert [s["metadata"]["name"] for s in slices] == ["ext-manual"]
    assert (await plane.admin.get(ENDPOINTS, "ext", namespace="default"))["subsets"]
    # And the kubernetes Service's are the control plane's.
    assert await plane.admin.get(ENDPOINTS, "kubernetes", namespace="default")
    assert [s["metadata"]["name"] for s in await api.slices_of("kubernetes")] == ["kubernetes"]


async def test_many_pods_are_split_into_slices_of_a_hundred(plane: Procorch, api: Api) -> None:
    import asyncio

    await api.service("big", {"selector": {"app": "big"}, "ports": [{"port": 80}]})
    await asyncio.gather(
        *(api.pod(f"big-{i}", labels={"app": "big"}, ip=f"127.1.201.{i + 1}") for i in range(130))
    )
    slices = await wait_slices(api, "big", lambda s: len(conditions(s)) == 130, timeout=20)
    assert sorted(len(s["endpoints"]) for s in slices) == [30, 100]


@pytest.mark.kubectl
async def test_kubectl_describe_shows_the_endpoints(
    plane: Procorch, api: Api, kubectl: Kubectl
) -> None:
    await api.service(
        "shown", {"selector": {"app": "shown"}, "ports": [{"port": 80, "targetPort": 8080}]}
    )
    await api.pod("s1", labels={"app": "shown"}, ip="127.1.200.60")
    await api.pod("s2", labels={"app": "shown"}, ip="127.1.200.61", ready=False)
    await wait_slices(api, "shown", lambda s: len(conditions(s)) == 2)
    out = (await kubectl("describe", "svc", "shown")).stdout
    endpoints_line = next(line for line in out.splitlines() if line.startswith("Endpoints:"))
    assert endpoints_line.split()[1] == "127.1.200.60:8080"
    listed = (
        await kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=shown")
    ).stdout
    assert "IPv4" in listed and "8080" in listed
    got = (await kubectl("get", "endpoints", "shown", "--no-headers")).stdout.split()
    assert got[1] == "127.1.200.60:8080"
