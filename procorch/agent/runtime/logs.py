"""Container log files: written in the CRI format with rotation, read back as kubectl asks.

Each record is one line ``<RFC3339 time, 9 fraction digits> <stdout|stderr> <F|P> <content>``,
the format containerd writes and kubelet reads: ``F`` ends a line, ``P`` is a piece of a longer
one (lines are cut at :data:`MAX_RECORD`, so a process that never prints a newline cannot grow a
buffer without bound). A file that reaches ``max_bytes`` is renamed to ``<name>.<time>`` and a
new one started; at most ``max_files`` files (current included) are kept.

:class:`LogWriter` is fed chunks read from a container's pipes by the supervisor; it does one
``write`` system call per chunk, so the reader sees output as soon as it is produced.
:func:`read_log` serves ``kubectl logs`` options (``tailLines``, ``sinceTime``,
``timestamps``, ``limitBytes``, ``follow``) from the files, current and rotated.

Concurrency: a writer belongs to one container and is used from one event loop; readers only
read files, any number at once, in any process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

MAX_RECORD = 16 * 1024
_STREAMS = {"stdout": b"stdout", "stderr": b"stderr"}


def timestamp(ns: int | None = None) -> bytes:
    """RFC 3339 with nine fraction digits, fixed width, so timestamps sort as strings."""
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode() + b".%09dZ" % frac


def parse_time(value: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (any fraction width, ``Z`` or offset)."""
    text = value.strip()
    frac_ns = 0
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        for ch in rest:
            if ch.isdigit():
                digits += ch
            else:
                break
        tz = rest[len(digits) :]
        frac_ns = int((digits + "000000000")[:9]) if digits else 0
        text = head + tz
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + frac_ns


class LogWriter:
    def __init__(self, path: str | Path, *, max_bytes: int, max_files: int) -> None:
        self.path = Path(path)
        self.max_bytes = max(4096, max_bytes)
        self.max_files = max(1, max_files)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._pending: dict[str, bytes] = {}

    def feed(self, stream: str, data: bytes) -> None:
        """Add output read from ``stream``; complete lines are written at once."""
        if self._fd < 0:
            return
        tag = _STREAMS[stream]
        data = self._pending.pop(stream, b"") + data
        ts = timestamp()
        out: list[bytes] = []
        start = 0
        end = len(data)
        while start < end:
            nl = data.find(b"\n", start, min(end, start + MAX_RECORD))
            if nl < 0:
                if end - start >= MAX_RECORD:
                    out.append(b"%s %s P %s\n" % (ts, tag, data[start : start + MAX_RECORD]))
                    start += MAX_RECORD
                    continue
                self._pending[stream] = data[start:]
                break
            out.append(b"%s %s F %s\n" % (ts, tag, data[start:nl]))
            start = nl + 1
        if out:
            self._write(b"".join(out))

    def flush_stream(self, stream: str) -> None:
        """The stream ended: write what is left of its last line."""
        rest = self._pending.pop(stream, b"")
        if rest and self._fd >= 0:
            self._write(b"%s %s F %s\n" % (timestamp(), _STREAMS[stream], rest))

    def _write(self, blob: bytes) -> None:
        if self._size and self._size + len(blob) > self.max_bytes:
            self._rotate()
        view = memoryview(blob)
        while view:
            try:
                written = os.write(self._fd, view)
            except InterruptedError:
                continue
            except OSError:
                # A full disk must not take the supervisor down: drop the output.
                return
            view = view[written:]
            self._size += written

    def _rotate(self) -> None:
        os.close(self._fd)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S.%f")
        with contextlib.suppress(OSError):
            os.rename(self.path, f"{self.path}.{stamp}")
        for old in rotated_files(self.path)[: -(self.max_files - 1) or None]:
            with contextlib.suppress(OSError):
                old.unlink()
        if self.max_files == 1:
            for old in rotated_files(self.path):
                with contextlib.suppress(OSError):
                    old.unlink()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = 0

    def close(self) -> None:
        for stream in list(self._pending):
            self.flush_stream(stream)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def rotated_files(path: Path) -> list[Path]:
    """Rotated files of ``path``, oldest first."""
    try:
        names = [p for p in path.parent.iterdir() if p.name.startswith(path.name + ".")]
    except OSError:
        return []
    return sorted(names, key=lambda p: p.name)


def log_files(path: Path) -> list[Path]:
    files = rotated_files(path)
    if path.exists():
        files.append(path)
    return files


def _render(record: bytes, *, timestamps: bool) -> tuple[bytes, bytes]:
    """(timestamp, bytes to print) of one record line (without its trailing newline)."""
    ts, _, rest = record.partition(b" ")
    _stream, _, rest = rest.partition(b" ")
    tag, _, content = rest.partition(b" ")
    out = content if tag == b"P" else content + b"\n"
    if timestamps:
        out = ts + b" " + out
    return ts, out


def _tail_records(files: list[Path], lines: int) -> list[bytes]:
    """The last ``lines`` complete log lines (with their partial pieces), oldest first."""
    if lines <= 0:
        return []
    collected: list[bytes] = []
    full = 0
    for path in reversed(files):
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                pos = f.tell()
                carry = b""
                while pos > 0:
                    step = min(65536, pos)
                    pos -= step
                    f.seek(pos)
                    block = f.read(step) + carry
                    parts = block.split(b"\n")
                    carry = parts[0] if pos > 0 else b""
                    candidates = parts[1:] if pos > 0 else parts
                    for record in reversed(candidates):
                        if not record:
                            continue
                        is_full = record.split(b" ", 3)[2:3] == [b"F"]
                        if is_full:
                            if full == lines:
                                return list(reversed(collected))
                            full += 1
                        collected.append(record)
        except OSError:
            continue
    return list(reversed(collected))


async def read_log(
    path: Path,
    *,
    follow: bool = False,
    tail_lines: int | None = None,
    since_ns: int | None = None,
    timestamps: bool = False,
    limit_bytes: int | None = None,
    running: Callable[[], bool] = lambda: False,
    poll_interval: float = 0.1,
    stream: str | None = None,
) -> AsyncIterator[bytes]:
    """Yield the container's output as ``kubectl logs`` prints it (only ``stream``'s, stdout
    or stderr, when given).

    With ``follow``, keeps yielding new output until ``running()`` turns false and the file
    has been read to its end (a rotation while following is followed too).
    """
    only = _STREAMS[stream] if stream is not None else None
    remaining = limit_bytes if limit_bytes is not None and limit_bytes > 0 else None
    since = timestamp(since_ns) if since_ns is not None else None

    def emit(record: bytes) -> bytes | None:
        nonlocal remaining
        if only is not None and record.split(b" ", 2)[1:2] != [only]:
            return None
        ts, out = _render(record, timestamps=timestamps)
        if since is not None and ts < since:
            return None
        if remaining is not None:
            out = out[:remaining]
            remaining -= len(out)
        return out

    files = log_files(path)
    # Where the current file's content starts being new (for following).
    offset = 0
    inode = None
    if tail_lines is not None:
        chunk = []
        for record in _tail_records(files, tail_lines):
            out = emit(record)
            if out:
                chunk.append(out)
        if chunk:
            yield b"".join(chunk)
        if path.exists():
            current = path.stat()
            offset, inode = current.st_size, current.st_ino
    else:
        for file in files:
            try:
                with open(file, "rb") as f:
                    carry = b""
                    while True:
                        block = f.read(65536)
                        if not block:
                            break
                        block = carry + block
                        records = block.split(b"\n")
                        carry = records.pop()
                        chunk = [o for r in records if r and (o := emit(r))]
                        if chunk:
                            yield b"".join(chunk)
                        if remaining == 0:
                            return
                    if file == path:
                        offset = f.tell() - len(carry)
                        inode = os.fstat(f.fileno()).st_ino
            except OSError:
                continue
    if not follow or remaining == 0:
        return
    carry = b""
    while True:
        alive = running()
        st: os.stat_result | None
        try:
            st = path.stat()
        except FileNotFoundError:
            st = None
        if st is not None and inode is not None and st.st_ino != inode:
            # Rotated: the old file is complete; start the new one from its beginning.
            offset, inode, carry = 0, st.st_ino, b""
        if st is not None and inode is None:
            inode = st.st_ino
        if st is not None and st.st_size > offset:
            with open(path, "rb") as f:
                f.seek(offset)
                block = f.read(1024 * 1024)
            offset += len(block)
            block = carry + block
            records = block.split(b"\n")
            carry = records.pop()
            chunk = [o for r in records if r and (o := emit(r))]
            if chunk:
                yield b"".join(chunk)
            if remaining == 0:
                return
            continue
        if not alive:
            return
        await asyncio.sleep(poll_interval)
