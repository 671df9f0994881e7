"""Finding a container's processes without cgroups, and measuring a set of processes.

Every process a container starts inherits ``PROCORCH_CONTAINER_ID=<scope>/<container id>`` in
its environment, and keeps it across ``setsid`` and double forks, so scanning
``/proc/*/environ`` finds the whole tree even when it has left the process group and been
re-parented. (A process can clear its own environment; the cgroup path has no such hole and is
preferred where the machine allows it.) Reading another user's environment needs privilege, so
processes of other users are only found as descendants of the main process.
"""

from __future__ import annotations

import contextlib
import os

import psutil

MARKER = "PROCORCH_CONTAINER_ID"


def _environ_has(pid: int, needle: bytes, *, prefix: bool = False) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return False
    if prefix:
        return (b"\0" + needle) in (b"\0" + data)
    return any(entry == needle for entry in data.split(b"\0"))


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def find(scope: str, container_id: str, *, root: int | None = None) -> list[int]:
    """Pids of the container's live processes: descendants of ``root`` and marked ones."""
    needle = f"{MARKER}={scope}/{container_id}".encode()
    me = os.getpid()
    found: set[int] = set()
    if root is not None:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(root)
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.add(root)
            found.update(p.pid for p in proc.children(recursive=True))
    for pid in _all_pids():
        if pid != me and pid not in found and _environ_has(pid, needle):
            found.add(pid)
    return sorted(found)


def find_scope(scope: str) -> list[int]:
    """Pids of every live process marked with ``scope`` (any container)."""
    needle = f"{MARKER}={scope}/".encode()
    me = os.getpid()
    return [pid for pid in _all_pids() if pid != me and _environ_has(pid, needle, prefix=True)]


def usage(pids: list[int]) -> tuple[int, int]:
    """(resident bytes, CPU nanoseconds) summed over ``pids`` (zombies and races skipped)."""
    rss = 0
    cpu = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            with proc.oneshot():
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                cpu += times.user + times.system + times.children_user + times.children_system
    return rss, int(cpu * 1e9)


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss(pids: list[int]) -> int:
    """Resident bytes summed over ``pids``, from ``/proc/<pid>/statm`` (one read each: the
    supervisor samples every container every few seconds)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total
