"""Probe workers for one run of one container, with the kubelet's semantics.

Owns the startup, readiness and liveness loops of a container run (pkg/kubelet/prober/worker.go
and prober.go) and the two flags the pod status shows, ``started`` and ``ready``. A new
:class:`ContainerProbes` is made each time the container (re)starts; single probe attempts are
:mod:`procorch.agent.runtime.probes`.

Kubernetes' rules, and where procorch differs:

* Defaults: initialDelaySeconds 0, periodSeconds 10, timeoutSeconds 1, successThreshold 1,
  failureThreshold 3. Fractional values are accepted (tests use them; the API asks for integers).
* No startup probe: started at once. No readiness probe: ready once started and still running
  ``ready_settle`` seconds later (the kubelet first sees a new container at its next relist, up
  to a second later, so one that crashes at once never shows Ready; without the settle a
  crash-looping container flickers Ready at every restart, and a rolling update counts it as
  available). Readiness and liveness do not run before the container has started; startup
  stops once it succeeds.
* No probe runs before ``initialDelaySeconds`` have passed since the process started. The first
  probe then runs at once (the kubelet waits for its next tick; fast readiness matters for
  rollouts), and then every ``periodSeconds``.
* Results count in runs of equal results against successThreshold / failureThreshold. A liveness
  or startup probe failing at its threshold calls ``on_liveness_failure`` once and stops (the
  container is about to be restarted with a new instance); readiness flips ``ready``.
* Every failure is a ``Warning Unhealthy "<Kind> probe failed: <message>"`` event, an unfollowed
  redirect a ``Warning ProbeWarning`` one. A probe that cannot run at all (a named port the
  container does not have) is an ``errored``
  event and its result is thrown away, as the kubelet does: it neither restarts the container
  nor counts toward a threshold, and a readiness or startup probe that never runs keeps the
  container unready.
* ``exec`` commands expand ``$(VAR)`` against the container's literal ``env`` values only
  (kubelet's ExpandContainerCommandOnlyStatic).
* A probe's own ``terminationGracePeriodSeconds`` is ignored: the pod's grace period applies.
* :meth:`ContainerProbes.set_terminating`: the pod is shutting down; ``ready`` is False from then
  on and liveness and startup stop (the kubelet's quiet shutdown).

Concurrency: everything runs on the caller's event loop; callbacks are called from the probe
tasks, must be quick and must not block. The tasks are named, owned by the instance, and
cancelled and awaited by :meth:`ContainerProbes.stop`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from procorch.agent.podenv import expand
from procorch.agent.runtime import probes
from procorch.agent.runtime.probes import ExecRunner, ProbeOutcome
from procorch.kit.logging import get_logger
from procorch.kit.tasks import TaskSet

log = get_logger("agent.prober")

ProbeKind = Literal["startup", "readiness", "liveness"]
_KINDS: tuple[ProbeKind, ...] = ("startup", "readiness", "liveness")


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def of(cls, probe: dict[str, Any]) -> ProbeTiming:
        def number(name: str, default: float) -> float:
            value = probe.get(name)
            return float(value) if value is not None else default

        return cls(
            initial_delay=max(0.0, number("initialDelaySeconds", 0)),
            period=max(0.001, number("periodSeconds", 10)),
            timeout=max(0.001, number("timeoutSeconds", 1)),
            success_threshold=max(1, int(number("successThreshold", 1))),
            failure_threshold=max(1, int(number("failureThreshold", 3))),
        )


class _Errored(Exception):
    """The probe could not be run at all; its result is discarded."""


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    """A probe's ``port``: a number, or the name of one of the container's ports."""
    if isinstance(port, str):
        for declared in container.get("ports") or []:
            if declared.get("name") == port:
                port = declared.get("containerPort")
                break
        else:
            if not port.isdigit():
                raise _Errored(f"port {port} not found")
    try:
        number = int(port)
    except (TypeError, ValueError) as exc:
        raise _Errored(f"invalid port number: {port}") from exc
    if not 0 < number < 65536:
        raise _Errored(f"invalid port number: {number}")
    return number


class ContainerProbes:
    """The probes of one run of a container; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        container: dict[str, Any],
        pod_ip: str,
        started_at: float,
        exec_runner: ExecRunner,
        on_change: Callable[[], None],
        on_liveness_failure: Callable[[str, str], None],
        on_event: Callable[[str, str, str], None],
        clock: Callable[[], float] = time.monotonic,
        ready_settle: float = 0.0,
    ) -> None:
        self.container = container
        self.pod_ip = pod_ip
        self.started_at = started_at
        self._exec_runner = exec_runner
        self._on_change = on_change
        self._on_liveness_failure = on_liveness_failure
        self._on_event = on_event
        self._clock = clock
        self._specs: dict[ProbeKind, dict[str, Any]] = {
            kind: dict(container[f"{kind}Probe"])
            for kind in _KINDS
            if container.get(f"{kind}Probe") is not None
        }
        self._started = "startup" not in self._specs
        self._started_event = asyncio.Event()
        if self._started:
            self._started_event.set()
        self._readiness_ok = False
        self._ready_settle = ready_settle
        # A run that has been going for long enough (one adopted after an agent restart) is
        # settled already: it must not turn unready for an instant.
        self._settled = "readiness" in self._specs or clock() - started_at >= ready_settle
        self._terminating = False
        self._tasks = TaskSet(f"probes/{container.get('name', '')}")
        self._running = False

    @property
    def started(self) -> bool:
        return self._started

    @property
    def ready(self) -> bool:
        if self._terminating or not self._started:
            return False
        if "readiness" in self._specs:
            return self._readiness_ok
        return self._settled

    def start(self) -> None:
        """Start one task per probe the container declares."""
        if self._running:
            return
        self._running = True
        for kind in self._specs:
            self._tasks.start(kind, self._loop(kind), forever=False)
        if not self._settled:
            self._tasks.start("settle", self._settle(), forever=False)

    async def stop(self) -> None:
        """Cancel the probe tasks and wait for them to end."""
        await self._tasks.stop()

    def set_terminating(self) -> None:
        """The pod is shutting down: not ready any more, and no more liveness restarts."""
        was_ready = self.ready
        self._terminating = True
        if was_ready:
            self._notify(self._on_change)

    # --- the loops ---

    async def _settle(self) -> None:
        await self._started_event.wait()
        wait = self._ready_settle - (self._clock() - self.started_at)
        if wait > 0:
            await asyncio.sleep(wait)
        self._settled = True
        if self.ready:
            self._notify(self._on_change)

    async def _loop(self, kind: ProbeKind) -> None:
        timing = ProbeTiming.of(self._specs[kind])
        if kind != "startup":
            await self._started_event.wait()
        wait = timing.initial_delay - (self._clock() - self.started_at)
        if wait > 0:
            await asyncio.sleep(wait)
        last: bool | None = None
        run = 0
        next_at = self._clock()
        while not self._done(kind):
            outcome = await self._attempt(kind, timing)
            if self._done(kind):
                return
            if outcome is not None:
                run = run + 1 if outcome.ok == last else 1
                last = outcome.ok
                threshold = timing.success_threshold if outcome.ok else timing.failure_threshold
                if run >= threshold and self._result(kind, outcome):
                    return  # started, or on hold until the container is restarted
            # A ticker: a probe that overran its period is followed by the next one at once.
            next_at = max(next_at + timing.period, self._clock())
            await asyncio.sleep(next_at - self._clock())

    def _done(self, kind: ProbeKind) -> bool:
        if kind == "startup" and self._started:
            return True
        return self._terminating and kind != "readiness"

    def _result(self, kind: ProbeKind, outcome: ProbeOutcome) -> bool:
        """Record a result that reached its threshold; True to stop probing."""
        if kind == "readiness":
            if outcome.ok != self._readiness_ok:
                was_ready = self.ready
                self._readiness_ok = outcome.ok
                if self.ready != was_ready:
                    self._notify(self._on_change)
            return False
        if outcome.ok:
            if kind == "startup":
                self._started = True
                self._started_event.set()
                self._notify(self._on_change)
                return True
            return False
        self._notify(self._on_liveness_failure, kind, outcome.message)
        return True

    async def _attempt(self, kind: ProbeKind, timing: ProbeTiming) -> ProbeOutcome | None:
        """Run the probe once; None when it could not run (an ``errored`` probe)."""
        title = kind.capitalize()
        try:
            outcome = await self._run_handler(self._specs[kind], timing.timeout)
        except _Errored as exc:
            self._notify(self._on_event, "Warning", "Unhealthy", f"{title} probe errored: {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - a bug must not end the probe loop
            log.error(
                "probe crashed",
                container=self.container.get("name"),
                kind=kind,
                error=repr(exc),
                exc_info=exc,
            )
            self._notify(self._on_event, "Warning", "Unhealthy", f"{title} probe errored: {exc}")
            return None
        if not outcome.ok:
            message = f"{title} probe failed: {outcome.message}"
            self._notify(self._on_event, "Warning", "Unhealthy", message)
        elif outcome.message:
            message = f"{title} probe warning: {outcome.message}"
            self._notify(self._on_event, "Warning", "ProbeWarning", message)
        return outcome

    async def _run_handler(self, spec: dict[str, Any], timeout: float) -> ProbeOutcome:
        if spec.get("exec") is not None:
            static = {
                str(var.get("name")): str(var.get("value") or "")
                for var in self.container.get("env") or []
            }
            command = [expand(str(part), static) for part in spec["exec"].get("command") or []]
            return await probes.exec_command(
                command=command, timeout=timeout, run=self._exec_runner
            )
        if spec.get("httpGet") is not None:
            get = spec["httpGet"]
            return await probes.http_get(
                scheme=str(get.get("scheme") or "HTTP"),
                host=str(get.get("host") or self.pod_ip),
                port=resolve_port(get.get("port"), self.container),
                path=str(get.get("path") or ""),
                headers=[
                    (str(h.get("name")), str(h.get("value") or ""))
                    for h in get.get("httpHeaders") or []
                ],
                timeout=timeout,
            )
        if spec.get("tcpSocket") is not None:
            tcp = spec["tcpSocket"]
            return await probes.tcp_socket(
                host=str(tcp.get("host") or self.pod_ip),
                port=resolve_port(tcp.get("port"), self.container),
                timeout=timeout,
            )
        if spec.get("grpc") is not None:
            grpc = spec["grpc"]
            return await probes.grpc_probe(
                host=self.pod_ip,
                port=resolve_port(grpc.get("port"), self.container),
                service=str(grpc.get("service") or ""),
                timeout=timeout,
            )
        raise _Errored(f"missing probe handler for {self.container.get('name')}")

    def _notify(self, callback: Callable[..., None], *args: str) -> None:
        try:
            callback(*args)
        except Exception as exc:  # noqa: BLE001 - the caller's bug must not stop probing
            log.error(
                "probe callback failed",
                container=self.container.get("name"),
                error=repr(exc),
                exc_info=exc,
            )
