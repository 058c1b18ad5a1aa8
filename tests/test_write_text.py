"""The write stage's bulk helpers give what their one-at-a-time forms give: decimal texts as
repr, IMDb links on threads, Parquet encoded beside the JSON but logged first."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from recs.stages import write
from recs.stages.write import FileLog


def test_decimal_texts_are_repr_of_the_value_rounded_to_4_decimals() -> None:
    rng = np.random.default_rng(7)
    edges = [0.0, -0.0, 1e-4, -1e-4, 4.9e-5, -4.9e-5, 5e-5, 0.99995, 1.0, -1.0, 2.5, 123456.78]
    values = np.concatenate([
        rng.standard_normal(50_000).astype(np.float32),
        (rng.uniform(0, 40, 50_000)).astype(np.float32),
        np.array(edges, np.float32),
    ])
    rounded = np.round(values.astype(np.float64), 4)
    expected = [repr(v) for v in rounded.tolist()]
    assert write.decimal_texts(values).to_pylist() == expected
    short = write.short_decimals(rounded)  # the spliced path, not the repr fallback
    assert short is not None and short.to_pylist() == expected


@pytest.mark.parametrize("odd", [np.inf, -np.inf, np.nan, 3e38])
def test_decimal_texts_of_values_without_a_short_decimal_fall_back_to_repr(odd) -> None:
    values = np.array([0.25, odd, -1.5], np.float32)
    rounded = np.round(values.astype(np.float64), 4)
    expected = [repr(v) for v in rounded.tolist()]
    assert write.decimal_texts(values).to_pylist() == expected
    assert write.short_decimals(rounded) is None  # the repr fallback, not the spliced path


def _files(root: Path, n: int) -> FileLog:
    (root / "m").mkdir()
    (root / "a").mkdir()
    log = FileLog(root)
    log.write_many((f"m/{i}.json", f"[{i}]".encode() * (i % 5 + 1)) for i in range(n))
    return log


@pytest.mark.parametrize("threads", [1, 4])
def test_link_many_makes_hard_links_logged_in_order(tmp_path: Path, threads) -> None:
    log = _files(tmp_path, 1200)
    names = [(f"a/{i}.json", f"m/{(i * 7) % 1200}.json") for i in range(1100, -1, -1)]
    log.link_many(names, threads)
    assert list(log.files)[1200:] == [rel for rel, _ in names]
    for rel, existing in names:
        assert (tmp_path / rel).stat().st_ino == (tmp_path / existing).stat().st_ino
        assert (tmp_path / rel).stat().st_nlink == 2
        data = (tmp_path / rel).read_bytes()
        assert log.files[rel] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_link_many_refuses_a_name_that_exists(tmp_path: Path) -> None:
    log = _files(tmp_path, 10)
    (tmp_path / "a" / "3.json").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        log.link_many([(f"a/{i}.json", f"m/{i}.json") for i in range(10)], 2)
    assert (tmp_path / "a" / "3.json").read_bytes() == b"old"


def _table(n: int) -> pa.Table:
    return pa.table({"x": pa.array(np.arange(n, dtype=np.int64))})


def test_parquet_beside_logs_the_tables_first_with_the_bytes_write_parquet_gives(
    tmp_path: Path,
) -> None:
    (tmp_path / "serial").mkdir()
    serial = FileLog(tmp_path / "serial")
    write.write_parquet(serial, "a.parquet", _table(5))
    write.write_parquet(serial, "b.parquet", _table(9))
    (tmp_path / "beside").mkdir()
    beside = FileLog(tmp_path / "beside")
    with write.parquet_beside(beside, {"a.parquet": lambda: _table(5),
                                       "b.parquet": lambda: _table(9)}):
        beside.write("later.json", b"{}")
    assert list(beside.files) == ["a.parquet", "b.parquet", "later.json"]
    for rel in ("a.parquet", "b.parquet"):
        assert beside.files[rel] == serial.files[rel]
        assert (tmp_path / "beside" / rel).read_bytes() == (tmp_path / "serial" / rel).read_bytes()


def test_parquet_beside_writes_nothing_when_the_body_fails(tmp_path: Path) -> None:
    log = FileLog(tmp_path)
    with pytest.raises(RuntimeError), write.parquet_beside(log, {"a.parquet": lambda: _table(3)}):
        raise RuntimeError("the JSON failed")
    assert log.files == {} and not (tmp_path / "a.parquet").exists()
