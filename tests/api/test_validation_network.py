"""Service, Ingress, IngressClass, Endpoints and EndpointSlice rules."""

from __future__ import annotations

import copy
from typing import Any

from procorch.api.registry import apply_defaults, validate


def causes(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [c.render() for c in validate(obj["apiVersion"], obj["kind"], obj, old=old)]


def service(**spec: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}], **spec},
    }
    apply_defaults("v1", "Service", obj)
    return obj


def test_realistic_services_are_valid() -> None:
    assert causes(service(clusterIP="127.1.0.10")) == []
    assert (
        causes(
            service(
                type="NodePort",
                ports=[
                    {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                    {"name": "https", "port": 443, "nodePort": 30443},
                ],
            )
        )
        == []
    )
    assert causes(service(clusterIP="None")) == []
    assert causes(service(type="ExternalName", externalName="db.example.com.", ports=[])) == []


def test_ports_required_except_headless_and_external_name() -> None:
    assert causes(service(ports=[])) == ["spec.ports: Required value"]
    assert causes(service(ports=[], clusterIP="None")) == []


def test_port_names_required_and_unique_with_several_ports() -> None:
    obj = service(
        ports=[
            {"port": 80},
            {"name": "a", "port": 81},
            {"name": "a", "port": 82},
            {"name": "Bad", "port": 83},
        ]
    )
    found = causes(obj)
    assert found[0] == "spec.ports[0].name: Required value"
    assert found[1] == 'spec.ports[2].name: Duplicate value: "a"'
    assert found[2].startswith(
        'spec.ports[3].name: Invalid value: "Bad": a lowercase RFC 1123 label'
    )


def test_port_numbers_protocols_and_target_ports() -> None:
    obj = service(
        ports=[
            {"name": "a", "port": 0, "targetPort": 1},
            {"name": "b", "port": 81, "protocol": "ICMP"},
            {"name": "c", "port": 82, "targetPort": "HTTP"},
            {"name": "d", "port": 81, "protocol": "ICMP"},
        ]
    )
    found = causes(obj)
    assert found[:3] == [
        "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        (
            'spec.ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", '
            '"UDP"'
        ),
        (
            'spec.ports[2].targetPort: Invalid value: "HTTP": must contain only alpha-numeric '
            "characters (a-z, 0-9), and hyphens (-)"
        ),
    ]
    assert 'spec.ports[3]: Duplicate value: {"port":81,"protocol":"ICMP"}' in found


def test_node_ports_only_for_node_port_and_load_balancer_and_in_range() -> None:
    assert causes(service(ports=[{"port": 80, "nodePort": 30080}])) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    ]
    assert causes(service(type="NodePort", ports=[{"port": 80, "nodePort": 8080}])) == [
        (
            "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. "
            "The range of valid ports is 30000-32767"
        )
    ]
    dup = service(
        type="NodePort",
        ports=[
            {"name": "a", "port": 80, "nodePort": 30080},
            {"name": "b", "port": 81, "nodePort": 30080},
        ],
    )
    assert causes(dup) == ["spec.ports[1].nodePort: Duplicate value: 30080"]


def test_service_type_and_session_affinity_values() -> None:
    obj = service(type="Magic", sessionAffinity="Sticky")
    found = causes(obj)
    assert (
        'spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", '
        '"None"' in found
    )
    assert (
        'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", '
        '"ExternalName", "LoadBalancer", "NodePort"' in found
    )


def test_cluster_ip_must_be_an_ip_or_none() -> None:
    assert causes(service(clusterIP="10.0.0.300")) == [
        (
            'spec.clusterIPs[0]: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. '
            "10.9.8.7 or 2001:db8::ffff)"
        )
    ]
    assert causes(service(clusterIP="::1")) == [
        (
            'spec.clusterIPs[0]: Invalid value: "::1": expected an IPv4 value as indicated by '
            "`ipFamilies[0]`"
        )
    ]


def test_external_name_is_required_for_external_name_services() -> None:
    obj = service(type="ExternalName", ports=[])
    assert causes(obj) == ["spec.externalName: Required value"]


def test_headless_node_port_is_refused() -> None:
    assert (
        "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort "
        "services" in causes(service(type="NodePort", clusterIP="None"))
    )


def test_cluster_ip_is_immutable_once_set() -> None:
    old = service(clusterIP="127.1.0.10")
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "127.1.0.11"
    assert causes(new, old) == [
        'spec.clusterIPs[0]: Invalid value: ["127.1.0.11"]: may not change once set'
    ]
    same = copy.deepcopy(old)
    same["spec"]["ports"][0]["port"] = 81
    assert causes(same, old) == []


def test_external_traffic_policy_only_for_external_services() -> None:
    obj = service()
    obj["spec"]["externalTrafficPolicy"] = "Local"
    assert causes(obj) == [
        (
            'spec.externalTrafficPolicy: Invalid value: "Local": may only be set '
            "for externally-accessible services"
        )
    ]


# Ingress.


def ingress(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "rules": [
                {
                    "host": "web.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
            **spec,
        },
    }


def test_realistic_ingress_is_valid() -> None:
    obj = ingress(
        ingressClassName="procorch", tls=[{"hosts": ["*.example.com"], "secretName": "tls"}]
    )
    obj["spec"]["rules"].append(
        {
            "host": "*.apps.example.com",
            "http": {
                "paths": [
                    {
                        "path": "/api",
                        "pathType": "Exact",
                        "backend": {"service": {"name": "api", "port": {"name": "http"}}},
                    }
                ]
            },
        }
    )
    assert causes(obj) == []


def test_ingress_needs_rules_or_default_backend() -> None:
    obj = ingress(rules=[])
    assert causes(obj) == [
        ("spec: Invalid value: []: either `defaultBackend` or `rules` must be specified")
    ]


def test_ingress_host_rules() -> None:
    obj = ingress()
    obj["spec"]["rules"][0]["host"] = "10.0.0.1"
    found = causes(obj)
    assert (
        found[0] == 'spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, '
        "not an IP address"
    )
    obj["spec"]["rules"][0]["host"] = "foo.*.example.com"
    assert causes(obj)[0].startswith(
        'spec.rules[0].host: Invalid value: "foo.*.example.com": a '
        "wildcard DNS-1123 subdomain must start with '*.'"
    )


def test_ingress_path_type_is_required_and_paths_absolute() -> None:
    obj = ingress()
    path = obj["spec"]["rules"][0]["http"]["paths"][0]
    del path["pathType"]
    assert causes(obj) == [
        ("spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified")
    ]
    path["pathType"] = "Prefix"
    path["path"] = "api//v1"
    assert causes(obj) == [
        'spec.rules[0].http.paths[0].path: Invalid value: "api//v1": must be an absolute path',
        "spec.rules[0].http.paths[0].path: Invalid value: \"api//v1\": must not contain '//'",
    ]
    path["pathType"] = "Regex"
    assert causes(obj)[0] == (
        'spec.rules[0].http.paths[0].pathType: Unsupported value: "Regex": '
        'supported values: "Exact", "ImplementationSpecific", "Prefix"'
    )


def test_ingress_backend_rules() -> None:
    obj = ingress()
    backend = obj["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    backend["service"]["port"] = {}
    assert causes(obj) == [
        ("spec.rules[0].http.paths[0].backend: Required value: port name or number is required")
    ]
    backend["service"]["port"] = {"name": "http", "number": 80}
    assert causes(obj) == [
        (
            'spec.rules[0].http.paths[0].backend: Invalid value: "": cannot set '
            "both port name & port number"
        )
    ]
    backend["resource"] = {"kind": "Bucket", "name": "b"}
    assert causes(obj) == [
        (
            'spec.rules[0].http.paths[0].backend: Invalid value: "": cannot set '
            "both resource and service backends"
        )
    ]
    obj["spec"]["rules"][0]["http"]["paths"][0]["backend"] = {}
    assert causes(obj) == [
        (
            'spec.rules[0].http.paths[0].backend: Invalid value: "": resource or '
            "service backend is required"
        )
    ]


def test_ingress_class_controller_and_parameters() -> None:
    ic = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "procorch"},
        "spec": {"controller": "procorch.dev/ingress"},
    }
    assert causes(ic) == []
    ic["spec"]["controller"] = "procorch"
    assert causes(ic) == [
        (
            'spec.controller: Invalid value: "procorch": must be a domain-prefixed '
            'path (such as "acme.io/foo")'
        )
    ]
    old = copy.deepcopy(ic)
    old["spec"]["controller"] = "procorch.dev/ingress"
    ic["spec"]["controller"] = "other.dev/ingress"
    ic["spec"]["parameters"] = {"kind": "Config", "name": "x", "scope": "Namespace"}
    assert causes(ic, old) == [
        "spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'",
        'spec.controller: Invalid value: "other.dev/ingress": field is immutable',
    ]


# Endpoints and EndpointSlices.


def test_endpoints_allow_procorch_loopback_pod_ips() -> None:
    eps = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [
            {
                "addresses": [{"ip": "127.1.2.3", "targetRef": {"kind": "Pod"}}],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            }
        ],
    }
    assert causes(eps) == []
    eps["subsets"].append({"ports": [{"port": 1, "protocol": "TCP"}]})
    eps["subsets"][0]["addresses"].append({"ip": "0.0.0.0"})
    assert causes(eps) == [
        'subsets[0].addresses[1].ip: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)',
        "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
    ]


def test_endpoint_slice_rules() -> None:
    eps = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "namespace": "default"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.1.2.3"], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": 8080}],
    }
    apply_defaults("discovery.k8s.io/v1", "EndpointSlice", eps)
    assert causes(eps) == []
    eps["addressType"] = "IP"
    eps["endpoints"].append({"addresses": []})
    assert causes(eps) == [
        'addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"',
        "endpoints[1].addresses: Required value: must contain at least 1 address",
    ]
    eps["addressType"] = "IPv4"
    eps["endpoints"] = [{"addresses": ["::1"]}]
    assert causes(eps) == [
        ('endpoints[0].addresses[0]: Invalid value: "::1": must be a valid IPv4 address')
    ]
