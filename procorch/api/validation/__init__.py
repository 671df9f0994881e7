"""Semantic validation of every served kind, as Kubernetes 1.32 validates it.

Each validator takes an object as received (a JSON dict, after defaulting) and returns every
problem found as a :class:`~procorch.api.errors.Cause` with Kubernetes' field path and
message; given ``old``, it also applies the update rules (immutable fields, allowed
changes). None raises for bad input: a value of the wrong type reads as absent, since the
shape models in :mod:`procorch.api.types` report types.

One module per group of kinds. Which validator a kind has is part of its definition in
:mod:`procorch.api.registry`, and :func:`procorch.api.registry.validate` runs it. Pure data.
"""

from __future__ import annotations

from procorch.api.validation.containers import COMMAND_REQUIRED

__all__ = ["COMMAND_REQUIRED"]
