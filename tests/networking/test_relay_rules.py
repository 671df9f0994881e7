"""The node relay's pure parts: its wire format, cut anywhere, and its routes (which addresses
belong to which node, and which of them this machine answers for)."""

from __future__ import annotations

from typing import Any

import pytest

from procorch.proxy.relay import wire
from procorch.proxy.relay.routes import RELAY_ANNOTATION, Peer, Routes, remote_addresses
from procorch.proxy.relay.wire import Kind


def parse(chunks: list[bytes]) -> list[tuple[str, int, bytes]]:
    out: list[tuple[str, int, bytes]] = []

    def on_data(stream: int, chunk: bytes | memoryview) -> None:
        if out and out[-1][:2] == ("DATA", stream):
            out[-1] = ("DATA", stream, out[-1][2] + bytes(chunk))
        else:
            out.append(("DATA", stream, bytes(chunk)))

    parser = wire.FrameParser(
        on_data=on_data,
        on_control=lambda kind, stream, payload: out.append((kind.name, stream, payload)),
    )
    for chunk in chunks:
        parser.feed(chunk)
    return out


STREAM = (
    wire.frame(Kind.OPEN, 1, wire.open_payload("127.2.0.7", 8080))
    + wire.data_header(1, 5)
    + b"hello"
    + wire.frame(Kind.OPEN, 2, wire.open_payload("127.2.0.8", 80))
    + wire.data_header(2, 3)
    + b"abc"
    + wire.data_header(1, 70_000)
    + b"x" * 70_000
    + wire.window(2, 65536)
    + wire.frame(Kind.EOF, 1)
)
EXPECTED = [
    ("OPEN", 1, b"127.2.0.7 8080"),
    ("DATA", 1, b"hello"),
    ("OPEN", 2, b"127.2.0.8 80"),
    ("DATA", 2, b"abc"),
    ("DATA", 1, b"x" * 70_000),
    ("WINDOW", 2, (65536).to_bytes(4, "big")),
    ("EOF", 1, b""),
]


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 6, 7, 13, 4096, 65536, len(STREAM)])
def test_frames_come_out_whole_and_in_order_however_the_stream_is_cut(cut: int) -> None:
    chunks = [STREAM[i : i + cut] for i in range(0, len(STREAM), cut)]
    assert parse(chunks) == EXPECTED


def test_a_chunk_that_is_one_data_frame_is_passed_on_as_it_is() -> None:
    assert parse([wire.data_header(7, 3) + b"abc"]) == [("DATA", 7, b"abc")]


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (bytes([9, 0, 0, 0, 1, 0, 0, 0, 0]), "unknown frame kind 9"),
        (wire.HEADER.pack(Kind.OPEN, 1, wire.MAX_CONTROL + 1), "OPEN frame of 1025 bytes"),
        (wire.HEADER.pack(Kind.DATA, 1, wire.MAX_DATA + 1), "DATA frame of"),
    ],
)
def test_a_broken_stream_is_a_protocol_error(stream: bytes, message: str) -> None:
    with pytest.raises(wire.ProtocolError, match=message):
        parse([stream])


@pytest.mark.parametrize("payload", [b"127.0.0.1", b"127.0.0.1 0", b"a b c", b"\xff 1"])
def test_a_bad_open_is_refused(payload: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.parse_open(payload)


def node(name: str, cidr: str, relay: str | None) -> dict[str, Any]:
    annotations = {RELAY_ANNOTATION: relay} if relay else {}
    return {"metadata": {"name": name, "annotations": annotations}, "spec": {"podCIDR": cidr}}


def routes(local: frozenset[str] = frozenset()) -> Routes:
    r = Routes("a", is_local=lambda host: host in local)
    r.update(
        [
            node("a", "127.1.0.0/16", "10.0.0.1:7000"),
            node("b", "127.2.0.0/16", "10.0.0.2:7000"),
            node("c", "127.3.0.0/16", None),  # no relay announced: not routed
            node("d", "127.4.0.0/16", "10.0.0.1:7001"),  # this machine's: shares its loopback
        ]
    )
    return r


def test_routes_lead_to_the_nodes_of_other_machines_only() -> None:
    r = routes(local=frozenset({"10.0.0.1"}))
    assert r.peer_for("127.2.9.9") == Peer("b", "10.0.0.2", 7000)
    assert r.peer_for("127.1.0.5") is None  # this node's own
    assert r.peer_for("127.3.0.5") is None
    assert r.peer_for("127.4.0.5") is None
    assert r.peer_for("10.0.0.2") is None and r.peer_for("not-an-ip") is None
    assert r.owns("127.1.200.1") and not r.owns("127.2.0.1") and not r.owns("127.0.0.1")
    assert r.update([node("b", "127.2.0.0/16", "10.0.0.2:7000")])  # its own Node left: changed
    assert r.peer_for("127.2.9.9") == Peer("b", "10.0.0.2", 7000)
    assert r.owns("127.1.0.1") is False  # its own Node is gone from the list


def pod(
    ip: str, *ports: int, phase: str = "Running", host_network: bool = False, node: str = "b"
) -> Any:
    return {
        "spec": {
            "nodeName": node,
            "hostNetwork": host_network,
            "containers": [{"ports": [{"containerPort": p} for p in ports]}],
        },
        "status": {"podIP": ip, "phase": phase},
    }


def test_this_node_answers_declared_ports_and_endpoint_ports_of_other_machines_pods() -> None:
    r = routes(local=frozenset({"10.0.0.1"}))
    pods = [
        pod("127.2.0.2", 8080, 9090),
        pod("127.2.0.3", 8080, phase="Succeeded"),
        pod("127.2.0.4", 7000, host_network=True),
        pod("127.2.0.5", 7000, node="a"),  # says node a, in b's range: not b's pod
        pod("127.2.0.9"),  # no declared port: its Service's port only
        pod("127.1.0.2", 8080, node="a"),  # this node's
    ]
    slices = [
        {
            "ports": [{"port": 5432}, {"port": 53, "protocol": "UDP"}],
            "endpoints": [
                {"addresses": ["127.2.0.9"]},
                {"addresses": ["127.1.0.9"]},
                {"addresses": ["127.2.0.77"]},  # a hand-made endpoint, no pod there
            ],
        }
    ]
    assert remote_addresses(r, pods=pods, slices=slices) == {
        ("127.2.0.2", 8080),
        ("127.2.0.2", 9090),
        ("127.2.0.9", 5432),
    }


def test_a_peer_claiming_another_nodes_range_or_localhost_is_not_routed_to() -> None:
    r = Routes("a", is_local=lambda host: host == "10.0.0.1")
    r.update(
        [
            node("a", "127.1.0.0/16", "10.0.0.1:7000"),
            node("b", "127.2.0.0/16", "10.0.0.2:7000"),
            node("evil", "127.2.0.0/15", "10.0.0.3:7000"),  # overlaps b
            node("greedy", "127.0.0.0/8", "10.0.0.4:7000"),  # holds 127.0.0.1 and a's range
            node("d", "127.4.0.0/16", "10.0.0.5:7000"),
        ]
    )
    assert [p.node for p in r.peers] == ["d"]
    assert r.peer_for("127.2.0.5") is None and r.peer_for("127.0.0.1") is None
