"""Proxy benchmark (issues 6 and 13): the L4 Service proxy beside HAProxy (``proxy_l4.l4``),
when that part is present the L7 Ingress router beside nginx (``proxy_l7.l7``), and a Service
whose endpoint is on another node beside a pair of HAProxy speaking TLS (``proxy_cross.cross``;
network namespaces, so root only: skipped, saying why, elsewhere unless asked for with
``--only cross``). Prints one Markdown table for the README's Performance section."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_l4 import l4, print_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--only", choices=("l4", "l7", "cross"), help="run one part only")
    args = parser.parse_args()
    common = dict(
        duration=args.duration, connections=args.connections, runs=args.runs, threads=args.threads
    )
    rows: list[tuple[str, str, str]] = []
    if args.only in (None, "l4"):
        print("L4: Service proxy vs HAProxy (tcp mode)", file=sys.stderr)
        rows += asyncio.run(l4(**common)).rows()  # type: ignore[arg-type]
    if args.only in (None, "l7"):
        try:
            proxy_l7 = importlib.import_module("proxy_l7")
        except ImportError:
            print("(no L7 part: scripts/bench/proxy_l7.py is missing)", file=sys.stderr)
        else:
            print("L7: Ingress router vs nginx", file=sys.stderr)
            rows += asyncio.run(proxy_l7.l7(**common)).rows()
    if args.only in (None, "cross"):
        from procorch.testing.netns import available

        why_not = available()
        if why_not and args.only is None:
            print(f"(no cross-node part: {why_not})", file=sys.stderr)
        else:
            from proxy_cross import cross

            print(
                "Across nodes: Service through the node relay vs a HAProxy pair (TLS)",
                file=sys.stderr,
            )
            rows += asyncio.run(cross(**common)).rows()  # type: ignore[arg-type]
    print_rows(rows)


if __name__ == "__main__":
    main()
