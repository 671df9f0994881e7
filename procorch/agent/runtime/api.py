"""The runtime interface the node agent drives, with its in-process implementation.

:class:`Runtime` is what the agent sees: start, stop, signal, exec, stats, list, remove, and
exit notifications. Two implementations:

* :class:`LocalRuntime` wraps a :class:`~procorch.agent.runtime.supervisor.Supervisor` in the
  agent's own process (tests, and machines where a separate process is not wanted);
* :class:`~procorch.agent.runtime.shimclient.ShimRuntime` talks to the node's supervisor
  process (:mod:`procorch.agent.runtime.shim`), which outlives an agent crash so that the next
  agent adopts the running containers instead of starting duplicates.

Exit listeners run on the event loop and must not block. ``on_lost`` listeners are told when
the runtime itself went away (the supervisor process died): every container of it is gone.
"""

from __future__ import annotations

import abc
import asyncio
import signal
from collections.abc import Callable

from procorch.agent.runtime.spec import (
    ContainerSpec,
    ContainerState,
    ExecResult,
    ExecStdio,
    ExitStatus,
    Stats,
)
from procorch.agent.runtime.supervisor import Supervisor, SupervisorConfig

ExitListener = Callable[[str, ExitStatus], None]
OutputListener = Callable[[str, str, bytes], None]  # (container id, stream, bytes)


class AttachedProcess(abc.ABC):
    """A process exec'd into a container on the caller's descriptors (``kubectl exec``)."""

    pid: int

    @abc.abstractmethod
    async def wait(self) -> int:
        """Its exit code (128 + the signal that killed it)."""

    @abc.abstractmethod
    def hang_up(self) -> None:
        """Its client went away: SIGHUP now, SIGKILL if it outlives a short grace."""


class Runtime(abc.ABC):
    def __init__(self) -> None:
        self._exit_listeners: list[ExitListener] = []
        self._lost_listeners: list[Callable[[str], None]] = []
        self._output_listeners: list[OutputListener] = []

    def on_exit(self, listener: ExitListener) -> None:
        self._exit_listeners.append(listener)

    def on_output(self, listener: OutputListener) -> None:
        """Receive container output as it is produced (after :meth:`follow_output`)."""
        self._output_listeners.append(listener)

    def _emit_output(self, container_id: str, stream: str, data: bytes) -> None:
        for listener in list(self._output_listeners):
            listener(container_id, stream, data)

    @abc.abstractmethod
    async def follow_output(self, enabled: bool) -> None:
        """Start (or stop) streaming every container's output to the output listeners."""

    def on_lost(self, listener: Callable[[str], None]) -> None:
        self._lost_listeners.append(listener)

    def _emit_exit(self, container_id: str, status: ExitStatus) -> None:
        for listener in list(self._exit_listeners):
            listener(container_id, status)

    def _emit_lost(self, reason: str) -> None:
        for listener in list(self._lost_listeners):
            listener(reason)

    @abc.abstractmethod
    async def start(self, spec: ContainerSpec) -> ContainerState: ...

    @abc.abstractmethod
    async def stop(
        self, container_id: str, *, grace: float, sig: int = signal.SIGTERM
    ) -> ExitStatus: ...

    @abc.abstractmethod
    async def send_signal(self, container_id: str, sig: int) -> None: ...

    @abc.abstractmethod
    async def exec(self, container_id: str, argv: list[str], *, timeout: float) -> ExecResult: ...

    @abc.abstractmethod
    async def exec_attached(
        self, container_id: str, argv: list[str], *, stdio: ExecStdio
    ) -> AttachedProcess:
        """Start ``argv`` in the container on ``stdio`` (the caller keeps the other ends and
        closes the given ones after this returns). Raises :class:`StartError`."""

    @abc.abstractmethod
    async def stdin_of(self, container_id: str) -> int:
        """A descriptor of the container's input for ``kubectl attach`` (the caller closes
        it), or -1 when it has none."""

    @abc.abstractmethod
    async def close_stdin(self, container_id: str) -> None:
        """End the container's input (``stdinOnce``)."""

    @abc.abstractmethod
    async def stats(self, container_ids: list[str] | None = None) -> dict[str, Stats]: ...

    @abc.abstractmethod
    async def list(self) -> list[ContainerState]: ...

    @abc.abstractmethod
    async def remove(self, container_id: str) -> None: ...

    @abc.abstractmethod
    async def describe(self) -> dict[str, str]: ...

    @abc.abstractmethod
    async def close(self, *, grace: float = 10.0, stop_containers: bool = True) -> None:
        """Release the runtime. ``stop_containers`` stops every container first (a graceful
        shutdown); otherwise the containers are left to the supervisor process, if any."""


class LocalRuntime(Runtime):
    def __init__(self, config: SupervisorConfig) -> None:
        super().__init__()
        self.supervisor = Supervisor(config)
        self.supervisor.subscribe(self._emit_exit)

    async def start(self, spec: ContainerSpec) -> ContainerState:
        return await self.supervisor.start(spec)

    async def follow_output(self, enabled: bool) -> None:
        self.supervisor.subscribe_output(self._emit_output if enabled else None)

    async def stop(
        self, container_id: str, *, grace: float, sig: int = signal.SIGTERM
    ) -> ExitStatus:
        return await self.supervisor.stop(container_id, grace=grace, sig=sig)

    async def send_signal(self, container_id: str, sig: int) -> None:
        self.supervisor.send_signal(container_id, sig)

    async def exec(self, container_id: str, argv: list[str], *, timeout: float) -> ExecResult:
        return await self.supervisor.exec(container_id, argv, timeout=timeout)

    async def exec_attached(
        self, container_id: str, argv: list[str], *, stdio: ExecStdio
    ) -> AttachedProcess:
        pid, exited = self.supervisor.exec_attached(container_id, argv, stdio=stdio)
        return _LocalProcess(self.supervisor, pid, exited)

    async def stdin_of(self, container_id: str) -> int:
        return self.supervisor.stdin_of(container_id)

    async def close_stdin(self, container_id: str) -> None:
        self.supervisor.close_stdin(container_id)

    async def stats(self, container_ids: list[str] | None = None) -> dict[str, Stats]:
        return self.supervisor.stats(container_ids)

    async def list(self) -> list[ContainerState]:
        return self.supervisor.containers()

    async def remove(self, container_id: str) -> None:
        self.supervisor.remove(container_id)

    async def describe(self) -> dict[str, str]:
        return {**self.supervisor.describe(), "supervisor": "in-process"}

    async def close(self, *, grace: float = 10.0, stop_containers: bool = True) -> None:
        # In-process, nothing can outlive us: containers always stop.
        await self.supervisor.close(grace=grace)


class _LocalProcess(AttachedProcess):
    def __init__(self, supervisor: Supervisor, pid: int, exited: asyncio.Future[int]) -> None:
        self.supervisor = supervisor
        self.pid = pid
        self.exited = exited

    async def wait(self) -> int:
        return await asyncio.shield(self.exited)

    def hang_up(self) -> None:
        self.supervisor.hang_up(self.pid, self.exited)
