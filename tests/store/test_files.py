"""The one atomic writer: mode, content, durability (file and directory fsync), and failures
that leave the old file as it was and no temporary file behind."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securephone.store import files
from securephone.store.files import atomic_write


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_gets_content_and_mode_0600_by_default(tmp_path: Path, umask_zero: None) -> None:
    path = tmp_path / "phone.toml"
    atomic_write(path, b"[sip]\n")
    assert path.read_bytes() == b"[sip]\n"
    assert _mode(path) == 0o600
    assert os.listdir(tmp_path) == ["phone.toml"]


def test_replaces_an_existing_file_and_sets_the_given_mode(tmp_path: Path) -> None:
    path = tmp_path / "sips.pem"
    path.write_bytes(b"old contents that are longer than the new ones")
    path.chmod(0o600)
    old_umask = os.umask(0o077)
    try:
        atomic_write(str(path), b"new", mode=0o644)
    finally:
        os.umask(old_umask)
    assert (path.read_bytes(), _mode(path)) == (b"new", 0o644)
    assert os.listdir(tmp_path) == ["sips.pem"]


def test_fsyncs_the_file_then_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        synced.append(kind)
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", recording_fsync)
    atomic_write(tmp_path / "users.json", b"{}")
    assert synced == ["file", "dir"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "device.pem"
    path.write_bytes(b"the old certificate")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, b"the new certificate")
    assert path.read_bytes() == b"the old certificate"
    assert os.listdir(tmp_path) == ["device.pem"]


def test_bad_data_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(b"[]")
    not_bytes: Any = "text, not bytes"
    with pytest.raises(TypeError):
        atomic_write(path, not_bytes)
    assert path.read_bytes() == b"[]"
    assert os.listdir(tmp_path) == ["keys.json"]


def test_failed_rename_keeps_the_target_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_bytes(b"x")
    with pytest.raises(OSError):
        atomic_write(target, b"data")
    assert target.is_dir() and (target / "inside").read_bytes() == b"x"
    assert os.listdir(tmp_path) == ["taken"]


def test_missing_directory_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing" / "ca.key", b"x")
    assert os.listdir(tmp_path) == []
