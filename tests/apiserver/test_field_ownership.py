"""Field ownership (managedFields) of what the server generates, and kubectl's move from
client-side to server-side apply, which depends on it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from procorch.api import resources
from procorch.client.http import HttpClient

JOBS = resources.must("batch/jobs")
NS = resources.must("core/namespaces")
PVCS = resources.must("core/persistentvolumeclaims")

JOB = textwrap.dedent("""
    apiVersion: batch/v1
    kind: Job
    metadata:
      name: job4
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: busybox
            command: ["sh", "-c", "echo hi"]
    """)

DEPLOYMENT = textwrap.dedent("""
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: dep4
    spec:
      replicas: 2
      selector:
        matchLabels: {app: dep4}
      template:
        metadata:
          labels: {app: dep4}
        spec:
          containers:
          - name: main
            image: busybox
            command: ["sleep", "100"]
    """)

SERVICE = textwrap.dedent("""
    apiVersion: v1
    kind: Service
    metadata:
      name: svc4
    spec:
      selector: {app: dep4}
      ports:
      - port: 80
    """)


def _fields(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    entries = [e for e in obj["metadata"].get("managedFields") or [] if e["manager"] == manager]
    assert len(entries) == 1, obj["metadata"].get("managedFields")
    fields: dict[str, Any] = entries[0]["fieldsV1"]
    return fields


async def test_generated_fields_belong_to_no_manager(http: HttpClient) -> None:
    job = await http.create(
        JOBS,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "gen", "namespace": "default"},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "command": ["true"]}],
                    }
                }
            },
        },
        field_manager="creator",
    )
    # The Job registry generated a selector and labelled the template (and the Job's labels
    # default from those): the server's doing, owned by nobody.
    assert job["spec"]["selector"]["matchLabels"]
    assert job["metadata"]["labels"]["job-name"] == "gen"
    fields = _fields(job, "creator")
    assert "f:selector" not in fields["f:spec"]
    assert "f:metadata" not in fields["f:spec"]["f:template"]
    assert "f:metadata" not in fields
    assert "f:status" not in fields
    # Defaults are the writer's, as on a real cluster (Kubernetes defaults while decoding the
    # request, before the field manager runs).
    assert "f:backoffLimit" in fields["f:spec"]
    ns = await http.create(
        NS,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "own"}},
        field_manager="c",
    )
    assert "f:spec" not in _fields(ns, "c")  # the "kubernetes" finalizer is the server's
    pvc = await http.create(
        PVCS,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "claim", "namespace": "default"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Mi"}},
            },
        },
        field_manager="c",
    )
    assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert "f:finalizers" not in _fields(pvc, "c").get("f:metadata", {})


@pytest.mark.kubectl
@pytest.mark.parametrize(
    ("manifest", "name"),
    [(JOB, "job.batch/job4"), (DEPLOYMENT, "deployment.apps/dep4"), (SERVICE, "service/svc4")],
)
async def test_client_side_then_server_side_apply_migrates_and_reapplies(
    kubectl, tmp_path: Path, manifest: str, name: str
) -> None:
    path = tmp_path / "obj.yaml"
    path.write_text(manifest)
    assert f"{name} created" in (await kubectl("apply", "-f", str(path))).stdout
    before = json.loads((await kubectl("get", name, "-o", "json")).stdout)
    for _ in range(3):
        result = await kubectl("apply", "--server-side", "-f", str(path))
        assert f"{name} serverside-applied" in result.stdout
        assert "Warning" not in result.stderr and "failed" not in result.stderr, result.stderr
    after = json.loads((await kubectl("get", name, "-o", "json")).stdout)
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("generation") == before["metadata"].get("generation")
    owners = json.loads((await kubectl("get", name, "-o", "json", "--show-managed-fields")).stdout)
    managers = {(e["manager"], e["operation"]) for e in owners["metadata"]["managedFields"]}
    # kubectl moved client-side apply's fields to its server-side apply manager.
    assert ("kubectl", "Apply") in managers
    assert ("kubectl-client-side-apply", "Update") not in managers
