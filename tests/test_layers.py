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


def imported_modules(source: str, package: str) -> set[str]:
    """Every module ``source`` (a module of ``package``) imports, anywhere in it (function
    bodies and ``TYPE_CHECKING`` blocks too), as absolute dotted names: ``from procorch
    import store`` counts as ``procorch.store``, and relative imports are resolved."""
    parts = package.split(".")
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # ``from procorch import store``: the names may be modules themselves.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def procorch_imports(path: Path) -> set[str]:
    """The procorch packages (``api``, ``store``...) that the module at ``path`` imports."""
    relative = path.relative_to(PACKAGE)
    package = ".".join(["procorch", *relative.parts[:-1]])
    return _packages(imported_modules(path.read_text(), package))


def _packages(modules: set[str]) -> set[str]:
    found: set[str] = set()
    for name in modules:
        parts = name.split(".")
        if parts[0] == "procorch" and len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
            found.add(parts[1])
    return found


def test_the_import_walk_sees_every_form_of_import() -> None:
    """The forms a layering violation could hide in are all seen."""
    source = (
        "from procorch import store\n"
        "from ..apiserver import http\n"
        "def f():\n"
        "    import procorch.agent.podworker\n"
        "    from procorch.proxy.l4 import ServiceProxy\n"
    )
    modules = imported_modules(source, "procorch.controllers")
    assert _packages(modules) == {"store", "apiserver", "agent", "proxy"}


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


def module_imports(path: Path) -> set[str]:
    """The dotted names ``path`` imports (``TYPE_CHECKING`` imports too), each ``from X import
    y`` counted as both ``X`` and ``X.y``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_agent_modules_import_one_another_without_a_cycle() -> None:
    """The pod worker knows its node through a narrow interface, the agent's endpoint through a
    protocol: neither imports the agent, which imports both."""
    modules = {}
    for path in (PACKAGE / "agent").rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {name: module_imports(path) & modules.keys() - {name} for name, path in modules.items()}

    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph[path[-1]]):
            if nxt == start:
                return [*path, start]
            if nxt not in path and (found := cycle_from(start, [*path, nxt])):
                return found
        return None

    cycles = [c for name in sorted(graph) if (c := cycle_from(name, [name]))]
    assert not cycles, " → ".join(cycles[0])


def test_informers_are_built_only_by_the_factory() -> None:
    """One watch per resource per process: components read through the factory's views and
    never build an informer of their own."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "reconcile"
        and "procorch.reconcile.informer" in module_imports(path)
    ]
    assert not offenders, offenders
