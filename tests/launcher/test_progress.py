"""procorch up's start-up view: states and reasons, then the summary."""

from __future__ import annotations

import io

from rich.console import Console

from procorch.client import readiness
from procorch.launcher.progress import render, watch_startup
from tests.agent.conftest import Cluster


def pod(name: str, **status: object) -> dict:
    return {"metadata": {"name": name, "namespace": "default"}, "status": status}


def test_states_and_reasons() -> None:
    crash = pod(
        "crash",
        phase="Running",
        containerStatuses=[
            {
                "name": "main",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
            }
        ],
    )
    unschedulable = pod(
        "big",
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "message": "0/1 nodes are available: 1 Insufficient memory.",
            }
        ],
    )
    ready = pod("ok", phase="Running", conditions=[{"type": "Ready", "status": "True"}])
    items = readiness.evaluate([], [], [crash, unschedulable, ready])
    assert [(i.ref, i.state, i.detail) for i in items] == [
        ("pod/crash", "failing", "main: CrashLoopBackOff back-off 10s"),
        ("pod/big", "pending", "0/1 nodes are available: 1 Insufficient memory."),
        ("pod/ok", "ready", ""),
    ]
    out = io.StringIO()
    Console(file=out, width=120).print(render(items, 1.5))
    text = out.getvalue()
    assert "1/3 ready (1.5 s)" in text
    assert text.index("pod/crash") < text.index("pod/big") < text.index("pod/ok")


def test_a_daemon_set_is_ready_once_every_node_runs_its_current_pod() -> None:
    def daemon_set(generation: int, **status: int) -> dict:
        return {
            "metadata": {"name": "agent", "namespace": "default", "generation": generation},
            "status": status,
        }

    rolling = daemon_set(
        2,
        observedGeneration=2,
        desiredNumberScheduled=3,
        updatedNumberScheduled=2,
        numberAvailable=3,
    )
    unseen = daemon_set(3, observedGeneration=2, desiredNumberScheduled=3)
    done = daemon_set(
        2,
        observedGeneration=2,
        desiredNumberScheduled=3,
        updatedNumberScheduled=3,
        numberAvailable=3,
    )
    items = readiness.evaluate([], [], [], [rolling, unseen, done])
    assert [(i.ref, i.state, i.detail) for i in items] == [
        ("daemonset/agent", "starting", "3/3 nodes available"),
        ("daemonset/agent", "pending", "spec update not observed yet"),
        ("daemonset/agent", "ready", "3/3 nodes available"),
    ]


async def test_summary_once_everything_is_ready(cluster: Cluster) -> None:
    await cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: quick}\nspec:\n  containers:\n"
        "  - {name: main, command: [sleep, '60']}\n"
    )
    out = io.StringIO()
    await watch_startup(
        cluster.client, console=Console(file=out, width=120), kubeconfig="/x/kubeconfig"
    )
    assert "1/1 ready in" in out.getvalue()
    assert "export KUBECONFIG=/x/kubeconfig" in out.getvalue()
