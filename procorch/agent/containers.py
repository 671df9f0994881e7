"""A container's lifecycle as the agent tracks it: an explicit state machine, no I/O.

Each container of a pod has one :class:`ContainerRecord` for the pod's lifetime; each *run* of
it (a process started by the runtime) moves the record through::

    WAITING ──start──▶ RUNNING ──exit──▶ TERMINATED ──restart──▶ RUNNING
       ▲  │                                  │
       │  └──(pod ends before it ran)──▶ TERMINATED
       └─────────────(back-off, config error)┘

``WAITING`` carries Kubernetes' reason (ContainerCreating, PodInitializing, CrashLoopBackOff,
CreateContainerConfigError, RunContainerError); ``TERMINATED`` the run's exit. Starting again
from TERMINATED is a restart: ``restart_count`` goes up and the finished run becomes
``lastState``. Any other transition is a bug and raises :class:`IllegalTransition`.

:func:`container_status` renders a record as a ``v1.ContainerStatus``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from procorch.agent.runtime.spec import ExitStatus


class State(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    TERMINATED = "terminated"


ALLOWED: dict[State, frozenset[State]] = {
    State.WAITING: frozenset({State.WAITING, State.RUNNING, State.TERMINATED}),
    State.RUNNING: frozenset({State.TERMINATED}),
    State.TERMINATED: frozenset({State.WAITING, State.RUNNING}),
}


class IllegalTransition(Exception):
    pass


@dataclass(frozen=True)
class FinishedRun:
    run_id: str
    started_at: float
    exit: ExitStatus


def _time(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ContainerRecord:
    def __init__(
        self, name: str, *, init: bool = False, sidecar: bool = False, ephemeral: bool = False
    ) -> None:
        self.name = name
        self.init = init
        self.sidecar = sidecar
        self.ephemeral = ephemeral
        """A debug container (``kubectl debug``): started once, never restarted."""
        self.state = State.WAITING
        self.reason = "ContainerCreating"
        self.message = ""
        self.run_id = ""
        self.started_at: float | None = None
        self.exit: ExitStatus | None = None
        self.last: FinishedRun | None = None
        self.restart_count = 0
        self.runs = 0
        """How many runs were started (restart_count counts the ones after the first)."""
        self.ready = False
        self.started = False
        self.failed_at = 0.0
        """When a start last failed (config or exec error): back-off is counted from it."""

    def _move(self, target: State) -> None:
        if target not in ALLOWED[self.state]:
            raise IllegalTransition(
                f"container {self.name}: {self.state.value} -> {target.value} is not allowed"
            )
        self.state = target

    # -- transitions -------------------------------------------------------------------------

    def wait(self, reason: str, message: str = "") -> None:
        """Not running, and why (the next start may be delayed or impossible)."""
        if self.state is State.TERMINATED and self.exit is not None and self.run_id:
            self.last = FinishedRun(self.run_id, self.started_at or 0.0, self.exit)
        self._move(State.WAITING)
        self.reason, self.message = reason, message
        self.ready = self.started = False

    def run(self, run_id: str, started_at: float) -> None:
        """A run started."""
        previous = self.state
        if previous is State.TERMINATED and self.exit is not None and self.run_id:
            self.last = FinishedRun(self.run_id, self.started_at or 0.0, self.exit)
        self._move(State.RUNNING)
        if self.runs > 0:
            self.restart_count += 1
        self.runs += 1
        self.run_id, self.started_at = run_id, started_at
        self.exit = None
        self.reason = self.message = ""
        self.ready = self.started = False

    def adopt(self, run_id: str, started_at: float, *, restart_count: int) -> None:
        """A run found already running (a restarted agent adopting its containers)."""
        self._move(State.RUNNING)
        self.runs = restart_count + 1
        self.restart_count = restart_count
        self.run_id, self.started_at = run_id, started_at
        self.exit = None
        self.reason = self.message = ""

    def restore(
        self,
        *,
        restart_count: int,
        exit_: ExitStatus | None,
        run_id: str,
        started_at: float | None,
        last: FinishedRun | None,
    ) -> None:
        """State carried over from the pod's status in the API when the runs themselves are
        gone (the agent restarted with a new runtime): a restart counts from here."""
        self.restart_count = restart_count
        self.runs = restart_count + (1 if exit_ is not None else 0)
        self.last = last
        if exit_ is not None:
            self._move(State.TERMINATED)
            self.exit, self.run_id, self.started_at = exit_, run_id, started_at

    def terminate(self, exit_: ExitStatus) -> None:
        """The current run ended (or the pod ended before the container ever ran)."""
        self._move(State.TERMINATED)
        self.exit = exit_
        self.ready = False
        self.reason = self.message = ""

    # -- questions ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.state is State.RUNNING

    @property
    def succeeded(self) -> bool:
        return self.state is State.TERMINATED and self.exit is not None and self.exit.exit_code == 0

    def ever_ran(self) -> bool:
        return self.runs > 0 or self.last is not None

    @property
    def spec_field(self) -> str:
        """Where the pod's spec lists this container."""
        if self.ephemeral:
            return "ephemeralContainers"
        return "initContainers" if self.init else "containers"


def _terminated(
    run: FinishedRun | None, *, exit_: ExitStatus | None, started: float | None, run_id: str
) -> dict[str, Any]:
    if run is not None:
        exit_, started, run_id = run.exit, run.started_at, run.run_id
    assert exit_ is not None
    out: dict[str, Any] = {
        "exitCode": exit_.exit_code,
        "reason": exit_.reason,
        "startedAt": _time(started) if started else None,
        "finishedAt": _time(exit_.finished_at),
        "containerID": f"procorch://{run_id}" if run_id else None,
    }
    if exit_.signal is not None:
        out["signal"] = exit_.signal
    if exit_.message:
        out["message"] = exit_.message
    return {k: v for k, v in out.items() if v is not None}


def container_status(record: ContainerRecord, container: dict[str, Any]) -> dict[str, Any]:
    """The ``v1.ContainerStatus`` of ``record`` (``container`` is its spec)."""
    if record.state is State.RUNNING:
        state: dict[str, Any] = {"running": {"startedAt": _time(record.started_at)}}
    elif record.state is State.TERMINATED:
        state = {
            "terminated": _terminated(
                None, exit_=record.exit, started=record.started_at, run_id=record.run_id
            )
        }
    else:
        waiting: dict[str, Any] = {"reason": record.reason}
        if record.message:
            waiting["message"] = record.message
        state = {"waiting": waiting}
    last: dict[str, Any] = {}
    if record.last is not None:
        last = {"terminated": _terminated(record.last, exit_=None, started=None, run_id="")}
    status: dict[str, Any] = {
        "name": record.name,
        "state": state,
        "lastState": last,
        "ready": record.ready and record.running and not record.ephemeral,
        "restartCount": record.restart_count,
        "image": str(container.get("image") or ""),
        "imageID": "",
        "started": record.started and record.running,
    }
    if record.run_id and record.state is not State.WAITING:
        status["containerID"] = f"procorch://{record.run_id}"
    elif record.last is not None:
        status["containerID"] = f"procorch://{record.last.run_id}"
    return status
