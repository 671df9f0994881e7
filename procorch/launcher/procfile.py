"""Procfile and ``.env``: a foreman/honcho project as Kubernetes objects.

``web: python app.py`` becomes a Deployment ``web`` of one replica (``-m web=2`` for more)
whose container runs the line through ``sh -c`` in the Procfile's directory, as foreman does.
Each process type gets ``PORT`` the way foreman assigns it - 5000 for the first type, 5100 for
the second, ... - as its containerPort; every replica has its own pod IP, so replicas of a
type share one PORT. The environment comes from ``.env`` (python-dotenv; ``-e FILE`` adds
files, later ones winning) through a Secret, so values never end up in a manifest on disk
unless you ask ``procorch convert`` for one.

Pure functions: :func:`read_procfile`, :func:`read_env`, :func:`formation` and
:func:`manifests` build plain dicts; the CLI applies them or writes them out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

BASE_PORT = 5000
PORT_STEP = 100
ENV_SECRET = "procfile-env"
LABEL = "procorch.io/procfile"
_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


class ProcfileError(ValueError):
    """A Procfile or formation that cannot be used; the message names file and line."""


@dataclass(frozen=True)
class Process:
    name: str
    """As written in the Procfile (``web``, ``worker_2``)."""
    command: str
    port: int

    @property
    def object_name(self) -> str:
        """A DNS-1123 name for its Deployment (``worker_2`` -> ``worker-2``)."""
        return re.sub(r"[^a-z0-9-]", "-", self.name.lower()).strip("-") or "process"


def read_procfile(path: Path) -> list[Process]:
    processes: list[Process] = []
    seen: set[str] = set()
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ProcfileError(f"{path}:{number}: expected 'name: command', got {raw.strip()!r}")
        name, command = match.group(1), match.group(2).strip()
        if name in seen:
            raise ProcfileError(f"{path}:{number}: process type {name!r} appears twice")
        seen.add(name)
        port = BASE_PORT + PORT_STEP * len(processes)
        processes.append(Process(name=name, command=command, port=port))
    if not processes:
        raise ProcfileError(f"{path}: no process types")
    names = [p.object_name for p in processes]
    if len(set(names)) != len(names):
        raise ProcfileError(f"{path}: process type names collide once made DNS-safe: {names}")
    return processes


def read_env(files: Sequence[Path]) -> dict[str, str]:
    """Variables from ``files`` in order (later files win); missing files are an error,
    except the implicit ``.env``."""
    env: dict[str, str] = {}
    for path in files:
        if not path.exists():
            raise ProcfileError(f"env file {path} does not exist")
        for key, value in dotenv_values(path).items():
            if value is not None:
                env[key] = value
    return env


def formation(text: str, processes: Sequence[Process]) -> dict[str, int]:
    """``web=2,worker=3`` (foreman's ``-m``); ``all=N`` sets every type."""
    counts = {p.name: 1 for p in processes}
    if not text:
        return counts
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not value.strip().isdigit():
            raise ProcfileError(f"formation {part!r}: expected NAME=COUNT")
        if name == "all":
            counts = dict.fromkeys(counts, int(value))
        elif name in counts:
            counts[name] = int(value)
        else:
            raise ProcfileError(
                f"formation names {name!r}, which the Procfile does not define "
                f"(it has: {', '.join(counts)})"
            )
    return counts


def manifests(
    processes: Sequence[Process],
    *,
    workdir: Path,
    env: Mapping[str, str],
    replicas: Mapping[str, int],
) -> list[dict[str, Any]]:
    """The objects: a Secret with the environment, and a Deployment per process type."""
    objects: list[dict[str, Any]] = []
    if env:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": ENV_SECRET, "labels": {LABEL: "true"}},
                "stringData": dict(env),
            }
        )
    for process in processes:
        name = process.object_name
        labels = {"app": name, LABEL: "true"}
        container: dict[str, Any] = {
            "name": name,
            "command": ["sh", "-c", process.command],
            "workingDir": str(workdir),
            "ports": [{"name": "http", "containerPort": process.port}],
            "env": [{"name": "PS", "value": f"{process.name}"}],
        }
        if env:
            container["envFrom"] = [{"secretRef": {"name": ENV_SECRET}}]
        objects.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": {"procorch.io/procfile-command": process.command},
                },
                "spec": {
                    "replicas": replicas.get(process.name, 1),
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [container],
                            # foreman sends SIGTERM and waits a little, then kills.
                            "terminationGracePeriodSeconds": 5,
                        },
                    },
                },
            }
        )
    return objects
