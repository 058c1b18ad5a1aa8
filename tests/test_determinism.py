"""Determinism: the same input and settings give byte-identical Parquet and JSON files, whatever
the BLAS/DuckDB thread count or the top-k engine. Only manifest.json (times, run id, settings)
and changes.json's run ids may differ. Checked on real ml-latest-small against the session's
`small_run` (exact engine, 2 threads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jobtools import RUN_RELATIVE, content_hashes, verify_run

from recs.jobs import nightly

pytestmark = pytest.mark.slow  # two more whole runs on ml-latest-small

RUN_IDS = ("run_id", "previous_run_id")


def file_hashes(run_dir: Path) -> dict[str, str]:
    """sha256 of every file of a complete run but manifest.json and changes.json."""
    return content_hashes(verify_run(run_dir))


def changes_without_run_ids(run_dir: Path) -> dict:
    changes = json.loads((run_dir / RUN_RELATIVE).read_bytes())
    return {k: v for k, v in changes.items() if k not in RUN_IDS}


@pytest.mark.parametrize(
    "variant", [{"threads": 1}, {"engine": "lancedb"}], ids=["threads=1", "engine=lancedb"]
)
def test_same_input_same_bytes(small_run, tmp_path, variant):
    settings, baseline = small_run
    assert (settings.threads, settings.engine) == (2, "exact")
    other = nightly.run(settings.model_copy(update={
        **variant, "out": str(tmp_path / "out"), "db": str(tmp_path / "db"),
    }))
    expected, got = file_hashes(baseline.run_dir), file_hashes(other.run_dir)
    assert len(expected) > 9000
    differ = sorted(rel for rel in expected.keys() | got.keys()
                    if expected.get(rel) != got.get(rel))
    assert differ == [], f"{len(differ)} files differ, e.g. {differ[:5]}"
    assert changes_without_run_ids(other.run_dir) == changes_without_run_ids(baseline.run_dir)
