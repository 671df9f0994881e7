"""Tests in this folder run on uvloop, as ``procorch up`` does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

uvloop = pytest.importorskip("uvloop")


def pytest_asyncio_loop_factories(config: Any, item: Any) -> Mapping[str, Callable[[], Any]]:
    return {"uvloop": uvloop.new_event_loop}
