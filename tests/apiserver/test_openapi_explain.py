"""OpenAPI v3 schemas: ``kubectl explain`` of built-in kinds and of a CRD, and client-side
apply computing its strategic merge patch from them (containers merge by name)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.conftest import Kubectl

pytestmark = pytest.mark.kubectl

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: a, command: [sleep, "60"]}
      - {name: b, command: [sleep, "61"]}
"""


async def test_kubectl_explain_reads_the_served_schemas(kubectl: Kubectl) -> None:
    out = (await kubectl("explain", "deployment.spec")).stdout
    assert "KIND:       Deployment" in out and "VERSION:    v1" in out
    assert "FIELD: spec <DeploymentSpec>" in out
    for field in ("replicas\t<integer>", "template\t<PodTemplateSpec>", "strategy"):
        assert field in out, out
    out = (await kubectl("explain", "pods.spec.containers", "--recursive")).stdout
    assert "FIELD: containers <[]Container>" in out
    assert "readinessProbe\t<Probe>" in out and "      port\t<IntOrString>" not in out
    assert "    name\t<string>" in out


async def test_client_side_apply_merges_lists_by_their_keys(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(textwrap.dedent(DEPLOYMENT))
    await kubectl("apply", "-f", str(manifest))
    # A change made outside the manifest, to container a only.
    await kubectl("set", "env", "deploy/web", "-c", "a", "LIVE=kept")
    manifest.write_text(textwrap.dedent(DEPLOYMENT).replace('"61"', '"62"'))
    await kubectl("apply", "-f", str(manifest))
    containers = json.loads((await kubectl("get", "deploy", "web", "-o", "json")).stdout)["spec"][
        "template"
    ]["spec"]["containers"]
    by_name = {c["name"]: c for c in containers}
    assert by_name["a"]["env"] == [{"name": "LIVE", "value": "kept"}]
    assert by_name["b"]["command"] == ["sleep", "62"]
