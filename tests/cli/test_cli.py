"""The native CLI against a running procorch: apply, get, describe, delete, kubeconfig."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import yaml


async def run(data_dir: Path, *args: str, check: bool = True) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "procorch",
        *args,
        "--data-dir",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    code = proc.returncode or 0
    if check:
        assert code == 0, f"procorch {' '.join(args)} failed:\n{err.decode()}\n{out.decode()}"
    return code, out.decode(), err.decode()


APP = textwrap.dedent("""
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: api, labels: {app: api}}
    spec:
      replicas: 2
      selector: {matchLabels: {app: api}}
      template:
        metadata: {labels: {app: api}}
        spec:
          containers:
          - {name: api, command: [sleep, "100"]}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: api-config, labels: {app: api}}
    data: {level: debug}
    """)


async def test_apply_get_describe_delete(procorch, tmp_path: Path) -> None:
    data = procorch.data_dir
    path = tmp_path / "app.yaml"
    path.write_text(APP)
    _, out, _ = await run(data, "apply", "-f", str(path))
    assert "configmap/api-config created" in out and "deployment.apps/api created" in out
    _, out, _ = await run(data, "apply", "-f", str(path))
    assert "deployment.apps/api unchanged" in out
    _, out, _ = await run(data, "get", "deploy")
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row.split()[:2] == ["api", "0/2"]
    _, out, _ = await run(data, "get", "cm", "api-config", "-o", "yaml")
    assert yaml.safe_load(out)["data"] == {"level": "debug"}
    _, out, _ = await run(data, "get", "deploy,cm", "-l", "app=api", "-o", "name")
    assert out.split() == ["deployment.apps/api", "configmap/api-config"]
    _, out, _ = await run(data, "describe", "cm", "api-config")
    assert "Name:" in out and "api-config" in out and "level: debug" in out
    _, out, _ = await run(data, "delete", "-f", str(path))
    assert 'deployment "api" deleted' in out
    code, _, err = await run(data, "get", "cm", "api-config", check=False)
    assert code == 1 and "NotFound" in err


async def test_apply_with_one_invalid_document_applies_nothing(procorch, tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(
        APP
        + textwrap.dedent("""
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: broken}
        data: {key: 12}
        """)
    )
    code, _, err = await run(procorch.data_dir, "apply", "-f", str(path), check=False)
    assert code == 1
    assert "nothing was applied" in err and "data[key]" in err
    _, out, err = await run(procorch.data_dir, "get", "deploy,cm", "-l", "app=api")
    assert "No resources found" in err


async def test_unknown_kind_is_named(procorch, tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    code, _, err = await run(procorch.data_dir, "apply", "-f", str(path), check=False)
    assert code == 1 and 'no matches for kind "Widget"' in err


async def test_kubeconfig_points_at_the_data_dir(procorch) -> None:
    _, out, _ = await run(procorch.data_dir, "kubeconfig")
    assert out.strip() == f"export KUBECONFIG={procorch.kubeconfig_path}"
    _, raw, _ = await run(procorch.data_dir, "kubeconfig", "--raw")
    assert yaml.safe_load(raw)["clusters"][0]["cluster"]["server"] == procorch.api_url
    assert json.loads(json.dumps(yaml.safe_load(raw)))["current-context"] == "procorch"
