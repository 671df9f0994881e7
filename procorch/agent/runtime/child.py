"""Linux system calls the runtime needs and Python does not offer: prctl, unshare, mount.

Used by :mod:`procorch.agent.runtime.spawn` in a container's process between fork and exec
(mount namespaces and bind mounts for volumes) and by the supervisor itself (becoming a child
subreaper). The C library is loaded once, in the parent.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Sequence

from procorch.agent.runtime.spec import Mount

PR_SET_PDEATHSIG = 1
# errnos that mean "not allowed here" for mounts and namespaces.
MOUNT_ERRORS = (errno.EPERM, errno.EACCES)
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

# The C library, loaded once in the parent: a forked child must not load it (find_library
# runs ldconfig, which cost ~8 ms per container start when it happened in the child).
_libc = ctypes.CDLL(None, use_errno=True)


def libc() -> ctypes.CDLL:
    return _libc


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, arg: int) -> None:
    _check(libc().prctl(option, ctypes.c_ulong(arg), 0, 0, 0), "prctl")


def set_child_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process instead of init."""
    try:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        return True
    except OSError:
        return False


def unshare(flags: int) -> None:
    _check(libc().unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    result = libc().mount(
        source.encode() if source is not None else None,
        target.encode(),
        fstype.encode() if fstype is not None else None,
        ctypes.c_ulong(flags),
        None,
    )
    _check(result, f"mount {source or ''} on {target}")


def setns(fd: int, nstype: int) -> None:
    _check(libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount_namespaces_possible() -> bool:
    """Whether this process can give children private mount namespaces (root, or
    unprivileged user namespaces). Probed in a throwaway child."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            enter_mount_namespace()
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def enter_mount_namespace(*, uts: bool = False) -> None:
    """A private mount namespace (and, with ``uts``, a UTS namespace for a hostname of the
    process's own), inside a user namespace when not root."""
    if os.geteuid() != 0:
        uid, gid = os.geteuid(), os.getegid()
        unshare(CLONE_NEWUSER)
        # Map our own ids to themselves: the process keeps its identity, and loses the
        # namespace's capabilities at exec (a non-root uid), after the mounts are made.
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    unshare(CLONE_NEWNS | (CLONE_NEWUTS if uts else 0))
    # Keep our mounts out of the host's namespace (systemd makes / shared).
    mount(None, "/", None, MS_REC | MS_PRIVATE)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(libc().sethostname(ctypes.c_char_p(raw), ctypes.c_size_t(len(raw))), "sethostname")


def _locked_flags(path: str) -> int:
    """Flags a read-only remount must keep (the kernel refuses to clear them in a userns)."""
    flags = 0
    try:
        st = os.statvfs(path).f_flag
    except OSError:
        return flags
    if st & os.ST_NOSUID:
        flags |= MS_NOSUID
    if st & os.ST_NODEV:
        flags |= MS_NODEV
    if st & os.ST_NOEXEC:
        flags |= MS_NOEXEC
    return flags


def mask(path: str) -> None:
    """Hide ``path`` (in the current mount namespace): a directory under an empty read-only
    tmpfs, a file under /dev/null."""
    if os.path.isdir(path):
        mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    elif os.path.lexists(path):
        mount("/dev/null", path, None, MS_BIND)


def apply_mounts(mounts: Sequence[Mount]) -> None:
    for m in mounts:
        mount(m.source, m.target, None, MS_BIND | MS_REC)
        if m.read_only:
            mount(None, m.target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags(m.target))
