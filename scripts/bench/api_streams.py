"""The streaming subresources (issue 14): exec round trips and port-forward throughput.

* ``kubectl exec POD -- true``, p50 of sequential runs, beside ``kubectl get pod POD -o name``
  (kubectl's own start and one API round trip) and a plain ``subprocess`` of ``true``;
* a client's exec of ``true``: the official Python client's ``stream()``, and a bare
  WebSocket (``v5.channel.k8s.io``) from aiohttp, the server's part alone;
* ``kubectl port-forward``: MiB/s of 10 MiB bodies fetched through it, beside the same
  fetches straight from the pod's IP and port.

Run through ``./scripts/bench/api --only streams``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

BODY = 10 * 1024 * 1024
KUBECTL = shutil.which("kubectl")


def _p50(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


async def _run(*argv: str) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed: {err.decode()}")
    return time.perf_counter() - started


async def _apply(session: aiohttp.ClientSession, url: str, pod: dict[str, Any]) -> None:
    async with session.post(f"{url}/api/v1/namespaces/default/pods", json=pod) as r:
        assert r.status == 201, await r.text()


async def _wait_ready(session: aiohttp.ClientSession, url: str, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with session.get(f"{url}/api/v1/namespaces/default/pods/{name}") as r:
            pod = await r.json()
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if statuses and all(s.get("ready") for s in statuses):
            return dict(pod)
        await asyncio.sleep(0.1)
    raise RuntimeError(f"pod {name} not ready")


async def _ws_exec(session: aiohttp.ClientSession, url: str, pod: str) -> float:
    started = time.perf_counter()
    async with session.ws_connect(
        f"{url}/api/v1/namespaces/default/pods/{pod}/exec",
        params=[("command", "true"), ("stdout", "true"), ("stderr", "true")],
        protocols=("v5.channel.k8s.io",),
    ) as ws:
        status = b""
        async for message in ws:
            if message.type is aiohttp.WSMsgType.BINARY and message.data[:1] == b"\x03":
                status = message.data[1:]
    assert json.loads(status)["status"] == "Success", status
    return time.perf_counter() - started


async def _fetch(session: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    async with session.get(url) as r:
        size = len(await r.read())
    assert size == BODY, size
    return time.perf_counter() - started


async def streams(session: aiohttp.ClientSession, server: Any, rounds: int = 30) -> list[str]:
    assert KUBECTL is not None, "kubectl is needed"
    url = server.url
    kubeconfig = str(server.data_dir / "kubeconfig")
    with tempfile.TemporaryDirectory(prefix="procorch-bench-streams-") as tmp:
        (Path(tmp) / "big.bin").write_bytes(os.urandom(BODY))
        await _apply(
            session,
            url,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "files"},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "command": [
                                "python3",
                                "-m",
                                "http.server",
                                "8000",
                                "--bind",
                                "$(POD_IP)",
                                "--directory",
                                tmp,
                            ],
                            "env": [
                                {
                                    "name": "POD_IP",
                                    "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                }
                            ],
                            "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 1},
                        }
                    ]
                },
            },
        )
        pod = await _wait_ready(session, url, "files")
        ip = pod["status"]["podIP"]

        kubectl = (KUBECTL, f"--kubeconfig={kubeconfig}")
        exec_times = [await _run(*kubectl, "exec", "files", "--", "true") for _ in range(rounds)]
        get_times = [
            await _run(*kubectl, "get", "pod", "files", "-o", "name") for _ in range(rounds)
        ]
        plain = [await _run("true") for _ in range(rounds)]
        ws_times = [await _ws_exec(session, url, "files") for _ in range(rounds)]
        client_times = await asyncio.to_thread(_python_client_execs, kubeconfig, rounds)

        proc = await asyncio.create_subprocess_exec(
            *kubectl,
            "port-forward",
            "--address=127.0.0.1",
            "pod/files",
            ":8000",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            assert proc.stdout is not None
            local = 0
            while not local:
                line = (await proc.stdout.readline()).decode()
                found = re.match(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
                local = int(found.group(1)) if found else 0
            plain_session = aiohttp.ClientSession()
            try:
                forwarded = [
                    await _fetch(plain_session, f"http://127.0.0.1:{local}/big.bin")
                    for _ in range(10)
                ]
                direct = [
                    await _fetch(plain_session, f"http://{ip}:8000/big.bin") for _ in range(10)
                ]
            finally:
                await plain_session.close()
        finally:
            proc.kill()
            await proc.wait()

    def rate(samples: list[float]) -> float:
        return BODY / (1024 * 1024) / statistics.median(samples)

    return [
        f"| `kubectl exec POD -- true`, p50 of {rounds} | {_p50(exec_times)} |",
        f"| `kubectl get pod POD -o name` (kubectl's own cost), p50 | {_p50(get_times)} |",
        f"| `true` as a plain subprocess, p50 | {_p50(plain)} |",
        f"| exec of `true`, the Python client's `stream()`, p50 | {_p50(client_times)} |",
        f"| exec of `true`, a bare v5 WebSocket (aiohttp), p50 | {_p50(ws_times)} |",
        f"| 10 MiB through `kubectl port-forward`, p50 | {rate(forwarded):.0f} MiB/s |",
        f"| 10 MiB straight from the pod's IP, p50 | {rate(direct):.0f} MiB/s |",
    ]


def _python_client_execs(kubeconfig: str, rounds: int) -> list[float]:
    from kubernetes import client, config
    from kubernetes.stream import stream

    api = client.CoreV1Api(config.new_client_from_config(kubeconfig))
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        stream(
            api.connect_get_namespaced_pod_exec,
            "files",
            "default",
            command=["true"],
            stdout=True,
            stderr=True,
            stdin=False,
            tty=False,
        )
        times.append(time.perf_counter() - started)
    return times
