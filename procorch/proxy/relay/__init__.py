"""The node relay: one pod network across machines (see :mod:`.relay`)."""

from procorch.proxy.relay.relay import NodeRelay, RelaySettings
from procorch.proxy.relay.routes import RELAY_ANNOTATION

__all__ = ["RELAY_ANNOTATION", "NodeRelay", "RelaySettings"]
