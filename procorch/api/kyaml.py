"""YAML as Kubernetes reads it: YAML 1.1 through libyaml, with no implicit timestamps.

Kubernetes converts YAML to JSON before decoding (sigs.k8s.io/yaml), so an unquoted date
stays a string rather than becoming a datetime. libyaml's parser (PyYAML's C binding, when
it is installed) is about four times faster than the pure-Python one and refuses runaway
nesting itself; the pure-Python loader is the fallback.

Pure data: no I/O, no imports from the rest of procorch.
"""

from __future__ import annotations

from typing import Any

import yaml

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Loader(_Base):
    """Safe YAML without implicit timestamps."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(text: str | bytes) -> Any:
    """One YAML document; raises :class:`yaml.YAMLError` (or RecursionError from the
    pure-Python parser on absurd nesting)."""
    return yaml.load(text, Loader=Loader)
