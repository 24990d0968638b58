"""Cache files are replaced whole: a failed write leaves the old file and no stray temporary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.support.files import write_whole


def test_write_creates_the_folder_and_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.bin"
    write_whole(target, [b"one", b"\n", b"two"])
    assert target.read_bytes() == b"one\ntwo"
    write_whole(target, [b"three"])
    assert target.read_bytes() == b"three"
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.bin"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "b.bin"
    write_whole(target, [b"old"])

    def chunks() -> Iterator[bytes]:
        yield b"new, half of it"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_whole(target, chunks())
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin"]
