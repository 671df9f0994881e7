"""The ``procorch`` command line: ``up`` runs everything; the rest talk to a running procorch.

``apply``, ``get``, ``describe``, ``delete`` and ``logs`` find the server through a kubeconfig:
``--kubeconfig``, else the data dir's (``--data-dir``), else ``$KUBECONFIG``, else
``./.procorch/kubeconfig``; so people without kubectl can drive procorch, and people with
kubectl can use the same kubeconfig.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from procorch import __version__
from procorch.cli.common import DATA_DIR_ENV, run_async
from procorch.kit.durations import parse_duration
from procorch.kit.logging import configure


def log_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--log-format`` and ``--log-level`` of procorch's own logs."""
    command = click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="info",
        show_default=True,
    )(command)
    return click.option(
        "--log-format",
        type=click.Choice(["console", "json"]),
        default="console",
        show_default=True,
        help="Format of procorch's own logs.",
    )(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="procorch")
def cli() -> None:
    """procorch: Kubernetes for plain OS processes."""


@cli.command()
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Manifest file or directory to apply (repeatable; directories recursively).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path(".procorch"),
    envvar=DATA_DIR_ENV,
    show_default=True,
    help="Where state, logs and the kubeconfig live.",
)
@click.option(
    "--api-port",
    type=int,
    default=6443,
    show_default=True,
    help="Port of the Kubernetes API on 127.0.0.1 (0 picks a free one).",
)
@click.option(
    "--api-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the API binds (0.0.0.0 or a host address lets other machines' nodes join).",
)
@click.option(
    "--advertise-address",
    default="",
    help="The API's address for joining nodes and kubeconfigs (default: --api-host).",
)
@click.option(
    "--cluster-cidr",
    default="127.0.0.0/10",
    show_default=True,
    help="Each node's pod CIDR is taken from this range.",
)
@click.option(
    "--node-cidr-mask-size",
    type=int,
    default=16,
    show_default=True,
    help="Prefix length of each node's pod CIDR.",
)
@click.option(
    "--ingress-port",
    type=int,
    default=8080,
    show_default=True,
    help="Port of the Ingress HTTP listener on 127.0.0.1 (0 picks a free one).",
)
@click.option(
    "--ingress-tls-port",
    type=int,
    default=8443,
    show_default=True,
    help="Port of the Ingress HTTPS listener (0 picks a free one, -1 turns it off).",
)
@click.option(
    "--service-cidr",
    default="127.96.0.0/12",
    show_default=True,
    help="Services' cluster IPs come from this (loopback) range.",
)
@click.option(
    "--node-name",
    default=None,
    help="Name of the local node (default: the hostname).",
)
@click.option(
    "--max-pods",
    type=int,
    default=110,
    show_default=True,
    help="Pods the local node accepts (its allocatable pods).",
)
@click.option(
    "--no-node",
    is_flag=True,
    help="Run only the control plane (no local node): nodes join with `procorch agent`.",
)
@click.option(
    "-e",
    "--env-file",
    "env_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Procfile mode: an env file loaded after .env (repeatable; later ones win).",
)
@click.option(
    "-m",
    "--formation",
    default="",
    help="Procfile mode: replicas per process type, e.g. web=2,worker=3.",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Re-apply the manifests (or the Procfile and .env) whenever they change.",
)
@click.option(
    "-d",
    "--detach",
    is_flag=True,
    help="Run in the background (logs in <data-dir>/procorch.log); `procorch down` stops it.",
)
@click.option(
    "--no-logs",
    "--quiet",
    "no_logs",
    is_flag=True,
    help="Do not print the containers' output (it is still in `kubectl logs`).",
)
@click.option(
    "--node-monitor-grace-period",
    default="50s",
    show_default=True,
    help="How long a node may go without a heartbeat before it is Unknown and tainted "
    "unreachable (a duration: 40s, 1m).",
)
@log_options
def up(
    files: tuple[Path, ...],
    data_dir: Path,
    api_port: int,
    api_host: str,
    advertise_address: str,
    cluster_cidr: str,
    node_cidr_mask_size: int,
    ingress_port: int,
    ingress_tls_port: int,
    service_cidr: str,
    node_name: str | None,
    max_pods: int,
    no_node: bool,
    env_files: tuple[Path, ...],
    formation: str,
    watch: bool,
    detach: bool,
    no_logs: bool,
    node_monitor_grace_period: str,
    log_format: str,
    log_level: str,
) -> None:
    """Run the API server, controllers and everything else in the foreground.

    With no -f, a Procfile in the current directory is run (with .env), foreman-style."""
    from procorch.launcher.up import UpConfig, run_up

    if detach:
        from procorch.cli.devrunner import detach as run_detached

        run_detached(data_dir, sys.argv[2:])
        return
    configure(fmt=log_format, level=log_level)  # type: ignore[arg-type]
    objects: list[dict[str, Any]] = []
    reload: Callable[[], list[dict[str, Any]]] | None = None
    watched: list[Path] = list(files)
    procfile_mode = not files and Path("Procfile").exists()
    if procfile_mode:
        from procorch.cli.devrunner import procfile_objects

        def read_procfile() -> list[dict[str, Any]]:
            return procfile_objects(Path("Procfile"), env_files=env_files, formation_text=formation)

        reload = read_procfile
        objects = read_procfile()
        watched = [Path("Procfile"), Path(".env"), *env_files]
    elif env_files or formation:
        raise click.UsageError("-e and -m apply to a Procfile; there is none here")
    try:
        grace_period = parse_duration(node_monitor_grace_period)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--node-monitor-grace-period") from None
    config = UpConfig(
        data_dir=data_dir,
        api_host=api_host,
        api_port=api_port,
        ingress_port=ingress_port,
        ingress_tls_port=None if ingress_tls_port < 0 else ingress_tls_port,
        service_cidr=service_cidr,
        cluster_cidr=cluster_cidr,
        node_cidr_mask_size=node_cidr_mask_size,
        advertise_address=advertise_address,
        files=list(files),
        objects=objects,
        procfile=procfile_mode,
        node=not no_node,
        remote_nodes=True,
        show_output=not no_logs,
        show_progress=True,
        watch=watched if watch else [],
        reload=reload,
        node_name=node_name,
        agent={"max_pods": max_pods},
        node_monitor_grace_period=grace_period,
    )

    def ready(procorch: Any) -> None:
        click.echo(f"procorch is up: {procorch.api_url}", err=True)

    code = run_async(run_up(config, on_ready=ready))
    sys.exit(code)


@cli.command()
@click.option(
    "--server",
    required=True,
    help="The control plane's API, https://HOST:PORT (its --advertise-address).",
)
@click.option(
    "--token",
    envvar="PROCORCH_TOKEN",
    default=None,
    help="The join token from the control plane's <data-dir>/node-token ($PROCORCH_TOKEN).",
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A file holding the join token.",
)
@click.option("--node-name", default="", help="Name of this node (default: the hostname).")
@click.option(
    "--node-ip",
    default="127.0.0.1",
    show_default=True,
    help="This machine's address that the control plane reaches (the node's InternalIP).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path(".procorch-agent"),
    show_default=True,
    help="Where the node's credentials, pod volumes and logs live.",
)
@click.option("--ingress-port", type=int, default=8080, show_default=True)
@click.option(
    "--ingress-tls-port",
    type=int,
    default=8443,
    show_default=True,
    help="-1 turns the Ingress HTTPS listener off.",
)
@click.option(
    "--relay-port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    show_default=True,
    help="Where other nodes reach this node's pods (mutual TLS, on --node-ip); 0 picks a free "
    "port, announced on the Node.",
)
@click.option(
    "--relay-redirect/--no-relay-redirect",
    default=True,
    show_default=True,
    help="With root and nft: reach every port of other machines' pods through an nftables "
    "redirect to the relay; without, only the ports pods declare and Services name.",
)
@click.option("--max-pods", type=int, default=110, show_default=True)
@click.option(
    "--node-lease-duration-seconds",
    type=click.IntRange(min=1),
    default=40,
    show_default=True,
    help="The node's heartbeat Lease duration; renewed every quarter of it, as kubelet does.",
)
@click.option(
    "--housekeeping-interval",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds between samples of every container's CPU and memory (kubectl top, HPA).",
)
@log_options
def agent(
    server: str,
    token: str | None,
    token_file: Path | None,
    node_name: str,
    node_ip: str,
    data_dir: Path,
    ingress_port: int,
    ingress_tls_port: int,
    relay_port: int,
    relay_redirect: bool,
    max_pods: int,
    node_lease_duration_seconds: int,
    housekeeping_interval: float,
    log_format: str,
    log_level: str,
) -> None:
    """Run one node of a control plane on another machine: join it with the token, then run
    this machine's pods, its Service proxy and its Ingress router."""
    from procorch.launcher.agent import AgentConfig, run_agent

    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise click.BadParameter(str(exc), param_hint="--token-file") from None
    if not token:
        raise click.UsageError("a join token is needed: --token, --token-file or $PROCORCH_TOKEN")
    configure(fmt=log_format, level=log_level)  # type: ignore[arg-type]
    config = AgentConfig(
        server=server,
        token=token,
        data_dir=data_dir,
        node_name=node_name,
        node_ip=node_ip,
        ingress_port=ingress_port,
        ingress_tls_port=None if ingress_tls_port < 0 else ingress_tls_port,
        relay_port=relay_port,
        relay_redirect=relay_redirect,
        agent={
            "max_pods": max_pods,
            "lease_duration": node_lease_duration_seconds,
            "lease_renew_interval": node_lease_duration_seconds / 4,
            "metrics_interval": housekeeping_interval,
        },
    )

    def ready(node: Any) -> None:
        click.echo(f"node {node.settings.node_name} joined {server}", err=True)

    sys.exit(run_async(run_agent(config, on_ready=ready)))


def main() -> None:
    from procorch.cli import commands, devrunner  # noqa: F401  (registers commands)

    cli(prog_name="procorch")


if __name__ == "__main__":
    main()
