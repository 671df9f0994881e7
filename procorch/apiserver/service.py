"""The API's verbs over the store: get, list, watch, create, update, patch, delete, evict.

This is the transport-free heart of the API server. The HTTP layer (:mod:`.http`) decodes a
request into a call here and encodes the result; the in-process client calls the same methods
directly, so both see identical semantics: authorization, validation, defaulting, admission,
managed fields, optimistic concurrency, graceful and finalizer-driven deletion.

A request that is refused changes nothing: every check runs before the single store write.
The verbs live in one module each (``verbs_*``); this module assembles them.

Concurrency: runs on the event loop. Writes that read-modify-write (updates without a
resourceVersion, patches) retry on a store Conflict, as Kubernetes' ``GuaranteedUpdate`` does.
Objects from the store are shared and never mutated here; they are copied first.
"""

from __future__ import annotations

from procorch.apiserver.verbs_common import (
    APPLY_PATCH,
    DeleteOptions,
    DeleteResult,
    Result,
    WriteOptions,
)
from procorch.apiserver.verbs_evict import EvictionVerbs
from procorch.apiserver.verbs_list import ListVerbs
from procorch.apiserver.verbs_patch import PatchVerbs
from procorch.apiserver.verbs_watch import WatchStream, WatchVerbs
from procorch.store.base import WatchClosed

__all__ = [
    "APPLY_PATCH",
    "ApiService",
    "DeleteOptions",
    "DeleteResult",
    "Result",
    "WatchClosed",
    "WatchStream",
    "WriteOptions",
]


class ApiService(PatchVerbs, EvictionVerbs, WatchVerbs, ListVerbs):
    """Every verb of the API, for one store."""
