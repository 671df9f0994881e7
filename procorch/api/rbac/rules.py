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


@dataclass(frozen=True, slots=True)
class Rule:
    """A ``PolicyRule`` made ready for decisions: sets to look values up in."""

    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    names: frozenset[str]
    urls: tuple[str, ...]

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> Rule:
        return cls(
            frozenset(_strings(rule, "verbs")),
            frozenset(_strings(rule, "apiGroups")),
            frozenset(_strings(rule, "resources")),
            frozenset(_strings(rule, "resourceNames")),
            tuple(_strings(rule, "nonResourceURLs")),
        )

    def covers(self, request: Request) -> bool:
        if request.verb not in self.verbs and ALL not in self.verbs:
            return False
        if not request.resource:
            return _path_matches(self.urls, request.path)
        if request.group not in self.groups and ALL not in self.groups:
            return False
        resources = self.resources
        if ALL not in resources:
            if not request.subresource:
                if request.resource not in resources:
                    return False
            elif (
                f"{request.resource}/{request.subresource}" not in resources
                and f"*/{request.subresource}" not in resources
            ):
                return False
        return not self.names or request.name in self.names


def _path_matches(urls: tuple[str, ...], path: str) -> bool:
    for url in urls:
        if url == ALL or url == path:
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def rule_covers(rule: Mapping[str, Any], request: Request) -> bool:
    return Rule.of(rule).covers(request)


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
    owned = [Rule.of(r) for r in rules if isinstance(r, Mapping)]
    return all(any(o.covers(request) for o in owned) for request in _requests(rule))


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
