"""Probe workers with the kubelet's semantics, against real servers and real processes.

Periods are fractions of a second here to keep the tests fast (the class accepts them); one
test uses whole seconds as the API requires.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from procorch.agent.prober import ContainerProbes


class StatusServer:
    """An HTTP server on 127.0.0.1:0 answering every request with ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.hits: list[float] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.hits.append(time.monotonic())
            writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[StatusServer]:
    srv = StatusServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


async def run_process(argv: list[str], timeout: float) -> tuple[int, bytes]:
    """An ExecRunner over a real child process; kills and reaps it on timeout or cancel."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out


class Recorder:
    """Everything a ContainerProbes reports, with the state at each change."""

    def __init__(self) -> None:
        self.changes: list[tuple[bool, bool, int]] = []
        self.liveness_failures: list[tuple[str, str]] = []
        self.events: list[tuple[str, str, str]] = []
        self.probes: ContainerProbes | None = None
        self.hits: Callable[[], int] = lambda: 0

    def make(
        self, container: dict[str, Any], *, started_at: float | None = None
    ) -> ContainerProbes:
        def on_change() -> None:
            assert self.probes is not None
            self.changes.append((self.probes.started, self.probes.ready, self.hits()))

        self.probes = ContainerProbes(
            container={"name": "app", "command": ["run"], **container},
            pod_ip="127.0.0.1",
            started_at=time.monotonic() if started_at is None else started_at,
            exec_runner=run_process,
            on_change=on_change,
            on_liveness_failure=lambda kind, msg: self.liveness_failures.append((kind, msg)),
            on_event=lambda *event: self.events.append(event),
        )
        return self.probes


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    try:
        yield rec
    finally:
        if rec.probes is not None:
            await rec.probes.stop()
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("probes/")]


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def http_probe(port: int | str, **timing: Any) -> dict[str, Any]:
    return {"httpGet": {"path": "/healthz", "port": port}, "timeoutSeconds": 1, **timing}


def exec_probe(code: str, **timing: Any) -> dict[str, Any]:
    return {"exec": {"command": [sys.executable, "-c", code]}, "timeoutSeconds": 5, **timing}


# --- without probes -------------------------------------------------------------------------------


async def test_no_probes_means_started_and_ready_at_once(recorder: Recorder) -> None:
    probes = recorder.make({})
    assert probes.started and probes.ready
    probes.start()
    await probes.stop()
    assert recorder.changes == [] and recorder.events == []


# --- readiness ----------------------------------------------------------------------------------


async def test_readiness_flips_with_success_and_failure_thresholds(
    recorder: Recorder, server: StatusServer
) -> None:
    recorder.hits = lambda: len(server.hits)
    probes = recorder.make(
        {
            "ports": [{"name": "http", "containerPort": server.port}],
            "readinessProbe": http_probe(
                "http", periodSeconds=0.05, successThreshold=2, failureThreshold=3
            ),
        }
    )
    assert probes.started and not probes.ready
    probes.start()
    await until(lambda: len(recorder.changes) == 1)
    # Ready exactly when the second success in a row came in.
    assert recorder.changes == [(True, True, 2)]

    server.status = 503
    switched_at = len(server.hits)
    await until(lambda: len(recorder.changes) == 2)
    assert recorder.changes[1] == (True, False, switched_at + 3)
    failures = [e for e in recorder.events if e[1] == "Unhealthy"]
    assert failures[0] == (
        "Warning",
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
    )

    server.status = 200
    recovered_at = len(server.hits)
    await until(lambda: len(recorder.changes) == 3)
    assert recorder.changes[2] == (True, True, recovered_at + 2)
    assert recorder.liveness_failures == []


async def test_set_terminating_makes_the_container_unready(
    recorder: Recorder, server: StatusServer
) -> None:
    probes = recorder.make({"readinessProbe": http_probe(server.port, periodSeconds=0.05)})
    probes.start()
    await until(lambda: probes.ready)
    probes.set_terminating()
    assert not probes.ready
    assert recorder.changes[-1] == (True, False, 0)
    await asyncio.sleep(0.2)
    assert not probes.ready


# --- liveness -----------------------------------------------------------------------------------


async def test_liveness_failure_is_reported_once_at_the_threshold_and_then_holds(
    recorder: Recorder, closed_port: int
) -> None:
    probes = recorder.make(
        {
            "livenessProbe": {
                "tcpSocket": {"port": closed_port},
                "periodSeconds": 0.05,
                "failureThreshold": 3,
            }
        }
    )
    probes.start()
    await until(lambda: bool(recorder.liveness_failures))
    message = f"dial tcp 127.0.0.1:{closed_port}: connect: connection refused"
    assert recorder.liveness_failures == [("liveness", message)]
    assert recorder.events == [("Warning", "Unhealthy", f"Liveness probe failed: {message}")] * 3
    await asyncio.sleep(0.3)  # on hold: no more probes, no second report
    assert len(recorder.events) == 3
    assert len(recorder.liveness_failures) == 1
    assert probes.ready  # liveness does not touch readiness


async def test_liveness_successes_reset_the_failure_run(recorder: Recorder, tmp_path: Path) -> None:
    # Fails, fails, succeeds, then fails for good: the threshold of 3 is reached only after
    # three failures in a row.
    counter = tmp_path / "count"
    code = (
        f"import pathlib,sys; p=pathlib.Path({str(counter)!r}); n=int(p.read_text() or 0) "
        "if p.exists() else 0; p.write_text(str(n+1)); sys.exit(0 if n == 2 else 1)"
    )
    probes = recorder.make(
        {"livenessProbe": exec_probe(code, periodSeconds=0.05, failureThreshold=3)}
    )
    probes.start()
    await until(lambda: bool(recorder.liveness_failures))
    assert counter.read_text() == "6"
    assert len([e for e in recorder.events if e[1] == "Unhealthy"]) == 5


async def test_exec_probe_expands_static_env_and_reports_output(recorder: Recorder) -> None:
    probes = recorder.make(
        {
            "env": [{"name": "GREETING", "value": "db down"}],
            "livenessProbe": exec_probe(
                "import sys; print('$(GREETING)'); sys.exit(1)",
                periodSeconds=0.05,
                failureThreshold=1,
            ),
        }
    )
    probes.start()
    await until(lambda: bool(recorder.liveness_failures))
    assert recorder.liveness_failures == [("liveness", "db down")]
    assert recorder.events == [("Warning", "Unhealthy", "Liveness probe failed: db down")]


async def test_a_probe_that_cannot_run_is_reported_but_never_counted(recorder: Recorder) -> None:
    probes = recorder.make(
        {
            "ports": [{"name": "http", "containerPort": 8080}],
            "livenessProbe": http_probe("metrics", periodSeconds=0.05, failureThreshold=1),
        }
    )
    probes.start()
    await until(lambda: len(recorder.events) >= 3)
    assert recorder.events[0] == (
        "Warning",
        "Unhealthy",
        "Liveness probe errored: port metrics not found",
    )
    assert recorder.liveness_failures == []


# --- startup ------------------------------------------------------------------------------------


async def test_startup_gates_readiness_and_liveness(
    recorder: Recorder, server: StatusServer, tmp_path: Path
) -> None:
    flag = tmp_path / "started"
    recorder.hits = lambda: len(server.hits)
    probes = recorder.make(
        {
            "startupProbe": exec_probe(
                f"import os,sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)",
                periodSeconds=0.05,
                failureThreshold=1000,
            ),
            "readinessProbe": http_probe(server.port, periodSeconds=10),
            "livenessProbe": http_probe(server.port, periodSeconds=10),
        }
    )
    assert not probes.started and not probes.ready
    probes.start()
    await asyncio.sleep(0.4)
    assert server.hits == []  # neither readiness nor liveness before the container started
    assert not probes.started
    flag.touch()
    await until(lambda: probes.ready)
    # Started first, then readiness ran at once (not after its 10 s period) and passed.
    assert recorder.changes[0] == (True, False, 0)
    assert recorder.changes[-1][:2] == (True, True)
    await until(lambda: len(server.hits) == 2)  # readiness and liveness, one probe each
    assert recorder.liveness_failures == []


async def test_startup_failure_at_threshold_asks_for_a_restart(
    recorder: Recorder, server: StatusServer
) -> None:
    probes = recorder.make(
        {
            "startupProbe": exec_probe(
                "import sys; sys.exit(2)", periodSeconds=0.05, failureThreshold=2
            ),
            "livenessProbe": http_probe(server.port, periodSeconds=0.05),
        }
    )
    probes.start()
    await until(lambda: bool(recorder.liveness_failures))
    assert recorder.liveness_failures == [("startup", "")]
    assert [e[2] for e in recorder.events] == ["Startup probe failed: "] * 2
    await asyncio.sleep(0.2)
    assert server.hits == [] and not probes.started


async def test_a_grpc_readiness_probe_follows_the_health_service(recorder: Recorder) -> None:
    grpc = pytest.importorskip("grpc", reason="grpcio is in the test extras")
    from concurrent import futures

    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    servicer.set("api", health_pb2.HealthCheckResponse.NOT_SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        probes = recorder.make(
            {
                "ports": [{"name": "grpc", "containerPort": port}],
                "readinessProbe": {
                    "grpc": {"port": port, "service": "api"},
                    "periodSeconds": 0.05,
                    "timeoutSeconds": 1,
                },
            }
        )
        probes.start()
        await until(lambda: len(recorder.events) >= 1)
        assert recorder.events[0] == (
            "Warning",
            "Unhealthy",
            'Readiness probe failed: service unhealthy (responded with "NOT_SERVING")',
        )
        assert not probes.ready
        servicer.set("api", health_pb2.HealthCheckResponse.SERVING)
        await until(lambda: probes.ready)
        servicer.set("api", health_pb2.HealthCheckResponse.NOT_SERVING)
        await until(lambda: not probes.ready)
        assert recorder.liveness_failures == []
    finally:
        server.stop(grace=None)


# --- timing -------------------------------------------------------------------------------------


async def test_initial_delay_holds_the_first_probe_then_it_runs_at_once(
    recorder: Recorder, server: StatusServer
) -> None:
    started_at = time.monotonic()
    probes = recorder.make(
        {"readinessProbe": http_probe(server.port, initialDelaySeconds=1, periodSeconds=1)},
        started_at=started_at,
    )
    probes.start()
    await until(lambda: probes.ready)
    first = server.hits[0] - started_at
    assert 1.0 <= first < 1.3
    await until(lambda: len(server.hits) == 2)
    assert 0.9 < server.hits[1] - server.hits[0] < 1.2  # then every periodSeconds


async def test_initial_delay_counts_from_the_process_start(
    recorder: Recorder, server: StatusServer
) -> None:
    probes = recorder.make(
        {"readinessProbe": http_probe(server.port, initialDelaySeconds=5, periodSeconds=10)},
        started_at=time.monotonic() - 5,
    )
    began = time.monotonic()
    probes.start()
    await until(lambda: probes.ready)
    assert server.hits[0] - began < 0.3


async def test_redirect_to_another_host_is_a_probe_warning(recorder: Recorder) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/\r\n"
            b"Content-Length: 5\r\n\r\nmoved"
        )
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port = srv.sockets[0].getsockname()[1]
        probes = recorder.make({"readinessProbe": http_probe(port, periodSeconds=5)})
        probes.start()
        await until(lambda: probes.ready)
        assert recorder.events == [
            (
                "Warning",
                "ProbeWarning",
                "Readiness probe warning: Probe terminated redirects, Response body: moved",
            )
        ]
    finally:
        srv.close()
        await srv.wait_closed()
