"""``procorch up``'s live output: every container's lines, prefixed and coloured, as they come.

Like foreman and honcho: each line is written with a stable coloured column naming its source
(``web-5d8f7-x2kq9`` for a one-container pod, ``pod/container`` otherwise; the name function is
pluggable so a Procfile process shows as ``web.1``), padded to the longest name seen. Output is
written as soon as a line is complete (a partial line waits for its end, up to 16 KiB);
``tty: true`` containers keep their colours. Lines go to stdout; procorch's own logs go to
stderr.

Concurrency: called on the event loop from the agent's output callback; writes are small and
synchronous. A terminal that cannot keep up slows only this view: the node supervisor drops
output for it beyond a bound (the log files keep everything).
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable
from typing import BinaryIO

# Bright, readable on dark and light backgrounds; the error colour (red) is left out.
_COLOURS = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)
MAX_PENDING = 16 * 1024

NameOf = Callable[[str, str, str, int], str]  # (namespace, pod, container, containers in pod)


def default_name(namespace: str, pod: str, container: str, containers: int) -> str:
    name = pod if containers <= 1 else f"{pod}/{container}"
    return name if namespace == "default" else f"{namespace}/{name}"


def procfile_names() -> NameOf:
    """``web.1``, ``web.2``: the process type (the container's name) and the replica, numbered
    in the order its pods first speak, as foreman numbers them."""
    ordinals: dict[str, dict[str, int]] = {}

    def name_of(namespace: str, pod: str, container: str, containers: int) -> str:
        pods = ordinals.setdefault(container, {})
        if pod not in pods:
            pods[pod] = len(pods) + 1
        return f"{container}.{pods[pod]}"

    return name_of


class OutputMux:
    def __init__(
        self,
        out: BinaryIO | None = None,
        *,
        colour: bool | None = None,
        name_of: NameOf = default_name,
    ) -> None:
        self.out = out
        self.colour = sys.stdout.isatty() if colour is None else colour
        self.name_of = name_of
        self._width = 0
        self._pending: dict[tuple[str, str, str, str], bytes] = {}

    def feed(
        self,
        namespace: str,
        pod: str,
        container: str,
        containers: int,
        stream: str,
        data: bytes,
    ) -> None:
        key = (namespace, pod, container, stream)
        data = self._pending.pop(key, b"") + data
        lines = data.split(b"\n")
        rest = lines.pop()
        if len(rest) > MAX_PENDING:
            lines.append(rest)
            rest = b""
        if rest:
            self._pending[key] = rest
        if lines:
            self._write(self.name_of(namespace, pod, container, containers), lines)

    def flush_all(self) -> None:
        for (namespace, pod, container, _), rest in list(self._pending.items()):
            self._write(self.name_of(namespace, pod, container, 1), [rest])
        self._pending.clear()

    def _write(self, name: str, lines: list[bytes]) -> None:
        self._width = max(self._width, len(name))
        label = name.ljust(self._width) + " | "
        if self.colour:
            code = _COLOURS[zlib.crc32(name.encode()) % len(_COLOURS)]
            prefix = f"\x1b[{code}m{label}\x1b[0m".encode()
        else:
            prefix = label.encode()
        blob = b"".join(prefix + line.rstrip(b"\r") + b"\n" for line in lines)
        try:
            if self.out is not None:
                self.out.write(blob)
                self.out.flush()
            elif sys.__stdout__ is not None and sys.stdout is sys.__stdout__:
                sys.__stdout__.buffer.write(blob)
                sys.__stdout__.buffer.flush()
            else:
                # A live view redirected stdout: go through it, so lines land above it.
                sys.stdout.write(blob.decode(errors="replace"))
                sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            pass
