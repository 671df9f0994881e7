"""The route table alone: Kubernetes' host and path matching rules (pure, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest

from procorch.proxy.ingress import routes
from procorch.proxy.ingress.routes import Backend

B = Backend


def ingress(
    name: str,
    rules: list[dict[str, Any]],
    *,
    created: str = "2026-01-01T00:00:00Z",
    default: str | None = None,
    namespace: str = "default",
    class_name: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"rules": rules}
    if default:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    if class_name:
        spec["ingressClassName"] = class_name
    return {
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": spec,
    }


def paths(*entries: tuple[str, str, str], host: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": path,
                    "pathType": kind,
                    "backend": {"service": {"name": svc, "port": {"number": 80}}},
                }
                for path, kind, svc in entries
            ]
        }
    }
    if host:
        rule["host"] = host
    return rule


def svc(name: str) -> Backend:
    return B("default", name, 80)


# The table of examples in the Kubernetes Ingress documentation ("Examples" under Path types).
@pytest.mark.parametrize(
    ("kind", "path", "request_path", "matches"),
    [
        ("Prefix", "/", "/", True),
        ("Prefix", "/", "/anything/at/all", True),
        ("Exact", "/foo", "/foo", True),
        ("Exact", "/foo", "/bar", False),
        ("Exact", "/foo", "/foo/", False),
        ("Exact", "/foo/", "/foo", False),
        ("Prefix", "/foo", "/foo", True),
        ("Prefix", "/foo", "/foo/", True),
        ("Prefix", "/foo/", "/foo", True),
        ("Prefix", "/foo/", "/foo/", True),
        ("Prefix", "/aaa/bb", "/aaa/bbb", False),
        ("Prefix", "/aaa/bbb", "/aaa/bbb", True),
        ("Prefix", "/aaa/bbb/", "/aaa/bbb", True),
        ("Prefix", "/aaa/bbb", "/aaa/bbb/", True),
        ("Prefix", "/aaa/bbb", "/aaa/bbb/ccc", True),
        ("Prefix", "/aaa/bbb", "/aaa/bbbxyz", False),
        ("Prefix", "/api", "/apix", False),
        ("ImplementationSpecific", "/api", "/apix", True),
        ("ImplementationSpecific", "", "/x", True),
    ],
)
def test_path_types_follow_the_kubernetes_examples(
    kind: str, path: str, request_path: str, matches: bool
) -> None:
    table = routes.build([ingress("a", [paths((path, kind, "web"))])])
    assert (table.match("any.host", request_path) == svc("web")) is matches


def test_the_longest_path_wins_and_exact_beats_prefix_at_equal_length() -> None:
    table = routes.build(
        [
            ingress(
                "a",
                [
                    paths(
                        ("/", "Prefix", "root"),
                        ("/api", "Prefix", "api"),
                        ("/api/v2", "Prefix", "v2"),
                        ("/api/v2", "Exact", "v2-exact"),
                        ("/api/v2/x", "ImplementationSpecific", "impl"),
                    )
                ],
            )
        ]
    )
    assert table.match("h", "/api/v1") == svc("api")
    assert table.match("h", "/api/v2") == svc("v2-exact")
    assert table.match("h", "/api/v2/") == svc("v2")
    assert table.match("h", "/api/v2/xyz") == svc("impl")
    assert table.match("h", "/other") == svc("root")


def test_hosts_exact_then_wildcard_then_hostless_then_default_backend() -> None:
    table = routes.build(
        [
            ingress(
                "a",
                [
                    paths(("/", "Prefix", "exact"), host="foo.example.com"),
                    paths(("/only", "Exact", "wild"), host="*.example.com"),
                    paths(("/", "Prefix", "wild-root"), host="*.example.com"),
                    paths(("/shared", "Prefix", "hostless")),
                ],
                default="fallback",
            )
        ]
    )
    assert table.match("foo.example.com", "/x") == svc("exact")
    assert table.match("bar.example.com", "/only") == svc("wild")
    assert table.match("bar.example.com", "/x") == svc("wild-root")
    # A wildcard covers exactly one label.
    assert table.match("a.b.example.com", "/x") == svc("fallback")
    assert table.match("example.com", "/x") == svc("fallback")
    assert table.match("example.com", "/shared/y") == svc("hostless")
    assert table.match("other.org", "/") == svc("fallback")


def test_no_rule_and_no_default_backend_is_no_match() -> None:
    table = routes.build([ingress("a", [paths(("/api", "Prefix", "api"), host="h.example")])])
    assert table.match("h.example", "/nope") is None
    assert table.match("other", "/api") is None


def test_the_oldest_ingress_wins_a_conflict() -> None:
    young = ingress("young", [paths(("/", "Prefix", "young"))], created="2026-02-01T00:00:00Z")
    old = ingress("old", [paths(("/", "Prefix", "old"))], created="2026-01-01T00:00:00Z")
    assert routes.build([young, old]).match("h", "/") == svc("old")


def test_request_paths_are_normalized_for_matching() -> None:
    table = routes.build(
        [ingress("a", [paths(("/api", "Prefix", "api"), ("/admin", "Prefix", "admin"))])]
    )
    assert table.match("h", "//api//x") == svc("api")
    assert table.match("h", "/api/../admin/x") == svc("admin")
    assert table.match("h", "/api/./x") == svc("api")


def test_hosts_are_compared_without_port_and_case() -> None:
    assert routes.normalize_host("Foo.Example.COM:8080") == "foo.example.com"
    assert routes.normalize_host("[::1]:80") == "[::1]"
    assert routes.normalize_host("foo.example.com.") == "foo.example.com"


def test_class_ownership() -> None:
    ours = {"metadata": {"name": "procorch"}, "spec": {"controller": "procorch.io/ingress"}}
    other = {"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}
    default = {"ingressclass.kubernetes.io/is-default-class": "true"}
    ours_default = {**ours, "metadata": {"name": "procorch", "annotations": default}}
    other_default = {**other, "metadata": {"name": "nginx", "annotations": default}}

    names, default_ours = routes.owned_classes([ours_default, other])
    assert names == {"procorch"} and default_ours
    assert routes.is_ours(ingress("a", [], class_name="procorch"), names, default_ours)
    assert not routes.is_ours(ingress("a", [], class_name="nginx"), names, default_ours)
    assert routes.is_ours(ingress("a", []), names, default_ours)
    legacy = ingress("a", [])
    legacy["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "nginx"}
    assert not routes.is_ours(legacy, names, default_ours)

    names, default_ours = routes.owned_classes([ours, other_default])
    assert not routes.is_ours(ingress("a", []), names, default_ours)
    assert routes.is_ours(ingress("a", [], class_name="procorch"), names, default_ours)
