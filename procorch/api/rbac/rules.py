"""Whether a ``PolicyRule`` covers a request, as Kubernetes' ``RuleAllows`` decides.

A resource request is covered when the rule names its verb, its API group, its resource
(``pods``; with a subresource ``pods/log``, or ``*/log``; ``*`` for all) and, if the rule
lists ``resourceNames``, its object's name. A non-resource request (``/healthz``) is covered
when the rule names its verb and its path, or a prefix of it ending in ``*``. Pure data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ALL = "*"


@dataclass(frozen=True)
class Request:
    """What a request wants, in RBAC's terms (``path`` for non-resource requests)."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


def _strings(rule: Mapping[str, Any], field: str) -> list[str]:
    value = rule.get(field)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _resource_matches(resources: list[str], request: Request) -> bool:
    if ALL in resources:
        return True
    if not request.subresource:
        return request.resource in resources
    combined = f"{request.resource}/{request.subresource}"
    return combined in resources or f"*/{request.subresource}" in resources


def _path_matches(urls: list[str], path: str) -> bool:
    for url in urls:
        if url == ALL or url == path:
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def rule_covers(rule: Mapping[str, Any], request: Request) -> bool:
    verbs = _strings(rule, "verbs")
    if ALL not in verbs and request.verb not in verbs:
        return False
    if not request.is_resource:
        return _path_matches(_strings(rule, "nonResourceURLs"), request.path)
    groups = _strings(rule, "apiGroups")
    if ALL not in groups and request.group not in groups:
        return False
    if not _resource_matches(_strings(rule, "resources"), request):
        return False
    names = _strings(rule, "resourceNames")
    return not names or request.name in names


def covers(rules: Iterable[Mapping[str, Any]], request: Request) -> bool:
    return any(rule_covers(rule, request) for rule in rules if isinstance(rule, Mapping))


def _requests(rule: Mapping[str, Any]) -> list[Request]:
    """``rule`` broken down into the single requests it grants (``*`` kept as a value, so
    that only a rule granting ``*`` covers it)."""
    verbs = _strings(rule, "verbs")
    urls = _strings(rule, "nonResourceURLs")
    if urls:
        return [Request(verb=v, path=u) for v in verbs for u in urls]
    out: list[Request] = []
    names = _strings(rule, "resourceNames") or [""]
    for verb in verbs:
        for group in _strings(rule, "apiGroups"):
            for resource in _strings(rule, "resources"):
                plural, _, sub = resource.partition("/")
                out.extend(
                    Request(verb=verb, group=group, resource=plural, subresource=sub, name=n)
                    for n in names
                )
    return out


def held(rules: Iterable[Mapping[str, Any]], rule: Mapping[str, Any]) -> bool:
    """Whether ``rules`` grant everything ``rule`` grants (Kubernetes' ``Covers``, which
    RBAC's escalation check uses)."""
    owned = [r for r in rules if isinstance(r, Mapping)]
    return all(covers(owned, request) for request in _requests(rule))


def compact(rule: Mapping[str, Any]) -> str:
    """A rule as Kubernetes prints it in a refusal: ``{APIGroups:[""], Resources:["pods"],
    Verbs:["get"]}``."""
    parts = []
    for field, label in (
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("resourceNames", "ResourceNames"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("verbs", "Verbs"),
    ):
        values = _strings(rule, field)
        if values:
            parts.append(f"{label}:[" + " ".join(f'"{v}"' for v in values) + "]")
    return "{" + ", ".join(parts) + "}"
