"""The L4 data plane on uvloop, as ``procorch up`` runs it: uvloop's transports are not
asyncio's classes (their sockets, flow control, half-close and reader callbacks differ).
The same tests, another loop."""

from __future__ import annotations

import asyncio

import uvloop

from tests.networking.test_l4_delayed_acks import (  # noqa: F401
    test_keep_alive_responses_written_in_two_sends_are_not_held_by_delayed_acks,
    test_the_socket_kept_for_quick_acks_is_closed_with_its_connection,
)
from tests.networking.test_l4_proxy import (  # noqa: F401
    test_a_client_that_does_not_read_stops_the_endpoint_being_read,
    test_a_refused_connect_is_retried_on_another_endpoint,
    test_connections_are_spread_over_ready_endpoints_only,
    test_half_close_passes_the_eof_and_the_answer_comes_back,
    test_idle_connections_are_closed,
    test_ten_mebibytes_cross_intact_both_ways,
    test_without_endpoints_the_client_is_let_go_at_once,
)


async def test_these_run_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
