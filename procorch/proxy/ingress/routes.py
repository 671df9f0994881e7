"""The route table: Ingress objects compiled into a host → path → backend lookup. Pure data.

Matching follows Kubernetes' Ingress rules:

* **Hosts.** An exact host (``foo.bar.com``) beats a wildcard (``*.bar.com``, which matches
  exactly one more DNS label: ``a.bar.com``, not ``bar.com`` nor ``a.b.bar.com``), which beats
  rules without a host. A request that matches no path under its host falls through to the next
  kind, then to the oldest ``spec.defaultBackend``.
* **Paths.** ``Exact`` matches the path as is (case-sensitive, ``/foo`` is not ``/foo/``).
  ``Prefix`` matches whole ``/``-separated elements: ``/api`` and ``/api/`` match ``/api``,
  ``/api/`` and ``/api/x`` but not ``/apix``. ``ImplementationSpecific`` is a plain string
  prefix (as an nginx ``location``), an empty path meaning ``/``. The longest match wins; at
  equal length ``Exact`` beats ``Prefix`` beats ``ImplementationSpecific``.
* **Conflicts.** When Ingresses declare the same host, path and type, the oldest one (by
  creation time, then namespace/name) wins, as ingress-nginx does.

Request paths are matched with the query removed, runs of ``/`` merged and dot-segments
resolved (what nginx matches on too); the request itself is forwarded unchanged.

Backends are Services by name and port; ``resource`` backends are not supported and ignored.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from procorch.proxy.ingress.settings import CONTROLLER

Obj = dict[str, Any]

EXACT, PREFIX, IMPL = 0, 1, 2
_PATH_TYPES = {"Exact": EXACT, "Prefix": PREFIX, "ImplementationSpecific": IMPL}
_DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
_CACHE_LIMIT = 8192


class Backend(NamedTuple):
    """A Service port in a namespace: ``port`` is a number or a port name. (A tuple: it is a
    dict key on every request, and tuples hash and compare in C.)"""

    namespace: str
    service: str
    port: int | str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.service}:{self.port}"


@dataclass
class HostRoutes:
    exact: dict[str, Backend] = field(default_factory=dict)
    # (match length, kind, pattern, backend) sorted longest first, then by kind.
    prefixes: list[tuple[int, int, str, Backend]] = field(default_factory=list)

    def add(self, kind: int, path: str, backend: Backend) -> None:
        if kind == EXACT:
            self.exact.setdefault(path, backend)
            return
        if kind == PREFIX:
            pattern = path.rstrip("/")  # "/foo/" is "/foo"; "/" is "" and matches every path
        else:
            pattern = path or "/"
        if any(k == kind and p == pattern for _, k, p, _ in self.prefixes):
            return  # an older Ingress declared it first
        self.prefixes.append((len(pattern), kind, pattern, backend))

    def finish(self) -> None:
        self.prefixes.sort(key=lambda entry: (-entry[0], entry[1]))

    def match(self, path: str) -> Backend | None:
        found = self.exact.get(path)
        if found is not None:
            return found
        for _, kind, pattern, backend in self.prefixes:
            if kind == PREFIX:
                if path.startswith(pattern) and (
                    len(path) == len(pattern) or path[len(pattern)] == "/"
                ):
                    return backend
            elif path.startswith(pattern):
                return backend
        return None

    def __bool__(self) -> bool:
        return bool(self.exact or self.prefixes)


class RouteTable:
    """Immutable once built; :meth:`match` memoizes recent lookups."""

    def __init__(self) -> None:
        self.exact_hosts: dict[str, HostRoutes] = {}
        self.wildcard_hosts: dict[str, HostRoutes] = {}  # "bar.com" for "*.bar.com"
        self.any_host = HostRoutes()
        self.default: Backend | None = None
        self._cache: dict[tuple[str, str], Backend | None] = {}
        self._raw_cache: dict[tuple[bytes, bytes], Backend | None] = {}

    def match_raw(self, host: bytes, path: bytes) -> Backend | None:
        """:meth:`match` for a ``Host`` value (with port, any case) and a path as they came
        on the wire; memoized on those bytes, so a hit costs one dict lookup."""
        key = (host, path)
        try:
            return self._raw_cache[key]
        except KeyError:
            pass
        found = self.match(normalize_host(host.decode("latin-1")), path.decode("latin-1"))
        if len(self._raw_cache) >= _CACHE_LIMIT:
            self._raw_cache.clear()
        self._raw_cache[key] = found
        return found

    def match(self, host: str, path: str) -> Backend | None:
        """The backend for a request, ``host`` lower-case without port, ``path`` without query."""
        key = (host, path)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = self._match(host, normalize_path(path))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _match(self, host: str, path: str) -> Backend | None:
        routes = self.exact_hosts.get(host)
        if routes is not None:
            found = routes.match(path)
            if found is not None:
                return found
        _, dot, parent = host.partition(".")
        if dot:
            routes = self.wildcard_hosts.get(parent)
            if routes is not None:
                found = routes.match(path)
                if found is not None:
                    return found
        return self.any_host.match(path) or self.default


def normalize_path(path: str) -> str:
    if not path.startswith("/"):
        return "/" + path if path else "/"
    if "//" not in path and "/." not in path:
        return path
    trailing = path.endswith("/") and len(path) > 1
    normal = posixpath.normpath(path)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    return normal + "/" if trailing and normal != "/" else normal


def normalize_host(host: str) -> str:
    """``Host`` header → lower-case name without port (IPv6 literals keep their brackets)."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    name, _, _ = host.partition(":")
    return name.rstrip(".")


def backend_of(spec: Obj | None, namespace: str) -> Backend | None:
    service = (spec or {}).get("service") or {}
    name = service.get("name")
    port = service.get("port") or {}
    number, port_name = port.get("number"), port.get("name")
    if not name or not (number or port_name):
        return None
    return Backend(namespace, str(name), int(number) if number else str(port_name))


def class_of(ingress: Obj) -> str:
    """The class an Ingress asks for: ``spec.ingressClassName``, else the old annotation."""
    name = (ingress.get("spec") or {}).get("ingressClassName")
    if name:
        return str(name)
    annotations = (ingress.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(_CLASS_ANNOTATION) or "")


def is_default_class(ingress_class: Obj) -> bool:
    annotations = (ingress_class.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(_DEFAULT_CLASS_ANNOTATION, "")).lower() == "true"


def owned_classes(classes: Iterable[Obj]) -> tuple[set[str], bool]:
    """Names of the IngressClasses with our controller, and whether one of them is the default
    (when another controller's class is the default, class-less Ingresses are not ours)."""
    ours: set[str] = set()
    default_ours = False
    defaults = 0
    for ingress_class in classes:
        name = str((ingress_class.get("metadata") or {}).get("name") or "")
        mine = (ingress_class.get("spec") or {}).get("controller") == CONTROLLER
        if mine:
            ours.add(name)
        if is_default_class(ingress_class):
            defaults += 1
            default_ours = default_ours or mine
    return ours, default_ours and defaults == 1


def is_ours(ingress: Obj, ours: set[str], default_ours: bool) -> bool:
    wanted = class_of(ingress)
    return wanted in ours if wanted else default_ours


def _age_key(ingress: Obj) -> tuple[str, str, str]:
    meta = ingress.get("metadata") or {}
    return (
        str(meta.get("creationTimestamp") or ""),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
    )


def build(ingresses: Iterable[Obj]) -> RouteTable:
    """Compile the Ingresses this router owns (already filtered by class)."""
    table = RouteTable()
    for ingress in sorted(ingresses, key=_age_key):
        if (ingress.get("metadata") or {}).get("deletionTimestamp"):
            continue
        namespace = str((ingress.get("metadata") or {}).get("namespace") or "default")
        spec = ingress.get("spec") or {}
        if table.default is None and spec.get("defaultBackend"):
            table.default = backend_of(spec["defaultBackend"], namespace)
        for rule in spec.get("rules") or []:
            host = str(rule.get("host") or "").lower()
            if host.startswith("*."):
                routes = table.wildcard_hosts.setdefault(host[2:], HostRoutes())
            elif host:
                routes = table.exact_hosts.setdefault(host, HostRoutes())
            else:
                routes = table.any_host
            for entry in (rule.get("http") or {}).get("paths") or []:
                kind = _PATH_TYPES.get(str(entry.get("pathType") or ""))
                backend = backend_of(entry.get("backend"), namespace)
                if kind is None or backend is None:
                    continue
                routes.add(kind, str(entry.get("path") or ""), backend)
    for routes in (*table.exact_hosts.values(), *table.wildcard_hosts.values(), table.any_host):
        routes.finish()
    return table


def backends_of(table: RouteTable) -> set[Backend]:
    """Every backend the table can route to."""
    found: set[Backend] = set()
    for routes in (*table.exact_hosts.values(), *table.wildcard_hosts.values(), table.any_host):
        found.update(routes.exact.values())
        found.update(entry[3] for entry in routes.prefixes)
    if table.default is not None:
        found.add(table.default)
    return found
