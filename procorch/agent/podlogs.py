"""Where a node keeps its pods' container logs: ``<node dir>/logs/<namespace>_<pod>_<uid>/
<container>/<attempt>.log``, kubelet's layout. Written by the container runtime, read by the
agent's endpoint (``kubectl logs``), removed with the pod. Pure paths: no I/O.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pod_log_dir(node_dir: Path, pod: dict[str, Any]) -> Path:
    meta = pod["metadata"]
    return node_dir / "logs" / f"{meta.get('namespace')}_{meta['name']}_{meta['uid']}"


def container_log_path(node_dir: Path, pod: dict[str, Any], container: str, attempt: int) -> Path:
    return pod_log_dir(node_dir, pod) / container / f"{attempt}.log"
