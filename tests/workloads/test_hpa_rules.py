"""The HPA's replica calculator and its stabilization and rate rules, with Kubernetes' numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from procorch.api.meta import rfc3339
from procorch.controllers.hpa import HPASettings
from procorch.controllers.workloads_hpa_calc import (
    MetricError,
    pod_metrics,
    raw_resource_replicas,
    resource_replicas,
)
from procorch.controllers.workloads_hpa_scaling import Scaling

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SETTINGS = HPASettings()


def pod(
    name: str, *, request: str | None = "200m", ready: bool = True, age: float = 3600
) -> dict[str, Any]:
    resources = {} if request is None else {"requests": {"cpu": request}}
    started = rfc3339(NOW - timedelta(seconds=age))
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "resources": resources}]},
        "status": {
            "phase": "Running",
            "startTime": started,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": started,
                }
            ],
        },
    }


def usage(**cpu: str) -> list[dict[str, Any]]:
    return [
        {
            "metadata": {"name": name},
            "timestamp": rfc3339(NOW),
            "window": "10s",
            "containers": [{"name": "main", "usage": {"cpu": value, "memory": "10Mi"}}],
        }
        for name, value in cpu.items()
    ]


def replicas(
    pods: list[dict[str, Any]], items: list[dict[str, Any]], target: int = 50
) -> tuple[int, int | None]:
    est = resource_replicas(
        current=len(pods),
        target_utilization=target,
        resource="cpu",
        pods=pods,
        metrics=pod_metrics(items, "cpu"),
        settings=SETTINGS,
        now=NOW,
    )
    return est.replicas, est.utilization


def test_utilization_is_usage_over_requests_and_scales_by_the_ratio() -> None:
    # 2 pods at 300m of 200m requested = 150 %, target 50 % -> ceil(3 * 2) = 6.
    assert replicas([pod("a"), pod("b")], usage(a="300m", b="300m")) == (6, 150)
    # Nanocores as the agent reports them.
    assert replicas([pod("a")], usage(a="150000000n")) == (2, 75)


def test_within_the_tolerance_nothing_moves() -> None:
    assert replicas([pod("a"), pod("b")], usage(a="108m", b="108m")) == (2, 54)  # 1.08
    assert replicas([pod("a"), pod("b")], usage(a="112m", b="112m"))[0] == 3  # 1.12


def test_missing_metrics_are_assumed_at_the_target_on_scale_down() -> None:
    # a uses 10 %, b has no metric: b counts at 100 % (max(100, target)) -> 55 % ~ target.
    assert replicas([pod("a"), pod("b")], usage(a="20m"))[0] == 2


def test_unready_pods_count_as_idle_when_scaling_up() -> None:
    pods = [pod("a"), pod("b", ready=False, age=10)]
    # Only a is counted (300 %); with b at 0 the ratio is 1.5 -> 3, not 6.
    assert replicas(pods, usage(a="600m", b="600m"), target=100) == (3, 300)


def test_a_container_without_a_request_fails_like_kubernetes() -> None:
    with pytest.raises(MetricError, match="missing request for cpu in container main of Pod a"):
        replicas([pod("a", request=None)], usage(a="100m"))
    with pytest.raises(MetricError, match="no pods returned by selector"):
        replicas([], usage(a="100m"))


def test_average_value_targets_use_raw_usage() -> None:
    est = raw_resource_replicas(
        current=2,
        target_usage=100,
        resource="cpu",
        pods=[pod("a"), pod("b")],
        metrics=pod_metrics(usage(a="250m", b="150m"), "cpu"),
        settings=SETTINGS,
        now=NOW,
    )
    assert (est.replicas, est.raw) == (4, 200)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_scale_down_waits_for_the_stabilization_window() -> None:
    clock = Clock()
    s = Scaling(downscale_window=300, clock=clock)
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": 60,
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        },
    }
    s.record_initial("k", 4)
    d = s.normalize("k", behavior=behavior, current=4, desired=1, min_replicas=1, max_replicas=10)
    assert d.replicas == 4 and d.able_reason == "ScaleDownStabilized"
    clock.t += 61
    d = s.normalize("k", behavior=behavior, current=4, desired=1, min_replicas=1, max_replicas=10)
    assert d.replicas == 1 and d.able_reason == "ReadyForNewScale"


def test_scale_up_is_capped_by_the_policies() -> None:
    clock = Clock()
    s = Scaling(clock=clock)
    behavior = {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
    }
    d = s.normalize("k", behavior=behavior, current=2, desired=20, min_replicas=1, max_replicas=30)
    assert d.replicas == 6 and d.limited and d.limited_reason == "ScaleUpLimit"
    s.record_scale("k", behavior, 2, 6)
    # Within the same period the limit counts from where the period started (2).
    d = s.normalize("k", behavior=behavior, current=6, desired=20, min_replicas=1, max_replicas=30)
    assert d.replicas == 6
    clock.t += 16
    d = s.normalize("k", behavior=behavior, current=6, desired=20, min_replicas=1, max_replicas=30)
    assert d.replicas == 12
    s.record_scale("k", behavior, 6, 12)
    d = s.normalize("k", behavior=behavior, current=12, desired=40, min_replicas=1, max_replicas=20)
    assert d.replicas == 12  # the period's budget is spent: 6 -> 12 already


def test_without_behavior_the_legacy_rules_apply() -> None:
    clock = Clock()
    s = Scaling(downscale_window=300, clock=clock)
    s.record_initial("k", 3)
    d = s.normalize("k", behavior=None, current=3, desired=50, min_replicas=1, max_replicas=100)
    assert d.replicas == 6 and d.limited_reason == "ScaleUpLimit"  # at most double
    d = s.normalize("k", behavior=None, current=6, desired=1, min_replicas=2, max_replicas=100)
    # 50 was recommended a moment ago: the window keeps it, the rate caps it.
    assert d.able_reason == "ScaleDownStabilized" and d.replicas == 12
    clock.t += 301
    d = s.normalize("k", behavior=None, current=6, desired=1, min_replicas=2, max_replicas=100)
    assert d.replicas == 2 and d.limited_reason == "TooFewReplicas"
