"""Client commands: apply, get, describe, delete, logs, kubeconfig."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import click
import yaml
from rich.table import Table

from procorch.api import errors, resources
from procorch.api.resources import ResourceType
from procorch.cli.common import (
    api_command,
    connection_options,
    err,
    make_client,
    out,
    print_table,
    table_column,
)
from procorch.cli.main import cli
from procorch.client.apply import ApplyError, apply_all
from procorch.client.http import HttpClient
from procorch.client.kubeconfig import Credentials, render
from procorch.client.kubeconfig import read as read_kubeconfig
from procorch.client.manifests import ManifestError, load
from procorch.kit.tokens import KEY_FILE, TokenSigner, user_claims

TABLE_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


# Discovery order of the groups on a Kubernetes cluster, which is the order kubectl prints the
# members of a category (``get all``: pods, services, deployments, ..., cronjobs, jobs).
_GROUP_RANK = {"": 0, "apps": 1, "autoscaling": 2, "batch": 3}


def qualified(rt: ResourceType) -> str:
    """kubectl's name for a resource type in messages: ``deployment.apps``, ``configmap``."""
    return f"{rt.singular_name}.{rt.group}" if rt.group else rt.singular_name


def category(name: str) -> list[ResourceType]:
    """The resource types in a category (``all``), in kubectl's order; empty if none."""
    members = [r for r in resources.RESOURCES if name in r.categories]
    return sorted(members, key=lambda r: (_GROUP_RANK.get(r.group, len(_GROUP_RANK)), r.plural))


def resolve_kind(name: str) -> ResourceType:
    rt = resources.lookup(name)
    if rt is None:
        raise click.ClickException(f'the server doesn\'t have a resource type "{name}"')
    return rt


def resolve_kinds(name: str) -> list[ResourceType]:
    """A resource type, or every member of a category such as ``all``."""
    members = category(name.lower())
    if members and resources.lookup(name) is None:
        return members
    return [resolve_kind(name)]


def parse_targets(args: tuple[str, ...]) -> list[tuple[ResourceType, list[str]]]:
    """kubectl's argument forms: ``pods``, ``pods web api``, ``deploy/web svc/web``,
    ``deploy,svc``."""
    if not args:
        raise click.UsageError("You must specify the type of resource")
    if all("/" in a for a in args):
        grouped: dict[str, tuple[ResourceType, list[str]]] = {}
        for arg in args:
            kind, _, name = arg.partition("/")
            rt = resolve_kind(kind)
            grouped.setdefault(rt.key, (rt, []))[1].append(name)
        return list(grouped.values())
    kinds = [rt for k in args[0].split(",") if k for rt in resolve_kinds(k)]
    names = list(args[1:])
    if len(kinds) > 1 and names:
        raise click.UsageError("names cannot be given with several resource types")
    return [(rt, names) for rt in kinds]


# -- apply ---------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Manifest file or directory (repeatable).",
)
@click.option("-n", "--namespace", default=None, help="Namespace for objects that name none.")
@click.option("--dry-run", is_flag=True, help="Validate on the server; change nothing.")
@click.option(
    "--force-conflicts/--no-force-conflicts",
    default=True,
    show_default=True,
    help="Take over fields another manager owns (the manifest is the truth).",
)
@connection_options
@api_command
async def apply(
    files: tuple[Path, ...],
    namespace: str | None,
    dry_run: bool,
    force_conflicts: bool,
    data_dir: Path | None,
    kubeconfig: Path | None,
) -> int:
    """Create or update objects from manifests (server-side apply, all or nothing)."""
    try:
        manifests = load(files)
    except ManifestError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return 1
    if not manifests:
        err.print("[red]error:[/] no objects passed to apply", highlight=False)
        return 1
    client, default_ns = make_client(data_dir, kubeconfig)
    try:
        if dry_run:
            from procorch.client.apply import resolve

            for manifest in manifests:
                rt = resolve(manifest)
                ns = (manifest.namespace or namespace or default_ns) if rt.namespaced else ""
                body = {**manifest.obj, "metadata": {**(manifest.obj.get("metadata") or {})}}
                if rt.namespaced:
                    body["metadata"]["namespace"] = ns
                await client.patch(
                    rt,
                    manifest.name,
                    body,
                    namespace=ns,
                    patch_type="apply",
                    dry_run=True,
                    force=force_conflicts,
                    field_validation="Strict",
                )
                out.print(
                    f"{qualified(rt)}/{manifest.name} valid (server dry run)", highlight=False
                )
            return 0
        applied = await apply_all(
            client, manifests, default_namespace=namespace or default_ns, force=force_conflicts
        )
    except ApplyError as exc:
        err.print("[red]error:[/] nothing was applied; the server refused:", highlight=False)
        for manifest, problem in exc.problems:
            message = problem.message if isinstance(problem, errors.ApiError) else str(problem)
            err.print(f"  {manifest.source}: {message}", highlight=False, markup=False)
        return 1
    finally:
        await client.close()
    for item in applied:
        out.print(item.describe(), highlight=False)
    return 0


# -- get -----------------------------------------------------------------------------------------


async def _get_table(
    client: HttpClient,
    rt: ResourceType,
    *,
    namespace: str,
    name: str,
    selector: str,
    field_selector: str,
) -> dict[str, Any]:
    params = {}
    if selector:
        params["labelSelector"] = selector
    if field_selector:
        params["fieldSelector"] = field_selector
    url = client.server + rt.path(namespace or None if rt.namespaced else None, name or None)
    return await client.request("GET", url, params=params or None, accept=TABLE_ACCEPT)


@cli.command()
@click.argument("args", nargs=-1, required=True)
@click.option("-n", "--namespace", default=None)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-l", "--selector", default="", help="Label selector, e.g. app=web,tier!=db.")
@click.option("--field-selector", default="")
@click.option("-o", "--output", type=click.Choice(["wide", "yaml", "json", "name"]), default=None)
@click.option("--show-labels", is_flag=True)
@connection_options
@api_command
async def get(
    args: tuple[str, ...],
    namespace: str | None,
    all_namespaces: bool,
    selector: str,
    field_selector: str,
    output: str | None,
    show_labels: bool,
    data_dir: Path | None,
    kubeconfig: Path | None,
) -> int:
    """Show objects as tables (like kubectl get)."""
    client, default_ns = make_client(data_dir, kubeconfig)
    ns = "" if all_namespaces else (namespace or default_ns)
    try:
        targets = parse_targets(args)
        # As kubectl: with several types, each name says its type and tables are apart.
        several = len(targets) > 1
        found = False
        for rt, names in targets:
            for name in names or [""]:
                if output in ("yaml", "json", "name"):
                    found |= await _print_objects(
                        client, rt, ns, name, selector, field_selector, output
                    )
                    continue
                table = await _get_table(
                    client,
                    rt,
                    namespace=ns,
                    name=name,
                    selector=selector,
                    field_selector=field_selector,
                )
                if table.get("rows"):
                    if found and several:
                        out.print()
                    found = True
                    _render_table(
                        table,
                        wide=output == "wide",
                        with_namespace=all_namespaces and rt.namespaced,
                        show_labels=show_labels,
                        kind_prefix=f"{qualified(rt)}/" if several else "",
                    )
        if not found:
            where = f" in {ns} namespace" if ns else ""
            err.print(f"No resources found{where}.", highlight=False)
    finally:
        await client.close()
    return 0


async def _print_objects(
    client: HttpClient,
    rt: ResourceType,
    ns: str,
    name: str,
    selector: str,
    field_selector: str,
    output: str,
) -> bool:
    if name:
        items = [await client.get(rt, name, namespace=ns)]
    else:
        items = (
            await client.list(
                rt, namespace=ns, label_selector=selector, field_selector=field_selector
            )
        ).items
    if not items:
        return False
    if output == "name":
        for obj in items:
            out.print(f"{qualified(rt)}/{obj['metadata']['name']}", highlight=False)
        return True
    doc: Any = (
        items[0]
        if name
        else {
            "apiVersion": "v1",
            "kind": "List",
            "items": items,
            "metadata": {"resourceVersion": ""},
        }
    )
    for obj in items:
        obj.get("metadata", {}).pop("managedFields", None)
    if output == "json":
        click.echo(json.dumps(doc, indent=4))
    else:
        click.echo(yaml.safe_dump(doc, sort_keys=False), nl=False)
    return True


def _render_table(
    table: dict[str, Any],
    *,
    wide: bool,
    with_namespace: bool,
    show_labels: bool,
    kind_prefix: str = "",
) -> None:
    columns = table.get("columnDefinitions") or []
    keep = [i for i, c in enumerate(columns) if wide or not c.get("priority")]
    name_at = next(
        (n for n, i in enumerate(keep) if columns[i].get("format") == "name"), 0 if keep else -1
    )
    grid = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    if with_namespace:
        table_column(grid, "NAMESPACE")
    for i in keep:
        table_column(grid, str(columns[i].get("name", "")).upper())
    if show_labels:
        table_column(grid, "LABELS")
    for row in table.get("rows") or []:
        cells = row.get("cells") or []
        meta = (row.get("object") or {}).get("metadata") or {}
        values = [str(cells[i]) if i < len(cells) and cells[i] is not None else "" for i in keep]
        if kind_prefix and name_at >= 0:
            values[name_at] = kind_prefix + values[name_at]
        if with_namespace:
            values.insert(0, str(meta.get("namespace", "")))
        if show_labels:
            labels = meta.get("labels") or {}
            values.append(",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>")
        grid.add_row(*values)
    print_table(grid)


# -- describe ------------------------------------------------------------------------------------


@cli.command()
@click.argument("args", nargs=-1, required=True)
@click.option("-n", "--namespace", default=None)
@connection_options
@api_command
async def describe(
    args: tuple[str, ...], namespace: str | None, data_dir: Path | None, kubeconfig: Path | None
) -> int:
    """Show an object in detail, with its events."""
    client, default_ns = make_client(data_dir, kubeconfig)
    ns = namespace or default_ns
    events_rt = resources.by_key("core/events")
    assert events_rt is not None
    try:
        for rt, names in parse_targets(args):
            if not names:
                names = [o["metadata"]["name"] for o in (await client.list(rt, namespace=ns)).items]
            for name in names:
                obj = await client.get(rt, name, namespace=ns if rt.namespaced else "")
                _describe_object(rt, obj)
                meta = obj["metadata"]
                selector = f"involvedObject.name={name},involvedObject.uid={meta['uid']}"
                events = (
                    await client.list(
                        events_rt, namespace=meta.get("namespace", ""), field_selector=selector
                    )
                ).items
                _describe_events(events)
                out.print()
    finally:
        await client.close()
    return 0


def _describe_object(rt: ResourceType, obj: dict[str, Any]) -> None:
    meta = obj.get("metadata") or {}
    rows = [("Name", meta.get("name", ""))]
    if rt.namespaced:
        rows.append(("Namespace", meta.get("namespace", "")))
    labels = meta.get("labels") or {}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    rows.append(("Labels", "\n".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"))
    rows.append(
        ("Annotations", "\n".join(f"{k}: {v}" for k, v in sorted(annotations.items())) or "<none>")
    )
    rows.append(("CreationTimestamp", meta.get("creationTimestamp", "")))
    if meta.get("deletionTimestamp"):
        rows.append(("DeletionTimestamp", meta["deletionTimestamp"]))
    owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    if owner:
        rows.append(("Controlled By", f"{owner.get('kind')}/{owner.get('name')}"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in rows:
        grid.add_row(f"{key}:", str(value))
    out.print(grid, highlight=False)
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    conditions = ((obj.get("status") or {}).get("conditions")) or []
    if body:
        text = yaml.safe_dump(body, sort_keys=False, default_flow_style=False)
        out.print(text.rstrip(), highlight=False, markup=False)
    if conditions:
        table = Table(title="Conditions", title_justify="left", box=None, header_style="bold")
        for column in ("Type", "Status", "Reason", "Message"):
            table.add_column(column)
        for c in conditions:
            table.add_row(
                str(c.get("type", "")),
                str(c.get("status", "")),
                str(c.get("reason", "")),
                str(c.get("message", "")),
            )
        out.print(table, highlight=False)


def _describe_events(events: list[dict[str, Any]]) -> None:
    if not events:
        out.print("Events:  <none>", highlight=False)
        return
    table = Table(title="Events", title_justify="left", box=None, header_style="bold")
    for column in ("Type", "Reason", "Age", "From", "Message"):
        table.add_column(column)
    for e in sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""):
        count = e.get("count") or 1
        age = e.get("lastTimestamp") or e.get("eventTime") or ""
        table.add_row(
            str(e.get("type", "")),
            str(e.get("reason", "")),
            f"{age}" + (f" (x{count})" if count > 1 else ""),
            str((e.get("source") or {}).get("component") or e.get("reportingComponent") or ""),
            str(e.get("message", "")),
        )
    out.print(table, highlight=False)


# -- delete --------------------------------------------------------------------------------------


@cli.command()
@click.argument("args", nargs=-1)
@click.option("-f", "--filename", "files", multiple=True, type=click.Path(path_type=Path))
@click.option("-n", "--namespace", default=None)
@click.option("-l", "--selector", default="")
@click.option("--all", "all_", is_flag=True, help="Delete every object of the type.")
@click.option(
    "--cascade",
    type=click.Choice(["background", "foreground", "orphan"]),
    default="background",
    show_default=True,
)
@click.option(
    "--grace-period",
    type=int,
    default=None,
    help="Seconds for pods to stop (0 with --force kills at once).",
)
@click.option("--force", is_flag=True, help="With --grace-period=0: delete immediately.")
@click.option(
    "--wait/--no-wait", default=True, show_default=True, help="Wait until the objects are gone."
)
@connection_options
@api_command
async def delete(
    args: tuple[str, ...],
    files: tuple[Path, ...],
    namespace: str | None,
    selector: str,
    all_: bool,
    cascade: str,
    grace_period: int | None,
    force: bool,
    wait: bool,
    data_dir: Path | None,
    kubeconfig: Path | None,
) -> int:
    """Delete objects by type and name, by label, or from manifests."""
    client, default_ns = make_client(data_dir, kubeconfig)
    ns = namespace or default_ns
    grace = grace_period
    if grace == 0 and not force:
        grace = 1  # as kubectl: an immediate deletion must be asked for with --force
    targets: list[tuple[ResourceType, str, str]] = []
    try:
        if files:
            try:
                for manifest in load(files):
                    from procorch.client.apply import resolve

                    rt = resolve(manifest)
                    targets.append(
                        (rt, manifest.namespace or ns if rt.namespaced else "", manifest.name)
                    )
            except ManifestError as exc:
                raise click.ClickException(str(exc)) from None
        else:
            for rt, names in parse_targets(args):
                if names:
                    targets.extend((rt, ns if rt.namespaced else "", n) for n in names)
                elif selector or all_:
                    listed = await client.list(rt, namespace=ns, label_selector=selector)
                    targets.extend(
                        (rt, ns if rt.namespaced else "", o["metadata"]["name"])
                        for o in listed.items
                    )
                else:
                    raise click.UsageError("give names, -l SELECTOR or --all")
        policy = cascade.capitalize()
        pending: list[tuple[ResourceType, str, str, str]] = []
        status = 0
        for rt, obj_ns, name in targets:
            try:
                result = await client.delete(
                    rt,
                    name,
                    namespace=obj_ns,
                    grace_period_seconds=grace,
                    propagation_policy=policy,
                )
            except errors.NotFound as exc:
                err.print(f"Error from server (NotFound): {exc.message}", highlight=False)
                status = 1
                continue
            out.print(f'{qualified(rt)} "{name}" deleted', highlight=False)
            uid = (
                (result.get("details") or {}).get("uid")
                or (result.get("metadata") or {}).get("uid")
                or ""
            )
            pending.append((rt, obj_ns, name, uid))
        if wait and pending:
            await _wait_gone(client, pending)
    finally:
        await client.close()
    return status


async def _wait_gone(client: HttpClient, pending: list[tuple[ResourceType, str, str, str]]) -> None:
    started = time.monotonic()
    shown = False
    while pending:
        remaining = []
        for rt, ns, name, uid in pending:
            try:
                obj = await client.get(rt, name, namespace=ns)
            except errors.NotFound:
                continue
            if uid and obj["metadata"].get("uid") != uid:
                continue
            remaining.append((rt, ns, name, uid))
        pending = remaining
        if not pending:
            break
        if time.monotonic() - started > 2 and not shown:
            names = ", ".join(f"{qualified(rt)}/{n}" for rt, _, n, _ in pending)
            err.print(f"waiting for {names} to finish terminating...", highlight=False)
            shown = True
        await asyncio.sleep(0.2)


# -- logs ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("pod")
@click.option("-c", "--container", default="")
@click.option("-n", "--namespace", default=None)
@click.option("-f", "--follow", is_flag=True)
@click.option("-p", "--previous", is_flag=True)
@click.option("--tail", type=int, default=None)
@click.option("--timestamps", is_flag=True)
@connection_options
@api_command
async def logs(
    pod: str,
    container: str,
    namespace: str | None,
    follow: bool,
    previous: bool,
    tail: int | None,
    timestamps: bool,
    data_dir: Path | None,
    kubeconfig: Path | None,
) -> int:
    """Print a container's output."""
    client, default_ns = make_client(data_dir, kubeconfig)
    ns = namespace or default_ns
    pods_rt = resources.by_key("core/pods")
    assert pods_rt is not None
    params: dict[str, str] = {}
    if container:
        params["container"] = container
    if follow:
        params["follow"] = "true"
    if previous:
        params["previous"] = "true"
    if tail is not None:
        params["tailLines"] = str(tail)
    if timestamps:
        params["timestamps"] = "true"
    url = client.server + pods_rt.path(ns, pod) + "/log"
    try:
        async with client.session.get(
            url, params=params, timeout=aiohttp.ClientTimeout(total=None)
        ) as response:
            if response.status >= 400:
                raise client._error(response.status, await response.read())
            async for chunk in response.content.iter_any():
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
    finally:
        await client.close()
    return 0


# -- kubeconfig ----------------------------------------------------------------------------------


@cli.command("kubeconfig")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=Path(".procorch"), show_default=True
)
@click.option("--raw", is_flag=True, help="Print the file's contents instead of its path.")
@click.option(
    "--user",
    "user",
    default="",
    help="Print a kubeconfig for this (non-admin) user instead: a signed token; what the user "
    "may do is what RBAC bindings grant it.",
)
@click.option("--group", "groups", multiple=True, help="A group of --user (repeatable).")
@click.option("--namespace", "-n", default="default", show_default=True, help="With --user.")
@click.option(
    "--duration",
    default="24h",
    show_default=True,
    help="How long --user's token is valid (30m, 12h, 1h30m, 7d).",
)
def kubeconfig_cmd(
    data_dir: Path, raw: bool, user: str, groups: tuple[str, ...], namespace: str, duration: str
) -> None:
    """Where the kubeconfig for kubectl is (or its contents with --raw); with --user, a
    kubeconfig for a limited user."""
    path = (data_dir / "kubeconfig").resolve()
    if not path.exists():
        raise click.ClickException(f"no kubeconfig at {path}: start `procorch up` first")
    if user:
        click.echo(
            user_kubeconfig(data_dir, path, user, list(groups), namespace, duration), nl=False
        )
    elif raw:
        click.echo(path.read_text(), nl=False)
    else:
        click.echo(f"export KUBECONFIG={path}")


def user_kubeconfig(
    data_dir: Path, admin: Path, user: str, groups: list[str], namespace: str, duration: str
) -> str:
    """A kubeconfig for ``user``: the admin kubeconfig's cluster, a token signed with the
    cluster's token key."""
    key = data_dir / KEY_FILE
    if not key.exists():
        raise click.ClickException(f"no token key at {key}: start `procorch up` first")
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--duration") from None
    if user.startswith("system:"):
        raise click.BadParameter(
            'names starting with "system:" are reserved for Kubernetes identities',
            param_hint="--user",
        )
    for group in groups:
        if group.startswith("system:"):
            raise click.BadParameter(
                f'{group}: groups starting with "system:" are Kubernetes\' own (the admin '
                "kubeconfig is the one for system:masters)",
                param_hint="--group",
            )
    token = TokenSigner.load_or_create(key).sign(user_claims(user, groups, seconds=seconds))
    cluster = read_kubeconfig(admin)
    creds = Credentials(
        server=cluster.server,
        token=token,
        namespace=namespace,
        ca_data=cluster.ca_data,
        insecure=cluster.insecure,
        user=user.replace(":", "-"),
    )
    return render(creds)


_DURATION = re.compile(r"(\d+)([dhms])")


def parse_duration(text: str) -> int:
    """Seconds in ``30m``, ``12h``, ``1h30m``, ``7d`` (at least ten minutes)."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration such as 30m, 12h, 1h30m or 7d")
    seconds = sum(int(n) * units[u] for n, u in parts)
    if seconds < 600:
        raise ValueError("a token must be valid for at least 10m")
    return seconds
