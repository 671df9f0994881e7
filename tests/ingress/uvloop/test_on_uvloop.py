"""The data plane on uvloop, as ``procorch up`` runs it: uvloop's transports are not asyncio's
classes, and its TLS, flow control and half-close paths differ. The same tests, another loop."""

from __future__ import annotations

import asyncio

import uvloop

from tests.ingress.test_limits import (  # noqa: F401
    test_slow_heads_and_bodies_get_408_and_idle_connections_are_closed,
)
from tests.ingress.test_routing import (  # noqa: F401
    test_a_reused_connection_that_the_endpoint_closes_is_retried_on_a_fresh_one,
    test_head_chunked_uploads_and_pipelining,
    test_keep_alive_on_both_sides,
)
from tests.ingress.test_split_writes import (  # noqa: F401
    test_responses_written_in_several_sends_are_not_held_by_delayed_acks,
)
from tests.ingress.test_streaming import (  # noqa: F401
    test_a_client_that_does_not_read_stops_the_upstream_being_read,
    test_a_stalled_upstream_stops_the_client_being_read,
    test_large_bodies_both_ways_arrive_intact_with_bounded_memory,
)
from tests.ingress.test_tls_and_classes import (  # noqa: F401
    test_https_picks_the_certificate_by_sni,
)
from tests.ingress.test_websocket import test_a_websocket_echoes_through_the_router  # noqa: F401


async def test_these_run_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
