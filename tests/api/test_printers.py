"""Server-side Tables render the columns and cells kubectl users know from Kubernetes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from procorch.api import errors
from procorch.api.printers import column_definitions, human_duration, to_table
from procorch.api.registry import printer_for
from procorch.api.resources import RESOURCES, ResourceType, by_key

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def table_of(rt: ResourceType, objects: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    """The Table of ``objects`` as the API server renders it (with ``rt``'s printer)."""
    return to_table(rt, objects, printer=printer_for(rt), **options)


def definitions_of(rt: ResourceType) -> list[dict[str, Any]]:
    return column_definitions(printer_for(rt))


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, *, age: float = 300, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "default",
        "uid": f"uid-{name}",
        "resourceVersion": "42",
        "creationTimestamp": ago(age),
        **extra,
    }


def row(key: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The cells of ``obj`` keyed by column name (wide columns included)."""
    rt = by_key(key)
    assert rt is not None
    table = table_of(rt, [obj], list_meta=None, now=NOW)
    names = [c["name"] for c in table["columnDefinitions"]]
    cells = table["rows"][0]["cells"]
    assert len(cells) == len(names)
    return dict(zip(names, cells, strict=True))


def columns(key: str) -> list[tuple[str, int]]:
    rt = by_key(key)
    assert rt is not None
    return [(c["name"], c["priority"]) for c in definitions_of(rt)]


# ---------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (5, "5s"),
        (119.9, "119s"),
        (150, "2m30s"),
        (300, "5m"),
        (599, "9m59s"),
        (900, "15m"),
        (179 * 60, "179m"),
        (3 * 3600 + 20 * 60, "3h20m"),
        (5 * 3600, "5h"),
        (36 * 3600, "36h"),
        (53 * 3600, "2d5h"),
        (72 * 3600, "3d"),
        (94 * 86400, "94d"),
        ((3 * 365 + 45) * 86400, "3y45d"),
        (9 * 365 * 86400, "9y"),
        (-1.5, "0s"),  # a second of clock skew is "now"
        (-3, "<invalid>"),
    ],
)
def test_human_duration_matches_kubernetes_format(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_age_is_unknown_without_creation_timestamp() -> None:
    cells = row("core/configmaps", {"metadata": {"name": "cfg"}, "data": {}})
    assert cells["Age"] == "<unknown>"


# ---------------------------------------------------------------------------------- pods


def pod(name: str = "web", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name),
        "spec": {
            "nodeName": "node-a",
            "containers": [{"name": "main", "command": ["python", "-m", "http.server"]}],
        },
        "status": {"phase": "Running", **status},
    }


def running(name: str = "main", *, ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(60)}},
    }


def test_pod_columns_and_wide_columns_have_kubernetes_names_and_priorities() -> None:
    assert columns("core/pods") == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]


def test_crash_looping_pod_shows_backoff_and_when_it_last_restarted() -> None:
    p = pod(
        containerStatuses=[
            {
                "name": "main",
                "ready": False,
                "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(25)}},
            }
        ]
    )
    cells = row("core/pods", p)
    assert (cells["Ready"], cells["Status"], cells["Restarts"]) == (
        "0/1",
        "CrashLoopBackOff",
        "3 (25s ago)",
    )
    assert cells["Age"] == "5m"


def test_running_pod_shows_ready_count_and_wide_cells() -> None:
    p = pod(podIPs=[{"ip": "127.1.0.5"}], containerStatuses=[running()])
    cells = row("core/pods", p)
    assert (cells["Ready"], cells["Status"], cells["Restarts"]) == ("1/1", "Running", "0")
    assert (cells["IP"], cells["Node"], cells["Nominated Node"]) == (
        "127.1.0.5",
        "node-a",
        "<none>",
    )
    assert cells["Readiness Gates"] == "<none>"


def test_unscheduled_pod_shows_phase_and_none_for_missing_wide_cells() -> None:
    p = pod()
    p["spec"].pop("nodeName")
    p["status"] = {"phase": "Pending"}
    cells = row("core/pods", p)
    assert (cells["Ready"], cells["Status"], cells["IP"], cells["Node"]) == (
        "0/1",
        "Pending",
        "<none>",
        "<none>",
    )


def test_waiting_reason_of_a_container_is_the_status() -> None:
    p = pod(
        phase="Pending",
        containerStatuses=[
            {
                "name": "main",
                "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
            }
        ],
    )
    assert row("core/pods", p)["Status"] == "ContainerCreating"


def test_terminated_container_without_reason_shows_exit_code_or_signal() -> None:
    def status_for(terminated: dict[str, Any]) -> str:
        cs = {"name": "main", "restartCount": 0, "state": {"terminated": terminated}}
        return str(row("core/pods", pod(phase="Failed", containerStatuses=[cs]))["Status"])

    assert status_for({"exitCode": 3}) == "ExitCode:3"
    assert status_for({"exitCode": 137, "signal": 9}) == "Signal:9"
    assert status_for({"exitCode": 1, "reason": "Error"}) == "Error"


def init_pod(*init_statuses: dict[str, Any]) -> dict[str, Any]:
    p = pod(phase="Pending")
    p["spec"]["initContainers"] = [
        {"name": "migrate", "command": ["migrate"]},
        {"name": "seed", "command": ["seed"]},
    ]
    p["status"]["initContainerStatuses"] = list(init_statuses)
    p["status"]["containerStatuses"] = [
        {"name": "main", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
    ]
    return p


def test_pod_running_its_first_init_container_shows_init_progress() -> None:
    p = init_pod(
        {"name": "migrate", "restartCount": 0, "state": {"running": {}}},
        {"name": "seed", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}},
    )
    assert row("core/pods", p)["Status"] == "Init:0/2"


def test_pod_past_its_first_init_container_counts_it_done() -> None:
    p = init_pod(
        {"name": "migrate", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
        {"name": "seed", "restartCount": 0, "state": {"running": {}}},
    )
    assert row("core/pods", p)["Status"] == "Init:1/2"


def test_crash_looping_init_container_shows_init_reason_and_its_restarts() -> None:
    p = init_pod(
        {
            "name": "migrate",
            "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(90)}},
        },
        {"name": "seed", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}},
    )
    cells = row("core/pods", p)
    assert (cells["Status"], cells["Restarts"]) == ("Init:CrashLoopBackOff", "4 (90s ago)")


def test_failed_init_container_shows_its_termination() -> None:
    failed = {"name": "migrate", "restartCount": 0}
    p = init_pod({**failed, "state": {"terminated": {"exitCode": 2, "reason": "Error"}}})
    assert row("core/pods", p)["Status"] == "Init:Error"
    p = init_pod({**failed, "state": {"terminated": {"exitCode": 2}}})
    assert row("core/pods", p)["Status"] == "Init:ExitCode:2"


def test_started_sidecar_counts_toward_ready_containers() -> None:
    p = pod(
        initContainerStatuses=[
            {
                "name": "proxy",
                "ready": True,
                "started": True,
                "restartCount": 1,
                "state": {"running": {}},
            }
        ],
        containerStatuses=[running()],
        conditions=[{"type": "Initialized", "status": "True"}],
    )
    p["spec"]["initContainers"] = [{"name": "proxy", "restartPolicy": "Always", "command": ["p"]}]
    cells = row("core/pods", p)
    assert (cells["Ready"], cells["Status"], cells["Restarts"]) == ("2/2", "Running", "1")


def test_deleted_running_pod_shows_terminating() -> None:
    p = pod(containerStatuses=[running()])
    p["metadata"]["deletionTimestamp"] = ago(1)
    assert row("core/pods", p)["Status"] == "Terminating"


def test_deleted_finished_pod_keeps_its_final_status() -> None:
    done = {
        "name": "main",
        "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
    }
    p = pod(phase="Succeeded", containerStatuses=[done])
    p["metadata"]["deletionTimestamp"] = ago(1)
    assert row("core/pods", p)["Status"] == "Completed"


def test_completed_container_next_to_a_running_one_is_not_completed() -> None:
    done = {
        "name": "job",
        "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
    }
    not_ready = pod(containerStatuses=[running(), done])
    assert row("core/pods", not_ready)["Status"] == "NotReady"
    ready = pod(
        containerStatuses=[running(), done], conditions=[{"type": "Ready", "status": "True"}]
    )
    assert row("core/pods", ready)["Status"] == "Running"


def test_finished_pod_rows_carry_completed_condition() -> None:
    rt = by_key("core/pods")
    assert rt is not None
    table = table_of(rt, [pod(phase="Succeeded"), pod(phase="Running")], list_meta=None, now=NOW)
    assert table["rows"][0]["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]
    assert "conditions" not in table["rows"][1]


def test_readiness_gates_count_true_conditions() -> None:
    p = pod(conditions=[{"type": "example.com/lb", "status": "True"}])
    p["spec"]["readinessGates"] = [{"conditionType": "example.com/lb"}, {"conditionType": "x/y"}]
    assert row("core/pods", p)["Readiness Gates"] == "1/2"


# ------------------------------------------------------------------------- apps and batch


def template(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": list(containers)}}


WEB_CONTAINER = {"name": "web", "command": ["python", "-m", "http.server", "8080"]}
SIDE_CONTAINER = {"name": "log", "image": "busybox:1.36", "command": ["tail", "-f", "/dev/null"]}


def test_deployment_with_two_of_three_ready() -> None:
    deploy = {
        "metadata": meta("web", age=7200),
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(WEB_CONTAINER, SIDE_CONTAINER),
        },
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    cells = row("apps/deployments", deploy)
    assert cells == {
        "Name": "web",
        "Ready": "2/3",
        "Up-to-date": 3,
        "Available": 2,
        "Age": "120m",
        "Containers": "web,log",
        "Images": "python -m http.server 8080,busybox:1.36",
        "Selector": "app=web",
    }
    assert columns("apps/deployments")[-3:] == [("Containers", 1), ("Images", 1), ("Selector", 1)]


def test_new_deployment_without_status_shows_zeroes() -> None:
    deploy = {"metadata": meta("web"), "spec": {"replicas": 2, "template": template(WEB_CONTAINER)}}
    cells = row("apps/deployments", deploy)
    assert (cells["Ready"], cells["Up-to-date"], cells["Available"]) == ("0/2", 0, 0)


def test_long_commands_are_cut_in_images_column() -> None:
    long = {"name": "w", "command": ["python", "-c", "import time; time.sleep(100000); print('x')"]}
    deploy = {"metadata": meta("w"), "spec": {"replicas": 1, "template": template(long)}}
    images = str(row("apps/deployments", deploy)["Images"])
    assert len(images) == 40 and images.endswith("...")
    assert images.startswith("python -c import time")


def test_replicaset_counts_are_integers() -> None:
    rs = {
        "metadata": meta("web-5d8f"),
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(WEB_CONTAINER),
        },
        "status": {"replicas": 3, "readyReplicas": 1},
    }
    cells = row("apps/replicasets", rs)
    assert (cells["Desired"], cells["Current"], cells["Ready"], cells["Selector"]) == (
        3,
        3,
        1,
        "app=web",
    )
    types = {c["name"]: c["type"] for c in definitions_of(by_key("apps/replicasets"))}  # type: ignore[arg-type]
    assert types["Desired"] == "integer"


def test_completed_job_shows_completions_and_duration() -> None:
    job = {
        "metadata": meta("backup", age=600),
        "spec": {"completions": 1, "parallelism": 1, "template": template(WEB_CONTAINER)},
        "status": {
            "succeeded": 1,
            "startTime": ago(120),
            "completionTime": ago(90),
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    cells = row("batch/jobs", job)
    assert (cells["Status"], cells["Completions"], cells["Duration"], cells["Age"]) == (
        "Complete",
        "1/1",
        "30s",
        "10m",
    )
    assert columns("batch/jobs")[:5] == [
        ("Name", 0),
        ("Status", 0),
        ("Completions", 0),
        ("Duration", 0),
        ("Age", 0),
    ]


def test_running_job_duration_counts_up_from_start() -> None:
    job = {"metadata": meta("q"), "spec": {"parallelism": 3}, "status": {"startTime": ago(45)}}
    cells = row("batch/jobs", job)
    assert (cells["Status"], cells["Completions"], cells["Duration"]) == (
        "Running",
        "0/1 of 3",
        "45s",
    )


@pytest.mark.parametrize(
    ("conditions", "deleting", "status"),
    [
        ([{"type": "Failed", "status": "True"}], False, "Failed"),
        ([{"type": "Suspended", "status": "True"}], False, "Suspended"),
        ([{"type": "Suspended", "status": "True"}], True, "Terminating"),
        ([{"type": "FailureTarget", "status": "True"}], False, "FailureTarget"),
        ([{"type": "Complete", "status": "False"}], False, "Running"),
    ],
)
def test_job_status_column(conditions: list[dict[str, str]], deleting: bool, status: str) -> None:
    job: dict[str, Any] = {"metadata": meta("j"), "spec": {}, "status": {"conditions": conditions}}
    if deleting:
        job["metadata"]["deletionTimestamp"] = ago(1)
    cells = row("batch/jobs", job)
    assert cells["Status"] == status
    assert cells["Duration"] == ""


def test_cronjob_row() -> None:
    cj = {
        "metadata": meta("nightly", age=3 * 86400),
        "spec": {
            "schedule": "0 3 * * *",
            "suspend": False,
            "jobTemplate": {"spec": {"template": template(WEB_CONTAINER)}},
        },
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(3600)},
    }
    cells = row("batch/cronjobs", cj)
    assert [
        cells[c] for c in ("Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age")
    ] == [
        "0 3 * * *",
        "<none>",
        "False",
        1,
        "60m",
        "3d",
    ]
    assert cells["Selector"] == "<none>"


def test_hpa_targets_show_current_over_target() -> None:
    hpa = {
        "metadata": meta("web"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                },
                {
                    "type": "Resource",
                    "resource": {
                        "name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "100Mi"},
                    },
                },
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "qps"},
                        "target": {"type": "AverageValue", "averageValue": "10"},
                    },
                },
            ],
        },
        "status": {
            "currentReplicas": 3,
            "currentMetrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "current": {"averageUtilization": 45}},
                }
            ],
        },
    }
    cells = row("autoscaling/horizontalpodautoscalers", hpa)
    assert cells["Reference"] == "Deployment/web"
    assert cells["Targets"] == "cpu: 45%/80%, memory: <unknown>/100Mi + 1 more..."
    assert (cells["MinPods"], cells["MaxPods"], cells["Replicas"]) == ("2", 10, 3)


def test_hpa_without_metrics_or_status() -> None:
    hpa = {
        "metadata": meta("web"),
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4},
    }
    cells = row("autoscaling/horizontalpodautoscalers", hpa)
    assert (cells["Targets"], cells["MinPods"], cells["Replicas"]) == ("<none>", "<unset>", 0)


# -------------------------------------------------------------------------- core kinds


def test_nodeport_service_row() -> None:
    svc = {
        "metadata": meta("web"),
        "spec": {
            "type": "NodePort",
            "clusterIP": "127.2.0.10",
            "clusterIPs": ["127.2.0.10"],
            "selector": {"app": "web"},
            "ports": [
                {"port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                {"port": 53, "protocol": "UDP"},
            ],
        },
    }
    cells = row("core/services", svc)
    assert cells == {
        "Name": "web",
        "Type": "NodePort",
        "Cluster-IP": "127.2.0.10",
        "External-IP": "<none>",
        "Port(s)": "80:30080/TCP,53/UDP",
        "Age": "5m",
        "Selector": "app=web",
    }


def test_service_external_ip_by_type() -> None:
    lb = {"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["127.2.0.3"]}}
    assert row("core/services", lb)["External-IP"] == "<pending>"
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}, {"hostname": "lb.example"}]}}
    assert row("core/services", lb)["External-IP"] == "10.0.0.9,lb.example"
    ext = {
        "metadata": meta("db"),
        "spec": {"type": "ExternalName", "externalName": "db.example.com"},
    }
    cells = row("core/services", ext)
    assert (cells["External-IP"], cells["Cluster-IP"], cells["Port(s)"], cells["Selector"]) == (
        "db.example.com",
        "<none>",
        "<none>",
        "<none>",
    )


def test_node_row_with_roles_and_cordon() -> None:
    node = {
        "metadata": {
            "name": "node-a",
            "creationTimestamp": ago(2 * 86400 + 5 * 3600),
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"},
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0-procorch",
                "osImage": "Debian",
                "kernelVersion": "6.1",
            },
        },
    }
    cells = row("core/nodes", node)
    assert [cells[c] for c in ("Status", "Roles", "Age", "Version")] == [
        "Ready,SchedulingDisabled",
        "control-plane,edge",
        "2d5h",
        "v1.32.0-procorch",
    ]
    assert [cells[c] for c in ("Internal-IP", "External-IP", "Container-Runtime")] == [
        "127.0.0.1",
        "<none>",
        "<unknown>",
    ]


def test_node_without_ready_condition_is_unknown() -> None:
    cells = row("core/nodes", {"metadata": {"name": "n"}, "status": {}})
    assert (cells["Status"], cells["Roles"]) == ("Unknown", "<none>")


def test_namespace_configmap_secret_and_serviceaccount_rows() -> None:
    assert (
        row("core/namespaces", {"metadata": meta("dev"), "status": {"phase": "Active"}})["Status"]
        == "Active"
    )
    cm = {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert row("core/configmaps", cm)["Data"] == 3
    secret = {
        "metadata": meta("tls"),
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "", "tls.key": ""},
    }
    cells = row("core/secrets", secret)
    assert (cells["Type"], cells["Data"]) == ("kubernetes.io/tls", 2)
    assert row("core/serviceaccounts", {"metadata": meta("default")})["Secrets"] == 0


def test_endpoints_show_three_addresses_then_more() -> None:
    ep = {
        "metadata": meta("web"),
        "subsets": [
            {
                "addresses": [{"ip": f"127.1.0.{n}"} for n in range(1, 5)],
                "ports": [{"port": 8080}],
            }
        ],
    }
    assert row("core/endpoints", ep)["Endpoints"] == (
        "127.1.0.1:8080,127.1.0.2:8080,127.1.0.3:8080 + 1 more..."
    )
    assert row("core/endpoints", {"metadata": meta("none")})["Endpoints"] == "<none>"


def test_endpointslice_row() -> None:
    eps = {
        "metadata": meta("web-abc"),
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": ["127.1.0.1"]}, {"addresses": ["127.1.0.2"]}],
    }
    cells = row("discovery.k8s.io/endpointslices", eps)
    assert (cells["AddressType"], cells["Ports"], cells["Endpoints"]) == (
        "IPv4",
        "8080",
        "127.1.0.1,127.1.0.2",
    )
    empty = row("discovery.k8s.io/endpointslices", {"metadata": meta("e"), "addressType": "IPv4"})
    assert (empty["Ports"], empty["Endpoints"]) == ("<unset>", "<unset>")


def test_pvc_row_bound_and_pending() -> None:
    pvc = {
        "metadata": meta("data"),
        "spec": {
            "volumeName": "pv-1",
            "storageClassName": "local-path",
            "accessModes": ["ReadWriteOnce"],
        },
        "status": {
            "phase": "Bound",
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
        },
    }
    cells = row("core/persistentvolumeclaims", pvc)
    assert [
        cells[c]
        for c in ("Status", "Volume", "Capacity", "Access Modes", "StorageClass", "VolumeMode")
    ] == [
        "Bound",
        "pv-1",
        "1Gi",
        "RWO,RWX",
        "local-path",
        "<unset>",
    ]
    pending = row(
        "core/persistentvolumeclaims", {"metadata": meta("p"), "status": {"phase": "Pending"}}
    )
    assert (pending["Capacity"], pending["Access Modes"]) == ("", "")


def test_event_row_reads_like_kubectl_get_events() -> None:
    event = {
        "metadata": meta("web.17a2b", age=600),
        "involvedObject": {
            "kind": "Pod",
            "name": "web",
            "namespace": "default",
            "fieldPath": "spec.containers{main}",
        },
        "reason": "BackOff",
        "message": "Back-off restarting failed container\n",
        "type": "Warning",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": ago(600),
        "lastTimestamp": ago(30),
        "count": 7,
    }
    cells = row("core/events", event)
    assert [cells[c] for c in ("Last Seen", "Type", "Reason", "Object", "Message")] == [
        "30s",
        "Warning",
        "BackOff",
        "pod/web",
        "Back-off restarting failed container",
    ]
    assert [cells[c] for c in ("Subobject", "Source", "First Seen", "Count", "Name")] == [
        "spec.containers{main}",
        "kubelet, node-a",
        "10m",
        7,
        "web.17a2b",
    ]
    assert columns("core/events")[0] == ("Last Seen", 0)


def test_new_style_event_uses_event_time_and_counts_one() -> None:
    event = {
        "metadata": meta("e"),
        "involvedObject": {"kind": "Node"},
        "eventTime": (NOW - timedelta(seconds=12)).isoformat().replace("+00:00", "Z"),
        "reportingComponent": "procorch-agent",
        "reportingInstance": "node-a",
    }
    cells = row("core/events", event)
    assert [cells[c] for c in ("Last Seen", "First Seen", "Count", "Object", "Source")] == [
        "12s",
        "12s",
        1,
        "node",
        "procorch-agent, node-a",
    ]


# ---------------------------------------------------------------- networking, coordination


def test_ingress_row() -> None:
    ing = {
        "metadata": meta("web"),
        "spec": {
            "ingressClassName": "procorch",
            "rules": [
                {"host": "a.example"},
                {"host": "b.example"},
                {},
                {"host": "c.example"},
                {"host": "d.example"},
            ],
            "tls": [{"hosts": ["a.example"]}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}},
    }
    cells = row("networking.k8s.io/ingresses", ing)
    assert [cells[c] for c in ("Class", "Hosts", "Address", "Ports")] == [
        "procorch",
        "a.example,b.example,c.example + 2 more...",
        "127.0.0.1",
        "80, 443",
    ]
    bare = row("networking.k8s.io/ingresses", {"metadata": meta("x"), "spec": {}})
    assert [bare[c] for c in ("Class", "Hosts", "Address", "Ports")] == ["<none>", "*", "", "80"]


def test_ingressclass_and_lease_rows() -> None:
    ic = {
        "metadata": meta("procorch"),
        "spec": {
            "controller": "procorch.dev/ingress",
            "parameters": {"kind": "Config", "apiGroup": "x.dev", "name": "c"},
        },
    }
    cells = row("networking.k8s.io/ingressclasses", ic)
    assert (cells["Controller"], cells["Parameters"]) == ("procorch.dev/ingress", "Config.x.dev/c")
    lease = {"metadata": meta("node-a"), "spec": {"holderIdentity": "node-a"}}
    assert row("coordination.k8s.io/leases", lease)["Holder"] == "node-a"


# ------------------------------------------------------------------------------------ RBAC


def test_rolebinding_row_lists_subjects_in_wide_columns() -> None:
    rb = {
        "metadata": meta("readers"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "User", "name": "bob"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
        ],
    }
    cells = row("rbac.authorization.k8s.io/rolebindings", rb)
    assert [cells[c] for c in ("Role", "Users", "Groups", "ServiceAccounts")] == [
        "Role/reader",
        "alice, bob",
        "devs",
        "tools/ci",
    ]
    assert columns("rbac.authorization.k8s.io/clusterrolebindings")[3:] == [
        ("Users", 1),
        ("Groups", 1),
        ("ServiceAccounts", 1),
    ]


def test_roles_get_the_default_name_and_created_at_table() -> None:
    role = {
        "metadata": {"name": "reader", "creationTimestamp": "2026-02-27T08:15:00.5Z"},
        "rules": [],
    }
    assert row("rbac.authorization.k8s.io/roles", role) == {
        "Name": "reader",
        "Created At": "2026-02-27T08:15:00Z",
    }
    defs = definitions_of(by_key("rbac.authorization.k8s.io/clusterroles"))  # type: ignore[arg-type]
    assert [(c["name"], c["type"], c["format"]) for c in defs] == [
        ("Name", "string", "name"),
        ("Created At", "date", ""),
    ]


# ------------------------------------------------------------------------- the Table itself


def test_table_has_metadata_rows_with_partial_object_metadata_by_default() -> None:
    rt = by_key("core/configmaps")
    assert rt is not None
    objs = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("a", labels={"x": "1"}),
            "data": {"k": "v"},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("b"), "data": {}},
    ]
    table = table_of(rt, objs, list_meta={"resourceVersion": "105", "continue": "tok"}, now=NOW)
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert table["metadata"] == {"resourceVersion": "105", "continue": "tok"}
    assert table["columnDefinitions"][0] == {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": table["columnDefinitions"][0]["description"],
        "priority": 0,
    }
    first = table["rows"][0]
    assert first["cells"] == ["a", 1, "5m"]
    assert first["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": objs[0]["metadata"],
    }
    json.dumps(table)  # the whole table is plain JSON


def test_table_can_embed_whole_objects_or_none() -> None:
    rt = by_key("core/configmaps")
    assert rt is not None
    cm = {"metadata": meta("a"), "data": {"k": "v"}}
    whole = table_of(rt, [cm], list_meta=None, include_object="Object", now=NOW)
    assert whole["rows"][0]["object"] == {"apiVersion": "v1", "kind": "ConfigMap", **cm}
    bare = table_of(rt, [cm], list_meta=None, include_object="None", now=NOW)
    assert bare["rows"][0]["object"] is None


def test_single_object_table_carries_its_resource_version() -> None:
    rt = by_key("core/configmaps")
    assert rt is not None
    table = table_of(rt, [{"metadata": meta("a")}], list_meta=None, now=NOW)
    assert table["metadata"] == {"resourceVersion": "42"}
    empty = table_of(rt, [], list_meta={"resourceVersion": "7"}, now=NOW)
    assert (empty["metadata"], empty["rows"]) == ({"resourceVersion": "7"}, [])


def test_unknown_include_object_is_a_bad_request() -> None:
    rt = by_key("core/pods")
    assert rt is not None
    with pytest.raises(errors.BadRequest, match="includeObject"):
        table_of(rt, [], list_meta=None, include_object="Everything", now=NOW)


@pytest.mark.parametrize("rt", RESOURCES, ids=lambda r: r.key)
def test_every_kind_renders_a_cell_per_column_even_from_a_bare_object(rt: Any) -> None:
    table = table_of(rt, [{"metadata": {"name": "x"}}], list_meta=None, now=NOW)
    (only,) = table["rows"]
    assert len(only["cells"]) == len(table["columnDefinitions"])
    assert only["cells"][[c["format"] for c in table["columnDefinitions"]].index("name")] == "x"
    json.dumps(table)


@pytest.mark.parametrize(
    "rt", [r for r in RESOURCES if r.key != "core/events"], ids=lambda r: r.key
)
def test_wide_columns_follow_the_default_ones(rt: Any) -> None:
    priorities = [c["priority"] for c in definitions_of(rt)]
    assert priorities == sorted(priorities)
    assert set(priorities) <= {0, 1}


def test_event_columns_interleave_wide_ones_as_kubernetes_does() -> None:
    assert columns("core/events") == [
        ("Last Seen", 0),
        ("Type", 0),
        ("Reason", 0),
        ("Object", 0),
        ("Subobject", 1),
        ("Source", 1),
        ("Message", 0),
        ("First Seen", 1),
        ("Count", 1),
        ("Name", 1),
    ]
