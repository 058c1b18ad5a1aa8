"""write.FileLog.write_many: files from a generator, written while it makes the next ones."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from recs.stages.write import FileLog


def payloads(n: int, made: list[int]) -> Iterator[tuple[str, bytes]]:
    for i in range(n):
        made.append(i)
        yield f"f/{i}.json", f'{{"i":{i}}}'.encode() * (i % 7 + 1)


@pytest.mark.parametrize("threads", [1, 4])
def test_a_generator_is_written_whole_and_logged_in_its_order(tmp_path: Path, threads) -> None:
    (tmp_path / "f").mkdir()
    log, made = FileLog(tmp_path), []
    log.write_many(payloads(1300, made), threads)  # three chunks of up to 512
    assert made == list(range(1300))
    assert list(log.files) == [f"f/{i}.json" for i in range(1300)]
    for rel, data in payloads(1300, []):
        assert (tmp_path / rel).read_bytes() == data
        assert log.files[rel]["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_file_that_exists_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "600.json").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        FileLog(tmp_path).write_many(payloads(1000, []), 2)
    assert (tmp_path / "f" / "600.json").read_bytes() == b"old"
