"""The probes over raw protocols, on uvloop (the agent's loop under ``procorch up``)."""

from __future__ import annotations

from tests.agent.test_probes import (  # noqa: F401 - collected again here, on uvloop
    grpc_server,
    test_grpc_misbehaving_servers_get_a_verdict_not_a_crash,
    test_grpc_refused_and_silent_servers_fail_like_the_kubelet,
    test_grpc_server_without_the_health_service_is_unimplemented,
    test_grpc_serving_is_success_and_anything_else_says_what_it_got,
)


async def test_these_run_on_uvloop() -> None:
    import asyncio

    import uvloop

    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
