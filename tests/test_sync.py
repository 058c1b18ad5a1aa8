"""publish.sync_file_systems: the one flush before `latest` switches, per file system once."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

import pytest

from recs.stages import publish


def test_each_file_system_is_flushed_once(tmp_path: Path, monkeypatch) -> None:
    flushed: list[int] = []

    def syncfs(fd: int) -> int:
        flushed.append(os.fstat(fd).st_dev)
        return 0

    monkeypatch.setattr(publish, "_SYNCFS", syncfs)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    publish.sync_file_systems([tmp_path / "a", tmp_path / "b", tmp_path])
    assert flushed == [os.stat(tmp_path).st_dev]


def test_a_write_back_error_names_the_folder(tmp_path: Path, monkeypatch) -> None:
    def failing(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(publish, "_SYNCFS", failing)
    with pytest.raises(OSError, match=f"Input/output error: '{tmp_path}'") as err:
        publish.sync_file_systems([tmp_path])
    assert err.value.errno == errno.EIO


def test_without_syncfs_the_whole_machine_is_synced(tmp_path: Path, monkeypatch) -> None:
    synced = []
    monkeypatch.setattr(publish, "_SYNCFS", None)
    monkeypatch.setattr(os, "sync", lambda: synced.append(True))
    publish.sync_file_systems([tmp_path / "never opened"])
    assert synced == [True]


@pytest.mark.skipif(publish._SYNCFS is None, reason="the C library has no syncfs")
def test_the_real_syncfs_flushes_a_folder_and_refuses_a_missing_one(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    publish.sync_file_systems([tmp_path])
    with pytest.raises(FileNotFoundError):
        publish.sync_file_systems([tmp_path / "missing"])
