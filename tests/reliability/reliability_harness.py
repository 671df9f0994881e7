"""The reliability run's shared pieces: `procorch up` as a real process (optionally under a
low open-files limit), killing it the ways a machine does, auditing the node's processes,
trial counts, figures for the report, and a web app to run as pods.

The run is bounded so that ``./scripts/test`` stays fast: each test runs
:func:`trials` trials (a few by default), and ``PROCORCH_RELIABILITY_TRIALS=N`` (or
``scripts/bench/reliability``) runs more. Each test records its figures with :func:`report`
(one JSON line per test in the file ``PROCORCH_RELIABILITY_REPORT`` names, when set).

Processes: ``procorch up`` runs in a session of its own (as in a terminal: its process group
is its own), and starts the node supervisor in another; the pods' processes are the
supervisor's children, each carrying ``PROCORCH_CONTAINER_ID=<scope>/<run id>`` in its
environment. A test that kills ``procorch up`` leaves those behind on purpose, so
:func:`node_processes` finds them by that marker (not by parentage: they are not this
process's children once their parent is killed), and :func:`kill_leftovers` ends them
whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import resource
import signal
import socket
import ssl
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import psutil

from procorch.api import errors, resources
from procorch.client.http import HttpClient
from procorch.client.kubeconfig import Credentials, read

CM = resources.must("core/configmaps")
PODS = resources.must("core/pods")
DEPLOYMENTS = resources.must("apps/deployments")
SERVICES = resources.must("core/services")
INGRESSES = resources.must("networking.k8s.io/ingresses")

MARKER = "PROCORCH_CONTAINER_ID"
PID_FILE = "procorch.pid"

T = TypeVar("T")


def trials(default: int) -> int:
    """How many trials a test runs: ``PROCORCH_RELIABILITY_TRIALS`` or ``default``."""
    return int(os.environ.get("PROCORCH_RELIABILITY_TRIALS", default))


def scaled() -> bool:
    """True when the trial count was set by hand (a longer run than CI's)."""
    return "PROCORCH_RELIABILITY_TRIALS" in os.environ


def report(test: str, **figures: Any) -> None:
    """Record a test's figures: one JSON line in ``$PROCORCH_RELIABILITY_REPORT`` (if set),
    which ``scripts/bench/reliability`` sums into its table."""
    path = os.environ.get("PROCORCH_RELIABILITY_REPORT")
    if not path:
        return
    with open(path, "a") as f:
        f.write(json.dumps({"test": test, **figures}, sort_keys=True) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(
    check: Callable[[], Awaitable[T | None]], *, timeout: float, what: str, interval: float = 0.1
) -> T:
    """Poll ``check`` until it returns something truthy (returned), or fail with ``what`` and
    the last exception it raised."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = await check()
            if value:
                return value
        except (errors.ApiError, OSError, AssertionError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout} s (last error: {last!r})")
        await asyncio.sleep(interval)


# -- procorch up as a process ---------------------------------------------------------------

Kill = Literal["procorch", "group", "supervisor"]
KILLS: tuple[Kill, ...] = ("procorch", "group", "supervisor")
"""``procorch``: SIGKILL to the ``procorch up`` process; ``group``: to its whole process
group (a terminal's SIGKILL of the job); ``supervisor``: to ``procorch up`` and the node
supervisor process (the machine's OOM killer taking both)."""


@dataclass
class UpProcess:
    proc: asyncio.subprocess.Process
    data_dir: Path
    api_port: int
    ingress_port: int
    log_path: Path

    @property
    def credentials(self) -> Credentials:
        return read(self.data_dir / "kubeconfig")

    def client(self, **kwargs: Any) -> HttpClient:
        return HttpClient.from_credentials(self.credentials, **kwargs)

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.credentials.ca_data.decode())

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def wait_ready(self, timeout: float = 30) -> None:
        """Until the API answers and, when it runs one, the node and its proxies have
        started (``procorch up`` writes its pid file last)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        answered = False
        while loop.time() < deadline:
            if self.proc.returncode is not None:
                raise AssertionError(
                    f"procorch exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if not answered and (self.data_dir / "kubeconfig").exists():
                client = self.client()
                try:
                    await client.list(CM, namespace="default")
                    answered = True
                except (errors.ApiError, OSError):
                    pass
                finally:
                    await client.close()
            if answered and _pid_in(self.data_dir / PID_FILE) == self.proc.pid:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"procorch did not become ready:\n{self.log_tail()}")

    async def kill(self, how: Kill) -> None:
        """SIGKILL, as ``how`` says (see :data:`KILLS`); returns once the killed processes
        are gone."""
        victims = [psutil.Process(self.proc.pid)]
        if how == "supervisor":
            victims += node_processes(self.data_dir).supervisors
        if how == "group":
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            # procorch first: killed second, its agent could start a new supervisor.
            for victim in victims:
                with contextlib.suppress(psutil.NoSuchProcess):
                    victim.kill()
        await self.proc.wait()
        gone = await asyncio.to_thread(psutil.wait_procs, victims, 10)
        assert not gone[1], f"still alive after SIGKILL: {gone[1]}"

    async def stop(self, timeout: float = 30) -> int:
        """SIGTERM (Ctrl-C's path): every pod stopped within its grace period, then exit."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout)


def service_cidr(data_dir: Path) -> str:
    """A /24 of the default Service range, its own for ``data_dir``: Service listeners of
    another procorch on this machine do not collide with this one's."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).digest()
    return f"127.{96 + digest[0] % 16}.{digest[1]}.0/24"


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _limit_open_files(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@asynccontextmanager
async def procorch_up(
    data_dir: Path,
    *args: str,
    open_files: int | None = None,
    api_port: int | None = None,
    ingress_port: int | None = None,
) -> AsyncIterator[UpProcess]:
    """``procorch up`` in a session of its own (its output appended to ``data_dir/../up.log``);
    ``open_files`` sets its soft and hard RLIMIT_NOFILE. On exit, a running ``procorch up``
    gets SIGTERM (then SIGKILL); what a killed one left is :func:`kill_leftovers`' job."""
    api_port, ingress_port = api_port or free_port(), ingress_port or free_port()
    log_path = data_dir.parent / "up.log"
    log = log_path.open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "procorch",
        "up",
        "--data-dir",
        str(data_dir),
        "--api-port",
        str(api_port),
        "--ingress-port",
        str(ingress_port),
        "--ingress-tls-port",
        "-1",
        "--no-logs",
        "--service-cidr",
        service_cidr(data_dir),
        *args,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=(lambda: _limit_open_files(open_files)) if open_files else None,
    )
    up = UpProcess(proc, data_dir, api_port, ingress_port, log_path)
    try:
        yield up
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


def raise_own_open_files(at_least: int) -> bool:
    """Raise this process's soft RLIMIT_NOFILE; False when the hard limit is below
    ``at_least`` (the attack needs that many sockets of its own)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < at_least:
        return False
    if soft < at_least:
        resource.setrlimit(resource.RLIMIT_NOFILE, (at_least, hard))
    return True


# -- slow clients ------------------------------------------------------------------------------

SLOW_CLIENTS = 1_100  # more than a server's 1,024 descriptors
SILENT_CLIENTS = 200  # TCP connections that never send a byte (nor a TLS ClientHello)
OPEN_RATE = 400  # new attacker connections per second (slowhttptest's default is 50)


async def slow_client(
    host: str, port: int, tls: ssl.SSLContext | None, stop: asyncio.Event
) -> None:
    """Sends a request head one byte every two seconds, and never finishes it."""
    with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
        reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        try:
            head = b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
            for byte in head:
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.0):
                        await stop.wait()
                if stop.is_set() or reader.at_eof():
                    return
        finally:
            writer.close()


async def silent_client(host: str, port: int, stop: asyncio.Event) -> None:
    with contextlib.suppress(OSError):
        _, writer = await asyncio.open_connection(host, port)
        try:
            await stop.wait()
        finally:
            writer.close()


async def slowloris(
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    stop: asyncio.Event,
    *,
    slow: int = SLOW_CLIENTS,
    silent: int = SILENT_CLIENTS,
    open_rate: int = OPEN_RATE,
) -> None:
    """Keeps ``slow`` slow clients and ``silent`` silent ones connected until ``stop``,
    reconnecting those the server closes, opening at most ``open_rate`` connections a
    second."""
    running: set[asyncio.Task[None]] = set()
    try:
        while not stop.is_set():
            slow_now = sum(1 for t in running if t.get_name() == "slow")
            silent_now = len(running) - slow_now
            want = [("slow", slow - slow_now), ("silent", silent - silent_now)]
            budget = open_rate // 10
            for kind, missing in want:
                for _ in range(min(missing, budget)):
                    coro = (
                        slow_client(host, port, tls, stop)
                        if kind == "slow"
                        else silent_client(host, port, stop)
                    )
                    task = asyncio.create_task(coro, name=kind)
                    running.add(task)
                    task.add_done_callback(running.discard)
                    budget -= 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await stop.wait()
    finally:
        stop.set()
        for task in list(running):
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


# -- the node's processes ---------------------------------------------------------------------


def supervisor_scope(data_dir: Path, node_name: str | None = None) -> str:
    """The marker scope of the node supervisor of ``data_dir`` (as the agent derives it)."""
    node = node_name or socket.gethostname().lower()
    digest = hashlib.sha256(f"{data_dir.resolve()}|{node}".encode())
    return f"procorch-{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class PodProcess:
    """A process of a container run, from its environment."""

    pid: int
    run_id: str  # <pod uid>_<container>_<attempt>
    pod: str  # namespace/name
    main: bool  # the container's own process (a direct child of a supervisor)
    supervised: bool  # a descendant of a live supervisor of this node

    @property
    def pod_uid(self) -> str:
        return self.run_id.split("_")[0]

    @property
    def container(self) -> str:
        return self.run_id.split("_")[1]


@dataclass
class NodeProcesses:
    supervisors: list[psutil.Process]
    pods: list[PodProcess] = field(default_factory=list)

    @property
    def orphans(self) -> list[PodProcess]:
        """Pod processes outside every supervisor's tree (nobody reaps or stops them)."""
        return [p for p in self.pods if not p.supervised]

    def mains(self) -> dict[tuple[str, str], list[PodProcess]]:
        """(pod uid, container) -> its main processes (more than one is a duplicate)."""
        out: dict[tuple[str, str], list[PodProcess]] = {}
        for p in self.pods:
            if p.main:
                out.setdefault((p.pod_uid, p.container), []).append(p)
        return out

    @property
    def pids(self) -> dict[tuple[str, str], int]:
        return {key: procs[0].pid for key, procs in self.mains().items()}


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        with open(f"/proc/{proc.pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    env: dict[str, str] = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def node_processes(data_dir: Path) -> NodeProcesses:
    """Every live process of the node of ``data_dir``: its supervisors (normally one) and
    every process carrying a pod marker of its scope, wherever it was re-parented."""
    scope = supervisor_scope(data_dir)
    socket_path = str(data_dir.resolve() / "nodes")
    supervisors: list[psutil.Process] = []
    marked: list[tuple[psutil.Process, dict[str, str]]] = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        if "procorch.agent.runtime.shim" in cmdline and any(
            a.startswith(socket_path) for a in cmdline
        ):
            supervisors.append(proc)
            continue
        env = _environ(proc)
        if env.get(MARKER, "").startswith(scope + "/"):
            marked.append((proc, env))
    supervisor_pids = {s.pid for s in supervisors}
    pods: list[PodProcess] = []
    for proc, env in marked:
        try:
            ancestors = {p.pid for p in proc.parents()}
            parent = proc.ppid()
        except psutil.Error:
            continue
        pods.append(
            PodProcess(
                pid=proc.pid,
                run_id=env[MARKER].split("/", 1)[1],
                pod=f"{env.get('POD_NAMESPACE', '')}/{env.get('POD_NAME', '')}",
                main=parent in supervisor_pids,
                supervised=bool(ancestors & supervisor_pids),
            )
        )
    return NodeProcesses(supervisors, pods)


def kill_leftovers(data_dir: Path) -> int:
    """SIGKILL the node supervisors and pod processes of ``data_dir``, if any are left;
    returns how many there were."""
    found = node_processes(data_dir)
    victims = list(found.supervisors)
    for p in found.pods:
        with contextlib.suppress(psutil.Error):
            victims.append(psutil.Process(p.pid))
    for victim in victims:
        with contextlib.suppress(psutil.Error):
            victim.kill()
    psutil.wait_procs(victims, timeout=5)
    return len(victims)


@asynccontextmanager
async def node_dir_cleanup(data_dir: Path) -> AsyncIterator[None]:
    """Whatever the test does, nothing of this node's survives it."""
    try:
        yield
    finally:
        await asyncio.to_thread(kill_leftovers, data_dir)


@dataclass
class Audit:
    """The node's processes compared with the pods the API says run there."""

    expected: set[tuple[str, str]]  # (pod uid, container) of running pods
    found: NodeProcesses
    restarts: dict[tuple[str, str], int]  # restartCount by (pod uid, container)
    pod_uids: set[str] = field(default_factory=set)  # every pod, whatever its state

    @property
    def orphans(self) -> int:
        return len(self.found.orphans)

    @property
    def duplicates(self) -> int:
        """Main processes beyond one per running container, and processes of containers
        or pods that should not run."""
        mains = self.found.mains()
        extra = sum(len(procs) - 1 for procs in mains.values() if len(procs) > 1)
        unexpected = {(p.pod_uid, p.container) for p in self.found.pods} - self.expected
        return extra + len(unexpected)

    @property
    def missing(self) -> set[tuple[str, str]]:
        return self.expected - set(self.found.mains())

    @property
    def clean(self) -> bool:
        return (
            len(self.found.supervisors) == 1
            and not self.orphans
            and not self.duplicates
            and not self.missing
        )

    def describe(self) -> str:
        return (
            f"supervisors={[s.pid for s in self.found.supervisors]} orphans={self.found.orphans} "
            f"duplicates={self.duplicates} missing={sorted(self.missing)} "
            f"processes={sorted((p.pod, p.run_id, p.pid, p.main) for p in self.found.pods)}"
        )


async def audit(client: HttpClient, data_dir: Path, *, namespace: str = "default") -> Audit:
    """Pods the API says are running (not terminating) against the node's processes."""
    pods = (await client.list(PODS, namespace=namespace)).items
    expected: set[tuple[str, str]] = set()
    restarts: dict[tuple[str, str], int] = {}
    uids: set[str] = set()
    for pod in pods:
        status = pod.get("status") or {}
        uid = str(pod["metadata"]["uid"])
        uids.add(uid)
        for cs in status.get("containerStatuses") or []:
            restarts[(uid, cs["name"])] = int(cs.get("restartCount") or 0)
            if (
                status.get("phase") == "Running"
                and not pod["metadata"].get("deletionTimestamp")
                and "running" in (cs.get("state") or {})
            ):
                expected.add((uid, cs["name"]))
    found = await asyncio.to_thread(node_processes, data_dir)
    return Audit(expected, found, restarts, uids)


async def settled_audit(
    client: HttpClient, data_dir: Path, *, pods: int, timeout: float = 40
) -> Audit:
    """The first audit in which ``pods`` single-container pods run, each with exactly one
    process, and nothing else does (what a crash leaves must settle within ``timeout``)."""
    last: Audit | None = None

    async def check() -> Audit | None:
        nonlocal last
        last = await audit(client, data_dir)
        if last.clean and len(last.expected) == pods:
            return last
        return None

    try:
        return await wait_for(check, timeout=timeout, what="a clean node")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last audit: {last.describe() if last else None}") from None


# -- workloads ---------------------------------------------------------------------------------

# A web server that says which pod answered; it is ready while it serves /healthz; on
# SIGTERM it finishes what is in flight, then exits.
WEB_APP = textwrap.dedent(
    """
    import http.server, os, signal, threading, time
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 65536  # one send per response (else Nagle and delayed ACKs: 40 ms each)
        def do_GET(self):
            body = (os.environ["POD_NAME"] + " " + os.environ.get("VERSION", "1")).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def do_POST(self):  # any method: the answers are the proxies' to judge, not ours
            if "chunked" in self.headers.get("Transfer-Encoding", ""):
                while True:
                    size = int(self.rfile.readline().split(b";")[0] or b"0", 16)
                    self.rfile.read(size + 2)
                    if not size:
                        break
            else:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()
        do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_BREW = do_POST
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer((os.environ["POD_IP"], int(os.environ["PORT"])), H)
    server.daemon_threads = True
    def stop(*_):
        threading.Thread(target=lambda: (server.shutdown(), time.sleep(0.2), os._exit(0))).start()
    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    """
)

SLEEPER = "import signal, time; signal.signal(signal.SIGTERM, lambda *_: exit(0)); time.sleep(1e9)"


def deployment(
    name: str,
    *,
    replicas: int,
    web: bool = False,
    grace: int = 5,
    max_surge: int | str = 1,
    max_unavailable: int | str = 0,
) -> dict[str, Any]:
    """A Deployment of ``replicas`` pods labelled ``app=name``: the web app (with a
    readiness probe) or a sleeper."""
    container: dict[str, Any] = {
        "name": "main",
        "command": [sys.executable, "-c", WEB_APP if web else SLEEPER],
    }
    if web:
        # A port of its own: pod addresses are per node, and other procorch nodes may run on
        # this machine (their pods on the same addresses).
        port = random.randrange(20_000, 30_000)
        container["ports"] = [{"name": "http", "containerPort": port}]
        container["readinessProbe"] = {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 1,
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable},
            },
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": grace, "containers": [container]},
            },
        },
    }


def service(name: str) -> dict[str, Any]:
    """A ClusterIP Service on port 80 over the pods labelled ``app=name``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def ingress(name: str) -> dict[str, Any]:
    """An Ingress sending everything for host ``<name>.test`` to Service ``name``."""
    backend = {"service": {"name": name, "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name},
        "spec": {
            "rules": [
                {
                    "host": f"{name}.test",
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ]
        },
    }


async def rolled_out(client: HttpClient, name: str, *, namespace: str = "default") -> bool:
    """The Deployment's latest generation is fully rolled out and available, and only its
    pods exist (none terminating)."""
    d = await client.get(DEPLOYMENTS, name, namespace=namespace)
    status, replicas = d.get("status") or {}, d["spec"].get("replicas", 1)
    if not (
        status.get("observedGeneration", 0) >= d["metadata"]["generation"]
        and status.get("updatedReplicas") == replicas
        and status.get("replicas") == replicas
        and status.get("availableReplicas") == replicas
        and not status.get("unavailableReplicas")
    ):
        return False
    pods = (await client.list(PODS, namespace=namespace, label_selector=f"app={name}")).items
    return len(pods) == replicas


def restart_patch() -> dict[str, Any]:
    """What ``kubectl rollout restart`` sends (as a strategic merge patch)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + f".{time.time_ns() % 10**9}"
    return {
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}
        }
    }


def tally(values: list[str]) -> str:
    """The most common of ``values``, counted: for failure messages."""
    return ", ".join(f"{n}× {v}" for v, n in Counter(values).most_common(5))


async def serve_web(up: UpProcess, *, replicas: int) -> dict[str, Any]:
    """The web app as a Deployment of ``replicas`` behind Service ``web`` and an Ingress for
    host ``web.test``; the Service as created."""
    client = up.client()
    try:
        await client.create(
            DEPLOYMENTS, deployment("web", replicas=replicas, web=True), namespace="default"
        )
        svc = await client.create(SERVICES, service("web"), namespace="default")
        await client.create(INGRESSES, ingress("web"), namespace="default")
        return svc
    finally:
        await client.close()
