"""Durations written as Go's ``time.ParseDuration`` reads them (``40s``, ``1m30s``,
``500ms``), for flags that mirror Kubernetes' (``--node-monitor-grace-period``). Pure."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError (saying what is expected) when it is not a duration."""
    rest = text.strip()
    if rest == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(rest):
        match = _PART.match(rest, pos)
        if match is None:
            raise ValueError(
                f'invalid duration "{text}": expected a number and a unit, e.g. 40s, 1m30s, 500ms'
            )
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not rest:
        raise ValueError('invalid duration "": expected e.g. 40s')
    return total
