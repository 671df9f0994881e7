"""The agent's pure pieces: container state machine, pod phase and QoS, back-off, pod IPs."""

from __future__ import annotations

import pytest

from procorch.agent import podstatus
from procorch.agent.containers import ContainerRecord, IllegalTransition, State, container_status
from procorch.agent.ipam import PodIPAllocator, RangeFull
from procorch.agent.runtime.spec import ExitStatus
from procorch.kit.backoff import FlowBackoff


def exited(code: int, reason: str = "") -> ExitStatus:
    return ExitStatus(
        exit_code=code, reason=reason or ("Completed" if code == 0 else "Error"), finished_at=100.0
    )


# -- container state machine -------------------------------------------------------------------


def test_a_new_container_waits_in_container_creating() -> None:
    record = ContainerRecord("web")
    assert (record.state, record.reason) == (State.WAITING, "ContainerCreating")
    status = container_status(record, {"image": "python:3"})
    assert status["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert status["restartCount"] == 0 and status["ready"] is False


def test_restart_after_exit_counts_and_keeps_the_last_state() -> None:
    record = ContainerRecord("web")
    record.run("uid_web_0", 10.0)
    record.terminate(exited(1))
    record.wait("CrashLoopBackOff", "back-off 10s restarting failed container=web pod=p")
    status = container_status(record, {})
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["lastState"]["terminated"]["containerID"] == "procorch://uid_web_0"
    record.run("uid_web_1", 20.0)
    assert record.restart_count == 1
    assert container_status(record, {})["containerID"] == "procorch://uid_web_1"


def test_running_cannot_start_again_without_exiting() -> None:
    record = ContainerRecord("web")
    record.run("a", 1.0)
    with pytest.raises(IllegalTransition):
        record.run("b", 2.0)
    with pytest.raises(IllegalTransition):
        record.wait("CrashLoopBackOff")


def test_terminated_state_reports_signal_and_oom() -> None:
    record = ContainerRecord("hog")
    record.run("r", 1.0)
    record.terminate(ExitStatus(exit_code=137, reason="OOMKilled", finished_at=2.0, signal=9))
    terminated = container_status(record, {})["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["signal"]) == (
        137,
        "OOMKilled",
        9,
    )


# -- pod phase ---------------------------------------------------------------------------------


def _rec(name: str, state: str, code: int | None = None, *, last: bool = False) -> ContainerRecord:
    r = ContainerRecord(name)
    if state in ("running", "terminated") or last:
        r.run(f"{name}_0", 1.0)
    if state == "terminated" or (last and state == "waiting"):
        r.terminate(exited(code or 0))
    if state == "waiting" and last:
        r.wait("CrashLoopBackOff")
    return r


@pytest.mark.parametrize(
    ("policy", "records", "expected"),
    [
        ("Always", [("waiting", None, False)], "Pending"),
        ("Always", [("running", None, False)], "Running"),
        ("Always", [("terminated", 0, False)], "Running"),
        ("Always", [("waiting", 1, True)], "Running"),
        ("OnFailure", [("terminated", 0, False)], "Succeeded"),
        ("OnFailure", [("terminated", 1, False)], "Running"),
        ("Never", [("terminated", 0, False), ("terminated", 2, False)], "Failed"),
        ("Never", [("terminated", 0, False), ("running", None, False)], "Running"),
        ("Never", [("terminated", 0, False), ("terminated", 0, False)], "Succeeded"),
    ],
)
def test_phase_follows_kubelet(policy: str, records: list, expected: str) -> None:
    app = [_rec(f"c{i}", s, c, last=last) for i, (s, c, last) in enumerate(records)]
    assert podstatus.phase({"restartPolicy": policy}, [], app) == expected


def test_pending_until_init_containers_succeed_and_failed_when_never() -> None:
    init = ContainerRecord("migrate", init=True)
    init.run("m", 1.0)
    app = [ContainerRecord("web")]
    assert podstatus.phase({"restartPolicy": "Always"}, [init], app) == "Pending"
    init.terminate(exited(1))
    assert podstatus.phase({"restartPolicy": "Never"}, [init], app) == "Failed"


def test_conditions_name_the_unready_containers_and_keep_transition_times() -> None:
    web = _rec("web", "running")
    side = _rec("side", "running")
    side.ready = True
    pod = {"spec": {"containers": [{"name": "web"}, {"name": "side"}]}, "status": {}}
    status = podstatus.build(
        pod,
        init=[],
        app=[web, side],
        pod_ip="127.1.0.2",
        host_ip="127.0.0.1",
        start_time="2026-12-01T00:00:00Z",
        sandbox_ready=True,
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [web]"
    pod["status"] = status
    web.ready = True
    again = podstatus.build(
        pod,
        init=[],
        app=[web, side],
        pod_ip="127.1.0.2",
        host_ip="127.0.0.1",
        start_time="2026-12-01T00:00:00Z",
        sandbox_ready=True,
    )
    ready = next(c for c in again["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and "reason" not in ready
    initialized = next(c for c in again["conditions"] if c["type"] == "Initialized")
    first = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert initialized["lastTransitionTime"] == first["lastTransitionTime"]
    assert again["podIP"] == "127.1.0.2" and again["podIPs"] == [{"ip": "127.1.0.2"}]


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ([{}], "BestEffort"),
        ([{"requests": {"cpu": "100m"}}], "Burstable"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}], "Burstable"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
    ],
)
def test_qos_class(resources: list, expected: str) -> None:
    spec = {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}
    assert podstatus.qos_class(spec) == expected


# -- CrashLoopBackOff --------------------------------------------------------------------------


def test_backoff_restarts_first_at_once_then_doubles_to_the_cap() -> None:
    b = FlowBackoff(initial=10, cap=40, reset=600)
    assert b.remaining("web", finished_at=0, now=0) == 0
    b.step("web", 0)  # first restart: immediate
    assert b.remaining("web", finished_at=1, now=1) == 10
    b.step("web", 11)
    assert b.delay("web", 11) == 20
    b.step("web", 40)
    b.step("web", 100)
    assert b.delay("web", 100) == 40  # capped


def test_backoff_resets_after_a_long_run() -> None:
    b = FlowBackoff(initial=10, cap=300, reset=600)
    b.step("web", 0)
    b.step("web", 20)
    assert b.remaining("web", finished_at=700, now=700) == 0
    b.step("web", 700)
    assert b.delay("web", 700) == 10


# -- pod IPs -----------------------------------------------------------------------------------


def test_pod_ips_are_unique_and_reused_as_late_as_possible() -> None:
    ipam = PodIPAllocator("127.1.0.0/29")  # .2 .. .6
    a = ipam.allocate("a")
    b = ipam.allocate("b")
    assert (a, b) == ("127.1.0.2", "127.1.0.3")
    assert ipam.allocate("a") == a
    ipam.release("a")
    assert ipam.allocate("c") == "127.1.0.4"  # not the freed one
    assert ipam.reserve("127.1.0.5", "d")
    assert not ipam.reserve("127.1.0.5", "e")
    assert not ipam.reserve("10.0.0.1", "f")
    assert ipam.allocate("g") == "127.1.0.6"
    assert ipam.allocate("h") == "127.1.0.2"  # wrapped around to the freed one
    with pytest.raises(RangeFull):
        ipam.allocate("i")
