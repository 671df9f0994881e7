"""HorizontalPodAutoscalers with real kubectl and real CPU: ``kubectl autoscale``, ``get hpa``
TARGETS, the missing-request error, and a CPU burner scaled up and, after its window, down.

The HPA controller syncs every 0.3 s here and the agent samples CPU every 0.5 s (conftest)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agent.conftest import Cluster
from tests.conftest import Kubectl
from tests.workloads.conftest import DEPLOYMENTS, HPAS, apply, deployment, eventually, get

pytestmark = pytest.mark.kubectl


async def test_kubectl_autoscale_makes_an_hpa_that_reports_a_missing_cpu_request(
    kubectl: Kubectl, cluster: Cluster
) -> None:
    await apply(kubectl, cluster, deployment("web", replicas=1, command=["sleep", "650"]))
    await kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    out = await kubectl("autoscale", "deployment", "web", "--cpu-percent=50", "--min=1", "--max=4")
    assert "horizontalpodautoscaler.autoscaling/web autoscaled" in out.stdout
    hpa = await get(cluster, HPAS, "web")
    assert hpa is not None
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": 50,
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)

    async def failing() -> dict[str, Any] | None:
        h = await get(cluster, HPAS, "web")
        conds = {c["type"]: c for c in ((h or {}).get("status") or {}).get("conditions", [])}
        active = conds.get("ScalingActive") or {}
        return active if "missing request" in active.get("message", "") else None

    active = await eventually(failing, what="the missing-request condition")
    assert active["status"] == "False" and active["reason"] == "FailedGetResourceMetric"
    table = (await kubectl("get", "hpa", "web", "--no-headers")).stdout.split()
    assert table[:4] == ["web", "Deployment/web", "cpu:", "<unknown>/50%"]
    described = (await kubectl("describe", "hpa", "web")).stdout
    assert "missing request for cpu in container main of Pod web-" in described
    assert "FailedGetResourceMetric" in described
    d = await get(cluster, DEPLOYMENTS, "web")
    assert d is not None and d["spec"]["replicas"] == 1


BURNER = """
import time
start = time.time()
while time.time() - start < 3:
    pass
time.sleep(100000)
"""

HPA = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: burn
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burn}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 2
"""


async def test_an_hpa_scales_a_cpu_burner_up_and_after_its_window_down(
    kubectl: Kubectl, cluster: Cluster
) -> None:
    # Each pod burns a core for 3 s from its start, then idles.
    manifest = deployment(
        "burn",
        replicas=1,
        command=["python3", "-c", BURNER],
        container_extra="resources: {requests: {cpu: 100m}}",
    )
    await apply(kubectl, cluster, manifest + "---\n" + HPA)
    seen: list[str] = []

    async def scaled_up() -> bool:
        d = await get(cluster, DEPLOYMENTS, "burn")
        row = (await kubectl("get", "hpa", "burn", "--no-headers")).stdout.split()
        seen.append(row[3])
        return d is not None and d["spec"]["replicas"] > 1

    await eventually(scaled_up, timeout=30, what="a scale-up")
    # TARGETS showed real utilization, far above the target.
    busy = [int(t.split("/")[0].rstrip("%")) for t in seen if t[0].isdigit()]
    assert busy and max(busy) > 50, seen

    async def scaled_down() -> bool:
        d = await get(cluster, DEPLOYMENTS, "burn")
        return d is not None and d["spec"]["replicas"] == 1

    await eventually(scaled_down, timeout=40, what="the scale-down")

    async def settled() -> bool:
        hpa = await get(cluster, HPAS, "burn")
        status = (hpa or {}).get("status") or {}
        return status.get("currentReplicas") == 1 and status.get("desiredReplicas") == 1

    await eventually(settled, what="the HPA status at 1 replica")
    events = (await kubectl("describe", "hpa", "burn")).stdout
    assert "SuccessfulRescale" in events and "All metrics below target" in events
    assert (
        "calculate a replica count from cpu resource utilization (percentage of request)" in events
    )
