"""Control groups: finding every process of a container, and enforcing its limits.

A cgroup per container run does three jobs, each with a fallback where the machine does not
allow it:

* **tracking** - every process the container starts stays in its cgroup, including
  grandchildren that called ``setsid`` to escape the process group, so the whole tree can be
  listed and killed. Any writable hierarchy tracks (cgroup v2, or a v1 hierarchy such as
  ``pids`` or ``name=systemd``); v2's ``cgroup.kill`` kills atomically. Without one, the
  supervisor falls back to an environment marker (see :mod:`procorch.agent.runtime.tree`).
* **memory** - ``memory.max`` (v2, with ``memory.oom.group`` so the whole container dies
  together) or ``memory.limit_in_bytes`` (v1); the kernel's OOM kill is read back from
  ``memory.events`` / ``memory.oom_control`` and reported as OOMKilled. Without either, the
  supervisor's RSS watchdog enforces the limit.
* **cpu** - ``cpu.max`` (v2) or CFS quota (v1); without either, CPU limits are not enforced
  (the agent says so on the Node).

Directories live under ``<our own cgroup>/<scope>/<container id>``, where ``scope`` names one
node supervisor, so that a restarted supervisor finds what a crashed one left behind
(:meth:`CgroupSystem.leftovers`). All file I/O here is small and synchronous (cgroupfs is
in-memory).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from procorch.kit.logging import get_logger

log = get_logger("runtime.cgroups")


@dataclass(frozen=True)
class Hierarchy:
    version: int  # 1 or 2
    mount: Path
    base: Path  # <mount>/<our cgroup>/<scope>
    controllers: frozenset[str]

    def describe(self) -> str:
        return f"cgroup v{self.version} {self.base}"


def _mounts() -> list[tuple[str, Path, str, frozenset[str]]]:
    """(fstype, mount point, root, super options) of every cgroup mount."""
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype = rfields[0]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        options = frozenset(rfields[2].split(","))
        found.append((fstype, Path(fields[4]), fields[3], options))
    return found


def _own_paths() -> dict[str, str]:
    """Controller set (``"memory"``, ``"cpu,cpuacct"``, ``""`` for v2) -> our cgroup path."""
    paths: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3:
                paths[parts[1]] = parts[2]
    except OSError:
        pass
    return paths


def _relative(own: str, root: str) -> str:
    own = own.strip()
    if root not in ("", "/") and own.startswith(root):
        own = own[len(root) :]
    return own.lstrip("/")


def _writable_base(mount: Path, own: str, scope: str) -> Path | None:
    base = mount / own / scope if own else mount / scope
    try:
        base.mkdir(parents=False, exist_ok=True)
    except OSError:
        return None
    if not (base / "cgroup.procs").exists():
        return None
    return base


@dataclass
class CgroupSystem:
    scope: str
    tracking: Hierarchy | None = None
    memory: Hierarchy | None = None
    cpu: Hierarchy | None = None
    extra: list[Hierarchy] = field(default_factory=list)

    @classmethod
    def detect(cls, scope: str, *, enabled: bool = True) -> CgroupSystem:
        system = cls(scope)
        if not enabled:
            return system
        own = _own_paths()
        v1: dict[str, Hierarchy] = {}
        for fstype, mount, root, options in _mounts():
            if fstype == "cgroup2":
                base = _writable_base(mount, _relative(own.get("", ""), root), scope)
                if base is None:
                    continue
                available = _enable_v2_controllers(mount, base)
                system.tracking = Hierarchy(2, mount, base, available)
                continue
            controllers = frozenset(
                o for o in options if o in _V1_CONTROLLERS or o.startswith("name=")
            )
            key = next((k for k in own if k and frozenset(k.split(",")) == controllers), None)
            if key is None:
                continue
            base = _writable_base(mount, _relative(own[key], root), scope)
            if base is None:
                continue
            hierarchy = Hierarchy(1, mount, base, controllers)
            for name in controllers:
                v1[name] = hierarchy
        v2 = system.tracking
        if v2 is not None and "memory" in v2.controllers:
            system.memory = v2
        elif "memory" in v1:
            system.memory = v1["memory"]
        if v2 is not None and "cpu" in v2.controllers:
            system.cpu = v2
        elif "cpu" in v1:
            system.cpu = v1["cpu"]
        if system.tracking is None:
            for name in ("pids", "name=systemd", "freezer", "memory", "cpu"):
                if name in v1:
                    system.tracking = v1[name]
                    break
        chosen = {id(h) for h in (system.tracking, system.memory, system.cpu) if h is not None}
        if "cpuacct" in v1 and id(v1["cpuacct"]) not in chosen:
            system.extra.append(v1["cpuacct"])
            chosen.add(id(v1["cpuacct"]))
        # Remove the scope directories we made but will not use.
        used = {h.base for h in (system.tracking, system.memory, system.cpu, *system.extra) if h}
        for hierarchy in {*v1.values()}:
            if hierarchy.base not in used:
                with contextlib.suppress(OSError):
                    hierarchy.base.rmdir()
        return system

    def hierarchies(self) -> list[Hierarchy]:
        seen: list[Hierarchy] = []
        for h in (self.tracking, self.memory, self.cpu, *self.extra):
            if h is not None and h not in seen:
                seen.append(h)
        return seen

    def describe(self) -> dict[str, str]:
        return {
            "tracking": self.tracking.describe() if self.tracking else "environment marker",
            "memory": self.memory.describe() if self.memory else "RSS watchdog",
            "cpu": self.cpu.describe() if self.cpu else "not enforced",
        }

    def create(
        self, name: str, *, memory_limit: int | None = None, cpu_millis: int | None = None
    ) -> ContainerCgroup:
        group = ContainerCgroup(self, name)
        # A directory only where the process will be: the tracking hierarchy always, v1
        # memory/cpu only for a limit (joining costs a cgroup move, see placement()).
        wanted = [self.tracking]
        if memory_limit is not None:
            wanted.append(self.memory)
        if cpu_millis is not None:
            wanted.append(self.cpu)
        for h in self.hierarchies():
            if h not in wanted:
                continue
            path = h.base / name
            path.mkdir(exist_ok=True)
            group.dirs[id(h)] = path
        if memory_limit is not None and self.memory is not None:
            path = group.dirs[id(self.memory)]
            if self.memory.version == 2:
                _write(path / "memory.max", str(memory_limit))
                _write(path / "memory.swap.max", "0", quiet=True)
                _write(path / "memory.oom.group", "1", quiet=True)
            else:
                _write(path / "memory.limit_in_bytes", str(memory_limit))
                _write(path / "memory.memsw.limit_in_bytes", str(memory_limit), quiet=True)
        if cpu_millis is not None and self.cpu is not None:
            path = group.dirs[id(self.cpu)]
            period = 100_000
            quota = max(1000, cpu_millis * period // 1000)
            if self.cpu.version == 2:
                _write(path / "cpu.max", f"{quota} {period}")
            else:
                _write(path / "cpu.cfs_period_us", str(period))
                _write(path / "cpu.cfs_quota_us", str(quota))
        group.memory_enforced = memory_limit is not None and self.memory is not None
        group.cpu_enforced = cpu_millis is not None and self.cpu is not None
        return group

    def open(self, name: str) -> ContainerCgroup | None:
        """The cgroup of an existing container run (after the supervisor restarted)."""
        group = ContainerCgroup(self, name)
        for h in self.hierarchies():
            path = h.base / name
            if path.is_dir():
                group.dirs[id(h)] = path
        return group if group.dirs else None

    def leftovers(self) -> list[str]:
        """Names of container cgroups that exist under our scope."""
        if self.tracking is None:
            return []
        try:
            return sorted(p.name for p in self.tracking.base.iterdir() if p.is_dir())
        except OSError:
            return []

    def remove_scope(self) -> None:
        for h in self.hierarchies():
            with contextlib.suppress(OSError):
                h.base.rmdir()


_V1_CONTROLLERS = frozenset(
    {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb"}
)


def _enable_v2_controllers(mount: Path, base: Path) -> frozenset[str]:
    """Enable memory and cpu for our scope's children where the tree allows it."""
    wanted = {"memory", "cpu"}
    try:
        available = set((base / "cgroup.controllers").read_text().split())
    except OSError:
        return frozenset()
    if not wanted & available:
        return frozenset()
    for name in wanted & available:
        _write(base / "cgroup.subtree_control", f"+{name}", quiet=True)
    try:
        enabled = set((base / "cgroup.subtree_control").read_text().split())
    except OSError:
        return frozenset()
    return frozenset(enabled & wanted)


def _write(path: Path, value: str, *, quiet: bool = False) -> bool:
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError as exc:
        if not quiet:
            log.warning("cgroup write failed", path=str(path), error=str(exc))
        return False


class ContainerCgroup:
    def __init__(self, system: CgroupSystem, name: str) -> None:
        self.system = system
        self.name = name
        self.dirs: dict[int, Path] = {}
        self.memory_enforced = False
        self.cpu_enforced = False

    def _dir(self, h: Hierarchy | None) -> Path | None:
        return self.dirs.get(id(h)) if h is not None else None

    def placement(self) -> tuple[str | None, list[str]]:
        """Where a new process goes: the cgroup v2 directory it can be born in (clone3), and
        the ``cgroup.procs`` files it must write itself into. v1 hierarchies are joined only
        when they carry this container's limits: each join is a cgroup move, which costs an
        RCU grace period (milliseconds)."""
        born_in: str | None = None
        join: list[str] = []
        system = self.system
        for h in system.hierarchies():
            path = self.dirs.get(id(h))
            if path is None:
                continue
            if h.version == 2:
                born_in = str(path)
            elif (
                h is system.tracking
                or (h is system.memory and self.memory_enforced)
                or (h is system.cpu and self.cpu_enforced)
            ):
                join.append(str(path / "cgroup.procs"))
        return born_in, join

    def pids(self) -> list[int]:
        path = self._dir(self.system.tracking)
        if path is None:
            return []
        try:
            return [int(x) for x in (path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill(self, *, timeout: float = 2.0) -> None:
        """SIGKILL every process in the cgroup; returns once it is empty (or after timeout)."""
        path = self._dir(self.system.tracking)
        if path is None:
            return
        if (path / "cgroup.kill").exists() and _write(path / "cgroup.kill", "1", quiet=True):
            return
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids or time.monotonic() > deadline:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.001)

    def oom_kills(self) -> int:
        path = self._dir(self.system.memory)
        if path is None:
            return 0
        name = (
            "memory.events"
            if self.system.memory and self.system.memory.version == 2
            else ("memory.oom_control")
        )
        try:
            for line in (path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def cpu_usage_ns(self) -> int | None:
        tracking = self.system.tracking
        if tracking is not None and tracking.version == 2:
            path = self._dir(tracking)
            if path is not None:
                try:
                    for line in (path / "cpu.stat").read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "usage_usec":
                            return int(value) * 1000
                except (OSError, ValueError):
                    pass
        for h in self.system.hierarchies():
            if h.version == 1 and "cpuacct" in h.controllers and h is self.system.tracking:
                path = self._dir(h)
                if path is not None:
                    try:
                        return int((path / "cpuacct.usage").read_text())
                    except (OSError, ValueError):
                        return None
        return None

    def memory_bytes(self) -> int | None:
        """Working set as Kubernetes computes it: usage minus inactive file cache (None when
        the container is not in a memory cgroup: then its processes' RSS is summed)."""
        memory = self.system.memory
        path = self._dir(memory)
        if (
            memory is None
            or path is None
            or not (self.memory_enforced or memory is self.system.tracking)
        ):
            return None
        try:
            if memory.version == 2:
                usage = int((path / "memory.current").read_text())
                stat_key = "inactive_file"
            else:
                usage = int((path / "memory.usage_in_bytes").read_text())
                stat_key = "total_inactive_file"
            inactive = 0
            for line in (path / "memory.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == stat_key:
                    inactive = int(value)
                    break
            return max(0, usage - inactive)
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        """Remove the directories (the cgroup must be empty: kill first)."""
        for _ in range(50):
            remaining = False
            for path in self.dirs.values():
                try:
                    path.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    remaining = True
            if not remaining:
                return
            # Killed processes leave the cgroup a moment after the signal.
            time.sleep(0.002)
        log.debug("cgroup not removed", name=self.name)
