"""Tailing kube-apiserver's audit log file: ``audit.k8s.io/v1`` events as a change source.

An :class:`AuditTail` follows the file of ``--audit-log-path`` (JSON format: one ``Event``
with its ``kind``/``apiVersion`` per line, ``plugin/pkg/audit/log``) for a long-running
watch. Each :meth:`AuditTail.read` returns the complete lines there are now, parsed, never
blocking; its :class:`TailBatch` carries the position after exactly those events, an opaque
string (``v1:<device>:<inode>:<offset of the next unread byte>``) to store beside them and
to resume from with ``AuditTail(path, position=...)``: a process killed after committing a
batch resumes with neither duplicates nor gaps.

Rotation, as the writers do it:

* kube-apiserver writes the file through lumberjack (``gopkg.in/natefinch/lumberjack.v2``,
  ``AuditLogOptions.getWriter`` in ``apiserver/pkg/server/options/audit.go``), so it always
  rotates: at ``--audit-log-maxsize`` MB, lumberjack's 100 MB when that is 0. Before a
  write that would pass the size it renames ``audit.log`` to
  ``audit-2026-12-07T14-26-23.123.log`` (stem, UTC time, extension, same directory),
  creates a new ``audit.log`` and writes there (each event is one write, so a line never
  spans two files); later it may gzip a backup to ``….log.gz`` (``--audit-log-compress``,
  a new file: the original is removed) and delete old ones. logrotate's default renames
  too (``audit.log.1``, ``audit.log-20261207`` with ``dateext``). Both are followed by
  inode: the open handle is kept and read to its end; when the path names another inode,
  the handle is read once more (a write may have landed between the end seen and the
  rename), then the next file is the oldest rotated file written after this one (by
  modification time, so that a tail several rotations behind reads each backup in turn),
  else the current file, from 0.
* logrotate's ``copytruncate`` truncates the file in place: the same inode smaller than
  what was read is read again from 0, with a problem line. Lines written after our last
  read and before the truncation are lost, as with any tail of a copytruncated file.
* Resuming from a position whose inode is no longer the current file: the rotated file with
  that device and inode is looked for among the directory's backups (lumberjack's and
  logrotate's names, uncompressed), finished from the offset, and the rotation is followed
  from there. Not found (deleted, or compressed into a new file): a problem line and the
  current file from 0.
* The file missing (not written yet, or mid-rotation) is not an error: a problem line once
  and the file picked up when it appears.

Bounded: only complete lines are consumed (a partial last line waits for the next read); a
line longer than ``max_line`` is scanned to its newline without being kept and counted in
``skipped``, and the position never points into the middle of one; each read reads at most
``max_bytes_per_read`` bytes and returns at most ``max_events`` events. Lines that are not
JSON objects are counted in ``skipped`` with one problem line per read; blank lines are
passed over silently. A position whose offset does not follow a newline in the file with its
inode (the inode reused by another file) is not trusted: that file is read from 0.

Speed note: 1.6 KB Metadata events (80,000 lines, 122 MiB, from the page cache) tail at
55,000 to 75,000 events/s with ``read(max_events=5000)`` (as the load of the shared 2-core
development machine varied) and 90,000 to 120,000 with batches of 1,000. ``orjson.loads``
of each line is nearly all of it (lines are split out of 1 MiB reads with ``bytes.split``);
keeping a batch's 5,000 trees of dicts alive is what costs, which is why the young
generation is collected rarely while a batch is decoded (with the default thresholds:
40,000 to 50,000 events/s).

One reader per instance and one thread: it holds no lock. An error reading an open file
(``EIO``) is raised as the ``OSError`` it is; trouble finding or opening the file is a
problem line, since the file may yet appear.
"""

from __future__ import annotations

import gc
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from auditor.support.gcpolicy import BULK_THRESHOLDS

_VERSION = "v1"
# Big reads: the per-line work is the JSON parse, a read's cost is per call.
_CHUNK = 1 << 20
# A backup in one of these is a new file (a new inode) and cannot be read as lines.
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".z")


@dataclass(frozen=True)
class TailBatch:
    """What one :meth:`AuditTail.read` found."""

    events: list[dict[str, Any]]
    position: str
    skipped: int
    problems: tuple[str, ...]
    rotated: bool


def encode_position(device: int, inode: int, offset: int) -> str:
    """The opaque position string: the file by device and inode, the next unread byte."""
    return f"{_VERSION}:{device}:{inode}:{offset}"


def decode_position(position: str) -> tuple[int, int, int] | None:
    """``(device, inode, offset)`` of a position string, or None when it is not one."""
    parts = position.split(":")
    if len(parts) != 4 or parts[0] != _VERSION:
        return None
    try:
        numbers = tuple(int(p) for p in parts[1:])
    except ValueError:
        return None
    if any(n < 0 for n in numbers):
        return None
    return numbers[0], numbers[1], numbers[2]


def rotation_pattern(path: Path) -> re.Pattern[str]:
    """The names a rotated copy of ``path`` takes in its directory: lumberjack's
    ``<stem>-<2006-01-02T15-04-05.000><ext>[.gz]`` and logrotate's ``<name>.<n>[.gz]`` or
    ``<name>-<date>[.gz]``."""
    stem, ext = os.path.splitext(path.name)
    lumberjack = (re.escape(stem) + r"-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}"
                  + re.escape(ext) + r"(?:\.gz)?")
    logrotate = re.escape(path.name) + r"[.-]\d[\w.-]*"
    return re.compile(f"{lumberjack}|{logrotate}", re.ASCII)


@contextmanager
def _rare_collections() -> Iterator[None]:
    """The young generation collected rarely while a batch is decoded (see
    :mod:`auditor.support.gcpolicy`: a batch of 5,000 events is 5,000 trees of dicts, and the
    default thresholds halve the speed). Unlike ``gcpolicy.bulk`` nothing is frozen: a watch
    reads every second for weeks, and freezing each time would keep the cyclic garbage of
    the whole process alive for good."""
    before = gc.get_threshold()
    gc.set_threshold(*BULK_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


class AuditTail:
    """Follows one audit log file across rotations; see the module docstring."""

    def __init__(self, path: str | Path, position: str | None = None, *,
                 max_line: int = 4 << 20, max_bytes_per_read: int = 8 << 20) -> None:
        if max_line < 1 or max_bytes_per_read < 1:
            raise ValueError("max_line and max_bytes_per_read must be positive")
        self._path = Path(path)
        self._label = f"audit log {self._path}"
        self._pattern = rotation_pattern(self._path)
        self._max_line = max_line
        self._max_bytes = max_bytes_per_read
        self._fd: int | None = None
        self._device = 0
        self._inode = 0
        # The offset of the first byte not yet consumed: what the position names.
        self._offset = 0
        # Complete lines read but not yet consumed (from index _next), then the partial
        # line after them, or only its length once it has passed max_line.
        self._lines: list[bytes] = []
        self._next = 0
        self._tail = b""
        self._tail_over = 0
        # The path names another file: read this handle to its end once more, then move on.
        self._draining = False
        self._said_missing = False
        self._open_problem: str | None = None
        self._closed = False
        self._pending: list[str] = []
        # The position while no file is open: "the start of whatever file appears", or the
        # position resumed from until a file is found.
        self._idle_position = encode_position(0, 0, 0)
        if position is not None:
            self._resume(position)

    # -- the public side -----------------------------------------------------------------

    @property
    def position(self) -> str:
        """The position after everything returned so far."""
        if self._fd is None:
            return self._idle_position
        return encode_position(self._device, self._inode, self._offset)

    def read(self, max_events: int = 5000) -> TailBatch:
        """The events complete in the file now, at most ``max_events``; never blocks."""
        if self._closed:
            raise ValueError(f"{self._label}: read after close")
        if max_events < 1:
            raise ValueError("max_events must be positive")
        with _rare_collections():
            return self._read(max_events)

    def _read(self, max_events: int) -> TailBatch:
        events: list[dict[str, Any]] = []
        problems = self._pending
        self._pending = []
        skipped = 0
        malformed = 0
        first_malformed = ""
        rotated = False
        budget = self._max_bytes
        max_line = self._max_line
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        while len(events) < max_events:
            if self._next < len(self._lines):
                # The hot loop: locals only, the offset kept exact line by line.
                lines = self._lines
                index = self._next
                offset = self._offset
                room = max_events - len(events)
                end = len(lines)
                while index < end and room:
                    line = lines[index]
                    index += 1
                    start = offset
                    offset += len(line) + 1
                    if len(line) > max_line:
                        skipped += 1
                        problems.append(self._oversize(start))
                        continue
                    try:
                        parsed = loads(line)
                    except decode_error:
                        parsed = None
                        if not line or line.isspace():
                            continue
                    if type(parsed) is dict:
                        events.append(parsed)
                        room -= 1
                    else:
                        if not malformed:
                            first_malformed = self._where(start)
                        malformed += 1
                        skipped += 1
                self._offset = offset
                if index >= end:
                    self._lines = []
                    self._next = 0
                else:
                    self._next = index
                continue
            if self._fd is None:
                if not self._open_current(problems):
                    break
                continue
            if budget <= 0:
                break
            data = os.read(self._fd, min(_CHUNK, budget))
            if data:
                budget -= len(data)
                skipped += self._feed(data, problems)
                continue
            outcome, lost = self._at_end(problems)
            skipped += lost
            if outcome == "moved":
                rotated = True
            elif outcome != "again":
                break
        if malformed:
            problems.append(f"{self._label}: {malformed} line(s) that are not JSON objects "
                            f"skipped (the first {first_malformed})")
        return TailBatch(events, self.position, skipped, tuple(problems), rotated)

    def close(self) -> None:
        """Let go of the file; the position stays readable."""
        if self._fd is not None:
            self._idle_position = self.position
            os.close(self._fd)
            self._fd = None
        self._lines = []
        self._tail = b""
        self._closed = True

    def __enter__(self) -> AuditTail:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- lines ---------------------------------------------------------------------------

    def _feed(self, data: bytes, problems: list[str]) -> int:
        """Split newly read bytes into complete lines and the partial one; returns the lines
        skipped here (an over-long partial line that has now ended)."""
        skipped = 0
        if self._tail_over:
            newline = data.find(b"\n")
            if newline < 0:
                self._tail_over += len(data)
                return 0
            problems.append(self._oversize(self._offset))
            skipped = 1
            self._offset += self._tail_over + newline + 1
            self._tail_over = 0
            data = data[newline + 1:]
        lines = (self._tail + data).split(b"\n") if self._tail else data.split(b"\n")
        tail = lines.pop()
        self._lines = lines
        self._next = 0
        if len(tail) > self._max_line:
            # Kept as a length only: the rest of the line is scanned for its end, not held.
            self._tail = b""
            self._tail_over = len(tail)
        else:
            self._tail = tail
        return skipped

    def _oversize(self, offset: int) -> str:
        return (f"{self._label}: line {self._where(offset)} longer than {self._max_line} "
                "bytes skipped")

    def _where(self, offset: int) -> str:
        return f"at offset {offset} of inode {self._inode}"

    def _reset_lines(self) -> None:
        self._lines = []
        self._next = 0
        self._tail = b""
        self._tail_over = 0

    # -- files ---------------------------------------------------------------------------

    def _attach(self, fd: int, info: os.stat_result, offset: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self._device = info.st_dev
        self._inode = info.st_ino
        self._offset = offset
        self._draining = False
        self._reset_lines()
        os.lseek(fd, offset, os.SEEK_SET)

    def _open(self, path: Path) -> tuple[int, os.stat_result] | None:
        """The file at ``path`` opened for reading, with its identity, if it is a regular
        file; raises OSError when it cannot be opened."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return None
        return fd, info

    def _open_current(self, problems: list[str]) -> bool:
        try:
            opened = self._open(self._path)
        except (FileNotFoundError, NotADirectoryError):
            if not self._said_missing:
                problems.append(f"{self._label}: not found (yet)")
                self._said_missing = True
            return False
        except OSError as exc:
            self._say_once(problems, f"{self._label}: cannot be opened: {exc.strerror}")
            return False
        if opened is None:
            self._say_once(problems, f"{self._label}: not a regular file")
            return False
        self._attach(*opened, 0)
        return True

    def _say_once(self, problems: list[str], message: str) -> None:
        # A watch polls: the same trouble every second is one line, not thousands.
        if message != self._open_problem:
            problems.append(message)
            self._open_problem = message

    def _backups(self) -> list[tuple[Path, os.stat_result]]:
        """The rotated copies of the file in its directory that can be read as lines."""
        directory = self._path.parent
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return []
        out = []
        for entry in entries:
            if not self._pattern.fullmatch(entry.name) \
                    or entry.name.lower().endswith(_COMPRESSED):
                continue
            try:
                info = entry.stat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                out.append((Path(entry.path), info))
        return out

    def _at_end(self, problems: list[str]) -> tuple[str, int]:
        """At the end of the open file: ``("moved", lost)`` when reading goes on in another
        file or from 0 (``lost``: a partial last line left behind), ``("again", 0)`` when
        the handle is to be read once more, ``("wait", 0)`` when there is nothing now."""
        assert self._fd is not None
        if self._draining:
            following = self._following()
            if following is None:
                # Nothing to go on to (the path vanished again, or was renamed back): the
                # next end of file looks at the path afresh.
                self._draining = False
                return "wait", 0
            lost = 0
            if self._tail or self._tail_over:
                lost = 1
                problems.append(f"{self._label}: incomplete last line "
                                f"{self._where(self._offset)} of a rotated file skipped")
            self._attach(*following, 0)
            return "moved", lost
        try:
            info = os.stat(self._path)
        except OSError:
            # Vanished: mid-rotation (renamed, not yet created) or deleted. The handle holds
            # whatever was written; the next read looks again.
            return "wait", 0
        if (info.st_dev, info.st_ino) != (self._device, self._inode):
            self._draining = True
            return "again", 0
        read_to = os.lseek(self._fd, 0, os.SEEK_CUR)
        if info.st_size < read_to:
            problems.append(f"{self._label}: truncated in place ({info.st_size} bytes, "
                            f"{read_to} read); reading it again from the start, lines "
                            "written just before the truncation may be missing")
            self._offset = 0
            self._reset_lines()
            os.lseek(self._fd, 0, os.SEEK_SET)
            return "moved", 0
        return "wait", 0

    def _following(self) -> tuple[int, os.stat_result] | None:
        """The file written after the open one: the oldest backup modified later than it
        (the tail is behind by more than one rotation), else the current file."""
        assert self._fd is not None
        ours = os.fstat(self._fd)
        later = sorted((info.st_mtime_ns, str(path)) for path, info in self._backups()
                       if (info.st_dev, info.st_ino) != (ours.st_dev, ours.st_ino)
                       and info.st_mtime_ns > ours.st_mtime_ns)
        for path in [*(Path(name) for _mtime, name in later), self._path]:
            try:
                opened = self._open(path)
            except OSError:
                continue
            if opened is None:
                continue
            fd, info = opened
            if (info.st_dev, info.st_ino) == (ours.st_dev, ours.st_ino):
                # Renamed under us since the scan: it is still the one being read.
                os.close(fd)
                continue
            return opened
        return None

    def _resume(self, position: str) -> None:
        decoded = decode_position(position)
        if decoded is None:
            # A cursor, not configuration: a bad one costs a re-read, never the watch.
            self._pending.append(f"{self._label}: position {position!r} not understood; "
                                 "reading the current file from the start")
            return
        device, inode, offset = decoded
        if inode == 0:
            return  # taken before the file existed: the start of whatever file appears
        self._idle_position = encode_position(device, inode, offset)
        candidates = [self._path, *(path for path, _info in self._backups())]
        for path in candidates:
            try:
                opened = self._open(path)
            except OSError:
                continue
            if opened is None:
                continue
            fd, info = opened
            if (info.st_dev, info.st_ino) != (device, inode):
                os.close(fd)
                continue
            if not self._line_start(fd, info, offset):
                self._pending.append(
                    f"{self._label}: position {position} does not fall at a line start of "
                    f"{path.name} (truncated, or the inode reused); reading it from the start")
                offset = 0
            self._attach(fd, info, offset)
            return
        self._pending.append(f"{self._label}: rotated file for position {position} not "
                             "found; events between may be missing")

    @staticmethod
    def _line_start(fd: int, info: os.stat_result, offset: int) -> bool:
        """Whether ``offset`` can be the start of a line of this file."""
        if offset == 0:
            return True
        if offset > info.st_size:
            return False
        return os.pread(fd, 1, offset - 1) == b"\n"
