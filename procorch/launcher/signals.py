"""SIGINT/SIGTERM for the long-running commands: the first stops in order, a second forces."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator

from procorch.kit.logging import get_logger

log = get_logger("launcher")


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event, what: str) -> Iterator[None]:
    """While inside: the first SIGINT/SIGTERM sets ``stop``; a second exits at once (130)
    (a node's supervisor process then stops the containers on its own)."""
    loop = asyncio.get_running_loop()
    received = 0

    def on_signal(signum: int) -> None:
        nonlocal received
        received += 1
        if received == 1:
            log.info(
                f"received signal; {what} (again to force)", signal=signal.Signals(signum).name
            )
            stop.set()
        else:
            log.warning("second signal: forcing exit")
            os._exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
