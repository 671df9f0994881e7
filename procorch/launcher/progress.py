"""``procorch up``'s start-up view: what is pending, starting, ready or failing, and why; then
one summary with the URLs to open and the ``KUBECONFIG`` line.

On a terminal it is a live table (rich) that container output and procorch's own log lines
scroll above; elsewhere (piped, CI) it prints only the summary line once everything is ready,
and each failure once when it appears. It looks at the stack through the in-process client
four times a second until everything is ready; after that it is done (``kubectl get pods``
and the container output tell the rest).

Concurrency: one task on the launcher's loop; reads only.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from procorch.api.resources import must
from procorch.client import readiness
from procorch.client.base import Client

DEPLOYMENTS = must("apps/deployments")
DAEMON_SETS = must("apps/daemonsets")
JOBS = must("batch/jobs")
PODS = must("core/pods")
SERVICES = must("core/services")
INGRESSES = must("networking.k8s.io/ingresses")

_STYLE = {
    "pending": ("…", "yellow"),
    "starting": ("◌", "cyan"),
    "ready": ("✔", "green"),
    "done": ("✔", "green"),
    "failing": ("✖", "red"),
}


async def _snapshot(client: Client) -> list[readiness.Item]:
    deployments, jobs, pods, daemon_sets = await asyncio.gather(
        client.list(DEPLOYMENTS), client.list(JOBS), client.list(PODS), client.list(DAEMON_SETS)
    )
    return readiness.evaluate(deployments.items, jobs.items, pods.items, daemon_sets.items)


def render(items: list[readiness.Item], elapsed: float) -> Group:
    ready = sum(1 for i in items if i.state in ("ready", "done"))
    title = Text(
        f"procorch: starting - {ready}/{len(items)} ready ({elapsed:.1f} s)", style="italic"
    )
    table = Table(
        box=None,
        show_header=False,
        pad_edge=False,
    )
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    order = {"failing": 0, "pending": 1, "starting": 2, "ready": 3, "done": 4}
    for item in sorted(items, key=lambda i: (order[i.state], i.ref)):
        icon, style = _STYLE[item.state]
        table.add_row(Text(icon, style=style), Text(item.ref, style="bold"), item.detail)
    return Group(title, table)


async def urls(client: Client, *, ingress_url: str | None) -> list[str]:
    """Where to point a browser: Ingress rules, NodePorts and LoadBalancers."""
    found: list[str] = []
    if ingress_url:
        base = ingress_url.rstrip("/")
        port = base.rsplit(":", 1)[-1]
        for ing in (await client.list(INGRESSES)).items:
            name = ing["metadata"]["name"]
            for rule in (ing.get("spec") or {}).get("rules") or []:
                host = rule.get("host")
                prefix = f"http://{host}:{port}" if host and "*" not in host else base
                for path in (rule.get("http") or {}).get("paths") or []:
                    found.append(f"{prefix}{path.get('path') or '/'}   (ingress {name})")
            if (ing.get("spec") or {}).get("defaultBackend"):
                found.append(f"{base}/   (ingress {name}, default backend)")
    for svc in (await client.list(SERVICES)).items:
        spec = svc.get("spec") or {}
        if spec.get("type") not in ("NodePort", "LoadBalancer"):
            continue
        for port in spec.get("ports") or []:
            if port.get("nodePort"):
                found.append(
                    f"http://127.0.0.1:{port['nodePort']}   "
                    f"(service {svc['metadata']['name']}, {spec['type']})"
                )
    return found


async def watch_startup(
    client: Client,
    *,
    console: Console,
    kubeconfig: str,
    ingress_url: str | None = None,
    interval: float = 0.25,
) -> None:
    """Show progress until everything is ready, then the summary."""
    started = time.monotonic()
    items = await _snapshot(client)
    reported: set[tuple[str, str]] = set()
    if console.is_terminal and not readiness.all_ready(items):
        with Live(
            render(items, 0.0),
            console=console,
            refresh_per_second=4,
            redirect_stdout=True,
            redirect_stderr=True,
            transient=True,
        ) as live:
            while not readiness.all_ready(items):
                await asyncio.sleep(interval)
                items = await _snapshot(client)
                live.update(render(items, time.monotonic() - started))
    else:
        while not readiness.all_ready(items):
            for item in items:
                if item.state == "failing" and (item.ref, item.detail) not in reported:
                    reported.add((item.ref, item.detail))
                    console.print(f"✖ {item.ref}: {item.detail}", highlight=False)
            await asyncio.sleep(interval)
            items = await _snapshot(client)
    elapsed = time.monotonic() - started
    console.print(
        Text(f"✔ {len(items)}/{len(items)} ready in {elapsed:.1f} s", style="bold green")
        if items
        else Text("✔ nothing to start yet: kubectl apply -f ... to add workloads", style="green")
    )
    for url in await urls(client, ingress_url=ingress_url):
        console.print(f"  {url}", highlight=False)
    console.print(f"  export KUBECONFIG={kubeconfig}", highlight=False)


def ingress_url_of(procorch: Any) -> str | None:
    url = getattr(procorch, "ingress_url", None)
    return str(url) if url else None
