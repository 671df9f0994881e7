"""structlog set-up for procorch's own logs: ``console`` (coloured, for people) or ``json``.

Components get a logger with :func:`get_logger` and bind what they work on
(``log.bind(kind="Pod", namespace=ns, name=name)``). Never bind a token or a Secret's data.

Tracebacks are plain text and bounded (:func:`bounded_traceback`): the last
:data:`TRACEBACK_FRAMES` frames, lines cut at :data:`TRACEBACK_LINE` characters, and never
the frames' local variables, which may hold request bodies, tokens or Secrets. An error path
must cost little whatever the request was: a rich traceback with locals of one
``RecursionError`` took over a minute and 35 MB.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from types import TracebackType
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["console", "json"]

TRACEBACK_FRAMES = 20
TRACEBACK_LINE = 500

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def bounded_traceback(exc_info: ExcInfo) -> str:
    """The traceback of ``exc_info`` as text: its last :data:`TRACEBACK_FRAMES` frames (and
    as many of each chained exception), each line at most :data:`TRACEBACK_LINE` characters,
    no local variables."""
    _, exc, _ = exc_info
    lines = traceback.format_exception(exc, limit=-TRACEBACK_FRAMES)
    out = []
    for chunk in lines:
        for line in chunk.splitlines():
            if len(line) > TRACEBACK_LINE:
                line = line[:TRACEBACK_LINE] + f"... ({len(line) - TRACEBACK_LINE} more)"
            out.append(line)
    return "\n".join(out)


def _console_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
    sio.write("\n" + bounded_traceback(exc_info))


_configured = False


def configure(
    *, fmt: LogFormat = "console", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog and the stdlib root logger (aiohttp logs through it)."""
    global _configured
    out: Any = stream or _CurrentStderr()
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.ExceptionRenderer(bounded_traceback))
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=_console_traceback
        )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(out)
    handler.setFormatter(_BoundedFormatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    _configured = True


class _BoundedFormatter(logging.Formatter):
    """The stdlib's format (aiohttp and asyncio log through it) with bounded tracebacks."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 - the stdlib's name
        return bounded_traceback(ei)


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of the write, so that a live terminal
    view that redirects it (rich's Live) gets procorch's log lines above its display."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _configure_default() -> None:
    """Until :func:`configure` runs (the CLI calls it), log to stderr, never stdout: stdout
    belongs to the programs that embed procorch and to CLI output."""
    level = os.environ.get("PROCORCH_LOG_LEVEL", "info").upper()
    numeric = logging.getLevelName(level)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False, exception_formatter=_console_traceback),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            numeric if isinstance(numeric, int) else logging.INFO
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(component: str) -> Any:
    """A structlog logger bound to ``component``.

    It is a lazy proxy: modules create their loggers at import, before the CLI has called
    :func:`configure`, and each log call must still use the configured format and level
    (``.bind()`` on it, at run time, fixes the configuration of the bound copy)."""
    global _configured
    if not _configured:
        _configure_default()
        _configured = True
    return structlog.get_logger(component=component)
