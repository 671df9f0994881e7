"""``pods/exec`` end to end: real kubectl (exec, -i, -it, cp) and the official Python client's
``stream()``, through the API server to the node's supervisor process and back."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import struct
import termios
import time
from pathlib import Path

import psutil
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import stream

from procorch.api import errors
from procorch.kit import fdwait
from tests.agent.conftest import PODS, Cluster, running
from tests.conftest import KUBECTL

pytestmark = pytest.mark.kubectl

BOX = """
apiVersion: v1
kind: Pod
metadata: {name: box}
spec:
  containers:
  - name: main
    command: ["sleep", "infinity"]
    workingDir: /tmp
    env: [{name: GREETING, value: hello}]
    resources: {limits: {memory: 64Mi}}
  - name: side
    command: ["sleep", "infinity"]
"""


async def start_box(cluster: Cluster) -> None:
    await cluster.apply(BOX)
    await cluster.wait_pod("box", running)


def processes_with(marker: str) -> list[psutil.Process]:
    """Processes whose whole command line is ``marker`` (not the kubectl that names it)."""
    return [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if " ".join(proc.info["cmdline"] or []) == marker
    ]


async def until_gone(marker: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while processes_with(marker):
        assert time.monotonic() < deadline, f"a process with {marker!r} is still running"
        await asyncio.sleep(0.05)


async def test_kubectl_exec_runs_a_process_of_the_container(
    kubectl, cluster: Cluster, tmp_path: Path
) -> None:
    await start_box(cluster)
    out = await kubectl(
        "exec", "box", "-c", "main", "--", "sh", "-c", "echo $GREETING in $PWD; echo oops >&2"
    )
    assert (out.stdout, out.stderr) == ("hello in /tmp\n", "oops\n")
    # The exec'd process shares the container's cgroup (its memory limit) and marker.
    main = (await kubectl("exec", "box", "-c", "main", "--", "cat", "/proc/self/cgroup")).stdout
    side = (await kubectl("exec", "box", "-c", "side", "--", "cat", "/proc/self/cgroup")).stdout
    assert main != side
    # The exit code is kubectl's, as Kubernetes reports it.
    out = await kubectl("exec", "box", "-c", "main", "--", "sh", "-c", "exit 3", check=False)
    assert out.returncode == 3
    assert out.stderr == "command terminated with exit code 3\n"
    # Input, to its end of file (v5's close of stdin).
    out = await kubectl("exec", "-i", "box", "-c", "main", "--", "wc", "-c", input="x" * 300_000)
    assert out.stdout.strip() == "300000"
    # A command that does not exist: why, and the shell's 127.
    out = await kubectl("exec", "box", "-c", "main", "--", "no-such-tool", check=False)
    assert out.returncode == 127
    assert 'exec: "no-such-tool": executable file not found in $PATH' in out.stderr
    # Kubernetes' refusals, word for word.
    out = await kubectl("exec", "box", "-c", "nope", "--", "true", check=False)
    assert out.returncode == 1
    assert out.stderr == (
        "Error from server (BadRequest): container nope is not valid for pod box\n"
    )
    out = await kubectl("exec", "ghost", "--", "true", check=False)
    assert 'pods "ghost" not found' in out.stderr
    # kubectl cp is tar through exec, both ways.
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    payload = os.urandom(2_000_000)
    (src / "sub" / "blob.bin").write_bytes(payload)
    inside = tmp_path / "inside"
    await kubectl("cp", str(src), f"box:{inside}", "-c", "main")
    assert (inside / "sub" / "blob.bin").read_bytes() == payload
    back = tmp_path / "back"
    await kubectl("cp", f"box:{inside}", str(back), "-c", "main")
    assert (back / "a.txt").read_text() == "alpha\n"
    assert (back / "sub" / "blob.bin").read_bytes() == payload


async def in_terminal(
    kubectl, *args: str, replies: list[tuple[bytes, bytes]], rows: int = 30, cols: int = 100
) -> tuple[int, str]:
    """Run kubectl ARGS on a terminal of ``rows`` x ``cols``; each time the screen shows a
    reply's cue (in order), type its text. Returns kubectl's exit code and the screen."""
    assert KUBECTL is not None
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        f"--kubeconfig={kubectl.kubeconfig}",
        *args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    os.set_blocking(master, False)
    seen = b""
    pending = list(replies)
    try:
        async with asyncio.timeout(20):
            while True:
                try:
                    chunk = os.read(master, 4096)
                except BlockingIOError:
                    await fdwait.readable(master)
                    continue
                except OSError as exc:
                    assert exc.errno == errno.EIO
                    break
                if not chunk:
                    break
                seen += chunk
                if pending and pending[0][0] in seen:
                    os.write(master, pending.pop(0)[1])
            code = await proc.wait()
    finally:
        os.close(master)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    return code, seen.decode(errors="replace")


async def test_kubectl_exec_it_has_a_terminal_of_the_callers_size(
    kubectl, cluster: Cluster
) -> None:
    await start_box(cluster)
    code, screen = await in_terminal(
        kubectl,
        *("exec", "-it", "box", "-c", "main", "--"),
        *("sh", "-c", "tty; read line; echo got $line; stty size; exit 5"),
        replies=[(b"/dev/pts/", b"typed\r")],
    )
    assert code == 5
    assert "/dev/pts/" in screen
    assert "got typed" in screen
    assert "30 100" in screen


async def test_kubectl_debug_adds_a_shell_to_a_running_pod(kubectl, cluster: Cluster) -> None:
    await cluster.apply(
        """
apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: main
    command: ["sh", "-c", "echo from-main > /data/note; exec sleep infinity"]
    volumeMounts: [{name: data, mountPath: /data}]
"""
    )
    await cluster.wait_pod("app", running)
    code, screen = await in_terminal(
        kubectl,
        *("debug", "-it", "app", "--image=busybox", "--target=main", "--", "sh"),
        replies=[(b"prompt", b"cat /data/note; echo sum-$((40+2))\r"), (b"sum-42", b"exit\r")],
    )
    assert code == 0, screen
    # --target: the debug container sees the target's volumes.
    assert "from-main" in screen and "sum-42" in screen
    pod = await cluster.wait_pod(
        "app",
        lambda p: any(
            "terminated" in (s.get("state") or {})
            for s in (p.get("status") or {}).get("ephemeralContainerStatuses") or []
        ),
    )
    (debug,) = pod["spec"]["ephemeralContainers"]
    (status,) = pod["status"]["ephemeralContainerStatuses"]
    assert status["name"] == debug["name"] and debug["name"].startswith("debugger-")
    assert status["state"]["terminated"]["exitCode"] == 0 and status["restartCount"] == 0
    assert pod["status"]["phase"] == "Running"  # the pod is untouched
    # Ephemeral containers are only ever added, and only through their subresource.
    changed = {**debug, "command": ["true"]}
    with pytest.raises(errors.Invalid) as refused:
        await cluster.client.patch(
            PODS,
            "app",
            {"spec": {"ephemeralContainers": [changed]}},
            namespace="default",
            subresource="ephemeralcontainers",
        )
    assert f'existing ephemeral containers "{debug["name"]}" may not be changed' in str(
        refused.value
    )
    with pytest.raises(errors.Invalid) as refused:
        await cluster.client.patch(
            PODS,
            "app",
            {
                "spec": {
                    "ephemeralContainers": [
                        debug,
                        {"name": "x", "command": ["sh"], "ports": [{"containerPort": 80}]},
                    ]
                }
            },
            namespace="default",
            subresource="ephemeralcontainers",
        )
    assert (
        "spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an Ephemeral Container"
        in str(refused.value)
    )
    # A debug container is a container: its name is a DNS label (it names files on the node).
    with pytest.raises(errors.Invalid) as refused:
        await cluster.client.patch(
            PODS,
            "app",
            {"spec": {"ephemeralContainers": [debug, {"name": "../../x", "command": ["sh"]}]}},
            namespace="default",
            subresource="ephemeralcontainers",
        )
    assert 'spec.ephemeralContainers[1].name: Invalid value: "../../x"' in str(refused.value)
    await cluster.client.patch(
        PODS, "app", {"spec": {"ephemeralContainers": None}}, namespace="default"
    )
    assert (await cluster.pod("app"))["spec"]["ephemeralContainers"] == [debug]


async def test_the_python_clients_stream_exec(cluster: Cluster) -> None:
    await start_box(cluster)
    kube = k8s_config.new_client_from_config(str(cluster.procorch.kubeconfig_path))
    api = k8s.CoreV1Api(kube)

    def preloaded() -> str:
        return str(
            stream(
                api.connect_get_namespaced_pod_exec,
                "box",
                "default",
                container="main",
                command=["sh", "-c", "echo out; echo err >&2"],
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
            )
        )

    def interactive() -> tuple[int, str]:
        resp = stream(
            api.connect_get_namespaced_pod_exec,
            "box",
            "default",
            container="main",
            command=["sh", "-c", "read x; echo got $x; exit 4"],
            stderr=True,
            stdin=True,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        resp.write_stdin("hello\n")
        resp.run_forever(timeout=10)
        return int(resp.returncode), resp.read_stdout()

    def terminal() -> str:
        resp = stream(
            api.connect_get_namespaced_pod_exec,
            "box",
            "default",
            container="main",
            command=["sh", "-c", "read x; stty size"],
            stderr=False,
            stdin=True,
            stdout=True,
            tty=True,
            _preload_content=False,
        )
        # Two sizes in one message, the second one wins; then the line the command waits for.
        resp.write_channel(4, '{"Width": 80, "Height": 20}{"Width": 120, "Height": 40}')
        resp.write_stdin("go\n")
        resp.run_forever(timeout=10)
        return str(resp.read_stdout())

    try:
        assert await asyncio.to_thread(preloaded) == "out\nerr\n"
        assert await asyncio.to_thread(interactive) == (4, "got hello\n")
        assert (await asyncio.to_thread(terminal)).endswith("40 120\r\n")
    finally:
        await asyncio.to_thread(kube.close)


async def test_an_exec_ends_with_its_client_or_its_pod(kubectl, cluster: Cluster) -> None:
    await start_box(cluster)
    # kubectl killed: its process is hung up and gone.
    waiting = await kubectl.start("exec", "box", "-c", "main", "--", "sleep", "31337")
    try:
        deadline = time.monotonic() + 10
        while not processes_with("sleep 31337"):
            assert time.monotonic() < deadline, "the exec'd process never started"
            await asyncio.sleep(0.05)
    finally:
        waiting.kill()
        await waiting.wait()
    await until_gone("sleep 31337")
    # The pod deleted: the process that was exec'd into it ends with it.
    waiting = await kubectl.start("exec", "box", "-c", "main", "--", "sleep", "31338")
    try:
        deadline = time.monotonic() + 10
        while not processes_with("sleep 31338"):
            assert time.monotonic() < deadline, "the exec'd process never started"
            await asyncio.sleep(0.05)
        await kubectl("delete", "pod", "box", "--grace-period=1", "--wait=false")
        await until_gone("sleep 31338")
        out, err = await asyncio.wait_for(waiting.communicate(), 10)
        assert b"command terminated with exit code 137" in err
    finally:
        with contextlib.suppress(ProcessLookupError):
            waiting.kill()


async def test_kubectl_attach_reads_and_writes_a_running_container(
    kubectl, cluster: Cluster
) -> None:
    await cluster.apply(
        """
apiVersion: v1
kind: Pod
metadata: {name: talk}
spec:
  restartPolicy: Never
  containers:
  - name: main
    command: ["sh", "-c", "while read line; do echo out:$line; echo err:$line >&2; done; echo bye"]
    stdin: true
    stdinOnce: true
"""
    )
    await cluster.wait_pod("talk", running)
    # stdinOnce: the end of this attach's input is the end of the container's.
    out = await kubectl("attach", "-i", "talk", "-c", "main", input="one\ntwo\n", timeout=20)
    assert out.stdout == "out:one\nout:two\nbye\n"
    assert out.stderr.endswith("err:one\nerr:two\n")
    pod = await cluster.wait_pod(
        "talk", lambda p: (p.get("status") or {}).get("phase") == "Succeeded"
    )
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    out = await kubectl("attach", "talk", check=False)
    assert "cannot attach a container in a completed pod; current phase is Succeeded" in (
        out.stderr
    )
