"""Container environment and command line, checked against the kubelet's rules."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pytest

from procorch.agent.podenv import (
    ConfigError,
    command_line,
    container_env,
    expand,
    format_map,
    go_quote,
)


@dataclass
class Objects:
    """The agent's informer caches, as plain dicts keyed by (namespace, name)."""

    config_maps: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pvcs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.config_maps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.secrets.get((namespace, name))

    def pvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.pvcs.get((namespace, name))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def make_pod(container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "uid": "1111-2222",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": 'say "hi"'},
        },
        "spec": {
            "nodeName": "node-a",
            "serviceAccountName": "builder",
            **spec,
            "containers": [container],
        },
    }


def env_of(
    container: dict[str, Any], objects: Objects | None = None, **kwargs: Any
) -> dict[str, str]:
    container = {"name": "app", "command": ["run"], **container}
    pod = kwargs.pop("pod", None) or make_pod(container)
    return container_env(
        pod,
        container,
        lookups=objects or Objects(),
        node_name="node-a",
        pod_ip="127.1.0.4",
        host_ip="127.0.0.1",
        **kwargs,
    )


# --- $(VAR) expansion ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("$(A)", "a"),
        ("x-$(A)-$(B)-y", "x-a-b-y"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$a"),
        ("$$", "$"),
        ("a$", "a$"),
        ("$", "$"),
        ("$x", "$x"),
        ("$(A", "$(A"),
        ("$()", "$()"),
        ("$(EMPTY)!", "!"),
        ("$($(A))", "$($(A))"),
        ("€$(A)€", "€a€"),
    ],
)
def test_expand_follows_kubernetes_syntax(text: str, expected: str) -> None:
    assert expand(text, {"A": "a", "B": "b", "EMPTY": ""}) == expected


def test_command_line_expands_command_and_args() -> None:
    container = {"command": ["python", "-m", "$(MOD)"], "args": ["--port=$(PORT)", "$$(PORT)"]}
    assert command_line(container, {"MOD": "http.server", "PORT": "8080"}) == [
        "python",
        "-m",
        "http.server",
        "--port=8080",
        "$(PORT)",
    ]


# --- order and precedence -----------------------------------------------------------------------


def test_injected_variables_come_first_and_can_be_overridden() -> None:
    env = env_of(
        {
            "ports": [{"containerPort": 8080}, {"containerPort": 9090}],
            "env": [{"name": "PORT", "value": "7000"}],
        },
        extra={"EXTRA": "1"},
    )
    assert list(env)[:7] == [
        "POD_IP",
        "POD_NAME",
        "POD_NAMESPACE",
        "NODE_NAME",
        "PORT",
        "PYTHONUNBUFFERED",
        "EXTRA",
    ]
    assert env["POD_IP"] == "127.1.0.4"
    assert env["POD_NAME"] == "web-1"
    assert env["POD_NAMESPACE"] == "default"
    assert env["NODE_NAME"] == "node-a"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PORT"] == "7000"


def test_port_is_the_first_container_port_and_absent_without_ports() -> None:
    assert env_of({"ports": [{"name": "http", "containerPort": 8080}]})["PORT"] == "8080"
    assert "PORT" not in env_of({})


def test_env_overrides_env_from_and_env_from_overrides_earlier_env_from() -> None:
    objects = Objects(
        config_maps={
            ("default", "one"): {"data": {"LEVEL": "debug", "COLOR": "red"}},
            ("default", "two"): {"data": {"COLOR": "blue"}},
        }
    )
    env = env_of(
        {
            "envFrom": [{"configMapRef": {"name": "one"}}, {"configMapRef": {"name": "two"}}],
            "env": [{"name": "LEVEL", "value": "info"}],
        },
        objects,
    )
    assert env["LEVEL"] == "info"
    assert env["COLOR"] == "blue"


def test_value_expands_against_variables_defined_before_it_only() -> None:
    env = env_of(
        {
            "env": [
                {"name": "A", "value": "a"},
                {"name": "AB", "value": "$(A)-$(B)"},
                {"name": "B", "value": "b"},
                {"name": "SELF", "value": "$(POD_NAME).$(POD_NAMESPACE)"},
            ]
        }
    )
    assert env["AB"] == "a-$(B)"
    assert env["SELF"] == "web-1.default"


def test_service_variables_feed_expansion_and_fill_only_undefined_names() -> None:
    service_env = {"DB_SERVICE_HOST": "10.0.0.5", "DB_SERVICE_PORT": "5432", "A": "service"}
    env = env_of(
        {
            "env": [
                {"name": "DSN", "value": "$(DB_SERVICE_HOST):$(DB_SERVICE_PORT)"},
                {"name": "A", "value": "mine"},
            ]
        },
        service_env=service_env,
    )
    assert env["DSN"] == "10.0.0.5:5432"
    assert env["A"] == "mine"
    assert env["DB_SERVICE_HOST"] == "10.0.0.5"
    assert list(env)[-2:] == ["DB_SERVICE_HOST", "DB_SERVICE_PORT"]


def test_env_defined_value_wins_over_service_variable_in_expansion() -> None:
    env = env_of(
        {"env": [{"name": "HOST", "value": "mine"}, {"name": "URL", "value": "http://$(HOST)"}]},
        service_env={"HOST": "service"},
    )
    assert env["URL"] == "http://mine"


def test_empty_value_without_source_is_set_empty() -> None:
    assert env_of({"env": [{"name": "EMPTY"}]})["EMPTY"] == ""


# --- envFrom ------------------------------------------------------------------------------------


def test_env_from_prefix_and_secret_decoding() -> None:
    objects = Objects(
        config_maps={("default", "cfg"): {"data": {"LEVEL": "debug"}}},
        secrets={("default", "db"): {"data": {"password": b64("s3cr€t")}}},
    )
    env = env_of(
        {
            "envFrom": [
                {"prefix": "CFG_", "configMapRef": {"name": "cfg"}},
                {"prefix": "DB_", "secretRef": {"name": "db"}},
            ]
        },
        objects,
    )
    assert env["CFG_LEVEL"] == "debug"
    assert env["DB_password"] == "s3cr€t"
    assert "LEVEL" not in env


def test_env_from_skips_keys_that_are_not_environment_variable_names() -> None:
    objects = Objects(
        config_maps={
            ("default", "cfg"): {
                "data": {"OK": "1", "1st.key-x": "2", "bad=key": "3", "tab\tkey": "4"}
            }
        }
    )
    env = env_of({"envFrom": [{"configMapRef": {"name": "cfg"}}]}, objects)
    assert env["OK"] == "1"
    # Kubernetes 1.32 relaxed names: any printable ASCII but '='.
    assert env["1st.key-x"] == "2"
    assert "bad=key" not in env
    assert "tab\tkey" not in env


def test_env_from_missing_config_map_and_secret_are_errors_unless_optional() -> None:
    with pytest.raises(ConfigError, match='^configmap "app-config" not found$'):
        env_of({"envFrom": [{"configMapRef": {"name": "app-config"}}]})
    with pytest.raises(ConfigError, match='^secret "db" not found$'):
        env_of({"envFrom": [{"secretRef": {"name": "db"}}]})
    env = env_of(
        {
            "envFrom": [
                {"configMapRef": {"name": "app-config", "optional": True}},
                {"secretRef": {"name": "db", "optional": True}},
            ]
        }
    )
    assert "POD_IP" in env


# --- valueFrom ----------------------------------------------------------------------------------


def test_config_map_and_secret_key_refs() -> None:
    objects = Objects(
        config_maps={("default", "app-config"): {"data": {"LEVEL": "warn"}}},
        secrets={("default", "db"): {"data": {"password": b64("hunter2"), "bin": "/w=="}}},
    )
    env = env_of(
        {
            "env": [
                {
                    "name": "LEVEL",
                    "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "LEVEL"}},
                },
                {
                    "name": "PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                },
                {"name": "BIN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "bin"}}},
            ]
        },
        objects,
    )
    assert env["LEVEL"] == "warn"
    assert env["PASSWORD"] == "hunter2"
    assert env["BIN"] == "\ufffd"


def test_missing_objects_and_keys_have_kubelet_messages() -> None:
    objects = Objects(
        config_maps={("default", "app-config"): {"data": {}}},
        secrets={("default", "db"): {"data": {}}},
    )
    cases = [
        ({"configMapKeyRef": {"name": "nope", "key": "LEVEL"}}, 'configmap "nope" not found'),
        (
            {"configMapKeyRef": {"name": "app-config", "key": "LEVEL"}},
            "couldn't find key LEVEL in ConfigMap default/app-config",
        ),
        ({"secretKeyRef": {"name": "nope", "key": "password"}}, 'secret "nope" not found'),
        (
            {"secretKeyRef": {"name": "db", "key": "password"}},
            "couldn't find key password in Secret default/db",
        ),
    ]
    for source, message in cases:
        with pytest.raises(ConfigError) as caught:
            env_of({"env": [{"name": "X", "valueFrom": source}]}, objects)
        assert str(caught.value) == message


def test_optional_key_refs_leave_the_variable_unset() -> None:
    objects = Objects(config_maps={("default", "app-config"): {"data": {}}})
    env = env_of(
        {
            "env": [
                {
                    "name": "A",
                    "valueFrom": {
                        "configMapKeyRef": {"name": "app-config", "key": "K", "optional": True}
                    },
                },
                {
                    "name": "B",
                    "valueFrom": {
                        "configMapKeyRef": {"name": "gone", "key": "K", "optional": True}
                    },
                },
                {
                    "name": "C",
                    "valueFrom": {"secretKeyRef": {"name": "gone", "key": "K", "optional": True}},
                },
            ]
        },
        objects,
    )
    assert not {"A", "B", "C"} & set(env)


def test_value_from_values_are_not_expanded() -> None:
    objects = Objects(config_maps={("default", "c"): {"data": {"V": "$(POD_NAME)"}}})
    env = env_of(
        {"env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "V"}}}]},
        objects,
    )
    assert env["V"] == "$(POD_NAME)"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metadata.name", "web-1"),
        ("metadata.namespace", "default"),
        ("metadata.uid", "1111-2222"),
        ("metadata.labels['app']", "web"),
        ("metadata.labels['missing']", ""),
        ("metadata.annotations['note']", 'say "hi"'),
        ("metadata.labels", 'app="web"\ntier="front"'),
        ("spec.nodeName", "node-a"),
        ("spec.serviceAccountName", "builder"),
        ("status.hostIP", "127.0.0.1"),
        ("status.hostIPs", "127.0.0.1"),
        ("status.podIP", "127.1.0.4"),
        ("status.podIPs", "127.1.0.4"),
    ],
)
def test_field_refs(path: str, expected: str) -> None:
    env = env_of(
        {"env": [{"name": "F", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}]}
    )
    assert env["F"] == expected


def test_unsupported_field_ref_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported fieldPath: status.phase"):
        env_of({"env": [{"name": "F", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}]})


def resource_env(
    resource: str, divisor: str | None = None, *, resources: dict[str, Any], **kwargs: Any
) -> str:
    ref: dict[str, Any] = {"resource": resource}
    if divisor is not None:
        ref["divisor"] = divisor
    return env_of(
        {"resources": resources, "env": [{"name": "R", "valueFrom": {"resourceFieldRef": ref}}]},
        **kwargs,
    )["R"]


def test_resource_field_refs_divide_and_round_up() -> None:
    resources = {
        "limits": {"cpu": "1500m", "memory": "129Mi", "ephemeral-storage": "1Gi"},
        "requests": {"cpu": "250m", "memory": "64Mi", "ephemeral-storage": "512Mi"},
    }
    assert resource_env("limits.cpu", resources=resources) == "2"
    assert resource_env("limits.cpu", "1m", resources=resources) == "1500"
    assert resource_env("requests.cpu", resources=resources) == "1"
    assert resource_env("requests.cpu", "1m", resources=resources) == "250"
    assert resource_env("limits.memory", resources=resources) == str(129 * 1024**2)
    assert resource_env("limits.memory", "1Mi", resources=resources) == "129"
    assert resource_env("limits.memory", "1Gi", resources=resources) == "1"
    assert resource_env("requests.memory", "1M", resources=resources) == "68"
    assert resource_env("limits.ephemeral-storage", "1Mi", resources=resources) == "1024"
    assert resource_env("requests.ephemeral-storage", "1Gi", resources=resources) == "1"


def test_unset_limits_fall_back_to_node_allocatable_and_requests_to_zero() -> None:
    allocatable = {"cpu": "8", "memory": "16Gi", "ephemeral-storage": "100Gi"}
    assert resource_env("limits.cpu", resources={}, node_allocatable=allocatable) == "8"
    assert resource_env("limits.memory", "1Gi", resources={}, node_allocatable=allocatable) == "16"
    assert (
        resource_env("limits.ephemeral-storage", "1Gi", resources={}, node_allocatable=allocatable)
        == "100"
    )
    assert resource_env("requests.cpu", "1m", resources={}, node_allocatable=allocatable) == "0"


def test_resource_field_ref_of_another_container() -> None:
    sidecar = {"name": "sidecar", "command": ["x"], "resources": {"limits": {"cpu": "3"}}}
    main = {
        "name": "app",
        "command": ["run"],
        "env": [
            {
                "name": "R",
                "valueFrom": {
                    "resourceFieldRef": {
                        "containerName": "sidecar",
                        "resource": "limits.cpu",
                        "divisor": "1m",
                    }
                },
            }
        ],
    }
    pod = make_pod(main)
    pod["spec"]["containers"].append(sidecar)
    assert env_of(main, pod=pod)["R"] == "3000"


# --- Go quoting, as the downward API renders maps ------------------------------------------------


def test_format_map_quotes_like_go() -> None:
    assert format_map({"b": "2", "a": 'x"y\\z'}) == 'a="x\\"y\\\\z"\nb="2"'
    assert go_quote("tab\tnl\nbell\x07del\x7fé\u200b") == '"tab\\tnl\\nbell\\adel\\x7fé\\u200b"'
