"""What pods read from the API while they are set up: ConfigMaps, Secrets, claims, Services.

All from informer caches (one list+watch per kind for the whole node, never a request per pod
start), behind the ``Lookups`` protocol of :mod:`procorch.agent.podenv`. Also Kubernetes'
service environment variables (``{SVC}_SERVICE_HOST`` and friends).

Concurrency: reads of caches on the event loop; never awaits.
"""

from __future__ import annotations

import re
from typing import Any

from procorch.reconcile.views import InformerView


def _env_name(service: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", service.upper().replace("-", "_"))


def service_env(services: list[dict[str, Any]]) -> dict[str, str]:
    """Docker-links-style variables for ``services`` (kubelet's ``getServiceEnvVarMap``)."""
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: str(s["metadata"]["name"])):
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        name = _env_name(str(svc["metadata"]["name"]))
        env[f"{name}_SERVICE_HOST"] = str(ip)
        env[f"{name}_SERVICE_PORT"] = str(ports[0].get("port"))
        for port in ports:
            if port.get("name"):
                env[f"{name}_SERVICE_PORT_{_env_name(str(port['name']))}"] = str(port.get("port"))
        first = ports[0]
        proto = str(first.get("protocol") or "TCP").lower()
        env[f"{name}_PORT"] = f"{proto}://{ip}:{first.get('port')}"
        for port in ports:
            proto = str(port.get("protocol") or "TCP")
            prefix = f"{name}_PORT_{port.get('port')}_{proto.upper()}"
            env[prefix] = f"{proto.lower()}://{ip}:{port.get('port')}"
            env[f"{prefix}_PROTO"] = proto.lower()
            env[f"{prefix}_PORT"] = str(port.get("port"))
            env[f"{prefix}_ADDR"] = str(ip)
    return env


class CacheLookups:
    def __init__(
        self,
        *,
        config_maps: InformerView,
        secrets: InformerView,
        claims: InformerView,
        services: InformerView,
    ) -> None:
        self._config_maps = config_maps
        self._secrets = secrets
        self._claims = claims
        self._services = services

    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._config_maps.get(name, namespace)

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._secrets.get(name, namespace)

    def pvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._claims.get(name, namespace)

    def service_env(self, namespace: str, pod: dict[str, Any]) -> dict[str, str]:
        """The service variables a container of ``pod`` gets: services of its namespace when
        ``enableServiceLinks`` (default true), and the ``kubernetes`` service always."""
        links = (pod.get("spec") or {}).get("enableServiceLinks")
        services = self._services.list(namespace) if links is not False else []
        master = self._services.get("kubernetes", "default")
        if master is not None and master not in services:
            services = [*services, master]
        return service_env(services)
