"""Helpers shared by CLI commands: finding the server, running coroutines, printing errors.

Output goes through rich consoles. Piped (not a terminal), they are as wide as any line, so
tables are never cut or wrapped, exactly as kubectl prints; on a terminal, table cells wrap
rather than lose characters (see :func:`table_column`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from procorch.api import errors
from procorch.client.http import HttpClient
from procorch.client.kubeconfig import KubeconfigError, read

T = TypeVar("T")
DATA_DIR_ENV = "PROCORCH_DATA_DIR"

KUBECONFIG_ENV = "KUBECONFIG"
DEFAULT_DATA_DIR = Path(".procorch")
# Width of a console that is not a terminal: wider than any line procorch prints, so that
# nothing is truncated or wrapped (rich would otherwise assume 80 columns, or $COLUMNS).
UNLIMITED_WIDTH = 1_000_000


def _console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, soft_wrap=True)
    if not console.is_terminal:
        console = Console(stderr=stderr, soft_wrap=True, width=UNLIMITED_WIDTH)
    return console


out = _console()
err = _console(stderr=True)


def print_table(grid: Table) -> None:
    """Print a table on stdout; piped, without the padding rich leaves after the last cell
    (kubectl's lines end with their text)."""
    if out.is_terminal:
        out.print(grid, highlight=False)
        return
    with out.capture() as captured:
        out.print(grid, highlight=False)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    sys.stdout.flush()


def table_column(grid: Table, header: str) -> None:
    """A column that never truncates: wraps (folds) on a narrow terminal, and is never
    narrowed when piped, since the console is then unlimited."""
    grid.add_column(header, overflow="fold")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def connection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=None,
        envvar=DATA_DIR_ENV,
        help=(
            "Data dir of the procorch to talk to (its kubeconfig is used). Without it or "
            "--kubeconfig: $KUBECONFIG, else ./.procorch/kubeconfig."
        ),
    )(fn)
    fn = click.option(
        "--kubeconfig",
        type=click.Path(path_type=Path),
        default=None,
        help="Use this kubeconfig instead of the data dir's.",
    )(fn)
    return fn


def kubeconfig_path(
    data_dir: Path | None, kubeconfig: Path | None, environ: Mapping[str, str] | None = None
) -> Path:
    """Which kubeconfig a command uses: ``--kubeconfig``; else ``--data-dir`` (or
    ``$PROCORCH_DATA_DIR``)'s; else ``$KUBECONFIG`` (its first file that exists, as kubectl
    merges the list with the first file winning); else ``./.procorch/kubeconfig``."""
    if kubeconfig is not None:
        return kubeconfig
    if data_dir is not None:
        return data_dir / "kubeconfig"
    env = os.environ if environ is None else environ
    listed = [Path(p) for p in env.get(KUBECONFIG_ENV, "").split(os.pathsep) if p]
    for path in listed:
        if path.exists():
            return path
    if listed:
        return listed[0]
    return DEFAULT_DATA_DIR / "kubeconfig"


def make_client(data_dir: Path | None, kubeconfig: Path | None) -> tuple[HttpClient, str]:
    path = kubeconfig_path(data_dir, kubeconfig)
    try:
        creds = read(path)
    except KubeconfigError as exc:
        raise click.ClickException(str(exc)) from None
    return HttpClient.from_credentials(creds, field_manager="procorch"), creds.namespace


def api_command(fn: Callable[..., Coroutine[Any, Any, int | None]]) -> Callable[..., None]:
    """Run an async command body with a client; print API errors the way kubectl does."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code: int | None = run_async(fn(*args, **kwargs))
        except errors.ApiError as exc:
            err.print(
                f"[red]Error from server ({exc.reason}):[/] {exc.message}",
                markup=True,
                highlight=False,
            )
            sys.exit(1)
        sys.exit(code or 0)

    return wrapper
