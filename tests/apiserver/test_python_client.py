"""The official ``kubernetes`` Python client against procorch, for every served kind.

The client is synchronous, so its calls run in threads while the server runs on the test's
event loop.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client as k8s
from kubernetes import config, watch
from kubernetes.client.exceptions import ApiException

from procorch.api.resources import RESOURCES, ResourceType

POD_SPEC = {"containers": [{"name": "main", "command": ["sleep", "10"]}]}
TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}

SAMPLES: dict[str, dict[str, Any]] = {
    "Namespace": {},
    "Pod": {"spec": POD_SPEC},
    "Node": {"spec": {}},
    "ConfigMap": {"data": {"a": "1"}},
    "Secret": {"stringData": {"a": "1"}},
    "Service": {"spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}},
    "Endpoints": {"subsets": [{"addresses": [{"ip": "127.0.0.2"}], "ports": [{"port": 80}]}]},
    "Event": {
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Tested",
        "message": "hello",
        "type": "Normal",
    },
    "ServiceAccount": {},
    "PersistentVolumeClaim": {
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    },
    # Paused: the deployment controller then has nothing to roll out, so it writes only its
    # first status and the scenario's reads, replaces and watch see no writes of its own.
    "Deployment": {
        "spec": {"paused": True, "selector": {"matchLabels": {"app": "x"}}, "template": TEMPLATE}
    },
    "ReplicaSet": {"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": TEMPLATE}},
    "DaemonSet": {"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": TEMPLATE}},
    "ControllerRevision": {"data": {"spec": {"template": TEMPLATE}}, "revision": 1},
    "Job": {"spec": {"template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}}},
    "CronJob": {
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "spec": {"template": {"spec": {**POD_SPEC, "restartPolicy": "OnFailure"}}}
            },
        }
    },
    "Ingress": {
        "spec": {
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    }
                }
            ]
        }
    },
    "IngressClass": {"spec": {"controller": "procorch.io/ingress"}},
    "EndpointSlice": {
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.2"]}],
        "ports": [{"port": 80}],
    },
    "Lease": {"spec": {"holderIdentity": "me", "leaseDurationSeconds": 10}},
    "ReplicationController": {
        "spec": {"replicas": 0, "selector": {"app": "x"}, "template": TEMPLATE}
    },
    "PersistentVolume": {
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/pv"},
        }
    },
    "StatefulSet": {
        "spec": {
            "serviceName": "x",
            "replicas": 0,
            "selector": {"matchLabels": {"app": "x"}},
            "template": TEMPLATE,
        }
    },
    "CustomResourceDefinition": {
        "spec": {
            "group": "python.example.com",
            "scope": "Namespaced",
            "names": {"plural": "gizmos", "kind": "Gizmo"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        }
    },
    "HorizontalPodAutoscaler": {
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 3,
        }
    },
    "PodDisruptionBudget": {"spec": {"minAvailable": 1, "selector": {"matchLabels": {"a": "b"}}}},
    "Role": {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    "RoleBinding": {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "alice"}],
    },
    "ClusterRole": {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    "ClusterRoleBinding": {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"},
        "subjects": [{"kind": "User", "name": "alice"}],
    },
}

API_CLASSES = {
    "": "CoreV1Api",
    "apps": "AppsV1Api",
    "batch": "BatchV1Api",
    "networking.k8s.io": "NetworkingV1Api",
    "discovery.k8s.io": "DiscoveryV1Api",
    "coordination.k8s.io": "CoordinationV1Api",
    "autoscaling": "AutoscalingV2Api",
    "policy": "PolicyV1Api",
    "rbac.authorization.k8s.io": "RbacAuthorizationV1Api",
    "apiextensions.k8s.io": "ApiextensionsV1Api",
}


def snake(kind: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()


def test_every_served_kind_has_a_sample() -> None:
    assert {rt.kind for rt in RESOURCES} == set(SAMPLES)


@pytest.fixture
def api_client(procorch):
    client = config.new_client_from_config(config_file=str(procorch.kubeconfig_path))
    yield client
    client.close()


class Verbs:
    """The typed client's methods for one kind."""

    def __init__(self, api_client: Any, rt: ResourceType) -> None:
        self.api = getattr(k8s, API_CLASSES[rt.group])(api_client)
        self.rt = rt
        self.scope = "namespaced_" if rt.namespaced else ""
        self.ns = {"namespace": "default"} if rt.namespaced else {}
        self.name = snake(rt.kind)

    def call(self, verb: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.api, f"{verb}_{self.scope}{self.name}")(*args, **self.ns, **kwargs)

    def list_fn(self) -> Any:
        return getattr(self.api, f"list_{self.scope}{self.name}")


def body(rt: ResourceType, name: str) -> dict[str, Any]:
    obj = {
        "apiVersion": rt.api_version,
        "kind": rt.kind,
        "metadata": {"name": name, "labels": {"suite": "python"}},
        **SAMPLES[rt.kind],
    }
    if rt.namespaced:
        obj["metadata"]["namespace"] = "default"
    return obj


@pytest.mark.parametrize("rt", RESOURCES, ids=lambda rt: rt.kind)
async def test_python_client_drives_every_kind(api_client, rt: ResourceType) -> None:
    verbs = Verbs(api_client, rt)
    name = f"py-{snake(rt.kind).replace('_', '-')}"
    if rt.kind == "CustomResourceDefinition":
        name = "gizmos.python.example.com"  # a CRD is named for its resource

    def scenario() -> None:
        created = verbs.call("create", body=body(rt, name))
        assert created.metadata.name == name
        read = verbs.call("read", name)
        assert read.metadata.uid == created.metadata.uid
        listed = verbs.call("list", label_selector="suite=python")
        assert name in [item.metadata.name for item in listed.items]
        patched = verbs.call("patch", name, body={"metadata": {"labels": {"patched": "yes"}}})
        assert patched.metadata.labels["patched"] == "yes"
        for _ in range(50):  # a controller may write the object between read and replace
            fresh = api_client.sanitize_for_serialization(verbs.call("read", name))
            fresh["metadata"]["annotations"] = {"replaced": "yes"}
            try:
                replaced = verbs.call("replace", name, body=fresh)
                break
            except ApiException as raced:
                if raced.status != 409:
                    raise
                time.sleep(0.02)
        # A DaemonSet's template generation is the server's to keep, as in Kubernetes.
        server_kept = (
            {"deprecated.daemonset.template.generation": "1"} if rt.kind == "DaemonSet" else {}
        )
        assert replaced.metadata.annotations == {"replaced": "yes", **server_kept}
        stale = dict(fresh, metadata=dict(fresh["metadata"]))
        with pytest.raises(ApiException) as conflict:
            verbs.call("replace", name, body=stale)
        assert conflict.value.status == 409
        # A watch from no resourceVersion starts with the object, as ADDED (stopped there:
        # waiting out its timeout cost a second per kind).
        events = watch.Watch().stream(
            verbs.list_fn(), **verbs.ns, field_selector=f"metadata.name={name}", timeout_seconds=5
        )
        first = next(events)
        events.close()  # ends the request
        assert (first["type"], first["object"].metadata.name) == ("ADDED", name)
        verbs.call("delete", name)
        for _ in range(100):  # a namespace terminates first, then goes
            try:
                verbs.call("read", name)
            except ApiException as missing:
                assert missing.status == 404
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"{rt.kind} {name} still exists after delete")

    await asyncio.to_thread(scenario)


async def test_python_client_sees_errors_as_api_exceptions(api_client) -> None:
    core = k8s.CoreV1Api(api_client)

    def scenario() -> None:
        with pytest.raises(ApiException) as missing:
            core.read_namespaced_config_map("nope", "default")
        assert missing.value.status == 404
        core.create_namespaced_config_map("default", body(RESOURCES[3], "dup"))
        with pytest.raises(ApiException) as dup:
            core.create_namespaced_config_map("default", body(RESOURCES[3], "dup"))
        assert dup.value.status == 409
        version = k8s.VersionApi(api_client).get_code()
        assert version.minor == "32"

    await asyncio.to_thread(scenario)
