"""The node relay: pods on other machines reached at their pod IPs, over mutual TLS.

Pod IPs are loopback addresses, and 127.0.0.0/8 is private to each machine. So every node

* **answers** the pod addresses of nodes on other machines on its own loopback, and relays each
  connection to the node that owns the address: every TCP port, with root and ``nft``, through
  an nftables redirect of their pod ranges (:mod:`~procorch.proxy.relay.redirect`); else the
  TCP ports their pods declare and every EndpointSlice endpoint port there, one listener each
  (:func:`~procorch.proxy.relay.routes.remote_addresses`);
* **accepts** relayed connections from other nodes on ``<node IP>:<relay port>`` (announced in
  its Node's ``procorch.io/relay`` annotation) and connects them to its own pods;
* **dials** for the Service proxy and the Ingress router (:meth:`NodeRelay.dial`): an endpoint
  on another machine is connected through the relay directly, without the loopback hop.

Node to node is TLS 1.3 with the node certificates of the join (signed by the cluster CA),
verified both ways: the accepting node requires a client certificate of a node
(``system:nodes``) and relays only to the address of a running pod of its own (not to anything
else listening on its loopback: the relay is no open proxy into the machine); the dialing node
checks that it reached the node it meant (``system:node:<name>``); a peer that fails is logged
with its address. A node dials one TLS connection (a :class:`~procorch.proxy.relay.link.Link`)
to each peer and keeps it; every relayed connection is a stream on it, with half-close, reset
and flow control of its own (:mod:`~procorch.proxy.relay.wire`), so a new relayed connection
costs no TLS handshake, and requests crossing at once share TLS records. The platform here has
no kernel TLS, so the bytes are encrypted by OpenSSL in this process, not spliced (see the
README's performance section).

Concurrency: single event loop. Owned tasks: the accept loop, the listener sync loop; one
short task per link or stream while it is being set up (TLS handshake; connect to the pod),
cancelled at stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procorch.api.resources import must
from procorch.kit.logging import get_logger
from procorch.kit.pki import NODES_GROUP, node_user, subject_of
from procorch.kit.tasks import TaskSet, wait_cancelled
from procorch.proxy.relay.bridge import Bridge
from procorch.proxy.relay.link import Link, Stream
from procorch.proxy.relay.redirect import Redirect, original_destination, unavailable
from procorch.proxy.relay.routes import (
    POD_IP_INDEX,
    Addr,
    Peer,
    Routes,
    pod_ip_index,
    remote_addresses,
)
from procorch.proxy.relay.wire import Kind
from procorch.proxy.transports import ProtocolFactory, connect_directly
from procorch.reconcile.factory import InformerFactory

log = get_logger("proxy.relay")

NODES = must("core/nodes")
PODS = must("core/pods")
ENDPOINT_SLICES = must("discovery.k8s.io/endpointslices")

_FATAL_ACCEPT = (errno.EBADF, errno.EINVAL, errno.ENOTSOCK)


@dataclass
class RelaySettings:
    host: str = "127.0.0.1"
    """Where other nodes reach this node's relay: the node's address."""
    port: int = 0
    """The relay's port; 0 picks a free one (announced on the Node either way)."""
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    """The node's certificate and key (``system:node:<name>``) and the cluster CA."""
    handshake_timeout: float = 5.0
    connect_timeout: float = 2.0
    """How long the owner's connect to its pod may take."""
    redirect: bool = True
    """With root and ``nft``: every port of other machines' pods, through an nftables
    redirect to the relay (:mod:`~procorch.proxy.relay.redirect`); otherwise, or if False,
    loopback listeners for the ports the relay knows of."""
    sync_interval: float = 5.0
    """Loopback listeners that could not be opened are tried again this often."""
    max_listeners: int = 4096
    """At most this many remote pod addresses are answered here (a warning says when more
    are wanted)."""
    max_setups: int = 256
    """Links and streams being set up at once (TLS handshake; connect to the pod); more are
    refused at once."""


@dataclass
class RelayStats:
    dialed: int = 0
    """Streams this node opened that the owner connected."""
    accepted: int = 0
    """Streams other nodes opened that this node connected to a pod."""
    links_dialed: int = 0
    links_accepted: int = 0
    refused_peers: int = 0
    refused_opens: int = 0
    bind_failures: dict[Addr, str] = field(default_factory=dict)


class NodeRelay:
    def __init__(
        self,
        informers: InformerFactory,
        settings: RelaySettings,
        *,
        node_name: str,
        on_crash: Callable[[str, BaseException | None], None] | None = None,
    ) -> None:
        self.settings = settings
        self.node_name = node_name
        self.routes = Routes(node_name)
        self.stats = RelayStats()
        self.tasks = TaskSet("relay", on_crash=on_crash)
        self.nodes = informers.get(NODES)
        self.pods = informers.get(PODS)
        self.slices = informers.get(ENDPOINT_SLICES)
        self.pods.add_index(POD_IP_INDEX, pod_ip_index)
        self.port = 0
        self._server_ctx: ssl.SSLContext | None = None
        self._client_ctx: ssl.SSLContext | None = None
        self._listen_sock: socket.socket | None = None
        self._redirect: Redirect | None = None
        """This node's nftables table, once the relay may use one (root and nft)."""
        self._redirecting = False
        """Whether the table is what answers remote pod addresses (else: listeners)."""
        self._redirect_tried = False
        """The redirect is set up when the first node on another machine appears: a node
        with none (``procorch up``) never runs ``nft``."""
        self._redirect_sock: socket.socket | None = None
        self._stopping = False
        self._listeners: dict[Addr, asyncio.AbstractServer] = {}
        self._setups: set[asyncio.Task[Any]] = set()
        self._bridges: set[Bridge] = set()
        self._links: dict[Peer, Link] = {}
        """The link this node dialed to each peer."""
        self._linking: dict[Peer, asyncio.Future[Link]] = {}
        self._accepted_links: set[Link] = set()
        self._dirty = asyncio.Event()

    @property
    def address(self) -> str:
        """``<ip>:<port>`` for the Node's annotation (after :meth:`start`)."""
        host = self.settings.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def enabled(self) -> bool:
        return self._server_ctx is not None

    def listening(self) -> list[Addr]:
        """The remote pod addresses answered on this machine's loopback."""
        return sorted(self._listeners)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the relay port (if the node has its certificate) and follow the cluster."""
        s = self.settings
        if not (s.cert_file and s.key_file and s.ca_file):
            log.warning("the node has no certificate: pods on other machines are unreachable")
        else:
            self._server_ctx, self._client_ctx = _contexts(s.cert_file, s.key_file, s.ca_file)
            family = socket.AF_INET6 if ":" in s.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((s.host, s.port))
                sock.listen(1024)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                raise OSError(
                    exc.errno,
                    f"the node relay cannot listen on {s.host}:{s.port} "
                    f"({exc.strerror or exc}); choose another --relay-port (0 picks a free one)",
                ) from exc
            self._listen_sock = sock
            self.port = int(sock.getsockname()[1])
            self.tasks.start("accept", self._accept_loop(sock, self._take_link))
        for view in (self.nodes, self.pods, self.slices):
            view.add_handler(lambda _t, _o, _old: self._dirty.set())
        self._dirty.set()
        self.tasks.start("sync", self._sync_loop())
        log.info("node relay started", address=self.address if self.enabled else None)

    async def _start_redirect(self) -> None:
        why_not = unavailable()
        if why_not is not None:
            log.info("the relay answers the ports it knows of only", why=why_not)
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        sock.setblocking(False)
        redirect = Redirect(self.node_name, int(sock.getsockname()[1]))
        try:
            await redirect.remove()
        except OSError as exc:
            sock.close()
            log.warning(
                "no nftables redirect: the relay answers the ports it knows of only", error=str(exc)
            )
            return
        self._redirect, self._redirect_sock, self._redirecting = redirect, sock, True
        self.tasks.start("redirected", self._accept_loop(sock, self._take_redirected))

    async def stop(self) -> None:
        # The loops first: nothing opens a listener or accepts once the closing begins.
        self._stopping = True
        await self.tasks.stop(timeout=5.0)
        if self._redirect is not None:
            try:
                await self._redirect.remove()
            except OSError as exc:
                log.warning("could not remove the relay's nftables table", error=str(exc))
        if self._redirect_sock is not None:
            self._redirect_sock.close()
        for server in self._listeners.values():
            server.close()
        self._listeners.clear()
        for task in list(self._setups):
            task.cancel()
            await wait_cancelled(task, timeout=1.0)
        for pending in list(self._linking.values()):
            pending.cancel()
        for link in [*self._links.values(), *self._accepted_links]:
            link.abort()
        for bridge in list(self._bridges):
            bridge.reset()
        if self._listen_sock is not None:
            self._listen_sock.close()
            self._listen_sock = None
        for view in (self.nodes, self.pods, self.slices):
            view.close()

    # -- dialing -----------------------------------------------------------------------------

    async def dial(self, factory: ProtocolFactory, host: str, port: int) -> tuple[Any, Any]:
        """Connect to ``host:port``: through the relay when a node on another machine owns
        it, else directly. A refused relay is a ``ConnectionRefusedError`` as a refused
        connect is; callers bound the time with ``asyncio.timeout``."""
        peer = self.routes.peer_for(host)
        if peer is None or self._client_ctx is None:
            return await connect_directly(factory, host, port)
        stream = await self._open(peer, (host, port))
        app = factory()
        stream.attach(app)
        return stream, app

    async def _open(self, peer: Peer, target: Addr) -> Stream:
        link = await self._link_to(peer)
        stream = link.open(target)
        assert stream.reply is not None
        try:
            kind, payload = await stream.reply
        except BaseException:
            stream.abort()
            raise
        if kind is not Kind.OPENED:
            why = payload.decode("utf-8", "replace") or kind.name
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"{target[0]}:{target[1]} on node {peer.node}: {why}"
            )
        self.stats.dialed += 1
        return stream

    async def _link_to(self, peer: Peer) -> Link:
        """The link to ``peer``: the one there is, or a new one (one dial however many
        connections wait for it)."""
        link = self._links.get(peer)
        if link is not None and link.usable:
            return link
        pending = self._linking.get(peer)
        if pending is None:
            pending = asyncio.ensure_future(self._dial_link(peer))
            self._linking[peer] = pending
            pending.add_done_callback(lambda done: self._dialed(peer, done))
        return await asyncio.shield(pending)

    def _dialed(self, peer: Peer, done: asyncio.Future[Link]) -> None:
        self._linking.pop(peer, None)
        failure = None if done.cancelled() else done.exception()
        if failure is not None:
            log.debug("relay link failed", peer=peer.node, error=_reason(failure))

    async def _dial_link(self, peer: Peer) -> Link:
        assert self._client_ctx is not None
        loop = asyncio.get_running_loop()
        link = Link(peer.node, on_lost=self._link_lost)
        tls, _ = await loop.create_connection(
            lambda: link,
            peer.host,
            peer.port,
            ssl=self._client_ctx,
            server_hostname=peer.host,
            ssl_handshake_timeout=self.settings.handshake_timeout,
        )
        user, _ = subject_of(tls.get_extra_info("peercert") or {})
        if user != node_user(peer.node):
            tls.abort()
            raise ConnectionRefusedError(
                errno.ECONNREFUSED,
                f"the relay at {peer.host}:{peer.port} is {user or 'nobody'}, not node {peer.node}",
            )
        if not link.usable or self._stopping or peer not in self.routes.peers:
            link.abort()  # lost meanwhile, or no longer wanted (the relay stops, the peer left)
            raise ConnectionResetError(f"the relay link to {peer.node} did not last")
        _keepalive(tls.get_extra_info("socket"))
        self._links[peer] = link
        self.stats.links_dialed += 1
        return link

    def _link_lost(self, link: Link) -> None:
        for peer, known in list(self._links.items()):
            if known is link:
                del self._links[peer]
        self._accepted_links.discard(link)

    # -- accepting (this node owns the pod) --------------------------------------------------

    async def _accept_loop(
        self, sock: socket.socket, take: Callable[[socket.socket, Addr], Awaitable[None] | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno in _FATAL_ACCEPT:
                    raise
                # Out of descriptors or memory, or an error of one connection (ECONNABORTED,
                # EPROTO...): this one is lost, the next may do.
                log.warning("the relay could not accept a connection", error=exc.strerror)
                await asyncio.sleep(0.05)
                continue
            if len(self._setups) >= self.settings.max_setups:
                conn.close()
                log.warning("too many relay connections being set up: one closed", peer=peer[0])
                continue
            setup = take(conn, peer)
            if setup is not None:
                self._setup(setup)

    def _take_link(self, conn: socket.socket, peer: Addr) -> Awaitable[None]:
        return self._serve(conn, f"{peer[0]}:{peer[1]}")

    def _take_redirected(self, conn: socket.socket, _peer: Addr) -> Awaitable[None] | None:
        """A connection the nftables rule sent here: relayed to where it was headed, if that
        is another machine's pod."""
        target = original_destination(conn)
        if target is None or self.routes.peer_for(target[0]) is None:
            conn.close()  # not redirected, or not to a pod of another machine any more
            return None
        return self._relay_redirected(conn, target)

    async def _relay_redirected(self, conn: socket.socket, target: Addr) -> None:
        bridge = self._bridge()
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: bridge.sides[0], conn)
        except OSError:
            conn.close()
            bridge.reset()
            return
        await self._relay(bridge, target)

    def _setup(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._setups.add(task)
        task.add_done_callback(self._setups.discard)

    async def _serve(self, conn: socket.socket, peer: str) -> None:
        """Take a link another node dialed: TLS, then the streams it opens."""
        loop = asyncio.get_running_loop()
        link = Link(
            peer,
            on_open=self._opened,
            on_lost=self._link_lost,
            on_made=lambda made: self._admit(made, peer),
        )
        try:
            await loop.connect_accepted_socket(
                lambda: link,
                conn,
                ssl=self._server_ctx,
                ssl_handshake_timeout=self.settings.handshake_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            conn.close()
            self.stats.refused_peers += 1
            log.warning(
                "refused a relay connection: no valid node certificate",
                peer=peer,
                error=_reason(exc),
            )

    def _admit(self, link: Link, peer: str) -> None:
        """Right after the handshake, before any frame is read: only nodes may open streams."""
        assert link.tls is not None
        user, groups = subject_of(link.tls.get_extra_info("peercert") or {})
        if NODES_GROUP not in groups:
            link.abort()
            self.stats.refused_peers += 1
            log.warning("refused a relay connection: not a node", peer=peer, user=user)
            return
        link.peer = f"{user} at {peer}"
        _keepalive(link.tls.get_extra_info("socket"))
        self._accepted_links.add(link)
        self.stats.links_accepted += 1

    def _opened(self, stream: Stream) -> None:
        """A peer opened ``stream`` to one of this node's pods: connect it."""
        if len(self._setups) >= self.settings.max_setups:
            self._refuse(stream, "too many relayed connections being set up")
            return
        self._setup(self._connect_pod(stream))

    async def _connect_pod(self, stream: Stream) -> None:
        target = stream.target
        if not self._runs_here(target[0]):
            self._refuse(stream, f"{target[0]} is not a pod of node {self.node_name}")
            return
        bridge = self._bridge()
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await asyncio.get_running_loop().create_connection(lambda: bridge.sides[1], *target)
        except (OSError, TimeoutError) as exc:
            self._refuse(stream, _reason(exc))
            bridge.reset()
            return
        except BaseException:
            stream.abort()
            bridge.reset()
            raise
        if stream.is_closing():
            bridge.reset()  # the dialer gave up while we connected
            return
        stream.accept()
        stream.attach(bridge.sides[0])
        self.stats.accepted += 1

    def _runs_here(self, ip: str) -> bool:
        """Whether ``ip`` is the address of a running pod of this node (nothing else on
        the machine's loopback is the relay's to reach)."""
        return self.routes.owns(ip) and any(
            (pod.get("spec") or {}).get("nodeName") == self.node_name
            for pod in self.pods.by_index(POD_IP_INDEX, ip)
        )

    def _refuse(self, stream: Stream, why: str) -> None:
        self.stats.refused_opens += 1
        stream.refuse(why)

    def _bridge(self) -> Bridge:
        bridge = Bridge(on_done=self._bridges.discard)
        self._bridges.add(bridge)
        return bridge

    # -- answering remote pod addresses on this machine's loopback -----------------------------

    def _accepted(self, target: Addr) -> asyncio.Protocol:
        bridge = self._bridge()
        self._setup(self._relay(bridge, target))
        return bridge.sides[0]

    async def _relay(self, bridge: Bridge, target: Addr) -> None:
        try:
            async with asyncio.timeout(self.settings.handshake_timeout * 2):
                await self.dial(lambda: bridge.sides[1], *target)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.debug("relay failed", target=f"{target[0]}:{target[1]}", error=_reason(exc))
            bridge.reset()

    async def _sync_loop(self) -> None:
        while True:
            timeout = self.settings.sync_interval if self.stats.bind_failures else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._dirty.wait()
            self._dirty.clear()
            await self._sync()

    async def _sync(self) -> None:
        if self.routes.update(self.nodes.list()):
            log.info(
                "relay routes",
                peers=[f"{p.node}={p.host}:{p.port}" for p in self.routes.peers],
                own=str(self.routes.own_cidr),
            )
        for peer in set(self._links) - set(self.routes.peers):
            self._links.pop(peer).close()  # the peer left, or moved
        networks = self.routes.remote_networks
        if networks and self.enabled and self.settings.redirect and not self._redirect_tried:
            self._redirect_tried = True
            await self._start_redirect()
        if self._redirect is not None and self._redirecting:
            try:
                if await self._redirect.apply(networks):
                    log.info(
                        "relay redirect",
                        table=self._redirect.table,
                        networks=list(self._redirect.networks),
                        to=f"127.0.0.1:{self._redirect.port}",
                    )
            except OSError as exc:
                log.warning(
                    "the nftables redirect failed: the relay answers the ports it knows of only",
                    error=str(exc),
                )
                with contextlib.suppress(OSError):
                    await self._redirect.remove()
                self._redirecting = False
        wanted: set[Addr] = set()
        if self.routes.peers and self.enabled and not self._redirecting:
            wanted = remote_addresses(self.routes, pods=self.pods.list(), slices=self.slices.list())
            cap = self.settings.max_listeners
            if len(wanted) > cap:
                if len(self._listeners) < cap:  # said once, as the cap is reached
                    log.warning(
                        "more remote pod addresses than the relay answers; some are left out",
                        wanted=len(wanted),
                        max_listeners=cap,
                    )
                wanted = set(sorted(wanted)[:cap])
        for addr in [a for a in self._listeners if a not in wanted]:
            self._listeners.pop(addr).close()
        failures: dict[Addr, str] = {}
        loop = asyncio.get_running_loop()
        for addr in wanted - set(self._listeners):
            try:
                server = await loop.create_server(
                    lambda addr=addr: self._accepted(addr),  # type: ignore[misc]
                    host=addr[0],
                    port=addr[1],
                    reuse_address=True,
                    backlog=1024,
                )
            except OSError as exc:
                failures[addr] = exc.strerror or str(exc)
                if addr not in self.stats.bind_failures:
                    log.warning(
                        "cannot answer a remote pod address here",
                        address=f"{addr[0]}:{addr[1]}",
                        error=failures[addr],
                    )
                continue
            self._listeners[addr] = server
        self.stats.bind_failures = failures


def _contexts(cert: Path, key: Path, ca: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS 1.3 contexts that present the node's certificate and require the
    peer's, both signed by the cluster CA."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    server.load_cert_chain(cert, key)
    server.verify_mode = ssl.CERT_REQUIRED
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    server.num_tickets = 0
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    client.load_cert_chain(cert, key)
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    return server, client


def _keepalive(sock: Any) -> None:
    """TCP keep-alive on a link: a peer that vanished without a word (its machine lost) is
    noticed in about 30 s, and its streams reset."""
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        # Keep-alive probes wait for idle; with bytes unacknowledged, this bounds the wait.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 30_000)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
