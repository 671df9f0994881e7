"""kopf, the Python operator framework, runs an operator on a custom resource against
procorch: its handlers see creation and changes and write status, and its peering (the
KopfPeering resource) works."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from procorch.launcher.up import Procorch
from tests.conftest import Kubectl

pytestmark = pytest.mark.kubectl

HERE = Path(__file__).parent / "kopf"
OBJECTS = """
apiVersion: kopf.dev/v1
kind: KopfPeering
metadata: {name: example}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
"""


async def test_a_kopf_operator_handles_a_custom_resource_with_peering(
    kubectl: Kubectl, procorch: Procorch, tmp_path: Path
) -> None:
    kopf = shutil.which("kopf", path=str(Path(sys.executable).parent))
    if kopf is None:
        pytest.skip("kopf is not installed (it is in the test extras)")
    await kubectl("apply", "-f", str(HERE / "crds.yaml"))
    objects = tmp_path / "objects.yaml"
    objects.write_text(OBJECTS)
    await kubectl("apply", "-f", str(objects))
    operator = await asyncio.create_subprocess_exec(
        kopf,
        "run",
        "--namespace=default",
        str(HERE / "operator.py"),
        env={**os.environ, "KUBECONFIG": str(procorch.kubeconfig_path)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:

        async def status(kind: str, name: str) -> dict[str, object]:
            out = await kubectl("get", kind, name, "-o", "json")
            return dict(json.loads(out.stdout).get("status") or {})

        async def until(kind: str, name: str, key: str) -> dict[str, object]:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                found = await status(kind, name)
                if key in found or (key == "*" and found):
                    return found
                await asyncio.sleep(0.1)
            raise AssertionError(f"{kind} {name} never had status {key}")

        assert (await until("widget", "w1", "created"))["created"] == {"doubled": 6}
        await kubectl("patch", "widget", "w1", "--type=merge", "-p", '{"spec":{"size":5}}')
        assert (await until("widget", "w1", "size-changes"))["size-changes"] == "3->5"
        # The operator announced itself in the peering object.
        (peer,) = (await until("kopfpeering", "example", "*")).values()
        assert peer["lifetime"] == 10  # type: ignore[index]
    finally:
        operator.terminate()
        out, _ = await asyncio.wait_for(operator.communicate(), 30)
    log = out.decode()
    assert "Handler 'created' succeeded" in log
    assert "ERROR" not in log and "WARNING" not in log, log
