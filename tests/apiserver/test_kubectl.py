"""Real kubectl against procorch, as a new user would drive it."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.kubectl

DEPLOYMENT = textwrap.dedent("""
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
      labels: {app: web}
    spec:
      replicas: 2
      selector:
        matchLabels: {app: web}
      template:
        metadata:
          labels: {app: web}
        spec:
          containers:
          - name: web
            image: python:3
            command: ["python3", "-m", "http.server", "8080"]
            ports:
            - containerPort: 8080
            env:
            - {name: MODE, value: demo}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: settings
      labels: {app: web}
    data:
      greeting: hello
    """)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(DEPLOYMENT)
    return path


async def test_version_and_api_resources(kubectl) -> None:
    version = json.loads((await kubectl("version", "-o", "json")).stdout)
    assert version["serverVersion"]["minor"] == "32"
    resources = (await kubectl("api-resources")).stdout
    for line in ("deployments   deploy", "pods   po", "cronjobs   cj", "ingresses   ing"):
        name, short = line.split()
        assert any(r.split()[:2] == [name, short] for r in resources.splitlines()), line


async def test_apply_then_reapply_is_unchanged(kubectl, manifest: Path) -> None:
    first = await kubectl("apply", "-f", str(manifest))
    assert "deployment.apps/web created" in first.stdout
    assert "configmap/settings created" in first.stdout
    again = await kubectl("apply", "-f", str(manifest))
    assert "deployment.apps/web unchanged" in again.stdout
    manifest.write_text(DEPLOYMENT.replace("replicas: 2", "replicas: 4"))
    changed = await kubectl("apply", "-f", str(manifest))
    assert "deployment.apps/web configured" in changed.stdout
    replicas = await kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}")
    assert replicas.stdout == "4"


async def test_server_side_apply_and_conflicts(kubectl, manifest: Path) -> None:
    out = await kubectl("apply", "--server-side", "-f", str(manifest))
    assert "deployment.apps/web serverside-applied" in out.stdout
    await kubectl("apply", "--server-side", "-f", str(manifest))
    clash = manifest.parent / "clash.yaml"
    clash.write_text(
        textwrap.dedent("""
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: settings}
        data: {greeting: bonjour}
        """)
    )
    refused = await kubectl(
        "apply", "--server-side", "--field-manager=other", "-f", str(clash), check=False
    )
    assert refused.returncode != 0
    assert "conflict" in refused.stderr.lower() and ".data.greeting" in refused.stderr
    forced = await kubectl(
        "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", str(clash)
    )
    assert "serverside-applied" in forced.stdout
    value = await kubectl("get", "cm", "settings", "-o", "jsonpath={.data.greeting}")
    assert value.stdout == "bonjour"


async def test_get_output_formats(kubectl, manifest: Path) -> None:
    await kubectl("apply", "-f", str(manifest))
    table = (await kubectl("get", "deploy")).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:2] == ["web", "0/2"]
    wide = (await kubectl("get", "deploy", "-o", "wide")).stdout.splitlines()[0].split()
    assert wide[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    as_json = json.loads((await kubectl("get", "deploy", "web", "-o", "json")).stdout)
    assert as_json["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "MODE", "value": "demo"}
    ]
    as_yaml = yaml.safe_load((await kubectl("get", "cm", "settings", "-o", "yaml")).stdout)
    assert as_yaml["data"] == {"greeting": "hello"}
    names = (await kubectl("get", "deploy,cm", "-l", "app=web", "-o", "name")).stdout.split()
    assert names == ["deployment.apps/web", "configmap/settings"]
    labels = (await kubectl("get", "cm", "settings", "--show-labels")).stdout
    assert "app=web" in labels
    everywhere = (await kubectl("get", "ns", "-A")).stdout
    assert "kube-system" in everywhere
    all_ns = (await kubectl("get", "cm", "-A", "-l", "app=web")).stdout.splitlines()
    assert all_ns[0].split()[0] == "NAMESPACE" and all_ns[1].split()[:2] == ["default", "settings"]
    fields = (
        await kubectl("get", "cm", "--field-selector", "metadata.name=settings", "-o", "name")
    ).stdout.split()
    assert fields == ["configmap/settings"]
    empty = await kubectl("get", "cm", "-l", "app=none")
    assert "No resources found in default namespace." in empty.stderr


async def test_get_watch_prints_changes(kubectl) -> None:
    await kubectl("create", "configmap", "watched", "--from-literal=a=1")
    proc = await kubectl.start("get", "cm", "watched", "-w", "--output-watch-events")
    try:
        await asyncio.sleep(1.0)
        await kubectl("label", "cm", "watched", "seen=yes")
        await kubectl("delete", "cm", "watched")
        lines: list[str] = []
        while len(lines) < 3:
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            if line.strip() and not line.startswith(b"EVENT"):
                lines.append(line.decode())
    finally:
        proc.terminate()
        await proc.wait()
    assert [line.split()[0] for line in lines] == ["ADDED", "MODIFIED", "DELETED"]


async def test_create_generators_send_protobuf_and_work(kubectl, tmp_path: Path) -> None:
    await kubectl("create", "namespace", "gen")
    await kubectl(
        "-n", "gen", "create", "configmap", "c", "--from-literal=a=1", "--from-literal=b=two"
    )
    await kubectl("-n", "gen", "create", "secret", "generic", "s", "--from-literal=k=v")
    await kubectl(
        "-n", "gen", "create", "deployment", "d", "--image=x", "--replicas=3", "--", "sleep", "100"
    )
    await kubectl("-n", "gen", "create", "job", "j", "--image=x", "--", "echo", "hi")
    cm = json.loads((await kubectl("-n", "gen", "get", "cm", "c", "-o", "json")).stdout)
    assert cm["data"] == {"a": "1", "b": "two"}
    secret = json.loads((await kubectl("-n", "gen", "get", "secret", "s", "-o", "json")).stdout)
    assert secret["data"] == {"k": "dg=="}
    deploy = json.loads((await kubectl("-n", "gen", "get", "deploy", "d", "-o", "json")).stdout)
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["template"]["spec"]["containers"][0]["command"] == ["sleep", "100"]
    job = json.loads((await kubectl("-n", "gen", "get", "job", "j", "-o", "json")).stdout)
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fromfile}\n")
    assert "configmap/fromfile created" in (await kubectl("create", "-f", str(path))).stdout
    dup = await kubectl("create", "-f", str(path), check=False)
    assert "AlreadyExists" in dup.stderr and "already exists" in dup.stderr


async def test_invalid_manifest_names_the_field(kubectl, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(DEPLOYMENT.replace("replicas: 2", "replicas: three"))
    result = await kubectl("apply", "-f", str(path), check=False)
    assert result.returncode != 0
    assert "spec.replicas" in result.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text(DEPLOYMENT.replace("containerPort", "containerPortt"))
    strict = await kubectl("apply", "-f", str(typo), check=False)
    assert (
        'unknown field "spec.template.spec.containers[0].ports[0].containerPortt"' in strict.stderr
    )
    gone = await kubectl("get", "deploy", "web", check=False)
    assert "NotFound" in gone.stderr


async def test_label_annotate_and_the_three_patch_types(kubectl, manifest: Path) -> None:
    await kubectl("apply", "-f", str(manifest))
    await kubectl("label", "deploy", "web", "tier=frontend")
    await kubectl("annotate", "deploy", "web", "owner=team-a")
    await kubectl("label", "deploy", "web", "--overwrite", "tier=edge")
    await kubectl("patch", "deploy", "web", "-p", '{"spec":{"replicas":3}}')
    await kubectl(
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        '{"metadata":{"annotations":{"owner":null}}}',
    )
    await kubectl(
        "patch",
        "deploy",
        "web",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/spec/template/spec/containers/0/env/-",'
        '"value":{"name":"EXTRA","value":"1"}}]',
    )
    obj = json.loads((await kubectl("get", "deploy", "web", "-o", "json")).stdout)
    assert obj["metadata"]["labels"]["tier"] == "edge"
    assert "owner" not in (obj["metadata"].get("annotations") or {})
    assert obj["spec"]["replicas"] == 3
    assert [e["name"] for e in obj["spec"]["template"]["spec"]["containers"][0]["env"]] == [
        "MODE",
        "EXTRA",
    ]
    await kubectl("label", "deploy", "web", "tier-")
    obj = json.loads((await kubectl("get", "deploy", "web", "-o", "json")).stdout)
    assert "tier" not in obj["metadata"]["labels"]
    stale = await kubectl("label", "deploy", "web", "x=y", "--resource-version=1", check=False)
    assert "Conflict" in stale.stderr


async def test_scale_edit_and_replace(kubectl, manifest: Path, tmp_path: Path) -> None:
    await kubectl("apply", "-f", str(manifest))
    await kubectl("scale", "deploy", "web", "--replicas=5")
    assert (await kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}")).stdout == "5"
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/replicas: 5/replicas: 6/' \"$1\"\n")
    editor.chmod(0o755)
    await kubectl("edit", "deploy", "web", env={"EDITOR": str(editor)})
    assert (await kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}")).stdout == "6"
    noop = tmp_path / "noop.sh"
    noop.write_text("#!/bin/sh\ntrue\n")
    noop.chmod(0o755)
    cancelled = await kubectl("edit", "deploy", "web", env={"EDITOR": str(noop)})
    assert "Edit cancelled, no changes made." in cancelled.stdout + cancelled.stderr
    live = (await kubectl("get", "cm", "settings", "-o", "yaml")).stdout
    replaced = await kubectl("replace", "-f", "-", input=live.replace("hello", "hi"))
    assert "configmap/settings replaced" in replaced.stdout
    stale = await kubectl("replace", "-f", "-", input=live, check=False)
    assert "Conflict" in stale.stderr


async def test_describe_shows_object_and_events(kubectl, manifest: Path) -> None:
    await kubectl("apply", "-f", str(manifest))
    text = (await kubectl("describe", "deploy", "web")).stdout
    assert "Name:                   web" in text
    assert "Replicas:               2 desired" in text
    assert "python3" in text
    cm = (await kubectl("describe", "cm", "settings")).stdout
    assert "greeting" in cm


async def test_wait_for_a_condition_and_for_deletion(kubectl, http) -> None:
    await kubectl("create", "configmap", "w")
    waiter = asyncio.create_task(
        kubectl("wait", "--for=jsonpath={.data.ready}=yes", "cm/w", "--timeout=20s")
    )
    await asyncio.sleep(0.5)
    await kubectl("patch", "cm", "w", "--type=merge", "-p", '{"data":{"ready":"yes"}}')
    assert "condition met" in (await asyncio.wait_for(waiter, 25)).stdout
    deleter = asyncio.create_task(kubectl("wait", "--for=delete", "cm/w", "--timeout=20s"))
    await asyncio.sleep(0.5)
    await kubectl("delete", "cm", "w")
    assert (await asyncio.wait_for(deleter, 25)).ok


async def _make_owned(kubectl, owner: str, dependent: str) -> None:
    await kubectl("create", "configmap", owner)
    uid = (await kubectl("get", "cm", owner, "-o", "jsonpath={.metadata.uid}")).stdout
    await kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": dependent,
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "name": owner,
                            "uid": uid,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
            }
        ),
    )


@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
async def test_delete_cascade_modes(kubectl, cascade: str) -> None:
    await _make_owned(kubectl, "owner", "dependent")
    out = await kubectl("delete", "cm", "owner", f"--cascade={cascade}")
    assert 'configmap "owner" deleted' in out.stdout
    for _ in range(50):
        result = await kubectl("get", "cm", "dependent", "-o", "json", check=False)
        if cascade == "orphan" or result.returncode != 0:
            break
        await asyncio.sleep(0.1)
    if cascade == "orphan":
        dependent = json.loads(result.stdout)
        assert not dependent["metadata"].get("ownerReferences")
    else:
        assert "NotFound" in result.stderr


async def test_delete_by_label_and_namespace_cascade(kubectl) -> None:
    await kubectl("create", "namespace", "tmp")
    for name in ("a", "b"):
        await kubectl("-n", "tmp", "create", "configmap", name)
    await kubectl("-n", "tmp", "label", "cm", "a", "b", "group=x")
    out = await kubectl("-n", "tmp", "delete", "cm", "-l", "group=x")
    assert 'configmap "a" deleted' in out.stdout and 'configmap "b" deleted' in out.stdout
    await kubectl("-n", "tmp", "create", "configmap", "c")
    assert 'namespace "tmp" deleted' in (await kubectl("delete", "ns", "tmp")).stdout
    assert "NotFound" in (await kubectl("get", "ns", "tmp", check=False)).stderr


async def test_auth_can_i_and_whoami(kubectl) -> None:
    assert (await kubectl("auth", "can-i", "create", "pods")).stdout == "yes\n"
    assert (await kubectl("auth", "can-i", "delete", "nodes", "-A")).stdout == "yes\n"
    assert (await kubectl("auth", "can-i", "get", "/metrics")).stdout == "yes\n"
    rules = (await kubectl("auth", "can-i", "--list")).stdout.splitlines()
    assert rules[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert rules[1].split() == ["*.*", "[]", "[]", "[*]"]
    whoami = (await kubectl("auth", "whoami")).stdout.splitlines()
    assert whoami[1].split() == ["Username", "procorch-admin"]
    assert whoami[2].split() == ["Groups", "[system:masters", "system:authenticated]"]
