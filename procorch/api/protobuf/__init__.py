"""Decoding of ``application/vnd.kubernetes.protobuf`` request bodies.

kubectl 1.32 and later send the objects its generators build (``kubectl create deployment``,
``create configmap``, ``create token``, ``autoscale``, ...) as Kubernetes protobuf rather than
JSON. :func:`decode` turns such a body into the same JSON-shaped dict the rest of the API
handles, so a protobuf POST goes through exactly the path a JSON one does.

Layout: :mod:`.wire` reads the protobuf wire format, :mod:`.schema` compiles the declarative
field tables (``tables_*``), :mod:`.decoder` applies them. Pure data, no I/O.
"""

from procorch.api.protobuf.decoder import KINDS, PROTOBUF_CONTENT_TYPE, decode

__all__ = ["KINDS", "PROTOBUF_CONTENT_TYPE", "decode"]
