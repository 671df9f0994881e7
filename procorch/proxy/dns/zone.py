"""The cluster's DNS records, as CoreDNS's ``kubernetes`` plugin serves them.

:class:`ClusterZone` is built from the Services and EndpointSlices (and answers from nothing
else), for the cluster domain (``cluster.local``):

* ``<svc>.<ns>.svc.<domain>``: ``A`` → the cluster IP; for a headless Service one ``A`` per
  ready endpoint (or every endpoint, with ``publishNotReadyAddresses``); for an ExternalName
  Service a ``CNAME`` to its name, whatever the type asked.
* ``<hostname>.<svc>.<ns>.svc.<domain>`` (an endpoint's ``hostname``, set from a pod's
  ``hostname``/``subdomain``) and ``<a-b-c-d>.<svc>.<ns>.svc.<domain>`` for the other
  endpoints of a headless Service: ``A`` → that endpoint.
* ``_<port>._<proto>.<svc>.<ns>.svc.<domain>``: ``SRV`` for each named port, to the Service's
  name (or, headless, to each endpoint's name); the ``A`` records go in the additional section.
* ``<a-b-c-d>.<ns>.pod.<domain>``: ``A`` → a.b.c.d (CoreDNS's ``pods insecure``).
* ``PTR`` for cluster IPs (→ the Service's name) and endpoint IPs of headless Services (→ the
  endpoint's name). Other reverse names are not the zone's (:meth:`ClusterZone.lookup` returns
  None: the server looks further, then forwards).
* Anything else in the cluster domain: ``NXDOMAIN``; a name that exists with no record of the
  type asked (``AAAA`` of an IPv4 Service): ``NOERROR`` with no answer. Both carry the zone's
  ``SOA`` in the authority section, as CoreDNS answers.

TTL 5 s for every record, CoreDNS's default.

Concurrency: pure; a zone is immutable once built.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dnslib import AAAA, CNAME, PTR, QTYPE, RCODE, RR, SOA, SRV, A

TTL = 5
MAX_CNAME_HOPS = 8
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Obj = dict[str, Any]


@dataclass
class Answer:
    """What the zone says to one question: an rcode and the three sections' records."""

    rcode: int = RCODE.NOERROR
    answers: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    follow: str = ""
    """A CNAME target outside the cluster domain, for the server to resolve upstream."""


@dataclass
class _Endpoint:
    ip: str
    name: str
    """``<hostname>`` or ``<a-b-c-d>``: the label under the Service's name."""
    ready: bool


@dataclass
class _Service:
    namespace: str
    name: str
    cluster_ips: list[str]
    headless: bool
    external_name: str
    publish_not_ready: bool
    ports: list[tuple[str, str, int]]
    """(name, protocol, port) of the Service's named ports."""
    endpoints: list[_Endpoint] = field(default_factory=list)
    endpoint_ports: list[tuple[str, str, int]] = field(default_factory=list)

    def published(self) -> list[_Endpoint]:
        return [e for e in self.endpoints if e.ready or self.publish_not_ready]


def _dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer.lower()


class ClusterZone:
    def __init__(
        self,
        services: Iterable[Obj],
        slices: Iterable[Obj],
        *,
        domain: str = "cluster.local",
    ) -> None:
        self.domain = domain.strip(".").lower()
        self._suffix = tuple(self.domain.split("."))
        self._services: dict[tuple[str, str], _Service] = {}
        self._namespaces: set[str] = set()
        self._reverse: dict[str, str] = {}
        for obj in services:
            service = _service(obj)
            if service is not None:
                self._services[(service.namespace, service.name)] = service
                self._namespaces.add(service.namespace)
        for slice_ in slices:
            self._add_slice(slice_)
        for service in self._services.values():
            base = f"{service.name}.{service.namespace}.svc.{self.domain}"
            for ip in service.cluster_ips:
                self._reverse.setdefault(reverse_name(ip), base)
            if service.headless:
                for endpoint in service.published():
                    self._reverse.setdefault(reverse_name(endpoint.ip), f"{endpoint.name}.{base}")
        self.soa = RR(
            self.domain,
            QTYPE.SOA,
            ttl=TTL,
            rdata=SOA(
                f"ns.dns.{self.domain}",
                f"hostmaster.{self.domain}",
                (1, 7200, 1800, 86400, TTL),
            ),
        )

    def _add_slice(self, slice_: Obj) -> None:
        meta = slice_.get("metadata") or {}
        name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        service = self._services.get((str(meta.get("namespace") or ""), str(name or "")))
        if service is None or slice_.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            return
        for port in slice_.get("ports") or []:
            entry = (str(port.get("name") or ""), str(port.get("protocol") or "TCP"), 0)
            number = int(port.get("port") or 0)
            if number and entry[0] and (entry[0], entry[1], number) not in service.endpoint_ports:
                service.endpoint_ports.append((entry[0], entry[1], number))
        for endpoint in slice_.get("endpoints") or []:
            addresses = endpoint.get("addresses") or []
            if not addresses:
                continue
            ip = str(addresses[0])
            ready = (endpoint.get("conditions") or {}).get("ready") is not False
            label = str(endpoint.get("hostname") or _dashed(ip)).lower()
            service.endpoints.append(_Endpoint(ip, label, ready))

    # -- questions ---------------------------------------------------------------------------

    def owns(self, qname: str) -> bool:
        """Whether ``qname`` is in the cluster domain (the zone has the last word on it)."""
        labels = tuple(qname.lower().rstrip(".").split("."))
        return labels[-len(self._suffix) :] == self._suffix

    def lookup(self, qname: str, qtype: int, *, hops: int = 0) -> Answer | None:
        """The answer to ``qname``/``qtype``, or None when the name is not the zone's (a
        reverse name of no cluster address, or a name outside the domain). ``hops``: how
        many ExternalName CNAMEs led here (at most :data:`MAX_CNAME_HOPS` are followed)."""
        name = qname.lower().rstrip(".")
        if name.endswith((".in-addr.arpa", ".ip6.arpa")):
            target = self._reverse.get(name)
            if target is None:
                return None
            if qtype in (QTYPE.PTR, QTYPE.ANY):
                return Answer(answers=[RR(qname, QTYPE.PTR, ttl=TTL, rdata=PTR(target))])
            return Answer(authority=[self.soa])
        if not self.owns(name):
            return None
        labels = name.split(".")[: -len(self._suffix)]
        return self._in_domain(qname, labels, qtype, hops)

    def _in_domain(self, qname: str, labels: list[str], qtype: int, hops: int) -> Answer:
        nodata = Answer(authority=[self.soa])
        nxdomain = Answer(rcode=RCODE.NXDOMAIN, authority=[self.soa])
        if not labels and qtype == QTYPE.SOA:
            return Answer(answers=[self.soa])
        if not labels or labels == ["svc"] or labels == ["pod"]:
            return nodata
        kind = labels[-1]
        if kind == "pod":
            if len(labels) == 2:
                return nodata if labels[0] in self._namespaces else nxdomain
            if len(labels) != 3:
                return nxdomain
            ip = _undashed(labels[0])
            if ip is None:
                return nxdomain
            return self._address(qname, [ip], qtype, nodata)
        if kind != "svc":
            return nxdomain
        if len(labels) == 2:
            return nodata if labels[0] in self._namespaces else nxdomain
        service = self._services.get((labels[-2], labels[-3]))
        if service is None:
            return nxdomain
        base = f"{service.name}.{service.namespace}.svc.{self.domain}"
        if len(labels) == 3:
            return self._service(qname, service, qtype, nodata, hops)
        if len(labels) == 4:
            if not service.headless:
                return nxdomain
            found = [e.ip for e in service.published() if e.name == labels[0]]
            return self._address(qname, found, qtype, nodata) if found else nxdomain
        if len(labels) == 5 and labels[0].startswith("_") and labels[1].startswith("_"):
            return self._srv(qname, service, base, labels[0][1:], labels[1][1:], qtype, nodata)
        return nxdomain

    def _service(
        self, qname: str, service: _Service, qtype: int, nodata: Answer, hops: int
    ) -> Answer:
        if service.external_name:
            target = service.external_name.rstrip(".")
            answer = Answer(answers=[RR(qname, QTYPE.CNAME, ttl=TTL, rdata=CNAME(target))])
            if qtype not in (QTYPE.CNAME, QTYPE.ANY):
                if self.owns(target):
                    # In the zone: followed here, a few hops at most (a loop of ExternalNames
                    # ends with the CNAMEs so far, as CoreDNS's does).
                    more = (
                        self.lookup(target, qtype, hops=hops + 1) if hops < MAX_CNAME_HOPS else None
                    )
                    if more is not None:
                        answer.answers += more.answers
                else:
                    answer.follow = target
            return answer
        if service.headless:
            ips = [e.ip for e in service.published()]
            if not ips:
                return nodata
            return self._address(qname, ips, qtype, nodata)
        return self._address(qname, service.cluster_ips, qtype, nodata)

    def _srv(
        self,
        qname: str,
        service: _Service,
        base: str,
        port_name: str,
        protocol: str,
        qtype: int,
        nodata: Answer,
    ) -> Answer:
        nxdomain = Answer(rcode=RCODE.NXDOMAIN, authority=[self.soa])
        if service.headless:
            ports = [p for p in service.endpoint_ports if p[0].lower() == port_name]
        else:
            ports = [p for p in service.ports if p[0].lower() == port_name]
        ports = [p for p in ports if p[1].lower() == protocol]
        if not ports:
            return nxdomain
        if qtype not in (QTYPE.SRV, QTYPE.ANY):
            return nodata
        answer = Answer()
        for _, _, number in ports:
            if service.headless:
                for endpoint in service.published():
                    target = f"{endpoint.name}.{base}"
                    answer.answers.append(_srv_rr(qname, target, number))
                    answer.additional += _a_rrs(target, [endpoint.ip])
            else:
                answer.answers.append(_srv_rr(qname, base, number))
                answer.additional += _a_rrs(base, service.cluster_ips)
        return answer

    @staticmethod
    def _address(qname: str, ips: list[str], qtype: int, nodata: Answer) -> Answer:
        if qtype == QTYPE.ANY:
            rrs = _a_rrs(qname, ips) + _aaaa_rrs(qname, ips)
        elif qtype == QTYPE.A:
            rrs = _a_rrs(qname, ips)
        elif qtype == QTYPE.AAAA:
            rrs = _aaaa_rrs(qname, ips)
        else:
            rrs = []
        return Answer(answers=rrs) if rrs else nodata


def _srv_rr(qname: str, target: str, port: int) -> RR:
    # CoreDNS: priority 0, weight 100 split evenly (here: one answer set, equal weights).
    return RR(qname, QTYPE.SRV, ttl=TTL, rdata=SRV(0, 100, port, target))


def _a_rrs(name: str, ips: list[str]) -> list[RR]:
    return [RR(name, QTYPE.A, ttl=TTL, rdata=A(ip)) for ip in ips if ":" not in ip]


def _aaaa_rrs(name: str, ips: list[str]) -> list[RR]:
    return [RR(name, QTYPE.AAAA, ttl=TTL, rdata=AAAA(ip)) for ip in ips if ":" in ip]


def _undashed(label: str) -> str | None:
    for candidate in (label.replace("-", "."), label.replace("-", ":")):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def _service(obj: Obj) -> _Service | None:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    if meta.get("deletionTimestamp"):
        return None
    kind = spec.get("type") or "ClusterIP"
    cluster_ips = [
        str(ip) for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"
    ]
    return _Service(
        namespace=str(meta.get("namespace") or "").lower(),
        name=str(meta.get("name") or "").lower(),
        cluster_ips=cluster_ips,
        headless=kind != "ExternalName" and not cluster_ips,
        external_name=str(spec.get("externalName") or "") if kind == "ExternalName" else "",
        publish_not_ready=bool(spec.get("publishNotReadyAddresses")),
        ports=[
            (str(p.get("name")), str(p.get("protocol") or "TCP"), int(p["port"]))
            for p in spec.get("ports") or []
            if p.get("name") and p.get("port")
        ],
    )
