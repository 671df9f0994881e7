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
