"""What pods read from the API: the pod itself, the ConfigMaps, Secrets, claims and Services
they use, the EndpointSlices and Jobs they wait for, and whether they are still published.

All from informer caches (one list+watch per kind for the whole process, never a request per
pod start): the ConfigMaps, Secrets and claims behind the ``Lookups`` protocol of
:mod:`procorch.agent.podenv`; Kubernetes' service environment variables (``{SVC}_SERVICE_HOST``
and friends); ``procorch.io/depends-on`` (a Service with a ready endpoint, a complete Job); and
whether an EndpointSlice still lists a pod's IP as ready, which a pod being deleted waits out
before its containers are signalled.

Concurrency: reads of caches on the event loop; only :meth:`CacheLookups.wait_unpublished`
awaits, woken by the EndpointSlices' events.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

from procorch.kit.logging import get_logger
from procorch.reconcile.views import InformerView

log = get_logger("agent")

UID_INDEX = "agent/uid"
READY_IP_INDEX = "agent/ready-ip"
SERVICE_INDEX = "agent/service"
DEPENDS_ON = "procorch.io/depends-on"


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
        pods: InformerView,
        config_maps: InformerView,
        secrets: InformerView,
        claims: InformerView,
        services: InformerView,
        endpoint_slices: InformerView,
        jobs: InformerView,
    ) -> None:
        self._pods = pods
        self._config_maps = config_maps
        self._secrets = secrets
        self._claims = claims
        self._services = services
        self._slices = endpoint_slices
        self._jobs = jobs
        pods.add_index(UID_INDEX, _uid)
        endpoint_slices.add_index(READY_IP_INDEX, ready_addresses)
        endpoint_slices.add_index(SERVICE_INDEX, _slice_service)
        self._slices_changed = asyncio.Event()
        endpoint_slices.add_handler(lambda _etype, _obj, _old: self._slices_changed.set())

    def pod(self, uid: str) -> dict[str, Any] | None:
        """The node's pod with this uid, as cached."""
        found = self._pods.by_index(UID_INDEX, uid)
        return found[0] if found else None

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

    def unmet_dependencies(self, pod: dict[str, Any]) -> list[str]:
        """What a pod's ``procorch.io/depends-on`` annotation names that is not ready yet:
        ``service/x`` without a ready endpoint, ``job/x`` not complete."""
        wanted = ((pod.get("metadata") or {}).get("annotations") or {}).get(DEPENDS_ON, "")
        namespace = str(pod["metadata"].get("namespace") or "default")
        missing: list[str] = []
        for item in (w.strip() for w in wanted.split(",")):
            if not item:
                continue
            kind, _, name = item.partition("/")
            kind = kind.lower()
            if kind in ("service", "svc", "services"):
                slices = self._slices.by_index(SERVICE_INDEX, f"{namespace}/{name}")
                if not any(ready_addresses(s) for s in slices):
                    missing.append(f"service/{name} (no ready endpoint)")
            elif kind in ("job", "jobs"):
                job = self._jobs.get(name, namespace)
                done = job is not None and any(
                    c.get("type") == "Complete" and c.get("status") == "True"
                    for c in (job.get("status") or {}).get("conditions") or []
                )
                if not done:
                    missing.append(f"job/{name} (not complete)")
            else:
                missing.append(f"{item} (unknown kind: use service/NAME or job/NAME)")
        return missing

    def published(self, ip: str) -> bool:
        """Whether some EndpointSlice lists ``ip`` as a ready endpoint."""
        return bool(ip) and bool(self._slices.by_index(READY_IP_INDEX, ip))

    async def wait_unpublished(self, ip: str, *, timeout: float) -> bool:
        """Wait until no EndpointSlice lists ``ip`` as ready (the endpoints controller saw the
        pod leave); False if that did not happen within ``timeout``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.published(ip):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                log.warning("pod still published as a ready endpoint; stopping it anyway", ip=ip)
                return False
            self._slices_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._slices_changed.wait()
        return True


def _uid(obj: dict[str, Any]) -> list[str]:
    return [str(obj["metadata"].get("uid") or "")]


def _slice_service(slice_: dict[str, Any]) -> list[str]:
    meta = slice_.get("metadata") or {}
    name = (meta.get("labels") or {}).get("kubernetes.io/service-name")
    return [f"{meta.get('namespace')}/{name}"] if name else []


def ready_addresses(slice_: dict[str, Any]) -> list[str]:
    """The addresses of the endpoints a slice does not mark not-ready."""
    out: list[str] = []
    for endpoint in slice_.get("endpoints") or []:
        if (endpoint.get("conditions") or {}).get("ready") is False:
            continue
        out.extend(str(a) for a in endpoint.get("addresses") or [])
    return out
