"""Deleting Deployments with kubectl: ownerReferences cascade (background, foreground) down to
ReplicaSets, pods and their processes; ``--cascade=orphan`` leaves the dependents running."""

from __future__ import annotations

import pytest

from tests.agent.conftest import Cluster
from tests.conftest import Kubectl
from tests.workloads.conftest import (
    PODS,
    REPLICASETS,
    apply,
    deployment,
    eventually,
    pods_of,
    processes,
)

pytestmark = pytest.mark.kubectl


async def _nothing_left(cluster: Cluster, marker: str) -> bool:
    rs = (await cluster.client.list(REPLICASETS, namespace="default")).items
    pods = (await cluster.client.list(PODS, namespace="default")).items
    return not rs and not pods and not processes(marker)


@pytest.mark.parametrize("cascade", ["background", "foreground"])
async def test_deleting_a_deployment_takes_its_replica_sets_pods_and_processes(
    kubectl: Kubectl, cluster: Cluster, cascade: str
) -> None:
    marker = f"sleep 61{len(cascade)}"
    await apply(kubectl, cluster, deployment("gone", command=marker.split()))
    await kubectl("rollout", "status", "deployment/gone", "--timeout=60s")
    assert len(processes(marker)) == 3
    out = await kubectl("delete", "deployment", "gone", f"--cascade={cascade}")
    assert 'deployment.apps "gone" deleted' in out.stdout
    if cascade == "foreground":
        # kubectl waited for the Deployment itself, which goes last.
        assert not (await cluster.client.list(REPLICASETS, namespace="default")).items
    await eventually(lambda: _nothing_left(cluster, marker), what="everything gone")


async def test_orphan_cascade_leaves_dependents_running_without_owners(
    kubectl: Kubectl, cluster: Cluster
) -> None:
    await apply(kubectl, cluster, deployment("keep", replicas=2, command=["sleep", "620"]))
    await kubectl("rollout", "status", "deployment/keep", "--timeout=60s")
    await kubectl("delete", "deployment", "keep", "--cascade=orphan")
    rs_list = (await cluster.client.list(REPLICASETS, namespace="default")).items
    assert len(rs_list) == 1 and not rs_list[0]["metadata"].get("ownerReferences")

    await kubectl("delete", "replicaset", rs_list[0]["metadata"]["name"], "--cascade=orphan")
    pods = await pods_of(cluster, "keep")
    assert len(pods) == 2
    assert all(not p["metadata"].get("ownerReferences") for p in pods)
    assert len(processes("sleep 620")) == 2

    await kubectl("delete", "pods", "-l", "app=keep")
    await eventually(lambda: _nothing_left(cluster, "sleep 620"), what="pods gone")


DAEMON_SET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: main, command: [sleep, "630"]}]
"""


async def test_a_daemon_set_recreated_after_an_orphan_delete_adopts_its_pod_and_history(
    kubectl: Kubectl, cluster: Cluster
) -> None:
    await apply(kubectl, cluster, DAEMON_SET)
    await kubectl("rollout", "status", "ds/agent", "--timeout=60s")
    [pod] = await pods_of(cluster, "agent")
    await kubectl("delete", "ds", "agent", "--cascade=orphan")
    revisions = await kubectl("get", "controllerrevisions", "-o", "name")
    assert revisions.stdout.count("controllerrevision.apps/agent-") == 1

    # The same DaemonSet again: its pod and revision are adopted, nothing is started anew.
    await apply(kubectl, cluster, DAEMON_SET)
    await kubectl("rollout", "status", "ds/agent", "--timeout=60s")

    async def adopted() -> bool:
        pods = await pods_of(cluster, "agent")
        owners = [r.get("kind") for p in pods for r in p["metadata"].get("ownerReferences") or []]
        return owners == ["DaemonSet"]

    await eventually(adopted, what="the old pod adopted")
    [again] = await pods_of(cluster, "agent")
    assert again["metadata"]["uid"] == pod["metadata"]["uid"]
    history = await kubectl("rollout", "history", "ds/agent")
    assert [line.split()[0] for line in history.stdout.splitlines()[2:] if line.strip()] == ["1"]
    assert len(processes("sleep 630")) == 1
