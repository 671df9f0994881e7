"""``procorch up --watch``: edit a manifest (or the Procfile, or .env) and it rolls out.

The watched paths (the ``-f`` files and directories, or the Procfile and its env files) are
re-read on every change (watchfiles, debounced) and applied as ``procorch apply`` does: all or
nothing, server-side, so an edited Deployment template rolls out like ``kubectl apply`` would.
What changed is printed (``deployment.apps/web configured``); a manifest that is refused is
reported with its file and field, and nothing of that round is applied. Objects removed from
the files are not deleted (as ``kubectl apply`` without ``--prune``).

Concurrency: one task on the launcher's loop; file reading happens between awaits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import watchfiles

from procorch.client.apply import ApplyError
from procorch.kit.logging import get_logger

log = get_logger("watch")

Objects = Callable[[], list[dict[str, Any]]]


async def watch_and_apply(
    procorch: Any,
    *,
    paths: list[Path],
    files: list[Path],
    objects: Objects | None = None,
    debounce_ms: int = 300,
    echo: Callable[[str], None] = print,
) -> None:
    """Apply ``files`` (and ``objects()``) again whenever something under ``paths`` changes."""
    watched = [p for p in paths if p.exists()]
    if not watched:
        return
    log.info("watching for changes", paths=[str(p) for p in watched])
    data_dir = str(Path(procorch.data_dir).resolve())

    def relevant(change: watchfiles.Change, path: str) -> bool:
        # procorch's own state may live under a watched directory (`-f .`): never react to it.
        return not str(Path(path).resolve()).startswith(data_dir) and watchfiles.DefaultFilter()(
            change, path
        )

    async for changes in watchfiles.awatch(
        *watched, debounce=debounce_ms, recursive=True, watch_filter=relevant
    ):
        changed = sorted({Path(path).name for _, path in changes})
        try:
            extra = objects() if objects is not None else []
            applied = await procorch.apply_files(files, extra)
        except ApplyError as exc:
            echo(f"watch: {', '.join(changed)} changed; nothing applied:\n{exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - a bad edit must not stop procorch
            echo(f"watch: {', '.join(changed)} changed; could not apply: {exc}")
            continue
        done = [a.describe() for a in applied if a.outcome != "unchanged"]
        if done:
            echo(f"watch: {', '.join(changed)} changed: " + "; ".join(done))
