"""``kubectl apply --prune`` with kubectl's built-in allowlist (which names
ReplicationController, PersistentVolume and StatefulSet: procorch stores them, and says it
does not run them)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import Kubectl

pytestmark = pytest.mark.kubectl

BOTH = """
apiVersion: v1
kind: ConfigMap
metadata: {name: keep, labels: {app: demo}}
data: {a: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: drop, labels: {app: demo}}
data: {b: "2"}
"""


async def test_apply_prune_without_an_allowlist_and_the_kinds_it_names(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    manifest = tmp_path / "demo.yaml"
    manifest.write_text(textwrap.dedent(BOTH))
    await kubectl("apply", "-f", str(manifest), "--prune", "-l", "app=demo")
    manifest.write_text(textwrap.dedent(BOTH).split("---")[0])
    out = await kubectl("apply", "-f", str(manifest), "--prune", "-l", "app=demo")
    assert "configmap/keep unchanged" in out.stdout
    assert "configmap/drop pruned" in out.stdout
    names = (await kubectl("get", "configmaps", "-l", "app=demo", "-o", "name")).stdout.split()
    assert names == ["configmap/keep"]
    # The kinds of the allowlist procorch stores but does not run say so.
    sts = """
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: db}
    spec:
      serviceName: db
      selector: {matchLabels: {app: db}}
      template:
        metadata: {labels: {app: db}}
        spec:
          containers: [{name: db, command: [sleep, "60"]}]
    """
    path = tmp_path / "sts.yaml"
    path.write_text(textwrap.dedent(sts))
    out = await kubectl("apply", "-f", str(path))
    assert "Warning: procorch stores StatefulSets but does not run them yet" in out.stderr
    assert (await kubectl("get", "sts", "db", "-o", "jsonpath={.spec.replicas}")).stdout == "1"
    out = await kubectl("get", "pv")
    assert "No resources found" in out.stderr
