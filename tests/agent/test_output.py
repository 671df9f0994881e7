"""Live container output for ``procorch up``: streamed from the supervisor, prefixed per pod."""

from __future__ import annotations

import asyncio
import io
import time

from procorch.launcher.console import OutputMux
from tests.agent.conftest import Cluster


def test_lines_are_prefixed_and_partial_lines_wait_for_their_end() -> None:
    out = io.BytesIO()
    mux = OutputMux(out, colour=False)
    mux.feed("default", "web", "web", 1, "stdout", b"hello\nwor")
    mux.feed("default", "db-0", "db", 2, "stderr", b"ready\r\n")
    mux.feed("default", "web", "web", 1, "stdout", b"ld\n")
    mux.feed("other", "job", "main", 1, "stdout", b"x\n")
    assert out.getvalue().decode().splitlines() == [
        "web | hello",
        "db-0/db | ready",
        "web     | world",
        "other/job | x",
    ]


def test_colour_is_stable_per_name() -> None:
    out = io.BytesIO()
    mux = OutputMux(out, colour=True)
    mux.feed("default", "web", "web", 1, "stdout", b"a\nb\n")
    first, second = out.getvalue().split(b"\n")[:2]
    assert first.startswith(b"\x1b[") and first[:8] == second[:8]


async def test_the_agent_streams_output_as_it_is_produced(cluster: Cluster) -> None:
    seen: list[tuple[str, str, str, bytes]] = []
    cluster.agent.on_output(lambda w, c, s, d: seen.append((w.name, c, s, d)))
    await cluster.agent.follow_output(True)
    await cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: chatter}\nspec:\n  containers:\n"
        "  - {name: main, command: [sh, -c, 'echo out; echo err >&2; sleep 60']}\n"
    )
    deadline = time.monotonic() + 10
    while {(n, c, s, d) for n, c, s, d in seen} < {
        ("chatter", "main", "stdout", b"out\n"),
        ("chatter", "main", "stderr", b"err\n"),
    }:
        assert time.monotonic() < deadline, seen
        await asyncio.sleep(0.02)
