"""The local-dev-runner side of the command line: Procfile projects.

``procorch up`` in a folder with a ``Procfile`` (and no ``-f``) runs it through
:func:`procfile_objects`; ``procorch convert Procfile`` writes the equivalent manifests so a
project can grow from a Procfile into full Kubernetes manifests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from procorch.cli.main import cli
from procorch.launcher import procfile


def procfile_objects(
    path: Path, *, env_files: tuple[Path, ...], formation_text: str
) -> list[dict[str, Any]]:
    """The objects for a Procfile, its ``.env`` (if present) and the ``-e`` files."""
    try:
        processes = procfile.read_procfile(path)
        files = [f for f in [path.parent / ".env"] if f.exists()] + list(env_files)
        env = procfile.read_env(files)
        replicas = procfile.formation(formation_text, processes)
    except (procfile.ProcfileError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    return procfile.manifests(processes, workdir=path.parent.resolve(), env=env, replicas=replicas)


@cli.command()
@click.argument(
    "procfile_path", metavar="PROCFILE", type=click.Path(path_type=Path), default=Path("Procfile")
)
@click.option(
    "-e",
    "--env-file",
    "env_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Extra env file (after .env; later ones win).",
)
@click.option("-m", "--formation", default="", help="Replicas per process type: web=2,worker=3.")
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(path_type=Path),
    default=Path("manifests"),
    show_default=True,
)
def convert(
    procfile_path: Path, env_files: tuple[Path, ...], formation: str, output_dir: Path
) -> None:
    """Write a Procfile (and .env) as Kubernetes manifests, one file per object."""
    objects = procfile_objects(procfile_path, env_files=env_files, formation_text=formation)
    output_dir.mkdir(parents=True, exist_ok=True)
    for obj in objects:
        name = obj["metadata"]["name"]
        kind = obj["kind"].lower()
        target = output_dir / f"{name}-{kind}.yaml"
        target.write_text(yaml.safe_dump(obj, sort_keys=False))
        click.echo(f"wrote {target}")
        if obj["kind"] == "Secret":
            click.echo(
                f"  {target} holds your .env values: keep it out of version control", err=True
            )


def detach(data_dir: Path, argv: list[str], *, timeout: float = 60.0) -> None:
    """``procorch up -d``: run ``procorch up`` in the background (its output in
    ``<data-dir>/procorch.log``), wait until its API answers, say where it is, return."""
    import subprocess
    import sys
    import time

    from procorch.client.kubeconfig import read
    from procorch.launcher.up import running_pid

    data_dir.mkdir(parents=True, exist_ok=True)
    running = running_pid(data_dir)
    if running is not None:
        raise click.ClickException(
            f"procorch is already running with {data_dir} (pid {running}); `procorch down` stops it"
        )
    log_path = data_dir / "procorch.log"
    args = [a for a in argv if a not in ("-d", "--detach")]
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "procorch", "up", *args, "--no-logs"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("starting procorch in the background..."):
        while running_pid(data_dir) != proc.pid:
            if proc.poll() is not None:
                raise click.ClickException(
                    f"procorch exited with {proc.returncode} while starting; see {log_path}"
                )
            if time.monotonic() > deadline:
                raise click.ClickException(f"procorch did not start in time; see {log_path}")
            time.sleep(0.1)
    server = read(data_dir / "kubeconfig").server
    click.echo(f"procorch is up in the background (pid {proc.pid}): {server}")
    click.echo(f"  export KUBECONFIG={(data_dir / 'kubeconfig').resolve()}")
    click.echo(f"  logs: {log_path}    stop: procorch down --data-dir {data_dir}")


def _data_dir_option(fn: Any) -> Any:
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=Path(".procorch"),
        envvar="PROCORCH_DATA_DIR",
        show_default=True,
        help="Data dir of the procorch to act on.",
    )(fn)


@cli.command()
@_data_dir_option
@click.option(
    "--timeout",
    type=float,
    default=90.0,
    show_default=True,
    help="Seconds to wait for every pod to stop before giving up.",
)
def down(data_dir: Path, timeout: float) -> None:
    """Stop the procorch running with this data dir (pods first, within their grace)."""
    import os
    import signal
    import time

    from rich.console import Console

    from procorch.launcher.up import running_pid

    pid = running_pid(data_dir)
    if pid is None:
        click.echo(f"procorch is not running with {data_dir}")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with Console(stderr=True).status(f"stopping procorch (pid {pid}) and its pods..."):
        while running_pid(data_dir) == pid and os.path.exists(f"/proc/{pid}"):
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"procorch (pid {pid}) is still stopping after {timeout:.0f} s"
                )
            time.sleep(0.1)
    click.echo(f"procorch (pid {pid}) stopped")


@cli.command()
@_data_dir_option
def status(data_dir: Path) -> None:
    """Is procorch running with this data dir, where, and how are its pods."""
    import sys

    from procorch.cli.common import print_table, run_async, table_column
    from procorch.client.kubeconfig import read
    from procorch.launcher.up import running_pid

    pid = running_pid(data_dir)
    if pid is None:
        click.echo(f"procorch is not running with {data_dir}")
        sys.exit(3)
    server = read(data_dir / "kubeconfig").server
    click.echo(f"procorch is running (pid {pid}): {server}")
    click.echo(f"  export KUBECONFIG={(data_dir / 'kubeconfig').resolve()}")

    async def pods() -> list[dict[str, Any]]:
        from procorch.api.resources import must
        from procorch.cli.common import make_client

        client, _ = make_client(data_dir, None)
        try:
            return (await client.list(must("core/pods"))).items
        finally:
            await client.close()

    from rich.table import Table

    grid = Table(box=None, pad_edge=False)
    for header in ("NAMESPACE", "POD", "READY", "STATUS", "RESTARTS"):
        table_column(grid, header)
    for pod in run_async(pods()):
        st = pod.get("status") or {}
        containers = st.get("containerStatuses") or []
        ready = sum(1 for c in containers if c.get("ready"))
        waiting = next(
            (
                c["state"]["waiting"].get("reason")
                for c in containers
                if (c.get("state") or {}).get("waiting")
            ),
            None,
        )
        grid.add_row(
            str(pod["metadata"].get("namespace")),
            str(pod["metadata"]["name"]),
            f"{ready}/{len((pod.get('spec') or {}).get('containers') or [])}",
            str(waiting or st.get("phase") or "Pending"),
            str(sum(int(c.get("restartCount") or 0) for c in containers)),
        )
    print_table(grid)
