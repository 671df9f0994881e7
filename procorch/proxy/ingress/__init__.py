"""The Ingress router (networking.k8s.io/v1): an L7 HTTP(S) reverse proxy on asyncio Protocols
and httptools, routing by Ingress rules to the ready endpoints of Services.

Modules: :mod:`.routes` (rules → route table, pure), :mod:`.backends` (Services and
EndpointSlices → ready endpoints), :mod:`.downstream` / :mod:`.upstream` (the data plane),
:mod:`.messages` (heads), :mod:`.tls` (SNI certificates), :mod:`.status` (IngressClass and
Ingress status), :mod:`.router` (wiring and lifecycle), :mod:`.settings`.
"""

from procorch.proxy.ingress.router import IngressRouter
from procorch.proxy.ingress.settings import CONTROLLER, DEFAULT_CLASS, IngressSettings

__all__ = ["CONTROLLER", "DEFAULT_CLASS", "IngressRouter", "IngressSettings"]
