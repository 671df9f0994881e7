"""Proxy benchmark (issue 6): the L4 Service proxy beside HAProxy (``proxy_l4.l4``) and, when
that part is present, the L7 Ingress router beside nginx (``proxy_l7.l7``). Prints one
Markdown table for the README's Performance section."""

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
    parser.add_argument("--only", choices=("l4", "l7"), help="run one part only")
    args = parser.parse_args()
    common = dict(
        duration=args.duration, connections=args.connections, runs=args.runs, threads=args.threads
    )
    rows: list[tuple[str, str, str]] = []
    if args.only != "l7":
        print("L4: Service proxy vs HAProxy (tcp mode)", file=sys.stderr)
        rows += asyncio.run(l4(**common)).rows()  # type: ignore[arg-type]
    if args.only != "l4":
        try:
            proxy_l7 = importlib.import_module("proxy_l7")
        except ImportError:
            print("(no L7 part: scripts/bench/proxy_l7.py is missing)", file=sys.stderr)
        else:
            print("L7: Ingress router vs nginx", file=sys.stderr)
            rows += asyncio.run(proxy_l7.l7(**common)).rows()
    print_rows(rows)


if __name__ == "__main__":
    main()
