"""The reliability run's figures as one Markdown table (``scripts/bench/reliability``).

Reads the JSON lines the tests of ``tests/reliability`` append to the file named by
``PROCORCH_RELIABILITY_REPORT`` (one per test, see ``reliability_harness.report``) and prints
a row per kind of trial, then the totals that matter: writes lost, orphan and duplicate
processes, server errors, availability.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

Row = dict[str, Any]


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _kill9(r: Row) -> tuple[str, str]:
    return (
        f"{_n(r['trials'])} kills (procorch, its group, with the supervisor, in turn)",
        f"{_n(r['writes'])} writes acknowledged by 8 concurrent writers ({_n(r['objects'])} "
        f"objects), **{_n(r['lost'])} lost**; pods adopted: {_n(r['orphans'])} orphans, "
        f"{_n(r['duplicates'])} duplicates ({_n(r['restarts'])} restarts, all from a killed "
        "supervisor)",
    )


def _crash(r: Row) -> tuple[str, str]:
    return (
        f"{_n(r['trials'])} kills, {_n(r['during_rollout'])} during a rollout",
        f"**{_n(r['orphans'])} orphans, {_n(r['duplicates'])} duplicates, "
        f"{_n(r['unexpected_restarts'])} unexpected restarts**; {_n(r['adopted'])} "
        "processes adopted unchanged",
    )


def _fuzz(r: Row) -> tuple[str, str]:
    ways = ", ".join(f"{_n(v)} {k[4:]}" for k, v in sorted(r.items()) if k.startswith("via "))
    return (
        f"{_n(r['examples'])} manifests ({ways})",
        f"{_n(r['accepted'])} accepted, {_n(r['refused'])} refused; **{_n(r['server_errors'])} "
        f"5xx, {_n(r['partial_writes'])} partial writes**",
    )


def _malformed(r: Row) -> tuple[str, str]:
    answers = ", ".join(f"{_n(v)}× {k}" for k, v in sorted(r["answers"].items()))
    extra = ""
    if "paths_without_token" in r:
        extra = (
            f"; {_n(r['paths_without_token'])} path/verb requests without a valid token: all 401"
        )
    return (
        f"{_n(r['requests'])} requests ({_n(r['cases'])} kinds)",
        f"**{_n(r['server_errors'])} 5xx, {_n(r['hangs'])} hangs**; answers {answers}{extra}",
    )


def _slowloris(r: Row) -> tuple[str, str]:
    return (
        f"{_n(r['served'] + r['failed'])} real requests under attack",
        f"1,100 slow + 200 silent clients, {_n(r['fd_limit'])} descriptors: "
        f"**{_n(r['failed'])} failed**",
    )


def _chaos(r: Row) -> tuple[str, str]:
    paths = "; ".join(
        f"{p}: {_n(r[f'{p}_requests'])} requests, {_n(r[f'{p}_failed'])} failed "
        f"(**{r[f'{p}_availability']:.3%}**)"
        for p in ("service", "ingress")
    )
    return (
        f"{r['seconds']:.0f} s, {_n(r['kills'])} pods SIGKILLed, "
        f"{_n(r['rollout_restarts'])} rollout restarts",
        f"{paths}; after: {_n(r['orphans'])} orphans, {_n(r['duplicates'])} duplicates",
    )


FORMATS: dict[str, Callable[[Row], tuple[str, str]]] = {
    "kill -9 durability": _kill9,
    "crash audits": _crash,
    "manifest fuzz": _fuzz,
    "malformed HTTP: API": _malformed,
    "malformed HTTP: Ingress": _malformed,
    "slowloris API": _slowloris,
    "slowloris Ingress": _slowloris,
    "chaos": _chaos,
}


def main(path: str) -> None:
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print("| trial | runs | result |")
    print("|---|---|---|")
    for row in rows:
        name = row.pop("test")
        fmt = FORMATS.get(name)
        if fmt is None:
            runs, result = "", ", ".join(f"{k} {_n(v)}" for k, v in sorted(row.items()))
        else:
            try:
                runs, result = fmt(row)
            except KeyError as exc:
                runs, result = "", f"(missing figure {exc}) {row}"
        print(f"| {name} | {runs} | {result} |")
    if not rows:
        print("| (no figures: did the tests run?) | | |")


if __name__ == "__main__":
    main(sys.argv[1])
