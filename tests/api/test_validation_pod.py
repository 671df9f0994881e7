"""Pod and pod-spec rules: containers, the command procorch needs, ports, probes, env,
volumes, resources, scheduling fields, and what a Pod update may change."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from procorch.api.registry import apply_defaults, validate

COMMAND_MSG = (
    "Required value: procorch runs processes, not images: give the container a "
    "command (image is ignored)"
)


def ctr(name: str = "app", **extra: Any) -> dict[str, Any]:
    return {"name": name, "command": ["python3", "-m", "http.server", "8080"], **extra}


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": list(containers) or [ctr()], **spec},
    }
    apply_defaults("v1", "Pod", obj)
    return obj


def causes(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [c.render() for c in validate("v1", "Pod", obj, old=old)]


def fields(obj: dict[str, Any]) -> list[str]:
    return [c.field for c in validate("v1", "Pod", obj)]


def test_realistic_pod_is_valid() -> None:
    obj = pod(
        ctr(
            "web",
            image="ignored:1.0",
            args=["--bind", "$(POD_IP)"],
            workingDir="/srv",
            ports=[{"name": "http", "containerPort": 8080}],
            env=[
                {"name": "MODE", "value": "prod"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {
                    "name": "LEVEL",
                    "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "log.level"}},
                },
                {
                    "name": "CPU",
                    "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}},
                },
            ],
            envFrom=[{"prefix": "DB_", "secretRef": {"name": "db"}}],
            resources={
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"cpu": "1", "memory": "128Mi"},
            },
            readinessProbe={"httpGet": {"path": "/healthz", "port": "http"}},
            livenessProbe={"tcpSocket": {"port": 8080}, "initialDelaySeconds": 5},
            startupProbe={"exec": {"command": ["true"]}, "failureThreshold": 30},
            lifecycle={"preStop": {"exec": {"command": ["sleep", "2"]}}},
            volumeMounts=[
                {"name": "data", "mountPath": "/data"},
                {"name": "cfg", "mountPath": "/etc/app", "readOnly": True},
            ],
        ),
        initContainers=[ctr("migrate")],
        volumes=[
            {"name": "data", "emptyDir": {}},
            {
                "name": "cfg",
                "configMap": {"name": "cfg", "items": [{"key": "a", "path": "a.conf"}]},
            },
        ],
        nodeSelector={"kubernetes.io/os": "linux"},
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
        activeDeadlineSeconds=3600,
    )
    assert causes(obj) == []


def test_container_without_command_is_refused_with_procorch_message() -> None:
    obj = pod({"name": "app", "image": "nginx"})
    assert causes(obj) == [f"spec.containers[0].command: {COMMAND_MSG}"]


def test_init_container_without_command_is_refused() -> None:
    obj = pod(initContainers=[{"name": "init", "command": []}])
    assert causes(obj) == [f"spec.initContainers[0].command: {COMMAND_MSG}"]


def test_image_is_not_required() -> None:
    assert causes(pod(ctr())) == []


def test_at_least_one_container() -> None:
    obj = pod()
    obj["spec"]["containers"] = []
    assert causes(obj) == ["spec.containers: Required value"]


def test_container_names_are_unique_across_init_and_app_containers() -> None:
    obj = pod(ctr("a"), ctr("a"), initContainers=[ctr("a")])
    assert causes(obj) == [
        'spec.containers[1].name: Duplicate value: "a"',
        'spec.initContainers[0].name: Duplicate value: "a"',
    ]


def test_container_name_must_be_a_dns_label() -> None:
    obj = pod(ctr("App"))
    assert fields(obj) == ["spec.containers[0].name"]


def test_ports_are_checked() -> None:
    obj = pod(
        ctr(
            ports=[
                {"containerPort": 0},
                {"containerPort": 70000, "name": "way-too-long-port-name"},
                {"containerPort": 80, "name": "http", "protocol": "ICMP"},
                {"containerPort": 81, "name": "http"},
            ]
        )
    )
    assert causes(obj) == [
        "spec.containers[0].ports[0].containerPort: Required value",
        (
            'spec.containers[0].ports[1].name: Invalid value: "way-too-long-port-name": must be no '
            "more than 15 characters"
        ),
        (
            "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and "
            "65535, inclusive"
        ),
        (
            'spec.containers[0].ports[2].protocol: Unsupported value: "ICMP": supported values: '
            '"SCTP", "TCP", "UDP"'
        ),
        'spec.containers[0].ports[3].name: Duplicate value: "http"',
    ]


def test_port_names_follow_iana_service_names() -> None:
    obj = pod(
        ctr(ports=[{"containerPort": 80, "name": "8080"}, {"containerPort": 81, "name": "a--b"}])
    )
    assert causes(obj) == [
        (
            'spec.containers[0].ports[0].name: Invalid value: "8080": must contain at least one '
            "letter (a-z)"
        ),
        (
            'spec.containers[0].ports[1].name: Invalid value: "a--b": must not contain consecutive '
            "hyphens"
        ),
    ]


def test_probe_needs_exactly_one_handler() -> None:
    obj = pod(
        ctr(
            readinessProbe={"periodSeconds": 5},
            livenessProbe={"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
        )
    )
    assert causes(obj) == [
        (
            "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 "
            "handler type"
        ),
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
    ]


def test_liveness_and_startup_success_threshold_must_be_one() -> None:
    obj = pod(
        ctr(
            livenessProbe={"exec": {"command": ["true"]}, "successThreshold": 2},
            startupProbe={"exec": {"command": ["true"]}, "successThreshold": 3},
            readinessProbe={"exec": {"command": ["true"]}, "successThreshold": 2},
        )
    )
    assert causes(obj) == [
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        "spec.containers[0].startupProbe.successThreshold: Invalid value: 3: must be 1",
    ]


def test_probe_numbers_and_ports() -> None:
    obj = pod(
        ctr(
            readinessProbe={
                "httpGet": {"port": "Http", "scheme": "FTP"},
                "failureThreshold": -1,
                "terminationGracePeriodSeconds": 5,
            },
            livenessProbe={"httpGet": {"port": 0}, "terminationGracePeriodSeconds": 0},
        )
    )
    assert causes(obj) == [
        (
            "spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: must be between 1 "
            "and 65535, inclusive"
        ),
        (
            "spec.containers[0].livenessProbe.terminationGracePeriodSeconds: Invalid value: 0: must "
            "be greater than 0"
        ),
        (
            'spec.containers[0].readinessProbe.httpGet.port: Invalid value: "Http": must contain '
            "only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
        ),
        (
            'spec.containers[0].readinessProbe.httpGet.scheme: Unsupported value: "FTP": supported '
            'values: "HTTP", "HTTPS"'
        ),
        (
            "spec.containers[0].readinessProbe.failureThreshold: Invalid value: -1: must be greater "
            "than or equal to 0"
        ),
        (
            "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: "
            "must not be set for readinessProbes"
        ),
    ]


def test_exec_probe_needs_a_command() -> None:
    obj = pod(ctr(livenessProbe={"exec": {"command": []}}))
    assert causes(obj) == ["spec.containers[0].livenessProbe.exec.command: Required value"]


def test_lifecycle_handlers_are_checked() -> None:
    obj = pod(ctr(lifecycle={"preStop": {"sleep": {"seconds": 40}}, "postStart": {}}))
    assert causes(obj) == [
        "spec.containers[0].lifecycle.postStart: Required value: must specify a handler type",
        (
            "spec.containers[0].lifecycle.preStop.sleep: Invalid value: 40: must be greater than 0 "
            "and less than terminationGracePeriodSeconds (30)"
        ),
    ]


def test_init_containers_may_not_have_probes_unless_sidecars() -> None:
    probe = {"exec": {"command": ["true"]}}
    obj = pod(
        initContainers=[
            ctr("init", readinessProbe=probe),
            ctr("side", restartPolicy="Always", readinessProbe=probe),
            ctr("bad", restartPolicy="OnFailure"),
        ]
    )
    assert causes(obj) == [
        (
            "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers "
            "without restartPolicy=Always"
        ),
        (
            'spec.initContainers[2].restartPolicy: Unsupported value: "OnFailure": supported values: '
            '"Always"'
        ),
    ]


def test_app_containers_may_not_set_restart_policy() -> None:
    assert causes(pod(ctr(restartPolicy="Always"))) == [
        "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"
    ]


def test_env_names_and_sources() -> None:
    obj = pod(
        ctr(
            env=[
                {"name": ""},
                {"name": "A=B"},
                {"name": "my.var-1"},
                {
                    "name": "X",
                    "value": "v",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                },
                {"name": "Y", "valueFrom": {}},
                {
                    "name": "Z",
                    "valueFrom": {
                        "configMapKeyRef": {"name": "c", "key": "k"},
                        "secretKeyRef": {"name": "s", "key": "k"},
                    },
                },
                {"name": "W", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}},
                {"name": "V", "valueFrom": {"secretKeyRef": {"name": "s", "key": "a/b"}}},
            ]
        )
    )
    assert causes(obj) == [
        "spec.containers[0].env[0].name: Required value",
        (
            'spec.containers[0].env[1].name: Invalid value: "A=B": a valid environment variable '
            "name must consist only of printable ASCII characters other than '='"
        ),
        (
            'spec.containers[0].env[3].valueFrom: Invalid value: "": may not be specified when '
            "`value` is not empty"
        ),
        (
            'spec.containers[0].env[4].valueFrom: Invalid value: "": must specify one of: '
            "`fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"
        ),
        (
            'spec.containers[0].env[5].valueFrom: Invalid value: "": may not have more than one '
            "field specified at a time"
        ),
        (
            'spec.containers[0].env[6].valueFrom.fieldRef.fieldPath: Invalid value: "spec.bogus": '
            "error converting fieldPath: field label not supported: spec.bogus"
        ),
        (
            'spec.containers[0].env[7].valueFrom.secretKeyRef.key: Invalid value: "a/b": a valid '
            "config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
            "or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        ),
    ]


def test_env_field_ref_accepts_labels_subscript_and_refuses_unsupported_paths() -> None:
    obj = pod(
        ctr(
            env=[
                {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}},
            ]
        )
    )
    assert causes(obj) == [
        (
            "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: Unsupported value: "
            '"status.phase": supported values: "metadata.name", "metadata.namespace", '
            '"metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", '
            '"status.hostIPs", "status.podIP", "status.podIPs"'
        )
    ]


def test_env_from_needs_one_source() -> None:
    obj = pod(ctr(envFrom=[{}, {"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]))
    assert causes(obj) == [
        (
            'spec.containers[0].envFrom: Invalid value: "": must specify one of: `configMapRef` or '
            "`secretRef`"
        ),
        (
            'spec.containers[0].envFrom: Invalid value: "": may not have more than one field '
            "specified at a time"
        ),
    ]


def test_volumes_unique_names_and_one_source() -> None:
    obj = pod(
        volumes=[
            {"name": "a", "emptyDir": {}},
            {"name": "a", "emptyDir": {}},
            {"name": "b", "emptyDir": {}, "configMap": {"name": "c"}},
            {"name": "c", "configMap": {"name": "", "defaultMode": 0o1000}},
            {"name": "d", "hostPath": {"path": "/tmp/../etc", "type": "Dir"}},
            {"name": "e", "secret": {"secretName": "s", "items": [{"key": "k", "path": "/abs"}]}},
            {"name": "f", "persistentVolumeClaim": {}},
        ]
    )
    assert causes(obj) == [
        'spec.volumes[1].name: Duplicate value: "a"',
        "spec.volumes[2].configMap: Forbidden: may not specify more than 1 volume type",
        "spec.volumes[3].configMap.name: Required value",
        (
            "spec.volumes[3].configMap.defaultMode: Invalid value: 512: must be a number between 0 "
            "and 0777 (octal), both inclusive"
        ),
        "spec.volumes[4].hostPath.path: Invalid value: \"/tmp/../etc\": must not contain '..'",
        (
            'spec.volumes[4].hostPath.type: Unsupported value: "Dir": supported values: "", '
            '"BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", '
            '"Socket"'
        ),
        'spec.volumes[5].secret.items[0].path: Invalid value: "/abs": must be a relative path',
        "spec.volumes[6].persistentVolumeClaim.claimName: Required value",
    ]


def test_volume_without_source_becomes_empty_dir() -> None:
    assert causes(pod(volumes=[{"name": "scratch"}])) == []


def test_volume_mounts_refer_to_volumes_and_are_unique() -> None:
    obj = pod(
        ctr(
            volumeMounts=[
                {"name": "missing", "mountPath": "/a"},
                {"name": "data", "mountPath": ""},
                {"name": "data", "mountPath": "/a"},
                {"name": "data", "mountPath": "/b", "subPath": "../x"},
            ]
        ),
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    assert causes(obj) == [
        'spec.containers[0].volumeMounts[0].name: Not found: "missing"',
        "spec.containers[0].volumeMounts[1].mountPath: Required value",
        'spec.containers[0].volumeMounts[2].mountPath: Invalid value: "/a": must be unique',
        "spec.containers[0].volumeMounts.subPath: Invalid value: \"../x\": must not contain '..'",
    ]


def test_requests_must_not_exceed_limits() -> None:
    obj = pod(
        ctr(
            resources={
                "requests": {"cpu": "2", "memory": "1Gi"},
                "limits": {"cpu": "1500m", "memory": "1Gi"},
            }
        )
    )
    assert causes(obj) == [
        (
            'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal '
            "to cpu limit of 1500m"
        )
    ]


def test_quantities_must_parse_and_not_be_negative() -> None:
    obj = pod(ctr(resources={"requests": {"cpu": "lots", "memory": "-1Mi"}}))
    assert causes(obj) == [
        (
            'spec.containers[0].resources.requests[cpu]: Invalid value: "lots": quantities must '
            "match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        ),
        (
            'spec.containers[0].resources.requests[memory]: Invalid value: "-1Mi": must be greater '
            "than or equal to 0"
        ),
    ]


def test_resource_names_must_be_standard_or_extended() -> None:
    obj = pod(ctr(resources={"limits": {"gpu": "1", "example.com/dongle": "1.5"}}))
    expected = [
        '{}[gpu]: Invalid value: "gpu": must be a standard resource type or fully qualified',
        '{}[gpu]: Invalid value: "gpu": must be a standard resource for containers',
        "{}[example.com/dongle]: Invalid value: 1500m: must be an integer",
    ]
    # A Pod's requests default to its limits, so they are reported twice.
    assert causes(obj) == [
        line.format(f"spec.containers[0].resources.{part}")
        for part in ("limits", "requests")
        for line in expected
    ]


def test_extended_resource_requests_must_equal_limits() -> None:
    obj = pod(
        ctr(
            resources={
                "limits": {"example.com/dongle": "2"},
                "requests": {"example.com/dongle": "1"},
            }
        )
    )
    assert causes(obj) == [
        (
            'spec.containers[0].resources.requests: Invalid value: "1": must be equal to '
            "example.com/dongle limit of 2"
        )
    ]


def test_pod_level_policies() -> None:
    obj = pod(
        restartPolicy="Sometimes",
        dnsPolicy="Google",
        terminationGracePeriodSeconds=-1,
        activeDeadlineSeconds=0,
        nodeSelector={"bad key!": "x"},
    )
    assert causes(obj) == [
        (
            "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal "
            "to 0"
        ),
        (
            'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
            '"OnFailure", "Never"'
        ),
        (
            'spec.dnsPolicy: Unsupported value: "Google": supported values: '
            '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"'
        ),
        (
            'spec.nodeSelector: Invalid value: "bad key!": name part must consist of alphanumeric '
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        ),
        (
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, "
            "inclusive"
        ),
    ]


def test_dns_policy_none_needs_nameservers() -> None:
    assert causes(pod(dnsPolicy="None")) == [
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
    ]


def test_tolerations_operator_and_effect() -> None:
    obj = pod(
        tolerations=[
            {"operator": "Equal", "value": "x"},
            {"key": "k", "operator": "Exists", "value": "v"},
            {"key": "k", "operator": "Sometimes"},
            {"key": "k", "effect": "Evict"},
            {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5},
        ]
    )
    found = causes(obj)
    assert found[0] == (
        'spec.tolerations[0].operator: Invalid value: "Equal": operator must be '
        'Exists when `key` is empty, which means "match all values and all keys"'
    )
    assert found[1].startswith("spec.tolerations[1].operator: Invalid value: {")
    assert found[1].endswith("value must be empty when `operator` is 'Exists'")
    assert found[2:] == [
        (
            'spec.tolerations[2].operator: Unsupported value: "Sometimes": supported values: '
            '"Equal", "Exists"'
        ),
        (
            'spec.tolerations[3].effect: Unsupported value: "Evict": supported values: '
            '"NoSchedule", "PreferNoSchedule", "NoExecute"'
        ),
        (
            "spec.tolerations[4].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' "
            "when `tolerationSeconds` is set"
        ),
    ]


def test_node_affinity_terms() -> None:
    base = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    obj = pod(
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "zone", "operator": "In"},
                                {"key": "zone", "operator": "Near", "values": ["a"]},
                                {"key": "cpu", "operator": "Gt", "values": ["1", "2"]},
                            ]
                        }
                    ]
                },
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 0, "preference": {"matchExpressions": []}}
                ],
            }
        }
    )
    assert causes(obj) == [
        (
            f"{base}.nodeSelectorTerms[0].matchExpressions[0].values: Required value: must be "
            "specified when `operator` is 'In' or 'NotIn'"
        ),
        (
            f'{base}.nodeSelectorTerms[0].matchExpressions[1].operator: Invalid value: "Near": not a '
            "valid selector operator"
        ),
        (
            f"{base}.nodeSelectorTerms[0].matchExpressions[2].values: Required value: must be "
            "specified single value when `operator` is 'Lt' or 'Gt'"
        ),
        (
            "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: "
            "Invalid value: 0: must be in the range 1-100"
        ),
    ]


def test_pod_anti_affinity_needs_topology_key() -> None:
    obj = pod(
        affinity={
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "web"}}}
                ]
            }
        }
    )
    path = "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
    assert f"{path}.topologyKey: Required value: can not be empty" in causes(obj)


# Updates.


def test_pod_update_may_change_images_and_add_tolerations() -> None:
    old = pod(ctr(image="a:1"))
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "a:2"
    new["spec"]["tolerations"].append({"key": "k", "operator": "Exists"})
    new["metadata"]["labels"]["extra"] = "yes"
    assert causes(new, old) == []


def test_pod_update_may_not_change_command() -> None:
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["command"] = ["sleep", "1"]
    found = causes(new, old)
    assert len(found) == 1
    assert found[0].startswith(
        "spec: Forbidden: pod updates may not change fields other than "
        "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
        "`spec.tolerations` (only additions to existing tolerations),"
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
        "negative)\n"
    )
    assert (
        '  spec.containers[0].command: ["python3","-m","http.server","8080"] -> ["sleep","1"]'
        in found[0]
    )


def test_pod_update_may_not_add_containers_or_drop_tolerations() -> None:
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"].append(ctr("two"))
    apply_defaults("v1", "Pod", new)
    assert causes(new, old) == [
        "spec.containers: Forbidden: pod updates may not add or remove containers"
    ]
    new = copy.deepcopy(old)
    new["spec"]["tolerations"] = []
    assert causes(new, old) == [
        (
            "spec.tolerations: Forbidden: existing toleration can not be modified except its "
            "tolerationSeconds"
        )
    ]


def test_pod_update_active_deadline_may_only_shrink() -> None:
    old = pod(activeDeadlineSeconds=100)
    new = copy.deepcopy(old)
    new["spec"]["activeDeadlineSeconds"] = 50
    assert causes(new, old) == []
    new["spec"]["activeDeadlineSeconds"] = 200
    assert causes(new, old) == [
        (
            "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous "
            "value"
        )
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"containers": "x"},
        {"containers": [5, None, {"name": 5, "ports": "x", "env": [3], "resources": []}]},
        {
            "containers": [
                {"name": "a", "command": ["x"], "livenessProbe": "x", "lifecycle": {"preStop": 5}}
            ],
            "volumes": {"a": 1},
        },
        {"affinity": [], "tolerations": {}, "dnsConfig": 3, "activeDeadlineSeconds": "x"},
    ],
)
def test_pod_validation_never_raises(bad: dict[str, Any]) -> None:
    obj = {"metadata": {"name": "p", "namespace": "d"}, "spec": bad}
    assert isinstance(validate("v1", "Pod", obj), list)
    assert isinstance(validate("v1", "Pod", obj, old=obj), list)
