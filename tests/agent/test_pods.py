"""Pods on the local node, end to end: API → scheduler → agent → real processes → status."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time

import psutil
import pytest

from procorch.agent.podlogs import container_log_path
from tests.agent.conftest import Cluster, container_state, ready, running

PY = sys.executable


def pod(name: str, spec: str) -> str:
    return f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n" + textwrap.indent(
        textwrap.dedent(spec).strip(), "  "
    )


async def logs(cluster: Cluster, name: str, container: str, *, previous: bool = False) -> str:
    """The container's output through the API server's log subresource (HTTP, as kubectl)."""
    worker = cluster.agent.worker_for("default", name)
    record = worker.record(container)
    run = record.last.run_id if previous else record.run_id
    attempt = int(run.rsplit("_", 1)[-1])
    path = container_log_path(cluster.agent.settings.node_dir, worker.pod, container, attempt)
    from procorch.agent.runtime.logs import read_log

    return b"".join([c async for c in read_log(path)]).decode()


async def test_pod_runs_with_its_own_ip_and_env(cluster: Cluster) -> None:
    await cluster.apply(
        pod(
            "envy",
            f"""
            containers:
            - name: main
              command: ["{PY}", "-c", "import os; print(os.environ['POD_IP'], os.environ['PORT'], os.environ['POD_NAME'], os.environ['GREETING']); import time; time.sleep(60)"]
              ports: [{{containerPort: 8080}}]
              env: [{{name: GREETING, value: "hi $(POD_NAME)"}}]
            """,
        )
    )
    p = await cluster.wait_pod("envy", running)
    ip = p["status"]["podIP"]
    assert ip.startswith("127.1.")
    assert p["spec"]["nodeName"] == cluster.agent.settings.node_name
    await asyncio.sleep(0.3)
    assert (await logs(cluster, "envy", "main")).strip() == f"{ip} 8080 envy hi envy"
    assert p["status"]["qosClass"] == "BestEffort"
    assert container_state(p)["state"]["running"]["startedAt"]


async def test_two_containers_share_an_empty_dir_and_read_config_and_secrets(
    cluster: Cluster,
) -> None:
    mnt = cluster.tmp_path / "app"
    await cluster.apply(
        textwrap.dedent(
            """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: settings}
            data: {level: debug}
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: creds}
            stringData: {password: hunter2}
            """
        )
    )
    await cluster.apply(
        pod(
            "pair",
            f"""
            volumes:
            - {{name: shared, emptyDir: {{}}}}
            - {{name: config, configMap: {{name: settings}}}}
            containers:
            - name: writer
              command: ["sh", "-c", "echo from-writer > {mnt}/shared/note; sleep 60"]
              volumeMounts: [{{name: shared, mountPath: {mnt}/shared}}]
            - name: reader
              command: ["sh", "-c", "while [ ! -f {mnt}/shared/note ]; do sleep 0.05; done; cat {mnt}/shared/note; cat {mnt}/config/level; echo; echo $PASSWORD; sleep 60"]
              env: [{{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}]
              volumeMounts:
              - {{name: shared, mountPath: {mnt}/shared}}
              - {{name: config, mountPath: {mnt}/config}}
            """,
        )
    )
    await cluster.wait_pod("pair", running)
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = await logs(cluster, "pair", "reader")
        if text.count("\n") >= 3:
            break
        await asyncio.sleep(0.1)
    assert text == "from-writer\ndebug\nhunter2\n"


async def test_readiness_follows_the_http_probe(cluster: Cluster) -> None:
    flag = cluster.tmp_path / "healthy"
    server = (
        "import http.server, os, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        f"        code = 200 if os.path.exists({str(flag)!r}) else 503\n"
        "        self.send_response(code); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer((os.environ['POD_IP'], 8080), H).serve_forever()\n"
    )
    await cluster.apply(
        pod(
            "probed",
            f"""
            containers:
            - name: web
              command: ["{PY}", "-c", {json.dumps(server)}]
              ports: [{{name: http, containerPort: 8080}}]
              readinessProbe:
                httpGet: {{path: /healthz, port: http}}
                periodSeconds: 1
                failureThreshold: 1
            """,
        )
    )
    p = await cluster.wait_pod("probed", running)
    await asyncio.sleep(1.5)
    assert not ready(await cluster.pod("probed"))
    flag.touch()
    await cluster.wait_pod("probed", ready, timeout=5)
    flag.unlink()
    p = await cluster.wait_pod("probed", lambda p: not ready(p), timeout=5)
    cond = next(c for c in p["status"]["conditions"] if c["type"] == "Ready")
    assert cond["message"] == "containers with unready status: [web]"


async def test_liveness_failure_restarts_the_container(cluster: Cluster) -> None:
    await cluster.apply(
        pod(
            "living",
            """
            containers:
            - name: main
              command: ["sh", "-c", "echo started; sleep 60"]
              livenessProbe:
                exec: {command: ["sh", "-c", "exit 1"]}
                periodSeconds: 1
                failureThreshold: 2
            """,
        )
    )
    p = await cluster.wait_pod("living", lambda p: container_state(p).get("restartCount", 0) >= 1)
    last = container_state(p)["lastState"]["terminated"]
    assert last["exitCode"] == 143  # SIGTERM'd by the agent


async def test_startup_probe_gates_liveness(cluster: Cluster) -> None:
    marker = cluster.tmp_path / "started"
    await cluster.apply(
        pod(
            "slow",
            f"""
            containers:
            - name: main
              command: ["sh", "-c", "sleep 2; touch {marker}; sleep 60"]
              startupProbe:
                exec: {{command: ["test", "-f", "{marker}"]}}
                periodSeconds: 1
                failureThreshold: 10
              livenessProbe:
                exec: {{command: ["test", "-f", "{marker}"]}}
                periodSeconds: 1
                failureThreshold: 1
            """,
        )
    )
    p = await cluster.wait_pod("slow", lambda p: container_state(p).get("started") is True)
    assert container_state(p)["restartCount"] == 0
    assert ready(p)


async def test_killed_container_restarts_and_previous_logs_remain(cluster: Cluster) -> None:
    await cluster.apply(
        pod(
            "phoenix",
            """
            containers:
            - name: main
              command: ["sh", "-c", "echo run-$(date +%s%N); sleep 60"]
            """,
        )
    )
    p = await cluster.wait_pod("phoenix", running)
    await asyncio.sleep(0.2)
    first = await logs(cluster, "phoenix", "main")
    pid = next(
        proc.pid
        for proc in psutil.process_iter(["environ"])
        if (proc.info["environ"] or {}).get("POD_NAME") == "phoenix"
        and proc.info["environ"].get("PROCORCH_CONTAINER_ID", "").endswith("_main_0")
        and proc.pid != os.getpid()
        and proc.name() == "sh"
    )
    os.kill(pid, signal.SIGKILL)
    p = await cluster.wait_pod(
        "phoenix", lambda p: container_state(p).get("restartCount") == 1 and running(p)
    )
    assert container_state(p)["lastState"]["terminated"]["exitCode"] == 137
    assert await logs(cluster, "phoenix", "main", previous=True) == first
    await asyncio.sleep(0.2)
    assert (await logs(cluster, "phoenix", "main")) != first


async def test_crashing_container_backs_off(cluster: Cluster) -> None:
    await cluster.apply(
        pod(
            "crasher",
            """
            containers:
            - name: main
              command: ["sh", "-c", "echo boom; exit 2"]
            """,
        )
    )
    p = await cluster.wait_pod(
        "crasher",
        lambda p: (
            container_state(p).get("state", {}).get("waiting", {}).get("reason")
            == "CrashLoopBackOff"
        ),
    )
    waiting = container_state(p)["state"]["waiting"]
    assert waiting["message"].startswith(
        "back-off 1s restarting failed container=main pod=crasher_default("
    )
    assert container_state(p)["lastState"]["terminated"]["exitCode"] == 2


async def test_missing_command_and_missing_config_are_reported(cluster: Cluster) -> None:
    await cluster.apply(
        pod(
            "broken",
            """
            containers:
            - name: nocmd
              command: ["definitely-not-a-command"]
            - name: noconf
              command: ["sleep", "60"]
              env: [{name: X, valueFrom: {configMapKeyRef: {name: absent, key: k}}}]
            """,
        )
    )

    def both_reported(p: dict) -> bool:
        a = container_state(p, "nocmd").get("state", {}).get("waiting", {})
        b = container_state(p, "noconf").get("state", {}).get("waiting", {})
        return (
            a.get("reason") == "RunContainerError"
            and b.get("reason") == "CreateContainerConfigError"
        )

    p = await cluster.wait_pod("broken", both_reported)
    assert container_state(p, "nocmd")["state"]["waiting"]["message"] == (
        'exec: "definitely-not-a-command": executable file not found in $PATH'
    )
    assert (
        container_state(p, "noconf")["state"]["waiting"]["message"]
        == 'configmap "absent" not found'
    )


async def test_init_containers_run_in_order_before_the_app(cluster: Cluster) -> None:
    trail = cluster.tmp_path / "trail"
    await cluster.apply(
        pod(
            "ordered",
            f"""
            initContainers:
            - {{name: first, command: ["sh", "-c", "sleep 0.3; echo first >> {trail}"]}}
            - {{name: second, command: ["sh", "-c", "echo second >> {trail}"]}}
            containers:
            - {{name: app, command: ["sh", "-c", "echo app >> {trail}; sleep 60"]}}
            """,
        )
    )
    p = await cluster.wait_pod("ordered", running)
    await asyncio.sleep(0.2)
    assert trail.read_text() == "first\nsecond\napp\n"
    inits = p["status"]["initContainerStatuses"]
    assert [s["state"]["terminated"]["reason"] for s in inits] == ["Completed", "Completed"]


async def test_run_to_completion_pod_succeeds(cluster: Cluster) -> None:
    await cluster.apply(
        pod(
            "once",
            """
            restartPolicy: Never
            containers:
            - {name: main, command: ["sh", "-c", "echo done"]}
            """,
        )
    )
    p = await cluster.wait_pod("once", lambda p: p["status"].get("phase") == "Succeeded")
    assert container_state(p)["state"]["terminated"]["reason"] == "Completed"
    cond = next(c for c in p["status"]["conditions"] if c["type"] == "Ready")
    assert cond["reason"] == "PodCompleted"


async def test_memory_hog_is_oomkilled(cluster: Cluster) -> None:
    code = "x=[]\nimport time\nwhile True:\n    x.append(bytearray(8*1024*1024)); time.sleep(0.005)"
    await cluster.apply(
        pod(
            "hog",
            f"""
            restartPolicy: Never
            containers:
            - name: main
              command: ["{PY}", "-c", {json.dumps(code)}]
              resources: {{limits: {{memory: 96Mi}}}}
            """,
        )
    )
    p = await cluster.wait_pod("hog", lambda p: p["status"].get("phase") == "Failed", timeout=30)
    terminated = container_state(p)["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)


async def test_deleting_a_pod_kills_its_whole_tree_after_the_grace(cluster: Cluster) -> None:
    pidfile = cluster.tmp_path / "daemon.pid"
    # ($$$$: Kubernetes' $(VAR) expansion turns $$ into $.)
    stubborn = (
        "trap '' TERM; "
        + f"setsid sh -c 'echo $$$$ > {pidfile}; trap \"\" TERM; exec sleep 1000' & sleep 1000"
    )
    await cluster.apply(
        pod(
            "stubborn",
            f"""
            terminationGracePeriodSeconds: 1
            containers:
            - name: main
              command: ["sh", "-c", {json.dumps(stubborn)}]
            """,
        )
    )
    await cluster.wait_pod("stubborn", running)
    deadline = time.monotonic() + 5
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    daemon = int(pidfile.read_text())
    from procorch.api.resources import must

    started = time.monotonic()
    await cluster.client.delete(must("core/pods"), "stubborn", namespace="default")
    await cluster.wait_gone("stubborn")
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 5, elapsed
    await asyncio.sleep(0.1)
    assert not psutil.pid_exists(daemon) or psutil.Process(daemon).status() == psutil.STATUS_ZOMBIE


async def test_unschedulable_pod_says_why(cluster: Cluster) -> None:
    await cluster.apply(
        pod(
            "huge",
            """
            containers:
            - name: main
              command: ["sleep", "60"]
              resources: {requests: {memory: 100Ti}}
            """,
        )
    )
    p = await cluster.wait_pod(
        "huge",
        lambda p: any(
            c["type"] == "PodScheduled" and c["status"] == "False"
            for c in p["status"].get("conditions") or []
        ),
    )
    cond = next(c for c in p["status"]["conditions"] if c["type"] == "PodScheduled")
    assert cond["message"] == "0/1 nodes are available: 1 Insufficient memory."
    assert p["status"]["phase"] == "Pending"


@pytest.mark.parametrize("graceful", [True, False])
async def test_procorch_restart_keeps_or_reruns_pods(tmp_path, graceful: bool) -> None:
    from procorch.launcher.up import Procorch, UpConfig
    from tests.agent.conftest import FAST

    config = UpConfig(data_dir=tmp_path / "data", api_port=0, agent=dict(FAST))
    first = Procorch(config)
    await first.start()
    c1 = Cluster(first, tmp_path)
    await c1.apply(
        pod(
            "keeper",
            """
        containers:
        - {name: main, command: ["sleep", "600"]}
        """,
        )
    )
    p = await c1.wait_pod("keeper", running)
    pid_before = [
        proc.pid
        for proc in psutil.process_iter(["environ"])
        if (proc.info["environ"] or {}).get("POD_NAME") == "keeper"
    ]
    assert pid_before
    if graceful:
        await first.stop()
        assert not any(psutil.pid_exists(p) for p in pid_before)
    else:
        # As if procorch crashed: the agent lets go without stopping anything.
        assert first.node is not None and first.node.agent is not None
        await first.node.agent.stop(graceful=False)
        first.node.agent = None
        await first.stop()
        assert all(psutil.pid_exists(p) for p in pid_before)
    second = Procorch(config)
    await second.start()
    try:
        c2 = Cluster(second, tmp_path)
        p = await c2.wait_pod(
            "keeper", lambda p: running(p) and container_state(p).get("state", {}).get("running")
        )
        pid_after = [
            proc.pid
            for proc in psutil.process_iter(["environ"])
            if (proc.info["environ"] or {}).get("POD_NAME") == "keeper"
        ]
        if graceful:
            assert container_state(p)["restartCount"] == 1
            assert set(pid_after).isdisjoint(pid_before)
        else:
            assert container_state(p)["restartCount"] == 0
            assert pid_after == pid_before  # adopted, not duplicated
    finally:
        await second.stop()


async def test_config_map_volume_follows_its_config_map(cluster: Cluster) -> None:
    from procorch.api.resources import must

    mnt = cluster.tmp_path / "conf"
    await cluster.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: live}\ndata: {mode: one}\n"
    )
    await cluster.apply(
        pod(
            "reader",
            f"""
            volumes: [{{name: conf, configMap: {{name: live}}}}]
            containers:
            - name: main
              command: ["sh", "-c", "while true; do cat {mnt}/mode; echo; sleep 0.1; done"]
              volumeMounts: [{{name: conf, mountPath: {mnt}}}]
            """,
        )
    )
    await cluster.wait_pod("reader", running)
    await cluster.client.patch(
        must("core/configmaps"), "live", {"data": {"mode": "two"}}, namespace="default"
    )
    deadline = time.monotonic() + 10
    while "two" not in await logs(cluster, "reader", "main"):
        assert time.monotonic() < deadline, await logs(cluster, "reader", "main")
        await asyncio.sleep(0.1)
    seen = (await logs(cluster, "reader", "main")).split()
    assert set(seen) == {"one", "two"}  # never an empty or partial file
    assert container_state(await cluster.pod("reader"))["restartCount"] == 0


async def test_tcp_readiness_probe_gates_ready(cluster: Cluster) -> None:
    script = (
        "import os, socket, time\n"
        "time.sleep(1.5)\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind((os.environ['POD_IP'], 5432)); s.listen()\n"
        "while True: s.accept()[0].close()\n"
    )
    await cluster.apply(
        pod(
            "db",
            f"""
            containers:
            - name: main
              command: ["{PY}", "-c", {json.dumps(script)}]
              ports: [{{containerPort: 5432}}]
              readinessProbe:
                tcpSocket: {{port: 5432}}
                periodSeconds: 1
            """,
        )
    )
    p = await cluster.wait_pod("db", running)
    assert not ready(p)
    await cluster.wait_pod("db", ready, timeout=10)


async def test_grpc_readiness_probe_gates_ready(cluster: Cluster) -> None:
    pytest.importorskip("grpc_health", reason="grpcio-health-checking is in the test extras")
    script = (
        "import os, time\n"
        "from concurrent import futures\n"
        "import grpc\n"
        "from grpc_health.v1 import health, health_pb2, health_pb2_grpc\n"
        "server = grpc.server(futures.ThreadPoolExecutor(2))\n"
        "servicer = health.HealthServicer()\n"
        "health_pb2_grpc.add_HealthServicer_to_server(servicer, server)\n"
        "servicer.set('', health_pb2.HealthCheckResponse.NOT_SERVING)\n"
        "server.add_insecure_port(os.environ['POD_IP'] + ':9090'); server.start()\n"
        "time.sleep(1.5)\n"
        "servicer.set('', health_pb2.HealthCheckResponse.SERVING)\n"
        "server.wait_for_termination()\n"
    )
    await cluster.apply(
        pod(
            "rpc",
            f"""
            containers:
            - name: main
              command: ["{PY}", "-c", {json.dumps(script)}]
              ports: [{{name: grpc, containerPort: 9090}}]
              readinessProbe:
                grpc: {{port: 9090}}
                periodSeconds: 1
            """,
        )
    )
    p = await cluster.wait_pod("rpc", running)
    assert not ready(p)
    await cluster.wait_pod("rpc", ready, timeout=10)


async def test_a_deleted_pod_leaves_its_endpoints_before_it_is_signalled(cluster: Cluster) -> None:
    from procorch.api.resources import must

    slices = must("discovery.k8s.io/endpointslices")
    marker = cluster.tmp_path / "termed"
    script = f"trap 'date +%s.%N > {marker}; exit 0' TERM; while true; do sleep 0.05; done"
    await cluster.apply(
        pod(
            "served",
            f"""
            containers:
            - name: main
              command: ["sh", "-c", {json.dumps(script)}]
            """,
        )
    )
    p = await cluster.wait_pod("served", running)
    ip = p["status"]["podIP"]
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "svc-abc", "labels": {"kubernetes.io/service-name": "svc"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
        "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
    }
    await cluster.client.create(slices, body, namespace="default")
    await eventually_published(cluster, ip)
    await cluster.client.delete(must("core/pods"), "served", namespace="default")
    await asyncio.sleep(0.7)
    assert not marker.exists()  # still published: not signalled yet
    released = time.time()
    body = await cluster.client.get(slices, "svc-abc", namespace="default")
    body["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    await cluster.client.update(slices, body, namespace="default")
    await cluster.wait_gone("served")
    assert float(marker.read_text()) >= released


async def eventually_published(cluster: Cluster, ip: str) -> None:
    deadline = time.monotonic() + 5
    while not cluster.agent.lookups.published(ip):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_a_pod_waits_for_the_service_it_depends_on(cluster: Cluster) -> None:
    from procorch.api.resources import must

    await cluster.apply(
        textwrap.dedent(
            """
            apiVersion: v1
            kind: Pod
            metadata:
              name: app
              annotations: {procorch.io/depends-on: "service/db"}
            spec:
              containers:
              - {name: main, command: ["sleep", "60"]}
            """
        )
    )
    p = await cluster.wait_pod(
        "app",
        lambda p: any(
            c["type"] == "procorch.io/DependenciesReady" and c["status"] == "False"
            for c in p["status"].get("conditions") or []
        ),
    )
    cond = next(
        c for c in p["status"]["conditions"] if c["type"] == "procorch.io/DependenciesReady"
    )
    assert cond["message"] == "waiting for service/db (no ready endpoint)"
    await asyncio.sleep(0.5)
    p = await cluster.pod("app")
    assert p["status"]["phase"] == "Pending"
    assert container_state(p)["state"]["waiting"]["reason"] == "ContainerCreating"
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "db-x", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.1.9.9"], "conditions": {"ready": True}}],
        "ports": [{"port": 5432}],
    }
    await cluster.client.create(
        must("discovery.k8s.io/endpointslices"), slice_, namespace="default"
    )
    p = await cluster.wait_pod("app", running)
    cond = next(
        c for c in p["status"]["conditions"] if c["type"] == "procorch.io/DependenciesReady"
    )
    assert cond["status"] == "True"


async def test_a_metrics_sample_failing_for_want_of_descriptors_does_not_stop_procorch(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading /proc/stat fails with EMFILE while something holds every descriptor (a
    slowloris once did): that sample is skipped, the sampler goes on, procorch keeps running."""
    import errno

    from procorch.agent import agent as agent_module

    calls = 0
    real = psutil.cpu_times

    def cpu_times(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise OSError(errno.EMFILE, "Too many open files", "/proc/stat")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(agent_module.psutil, "cpu_times", cpu_times)
    deadline = time.monotonic() + 10
    while calls < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert calls >= 4, "the sampler stopped after a failed sample"
    assert not cluster.procorch.crashed.is_set(), cluster.procorch.crash_reason
    assert cluster.agent.node_summary()["memory"]["workingSetBytes"] > 0
