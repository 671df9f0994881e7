"""Helpers shared by CLI commands: finding the server, running coroutines, printing errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from procorch.api import errors
from procorch.client.http import HttpClient
from procorch.client.kubeconfig import KubeconfigError, read

T = TypeVar("T")
DATA_DIR_ENV = "PROCORCH_DATA_DIR"

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


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
        default=Path(".procorch"),
        envvar=DATA_DIR_ENV,
        show_default=True,
        help="Data dir of the procorch to talk to (its kubeconfig is used).",
    )(fn)
    fn = click.option(
        "--kubeconfig",
        type=click.Path(path_type=Path),
        default=None,
        help="Use this kubeconfig instead of the data dir's.",
    )(fn)
    return fn


def make_client(data_dir: Path, kubeconfig: Path | None) -> tuple[HttpClient, str]:
    path = kubeconfig or data_dir / "kubeconfig"
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
