"""Cluster DNS on a node: the ``kube-dns`` Service's address answered on every node.

:class:`ClusterDNS` listens on the cluster IP of ``kube-system/kube-dns`` (port 53, UDP and
TCP) on this node's loopback, as NodeLocal DNSCache binds it on each Kubernetes node; the
Service proxy leaves that Service alone (it carries
:data:`~procorch.api.clusterdns.SERVED_ON_EVERY_NODE`). Names of the cluster domain are answered
from the Service and EndpointSlice informers (:mod:`~procorch.proxy.dns.zone`); reverse names of
pod IPs that no Service names are answered from the pods (``<a-b-c-d>.<ns>.pod.<domain>``);
everything else is forwarded to the host's own resolvers (``/etc/resolv.conf``), over UDP, and
TCP when the answer was truncated or the client asked over TCP.

Speed: a packed answer is kept per question (the bytes after the header, and the RD bit), so a
repeated question costs a dict lookup and a two-byte ID patch; the zone is rebuilt on the first
question after a Service or EndpointSlice changed, which also drops every kept answer, so an
answer follows the endpoints at once.

Concurrency: single event loop. Owned tasks: the bind loop (follows the kube-dns Service's
address); one short task per forwarded question, cancelled at stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnslib import EDNS0, PTR, QTYPE, RCODE, RR, DNSError, DNSRecord

from procorch.api.clusterdns import CLUSTER_DOMAIN, KUBE_DNS_NAMESPACE, KUBE_DNS_SERVICE
from procorch.api.resources import must
from procorch.kit.logging import get_logger
from procorch.kit.resolvconf import ResolvConf
from procorch.kit.tasks import TaskSet, wait_cancelled
from procorch.proxy.dns.zone import SERVICE_NAME_LABEL, TTL, Answer, ClusterZone
from procorch.proxy.relay.routes import POD_IP_INDEX, pod_ip_index
from procorch.reconcile.factory import InformerFactory

log = get_logger("proxy.dns")

SERVICES = must("core/services")
ENDPOINT_SLICES = must("discovery.k8s.io/endpointslices")
PODS = must("core/pods")
_CACHE_LIMIT = 20_000
_UDP_LIMIT = 512
_EDNS_LIMIT = 1232


@dataclass
class DNSSettings:
    domain: str = CLUSTER_DOMAIN
    port: int = 53
    resolv_conf: Path = Path("/etc/resolv.conf")
    upstreams: list[tuple[str, int]] | None = None
    """Where other names go; None: the ``nameserver`` lines of ``resolv_conf``."""
    forward_timeout: float = 2.0
    """Per upstream, before the next is asked (SERVFAIL after the last)."""
    retry_bind: float = 5.0
    """How often an address that could not be bound is tried again."""
    extra_listen: list[tuple[str, int]] = field(default_factory=list)
    """More addresses to answer on, besides the kube-dns Service's (benchmarks, tests)."""
    tcp_idle_timeout: float = 10.0
    """A TCP client that sends nothing for this long is closed (CoreDNS's default)."""
    max_pending: int = 1024
    """Questions out to upstream at once; more get SERVFAIL at once."""


@dataclass
class DNSStats:
    queries: int = 0
    kept: int = 0
    """Answered from a kept answer."""
    forwarded: int = 0
    failed: int = 0
    """Forwarded questions no upstream answered (SERVFAIL)."""


class ClusterDNS:
    def __init__(
        self,
        informers: InformerFactory,
        settings: DNSSettings | None = None,
        *,
        on_crash: Callable[[str, BaseException | None], None] | None = None,
    ) -> None:
        self.settings = settings or DNSSettings()
        self.stats = DNSStats()
        self.tasks = TaskSet("dns", on_crash=on_crash)
        self.services = informers.get(SERVICES)
        self.slices = informers.get(ENDPOINT_SLICES, label_selector=SERVICE_NAME_LABEL)
        self.pods = informers.get(PODS)
        self.pods.add_index(POD_IP_INDEX, pod_ip_index)
        self._zone: ClusterZone | None = None
        self._kept: dict[bytes, bytes] = {}
        self._servers: dict[tuple[str, int], list[Any]] = {}
        self._failed_binds: set[tuple[str, int]] = set()
        self._pending: set[asyncio.Task[None]] = set()
        self._dirty = asyncio.Event()
        self.upstreams: list[tuple[str, int]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        upstreams = s.upstreams
        if upstreams is None:
            upstreams = [(ip, 53) for ip in ResolvConf.read(s.resolv_conf).nameservers]
        # Never ourselves (a host whose resolv.conf names the kube-dns address would loop).
        self.upstreams = [u for u in upstreams if u not in self._wanted()]
        for view in (self.services, self.slices):
            view.add_handler(self._changed)
        await asyncio.gather(self.services.synced.wait(), self.slices.synced.wait())
        await self._bind()
        self.tasks.start("bind", self._bind_loop())
        log.info("cluster DNS started", listening=self.listening(), upstreams=self.upstreams)

    async def stop(self) -> None:
        for transports in self._servers.values():
            for transport in transports:
                transport.close()
        self._servers.clear()
        for task in list(self._pending):
            task.cancel()
            await wait_cancelled(task, timeout=1.0)
        await self.tasks.stop(timeout=5.0)
        for view in (self.services, self.slices, self.pods):
            view.close()

    def served(self) -> list[str]:
        """The kube-dns addresses answered here on port 53: what pods' resolv.conf names."""
        return sorted(
            host
            for host, port in self._servers
            if port == 53 and ((host, port) not in self.settings.extra_listen)
        )

    def listening(self) -> list[str]:
        return [f"{host}:{port}" for host, port in sorted(self._servers)]

    def _changed(self, etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        self._zone = None
        meta = obj.get("metadata") or {}
        if (meta.get("namespace"), meta.get("name")) == (KUBE_DNS_NAMESPACE, KUBE_DNS_SERVICE):
            self._dirty.set()

    @property
    def zone(self) -> ClusterZone:
        zone = self._zone
        if zone is None:
            zone = self._zone = ClusterZone(
                self.services.list(), self.slices.list(), domain=self.settings.domain
            )
            self._kept.clear()
        return zone

    # -- listening ---------------------------------------------------------------------------

    def _wanted(self) -> set[tuple[str, int]]:
        service = self.services.get(KUBE_DNS_SERVICE, KUBE_DNS_NAMESPACE)
        spec = (service or {}).get("spec") or {}
        ips = [
            ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"
        ]
        return {(str(ip), self.settings.port) for ip in ips} | set(self.settings.extra_listen)

    async def _bind_loop(self) -> None:
        while True:
            timeout = self.settings.retry_bind if self._failed_binds else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._dirty.wait()
            self._dirty.clear()
            await self._bind()

    async def _bind(self) -> None:
        wanted = self._wanted()
        for addr in [a for a in self._servers if a not in wanted]:
            for transport in self._servers.pop(addr):
                transport.close()
        loop = asyncio.get_running_loop()
        failed: set[tuple[str, int]] = set()
        for addr in wanted - set(self._servers):
            opened: list[Any] = []
            try:
                udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=addr)
                opened.append(udp)
                tcp = await loop.create_server(
                    lambda: _Tcp(self), addr[0], addr[1], reuse_address=True, backlog=256
                )
                opened.append(tcp)
            except OSError as exc:
                for transport in opened:
                    transport.close()
                failed.add(addr)
                if addr not in self._failed_binds:
                    hint = ""
                    if exc.errno == errno.EACCES:
                        hint = " (port 53 needs root or CAP_NET_BIND_SERVICE)"
                    log.warning(
                        "cluster DNS cannot listen",
                        address=f"{addr[0]}:{addr[1]}",
                        error=f"{exc.strerror or exc}{hint}",
                    )
                continue
            self._servers[addr] = opened
        self._failed_binds = failed

    # -- answering ---------------------------------------------------------------------------

    def kept(self, data: bytes) -> bytes | None:
        """The kept answer to ``data``, with its ID, if the question was answered before."""
        self.stats.queries += 1
        if self._zone is None or len(data) < 12 or data[2] & 0xF8:
            return None  # not a standard query (QR or an opcode set): the slow path says
        answer = self._kept.get(_key(data))
        if answer is None:
            return None
        self.stats.kept += 1
        return data[:2] + answer[2:]

    def local(self, data: bytes, *, tcp: bool) -> bytes | None | Later:
        """The answer to one DNS message when this node has it (None: nothing to send), or
        a :class:`Later` when it must ask upstream (:meth:`answer_later`). Never raises: a
        failure is logged and answered SERVFAIL."""
        try:
            return self._local(data, tcp=tcp)
        except Exception as exc:  # noqa: BLE001 - one bad question must not go unanswered
            return self._failed(data, exc)

    def answer_later(
        self, data: bytes, later: Later, *, tcp: bool, send: Callable[[bytes], None]
    ) -> None:
        """Ask upstream in a task of its own and ``send`` the answer; SERVFAIL at once when
        ``max_pending`` questions are out already."""
        if len(self._pending) >= self.settings.max_pending:
            send(_servfail(data))
            return
        task = asyncio.ensure_future(self._upstream(data, later, tcp=tcp, send=send))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _failed(self, data: bytes, exc: Exception) -> bytes:
        log.warning("could not answer a DNS question", error=repr(exc))
        self.stats.failed += 1
        return _servfail(data)

    def _local(self, data: bytes, *, tcp: bool) -> bytes | None | Later:
        try:
            query = DNSRecord.parse(data)
        except (DNSError, IndexError, ValueError):
            return _formerr(data)
        if query.header.qr:
            return None
        if not query.questions or query.header.opcode != 0:
            return _error_reply(data, RCODE.FORMERR if not query.questions else RCODE.NOTIMP)
        question = query.q
        qname = str(question.qname)
        found = self.zone.lookup(qname, question.qtype)
        if found is None and question.qtype == QTYPE.PTR:
            found = self._pod_ptr(qname)
            if found is not None:
                return self._pack(query, found, tcp=tcp, keep=None)
        if found is None or found.follow:
            return Later(query, found)
        return self._pack(query, found, tcp=tcp, keep=data)

    async def _upstream(
        self, data: bytes, later: Later, *, tcp: bool, send: Callable[[bytes], None]
    ) -> None:
        """A question the zone leaves to upstream: forwarded, or an ExternalName whose
        target's records come from upstream."""
        try:
            found = later.found
            if found is None:
                reply = await self._forward(data, tcp=tcp)
            else:
                found.answers += await self._follow(found.follow, later.query.q.qtype)
                reply = self._pack(later.query, found, tcp=tcp, keep=None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - see local()
            reply = self._failed(data, exc)
        send(reply)

    def _pack(self, query: DNSRecord, found: Answer, *, tcp: bool, keep: bytes | None) -> bytes:
        reply = query.reply(ra=1, aa=1)
        reply.header.ad = 0  # not a validating resolver, whatever the question said
        reply.header.rcode = found.rcode
        reply.rr = list(found.answers)
        reply.auth = list(found.authority)
        reply.ar = list(found.additional)
        edns = next((rr for rr in query.ar if rr.rtype == QTYPE.OPT), None)
        if edns is not None:
            reply.add_ar(EDNS0(udp_len=_EDNS_LIMIT))
        packed: bytes = reply.pack()
        if keep is not None and len(keep) <= _UDP_LIMIT:
            if len(self._kept) > _CACHE_LIMIT:
                self._kept.clear()
            self._kept[_key(keep)] = packed
        limit = min(int(edns.rclass), _EDNS_LIMIT) if edns is not None else _UDP_LIMIT
        if not tcp and len(packed) > max(limit, _UDP_LIMIT):
            reply.rr, reply.auth, reply.ar = [], [], []
            reply.header.tc = 1
            packed = reply.pack()
        return packed

    def _pod_ptr(self, qname: str) -> Answer | None:
        name = qname.lower().rstrip(".")
        if not name.endswith(".in-addr.arpa"):
            return None
        octets = name[: -len(".in-addr.arpa")].split(".")
        if len(octets) != 4:
            return None
        ip = ".".join(reversed(octets))
        for pod in self.pods.by_index(POD_IP_INDEX, ip):
            if (pod.get("spec") or {}).get("nodeName"):
                namespace = (pod.get("metadata") or {}).get("namespace") or "default"
                target = f"{ip.replace('.', '-')}.{namespace}.pod.{self.settings.domain}"
                return Answer(answers=[RR(qname, QTYPE.PTR, ttl=TTL, rdata=PTR(target))])
        return None

    # -- forwarding --------------------------------------------------------------------------

    async def _forward(self, data: bytes, *, tcp: bool) -> bytes:
        self.stats.forwarded += 1
        for upstream in self.upstreams:
            try:
                async with asyncio.timeout(self.settings.forward_timeout):
                    # As asked: a truncated answer goes back to a UDP client as it is (it
                    # asks again over TCP, which is then forwarded over TCP).
                    if tcp:
                        return await _tcp_exchange(data, upstream)
                    return await _udp_exchange(data, upstream)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                log.debug("upstream resolver failed", upstream=upstream[0], error=repr(exc))
        self.stats.failed += 1
        return _servfail(data)

    async def _follow(self, target: str, qtype: int) -> list[RR]:
        """The records of ``target`` (an ExternalName's name) from upstream."""
        question = DNSRecord.question(target, QTYPE.get(qtype, "A"))
        reply = await self._forward(question.pack(), tcp=False)
        try:
            return list(DNSRecord.parse(reply).rr)
        except (DNSError, IndexError, ValueError):
            return []


@dataclass(frozen=True)
class Later:
    """A question that needs upstream (see :meth:`ClusterDNS.local`): the parsed query, and
    what the zone said (an ExternalName whose target to resolve; None: forward it all)."""

    query: DNSRecord
    found: Answer | None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, dns: ClusterDNS) -> None:
        self.dns = dns
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        dns = self.dns
        kept = dns.kept(data)
        reply = kept if kept is not None and len(kept) <= _UDP_LIMIT else dns.local(data, tcp=False)
        if isinstance(reply, Later):
            dns.answer_later(data, reply, tcp=False, send=lambda out: self._send(out, addr))
        elif reply is not None:
            self.transport.sendto(reply, addr)

    def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        if not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS socket error", error=repr(exc))


class _Tcp(asyncio.Protocol):
    """DNS over TCP: two-byte length, message; several questions per connection. A client
    that sends nothing for ``tcp_idle_timeout`` is closed, and one that does not read its
    answers stops being read (its questions wait in the kernel)."""

    def __init__(self, dns: ClusterDNS) -> None:
        self.dns = dns
        self.transport: Any = None
        self.buffer = b""
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._arm()

    def _arm(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.idle = asyncio.get_running_loop().call_later(
            self.dns.settings.tcp_idle_timeout, self._expire
        )

    def _expire(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.transport = None

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self._arm()
        self.buffer += data
        while len(self.buffer) >= 2:
            size = struct.unpack_from(">H", self.buffer)[0]
            if len(self.buffer) < 2 + size:
                return
            message, self.buffer = self.buffer[2 : 2 + size], self.buffer[2 + size :]
            reply = self.dns.kept(message) or self.dns.local(message, tcp=True)
            if reply is None:
                continue
            if isinstance(reply, Later):
                self.dns.answer_later(message, reply, tcp=True, send=self._send)
            else:
                self._send(reply)

    def _send(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(struct.pack(">H", len(reply)) + reply)


class _OneShot(asyncio.DatagramProtocol):
    def __init__(self, reply: asyncio.Future[bytes], query_id: bytes) -> None:
        self.reply = reply
        self.query_id = query_id

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data[:2] == self.query_id and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def _udp_exchange(data: bytes, upstream: tuple[str, int]) -> bytes:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _OneShot(reply, data[:2]), remote_addr=upstream
    )
    try:
        transport.sendto(data)
        return await reply
    finally:
        transport.close()


async def _tcp_exchange(data: bytes, upstream: tuple[str, int]) -> bytes:
    reader, writer = await asyncio.open_connection(*upstream)
    try:
        writer.write(struct.pack(">H", len(data)) + data)
        size = struct.unpack(">H", await reader.readexactly(2))[0]
        return await reader.readexactly(size)
    finally:
        writer.close()


def _error_reply(data: bytes, rcode: int) -> bytes | None:
    if len(data) < 12:
        return None
    # Header only: the ID, QR set, RD copied, RA set, the rcode; no sections.
    flags = 0x8000 | (data[2] & 0x01) << 8 | 0x0080 | rcode
    return data[:2] + struct.pack(">HHHHH", flags, 0, 0, 0, 0)


def _formerr(data: bytes) -> bytes | None:
    return _error_reply(data, RCODE.FORMERR)


def _servfail(data: bytes) -> bytes:
    try:
        reply = DNSRecord.parse(data).reply(ra=1, aa=0)
        reply.header.rcode = RCODE.SERVFAIL
        packed: bytes = reply.pack()
        return packed
    except (DNSError, IndexError, ValueError):
        return _error_reply(data, RCODE.SERVFAIL) or b""


def _key(data: bytes) -> bytes:
    """What a kept answer is kept under: the RD and CD bits, and everything after the
    header (the question, and the OPT record with its size and DO bit)."""
    return bytes((data[2] & 0x01, data[3] & 0x10)) + data[12:]
