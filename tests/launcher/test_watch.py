"""procorch up --watch: an edited manifest is applied again, and the change is shown."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from procorch.api.resources import must
from procorch.launcher.watch import watch_and_apply

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{level: {level}}}\n"


async def test_an_edit_is_applied_and_reported(procorch, tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(CM.format(level="info"))
    await procorch.apply_files([manifest])
    said: list[str] = []
    task = asyncio.create_task(
        watch_and_apply(
            procorch, paths=[tmp_path], files=[manifest], debounce_ms=50, echo=said.append
        )
    )
    try:
        await asyncio.sleep(0.5)  # the watch is set up
        manifest.write_text(CM.format(level="debug"))
        for _ in range(100):
            if said:
                break
            await asyncio.sleep(0.05)
        assert said == ["watch: app.yaml changed: configmap/settings configured"]
        cm = await procorch.admin.get(must("core/configmaps"), "settings", namespace="default")
        assert cm["data"] == {"level": "debug"}
        manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n")
        for _ in range(100):
            if len(said) > 1:
                break
            await asyncio.sleep(0.05)
        assert said[1].startswith("watch: app.yaml changed; nothing applied:")
        assert "metadata.name" in said[1]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
