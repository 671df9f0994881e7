"""Reading manifests: YAML or JSON files, multi-document, directories recursively.

Every document is returned with where it came from (file and document number) so that errors
can point at it. ``kind: List`` documents are expanded; empty documents are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".yaml", ".yml", ".json")


class ManifestError(Exception):
    pass


@dataclass
class Manifest:
    obj: dict[str, Any]
    source: str  # "path/to/file.yaml" or "path/to/file.yaml#2" for the third document

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion") or "")

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def metadata(self) -> dict[str, Any]:
        """``metadata`` when it is a mapping, else empty (``apply`` reports what it is)."""
        meta = self.obj.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        meta = self.metadata
        return str(meta.get("name") or meta.get("generateName") or "")

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "")


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given; directories walked recursively for YAML/JSON files, sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file()
                    and p.suffix in SUFFIXES
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
            )
        elif path.exists():
            out.append(path)
        else:
            raise ManifestError(f'the path "{path}" does not exist')
    return out


def parse(text: str, *, source: str) -> list[Manifest]:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ManifestError(f"error parsing {source}: {exc}") from None
    except RecursionError:
        raise ManifestError(f"error parsing {source}: nested too deeply") from None
    manifests: list[Manifest] = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        where = source if len(docs) == 1 else f"{source}#{index}"
        if not isinstance(doc, dict):
            raise ManifestError(
                f"error parsing {where}: a document must be a mapping, got {type(doc).__name__}"
            )
        _check_numbers(doc, where)
        if doc.get("kind") == "List" or (
            str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list)
        ):
            for n, item in enumerate(doc.get("items") or []):
                if not isinstance(item, dict):
                    raise ManifestError(f"error parsing {where}: items[{n}] must be a mapping")
                manifests.append(Manifest(item, f"{where}/items[{n}]"))
            continue
        if not doc.get("apiVersion") or not doc.get("kind"):
            missing = "apiVersion" if not doc.get("apiVersion") else "kind"
            raise ManifestError(f"error validating {where}: {missing} not set")
        manifests.append(Manifest(doc, where))
    return manifests


def _check_numbers(doc: Any, where: str) -> None:
    """YAML's ``.nan`` and ``.inf`` have no JSON form (one JSON encoder would send null, and
    the server would take it): refused here, as kubectl does."""
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ManifestError(
                f"error parsing {where}: {path or 'the document'}: {value} is not a JSON number"
            )
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(value))


def load(paths: Iterable[Path]) -> list[Manifest]:
    manifests: list[Manifest] = []
    for path in expand_paths(paths):
        try:
            text = path.read_text()
        except OSError as exc:
            raise ManifestError(f"cannot read {path}: {exc}") from None
        manifests.extend(parse(text, source=str(path)))
    return manifests
