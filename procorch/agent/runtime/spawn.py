"""Starting a container's process: fork, place, set up, exec - and say why when it fails.

One function, :func:`spawn`, for every container start and exec. The child is created with
``clone3(CLONE_INTO_CGROUP)`` where the kernel has it (5.7+) and the container has a cgroup v2
directory: the process is born in its cgroup, so nothing it forks can ever escape tracking, and
nobody is *moved* between cgroups - a move waits for an RCU grace period, which measured 9-24 ms
per container start here, most of the restart latency. Elsewhere it is a plain ``fork`` and the
child joins its cgroups itself, before it can fork.

Between fork and exec the child, in order: starts its own session (so a terminal's Ctrl-C never
reaches it and its group can be signalled as one); joins any cgroups it was not born in (v1
memory/cpu limits); with volume mounts enters a private mount namespace (a user namespace first
when not root) and bind-mounts each volume; changes to its working directory (which may be in a
mount); makes the pty its controlling terminal; switches user/group; restores the signal
dispositions Python changed; then execs, trying each ``PATH`` entry like ``execvp``. A failure
is written to a close-on-exec pipe as ``step\\0errno\\0detail``, so the caller reports *why*
("executable file not found in $PATH", "chdir to working directory ... failed").

The child runs Python after a raw ``clone3`` (no fork handlers); that is sound only because the
supervisor is single-threaded and the child execs or exits at once, touching nothing but
system calls. Never call this from a multi-threaded process (the in-process runtime uses the
plain fork path, see ``use_clone3``).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import termios
from collections.abc import Sequence
from dataclasses import dataclass, field

from procorch.agent.runtime.child import (
    MOUNT_ERRORS,
    apply_mounts,
    enter_mount_namespace,
    mask,
    sethostname,
)
from procorch.agent.runtime.spec import Mount, StartError

SYS_CLONE3 = 435  # the same number on x86_64 and aarch64
CLONE_INTO_CGROUP = 0x200000000


class _CloneArgs(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("pidfd", ctypes.c_uint64),
        ("child_tid", ctypes.c_uint64),
        ("parent_tid", ctypes.c_uint64),
        ("exit_signal", ctypes.c_uint64),
        ("stack", ctypes.c_uint64),
        ("stack_size", ctypes.c_uint64),
        ("tls", ctypes.c_uint64),
        ("set_tid", ctypes.c_uint64),
        ("set_tid_size", ctypes.c_uint64),
        ("cgroup", ctypes.c_uint64),
    ]


# PyDLL keeps the GIL across the call, so the child returns into Python holding it, exactly as
# the parent does.
_syscall = ctypes.PyDLL(None, use_errno=True).syscall
_syscall.restype = ctypes.c_long
_clone3_works: bool | None = None


@dataclass
class SpawnPlan:
    argv: list[str]
    env: dict[str, str]
    stdin: int
    stdout: int
    stderr: int
    cwd: str | None = None
    tty: bool = False
    mounts: Sequence[Mount] = ()
    hostname: str | None = None
    masked: Sequence[str] = ()
    uid: int | None = None
    gid: int | None = None
    cgroup_dir: str | None = None
    """A cgroup v2 directory to be born in (``clone3``)."""
    join: list[str] = field(default_factory=list)
    """``cgroup.procs`` files the child writes itself into (v1, or v2 without clone3)."""


def _candidates(argv0: str, env: dict[str, str]) -> list[bytes]:
    if "/" in argv0:
        return [os.fsencode(argv0)]
    path = env.get("PATH", os.defpath)
    return [os.fsencode(os.path.join(d or ".", argv0)) for d in path.split(os.pathsep)]


def _child(plan: SpawnPlan, errpipe: int, executables: list[bytes]) -> None:
    """In the new process: never returns."""
    step = "setsid"
    detail = ""
    try:
        os.setsid()
        step = "stdio"
        for target, fd in ((0, plan.stdin), (1, plan.stdout), (2, plan.stderr)):
            if fd != target:
                os.dup2(fd, target)
            else:
                os.set_inheritable(fd, True)
        for path in plan.join:
            step = "join cgroup"
            detail = os.path.dirname(path)
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, b"0")
            os.close(fd)
        if plan.mounts or plan.hostname or plan.masked:
            step = "create a private mount namespace for volume mounts"
            detail = ""
            enter_mount_namespace(uts=bool(plan.hostname))
            if plan.hostname:
                step = "set the hostname"
                detail = plan.hostname
                sethostname(plan.hostname)
            for m in plan.mounts:
                step = "mount volume"
                detail = m.target
                apply_mounts([m])
            for path in plan.masked:
                step = "hide procorch's files"
                detail = path
                mask(path)
        if plan.cwd:
            step = "chdir"
            detail = plan.cwd
            os.chdir(plan.cwd)
        if plan.tty:
            step = "make the pty the controlling terminal"
            detail = ""
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        if plan.gid is not None:
            step = "set group"
            detail = str(plan.gid)
            os.setgroups([plan.gid])
            os.setresgid(plan.gid, plan.gid, plan.gid)
        if plan.uid is not None:
            step = "set user"
            detail = str(plan.uid)
            os.setresuid(plan.uid, plan.uid, plan.uid)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        step = "exec"
        detail = plan.argv[0]
        first_error: OSError | None = None
        for exe in executables:
            try:
                os.execve(exe, plan.argv, plan.env)
            except OSError as exc:
                if first_error is None or exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                    first_error = exc
        raise first_error or OSError(errno.ENOENT, "no such file")
    except BaseException as exc:  # noqa: BLE001 - report anything, then die
        code = exc.errno if isinstance(exc, OSError) and exc.errno else 0
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        try:
            os.write(errpipe, f"{step}\0{code}\0{detail}\0{text}".encode()[:4000])
        except OSError:
            pass
    finally:
        os._exit(127)


def _clone3(cgroup_fd: int) -> int:
    args = _CloneArgs()
    args.flags = CLONE_INTO_CGROUP
    args.exit_signal = signal.SIGCHLD
    args.cgroup = cgroup_fd
    return int(_syscall(ctypes.c_long(SYS_CLONE3), ctypes.byref(args), ctypes.sizeof(args)))


def spawn(plan: SpawnPlan, *, use_clone3: bool) -> int:
    """Start ``plan``; the child's pid once it has exec'd. Raises :class:`StartError`."""
    global _clone3_works
    executables = _candidates(plan.argv[0], plan.env) if plan.argv else []
    if not executables:
        raise StartError("no command given")
    r, w = os.pipe2(os.O_CLOEXEC)
    cgroup_fd = -1
    try:
        pid = -1
        if use_clone3 and plan.cgroup_dir and _clone3_works is not False:
            cgroup_fd = os.open(plan.cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            pid = _clone3(cgroup_fd)
            if pid == 0:
                _child(plan, w, executables)
            if pid < 0:
                err = ctypes.get_errno()
                if err in (errno.ENOSYS, errno.EINVAL, errno.EPERM, errno.E2BIG):
                    _clone3_works = False  # old kernel or a sandbox that forbids it
                else:
                    raise StartError(f"clone3: {os.strerror(err)}")
            else:
                _clone3_works = True
        if pid < 0:
            if plan.cgroup_dir:
                plan.join = [os.path.join(plan.cgroup_dir, "cgroup.procs"), *plan.join]
            pid = os.fork()
            if pid == 0:
                _child(plan, w, executables)
        os.close(w)
        w = -1
        report = b""
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            report += chunk
        if report:
            # The child failed before exec: collect it and say why.
            _, _ = os.waitpid(pid, 0)
            raise StartError(_message(plan, report.decode(errors="replace")))
        return pid
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
        if cgroup_fd >= 0:
            os.close(cgroup_fd)


def _message(plan: SpawnPlan, report: str) -> str:
    step, code_text, detail, text = (report.split("\0") + ["", "", ""])[:4]
    code = int(code_text) if code_text.isdigit() else 0
    if step == "exec":
        cmd = plan.argv[0]
        if code in (errno.ENOENT, errno.ENOTDIR):
            if "/" not in cmd:
                return f'exec: "{cmd}": executable file not found in $PATH'
            return f'exec: "{cmd}": stat {cmd}: no such file or directory'
        if code == errno.EACCES:
            return f'exec: "{cmd}": permission denied'
        return f'exec: "{cmd}": {text.lower()}'
    if step == "chdir":
        return f'chdir to working directory "{detail}" failed: {text.lower()}'
    message = f"{step}{' ' + detail if detail else ''}: {text}"
    if code in MOUNT_ERRORS:
        message += " (procorch needs root or user namespaces for this)"
    return message
