"""The import rules of DESIGN.md, checked by walking every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "procorch"

# package -> the procorch packages it may import (itself always allowed).
ALLOWED: dict[str, set[str]] = {
    "api": set(),
    "kit": {"api"},
    "store": {"api", "kit"},
    "apiserver": {"api", "kit", "store"},
    "client": {"api", "kit", "apiserver"},
    "reconcile": {"api", "kit", "client"},
    "controllers": {"api", "kit", "client", "reconcile"},
    "scheduler": {"api", "kit", "client", "reconcile"},
    "agent": {"api", "kit", "client", "reconcile"},
    "proxy": {"api", "kit", "client", "reconcile"},
    "launcher": {
        "api",
        "kit",
        "apiserver",
        "client",
        "reconcile",
        "controllers",
        "scheduler",
        "agent",
        "proxy",
    },
    "cli": {"api", "kit", "client", "launcher"},
    "testing": {"api", "kit", "client", "launcher"},
}


def procorch_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "procorch" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_package_imports_only_the_layers_below_it() -> None:
    violations = []
    packages_seen = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if len(relative.parts) == 1:
            continue  # procorch/__init__.py, __main__.py
        package = relative.parts[0]
        packages_seen.add(package)
        assert package in ALLOWED, f"new package {package!r}: add it to the layer rules"
        for imported in procorch_imports(path) - {package}:
            if imported not in ALLOWED[package]:
                violations.append(f"{relative}: imports procorch.{imported}")
    assert {
        "api",
        "store",
        "apiserver",
        "client",
        "controllers",
        "launcher",
        "cli",
    } <= packages_seen
    assert not violations, "layering violations:\n" + "\n".join(violations)


def test_only_the_apiserver_imports_the_store() -> None:
    importers = {
        path.relative_to(PACKAGE).parts[0]
        for path in PACKAGE.rglob("*.py")
        if len(path.relative_to(PACKAGE).parts) > 1 and "store" in procorch_imports(path)
    }
    assert importers <= {"apiserver", "store"}, importers


def test_the_process_runtime_does_not_import_the_client() -> None:
    """DESIGN.md: the process runtime and probes inside the agent are tested against real
    processes alone, so they know nothing of the API."""
    runtime = PACKAGE / "agent" / "runtime"
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(runtime.rglob("*.py"))
        if procorch_imports(path) & {"client", "apiserver", "store", "controllers"}
    ]
    assert not offenders, offenders
    # Nor does it reach up into the rest of the agent.
    for path in sorted(runtime.rglob("*.py")):
        text = path.read_text()
        for line in text.splitlines():
            if line.startswith(("from procorch.agent.", "import procorch.agent.")):
                assert line.split()[1].startswith("procorch.agent.runtime"), (path, line)
