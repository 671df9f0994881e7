"""What the container runtime is asked to run, and what it reports back. Pure data.

A :class:`ContainerSpec` is one *run* of one container: the agent resolves everything
Kubernetes-shaped (env, volumes, command) before it gets here, so the runtime only knows
processes, files and limits. Every type round-trips through JSON (:meth:`to_json` /
:meth:`from_json`), because the runtime usually lives in the node's supervisor process
(:mod:`procorch.agent.runtime.shim`) and is driven over a socket.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ExitReason = Literal["Completed", "Error", "OOMKilled"]

# Kubernetes' log rotation defaults (kubelet --container-log-max-size / -max-files).
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_LOG_MAX_FILES = 5


class RuntimeError_(Exception):
    """Base of the runtime's errors; ``str()`` is a message a user can act on."""

    kind = "RuntimeError"


class StartError(RuntimeError_):
    """The process could not be started (RunContainerError): command not found, no permission,
    a mount that cannot be made."""

    kind = "StartError"


class UnknownContainer(RuntimeError_):
    kind = "UnknownContainer"


ERRORS: dict[str, type[RuntimeError_]] = {
    cls.kind: cls for cls in (RuntimeError_, StartError, UnknownContainer)
}


@dataclass(frozen=True)
class Mount:
    """Make host path ``source`` visible at ``target`` inside the container."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    id: str
    """Unique per run: ``<pod uid>_<container name>_<attempt>`` by the agent's convention."""
    argv: list[str]
    env: dict[str, str]
    log_path: str
    cwd: str | None = None
    tty: bool = False
    stdin: bool = False
    mounts: list[Mount] = field(default_factory=list)
    hostname: str | None = None
    """Set in a UTS namespace of the container's own (with its mount namespace)."""
    masked: list[str] = field(default_factory=list)
    """Paths the process must not see (procorch's data dir): an empty read-only tmpfs is
    mounted over each in its mount namespace, after the volumes."""
    memory_limit: int | None = None
    """Bytes; exceeding it kills the container's whole tree, reported as OOMKilled."""
    cpu_limit_millis: int | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES
    log_max_files: int = DEFAULT_LOG_MAX_FILES
    labels: dict[str, str] = field(default_factory=dict)
    """Opaque to the runtime; returned by ``list()`` so a restarted agent can adopt."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerSpec:
        data = dict(data)
        data["mounts"] = [Mount(**m) for m in data.get("mounts") or []]
        return cls(**data)


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int
    """The process's exit code, or 128 + the signal that killed it (as container runtimes
    report it: 137 for SIGKILL)."""
    reason: ExitReason
    finished_at: float
    """Wall-clock seconds since the epoch."""
    signal: int | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExitStatus:
        return cls(**data)


@dataclass(frozen=True)
class ContainerState:
    id: str
    pid: int
    started_at: float
    """Wall-clock seconds since the epoch."""
    labels: dict[str, str]
    log_path: str
    exit: ExitStatus | None = None

    @property
    def running(self) -> bool:
        return self.exit is None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit"] = self.exit.to_json() if self.exit else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerState:
        data = dict(data)
        exit_ = data.get("exit")
        data["exit"] = ExitStatus.from_json(exit_) if exit_ else None
        return cls(**data)


@dataclass(frozen=True)
class Stats:
    cpu_usage_ns: int
    """Cumulative CPU time of the container's processes (including reaped children where the
    tracking mechanism can tell)."""
    memory_bytes: int
    """Working set: resident memory of the container's processes."""
    processes: int
    timestamp: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stats:
        return cls(**data)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: bytes


@dataclass(frozen=True)
class ExecStdio:
    """The descriptors an exec'd process gets as 0, 1 and 2 (all three the pty's terminal
    side when ``tty``: it becomes the process's controlling terminal)."""

    stdin: int
    stdout: int
    stderr: int
    tty: bool = False
