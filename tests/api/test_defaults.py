"""Defaulting matches what Kubernetes 1.32 stores for the same manifests."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from procorch.api.defaults import generate_job_selector
from procorch.api.defaults.pod import image_pull_policy
from procorch.api.registry import BUILTIN, apply_defaults


def container(**extra: Any) -> dict[str, Any]:
    return {"name": "app", "command": ["python3", "-m", "http.server"], **extra}


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [container()], **spec},
    }


def deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [container()]},
            },
            **spec,
        },
    }


def defaulted(obj: dict[str, Any]) -> dict[str, Any]:
    apply_defaults(obj["apiVersion"], obj["kind"], obj)
    return obj


def test_deployment_gets_rolling_update_strategy_and_limits() -> None:
    spec = defaulted(deployment())["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600


def test_deployment_keeps_values_the_user_gave() -> None:
    spec = defaulted(deployment(replicas=0, strategy={"type": "Recreate"}, revisionHistoryLimit=0))[
        "spec"
    ]
    assert spec["replicas"] == 0
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["revisionHistoryLimit"] == 0


def test_deployment_partial_rolling_update_is_completed() -> None:
    spec = defaulted(deployment(strategy={"rollingUpdate": {"maxSurge": 1}}))["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "25%"}


def test_deployment_template_gets_pod_spec_defaults_but_not_pod_only_ones() -> None:
    template_spec = defaulted(deployment())["spec"]["template"]["spec"]
    assert template_spec["restartPolicy"] == "Always"
    assert template_spec["terminationGracePeriodSeconds"] == 30
    assert template_spec["dnsPolicy"] == "ClusterFirst"
    assert template_spec["schedulerName"] == "default-scheduler"
    assert template_spec["securityContext"] == {}
    for pod_only in (
        "enableServiceLinks",
        "priority",
        "preemptionPolicy",
        "tolerations",
        "serviceAccountName",
    ):
        assert pod_only not in template_spec
    ctr = template_spec["containers"][0]
    assert ctr["terminationMessagePath"] == "/dev/termination-log"
    assert ctr["terminationMessagePolicy"] == "File"
    assert ctr["imagePullPolicy"] == "IfNotPresent"
    assert ctr["resources"] == {}


def test_pod_spec_defaults() -> None:
    spec = defaulted(pod())["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True


def test_pod_gets_what_default_admission_adds() -> None:
    spec = defaulted(pod())["spec"]
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert spec["serviceAccountName"] == "default"
    assert spec["serviceAccount"] == "default"
    assert spec["tolerations"] == [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
    ]


def test_pod_keeps_own_toleration_for_not_ready() -> None:
    mine = {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 10,
    }
    spec = defaulted(pod(tolerations=[mine]))["spec"]
    assert spec["tolerations"][0] == mine
    assert [t["key"] for t in spec["tolerations"]] == [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]


def test_pod_with_priority_class_gets_no_priority() -> None:
    spec = defaulted(pod(priorityClassName="high"))["spec"]
    assert "priority" not in spec and "preemptionPolicy" not in spec


def test_pod_requests_default_to_limits_but_template_requests_do_not() -> None:
    resources = {"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "0.5"}}
    spec = defaulted(pod(containers=[container(resources=copy.deepcopy(resources))]))["spec"]
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "128Mi"}
    dep = deployment()
    dep["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    tpl = defaulted(dep)["spec"]["template"]["spec"]["containers"][0]
    assert "requests" not in tpl["resources"]


def test_resource_quantities_are_rounded_and_canonical() -> None:
    resources = {"requests": {"cpu": "0.0001", "memory": "1024Mi"}, "limits": {"cpu": 2}}
    spec = defaulted(pod(containers=[container(resources=resources)]))["spec"]
    assert spec["containers"][0]["resources"] == {
        "requests": {"cpu": "1m", "memory": "1Gi"},
        "limits": {"cpu": "2"},
    }


def test_unparseable_quantity_is_left_for_validation() -> None:
    spec = defaulted(pod(containers=[container(resources={"limits": {"cpu": "lots"}})]))["spec"]
    assert spec["containers"][0]["resources"]["limits"]["cpu"] == "lots"


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        (None, "IfNotPresent"),
        ("", "IfNotPresent"),
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("localhost:5000/nginx", "Always"),
        ("localhost:5000/nginx:v1", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("Nginx", "IfNotPresent"),
    ],
)
def test_image_pull_policy_follows_the_tag(image: str | None, policy: str) -> None:
    assert image_pull_policy(image) == policy


def test_explicit_image_pull_policy_is_kept() -> None:
    ctr = defaulted(pod(containers=[container(image="nginx", imagePullPolicy="Never")]))
    assert ctr["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_container_ports_env_and_probes_get_defaults() -> None:
    ctr = container(
        ports=[{"containerPort": 8080}],
        env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        livenessProbe={"httpGet": {"port": 8080}},
        readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 5},
        startupProbe={"grpc": {"port": 9090}},
        lifecycle={"preStop": {"httpGet": {"port": 8080}}},
    )
    spec = defaulted(pod(containers=[ctr]))["spec"]
    out = spec["containers"][0]
    assert out["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert out["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert out["livenessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert out["readinessProbe"]["periodSeconds"] == 5
    assert out["startupProbe"]["grpc"] == {"port": 9090, "service": ""}
    assert out["lifecycle"]["preStop"]["httpGet"] == {"port": 8080, "path": "/", "scheme": "HTTP"}


def test_init_containers_get_container_defaults() -> None:
    spec = defaulted(pod(initContainers=[container(name="init")]))["spec"]
    assert spec["initContainers"][0]["terminationMessagePolicy"] == "File"


def test_volume_source_defaults() -> None:
    volumes = [
        {"name": "scratch"},
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o600}},
        {"name": "host", "hostPath": {"path": "/tmp"}},
        {
            "name": "info",
            "downwardAPI": {
                "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
            },
        },
        {"name": "proj", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
    ]
    out = defaulted(pod(volumes=volumes))["spec"]["volumes"]
    assert out[0] == {"name": "scratch", "emptyDir": {}}
    assert out[1]["configMap"]["defaultMode"] == 420
    assert out[2]["secret"]["defaultMode"] == 0o600
    assert out[3]["hostPath"]["type"] == ""
    assert out[4]["downwardAPI"]["defaultMode"] == 420
    assert out[4]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"] == "v1"
    assert out[5]["projected"]["defaultMode"] == 420
    assert out[5]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3600


def test_host_network_pod_ports_get_host_ports() -> None:
    spec = defaulted(
        pod(hostNetwork=True, containers=[container(ports=[{"containerPort": 8080}])])
    )["spec"]
    assert spec["containers"][0]["ports"][0]["hostPort"] == 8080


def test_defaults_are_idempotent_for_every_kind() -> None:
    objects = [pod(), deployment(), defaulted_job_source(), service_source()]
    for obj in objects:
        once = defaulted(copy.deepcopy(obj))
        twice = defaulted(copy.deepcopy(once))
        assert once == twice


def defaulted_job_source() -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once", "namespace": "default"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "once"}},
                "spec": {"restartPolicy": "Never", "containers": [container()]},
            }
        },
    }


def service_source(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec},
    }


def test_job_defaults() -> None:
    job = defaulted(defaulted_job_source())
    spec = job["spec"]
    assert spec["completions"] == 1
    assert spec["parallelism"] == 1
    assert spec["backoffLimit"] == 6
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert "manualSelector" not in spec
    # Job labels come from the template when the Job has none.
    assert job["metadata"]["labels"] == {"app": "once"}
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 30


def test_job_with_parallelism_only_leaves_completions_unset() -> None:
    job = defaulted_job_source()
    job["spec"]["parallelism"] = 3
    spec = defaulted(job)["spec"]
    assert "completions" not in spec and spec["parallelism"] == 3


def test_job_with_pod_failure_policy_and_per_index_limit() -> None:
    job = defaulted_job_source()
    job["spec"].update(
        completionMode="Indexed",
        completions=3,
        backoffLimitPerIndex=1,
        podFailurePolicy={
            "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
        },
    )
    spec = defaulted(job)["spec"]
    assert spec["backoffLimit"] == 2**31 - 1
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"] == "True"


def test_generate_job_selector_labels_template_and_selects_uid() -> None:
    job = defaulted_job_source()
    job["metadata"]["uid"] = "1234"
    generate_job_selector(job)
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels == {
        "app": "once",
        "controller-uid": "1234",
        "job-name": "once",
        "batch.kubernetes.io/controller-uid": "1234",
        "batch.kubernetes.io/job-name": "once",
    }
    assert job["spec"]["selector"] == {
        "matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}
    }


def test_generate_job_selector_respects_manual_selector_and_needs_uid() -> None:
    job = defaulted_job_source()
    generate_job_selector(job)
    assert "selector" not in job["spec"]
    job["metadata"]["uid"] = "1234"
    job["spec"]["manualSelector"] = True
    generate_job_selector(job)
    assert "selector" not in job["spec"]


def test_cron_job_defaults_and_job_template_gets_only_pod_defaults() -> None:
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "default"},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {"restartPolicy": "OnFailure", "containers": [container()]}
                    }
                }
            },
        },
    }
    spec = defaulted(cron)["spec"]
    assert spec["concurrencyPolicy"] == "Allow"
    assert spec["suspend"] is False
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 1
    job_spec = spec["jobTemplate"]["spec"]
    assert "backoffLimit" not in job_spec and "completions" not in job_spec
    assert job_spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_replica_set_defaults() -> None:
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "rs"},
        "spec": {"template": {"spec": {"containers": [container()]}}},
    }
    spec = defaulted(rs)["spec"]
    assert spec["replicas"] == 1
    assert spec["template"]["spec"]["restartPolicy"] == "Always"


def test_service_defaults() -> None:
    spec = defaulted(service_source())["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["ipFamilies"] == ["IPv4"]
    assert "externalTrafficPolicy" not in spec
    assert "allocateLoadBalancerNodePorts" not in spec


def test_service_named_target_port_is_kept() -> None:
    spec = defaulted(service_source(ports=[{"port": 80, "targetPort": "http"}]))["spec"]
    assert spec["ports"][0]["targetPort"] == "http"


def test_node_port_and_load_balancer_services_get_external_policy() -> None:
    assert defaulted(service_source(type="NodePort"))["spec"]["externalTrafficPolicy"] == "Cluster"
    lb = defaulted(service_source(type="LoadBalancer"))["spec"]
    assert lb["externalTrafficPolicy"] == "Cluster"
    assert lb["allocateLoadBalancerNodePorts"] is True


def test_service_cluster_ips_follow_cluster_ip() -> None:
    spec = defaulted(service_source(clusterIP="None"))["spec"]
    assert spec["clusterIPs"] == ["None"]
    spec = defaulted(service_source(clusterIPs=["127.1.0.10"]))["spec"]
    assert spec["clusterIP"] == "127.1.0.10"


def test_session_affinity_config_follows_affinity() -> None:
    none = defaulted(service_source(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 5}}))
    assert "sessionAffinityConfig" not in none["spec"]
    client = defaulted(service_source(sessionAffinity="ClientIP"))
    assert client["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_external_name_service_gets_no_ip_fields() -> None:
    spec = defaulted(service_source(type="ExternalName", externalName="example.com"))["spec"]
    for field in ("ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy", "clusterIPs"):
        assert field not in spec


def test_secret_string_data_is_merged_into_data_as_base64() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"a": base64.b64encode(b"old").decode(), "b": "Yg=="},
        "stringData": {"a": "new", "c": "héllo"},
    }
    out = defaulted(secret)
    assert "stringData" not in out
    assert out["type"] == "Opaque"
    assert {k: base64.b64decode(v).decode() for k, v in out["data"].items()} == {
        "a": "new",
        "b": "b",
        "c": "héllo",
    }


def test_namespace_gets_name_label_and_active_phase_but_no_finalizers() -> None:
    ns = defaulted({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert ns["status"] == {"phase": "Active"}
    # The finalizer is added on create by the API server's strategy, not by defaulting,
    # so that finalize can remove it later.
    assert "spec" not in ns


def test_pvc_node_endpoints_defaults() -> None:
    pvc = defaulted(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1024Mi"}},
            },
        }
    )
    assert pvc["spec"]["volumeMode"] == "Filesystem"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert pvc["status"] == {"phase": "Pending"}
    node = defaulted(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi"}},
        }
    )
    assert node["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi"}
    assert node["status"]["allocatable"] is not node["status"]["capacity"]
    eps = defaulted(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "e"},
            "subsets": [{"ports": [{"port": 80}]}],
        }
    )
    assert eps["subsets"][0]["ports"][0]["protocol"] == "TCP"


def test_endpoint_slice_ports_get_name_and_protocol() -> None:
    eps = defaulted(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "e"},
            "addressType": "IPv4",
            "ports": [{"port": 80}],
        }
    )
    assert eps["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]


def test_rbac_bindings_get_role_ref_group_and_subject_groups() -> None:
    rb = defaulted(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "rb", "namespace": "default"},
            "roleRef": {"kind": "Role", "name": "reader"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "ServiceAccount", "name": "default"},
            ],
        }
    )
    assert rb["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert rb["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
    assert "apiGroup" not in rb["subjects"][1]


def test_ingress_class_parameters_scope_defaults_to_cluster() -> None:
    ic = defaulted(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "procorch"},
            "spec": {
                "controller": "procorch.dev/ingress",
                "parameters": {"kind": "Config", "name": "x"},
            },
        }
    )
    assert ic["spec"]["parameters"]["scope"] == "Cluster"


def test_hpa_defaults_min_replicas_and_cpu_metric_but_not_behavior() -> None:
    hpa = defaulted(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 5,
            },
        }
    )
    spec = hpa["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]
    assert "behavior" not in spec


def test_hpa_behavior_given_is_completed_in_both_directions() -> None:
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
    }
    behavior = defaulted(hpa)["spec"]["behavior"]
    assert behavior["scaleDown"] == {
        "stabilizationWindowSeconds": 60,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    }
    assert behavior["scaleUp"] == {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ],
    }


@pytest.mark.parametrize("kind", ["Ingress", "ConfigMap", "Lease", "Event", "ServiceAccount"])
def test_kinds_without_kubernetes_defaults_are_untouched(kind: str) -> None:
    api_version = {"Ingress": "networking.k8s.io/v1", "Lease": "coordination.k8s.io/v1"}.get(
        kind, "v1"
    )
    obj = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "x"},
        "spec": {"rules": [{"http": {"paths": [{"path": "/"}]}}]},
    }
    before = copy.deepcopy(obj)
    apply_defaults(api_version, kind, obj)
    assert obj == before


@pytest.mark.parametrize("key", sorted(d.gvk for d in BUILTIN if d.default is not None))
def test_defaulting_never_raises_on_wrong_types(key: tuple[str, str]) -> None:
    garbage: dict[str, Any] = {
        "metadata": "nope",
        "spec": {
            "containers": "x",
            "template": [1],
            "ports": {"a": 1},
            "strategy": 5,
            "jobTemplate": {"spec": 3},
        },
        "status": {"capacity": ["x"]},
        "stringData": ["a"],
        "subsets": [1, None],
    }
    apply_defaults(key[0], key[1], garbage)
    apply_defaults(key[0], key[1], {"spec": None, "metadata": None})
