"""The two contracts people build on: typed Parquet for BI, schema-valid JSON for a CDN."""

from __future__ import annotations

import gzip
import json
from datetime import date
from importlib import resources
from pathlib import Path

import duckdb
import jsonschema
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_tiny, two_groups

from jobs import nightly
from recs import history, write


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((resources.files("recs") / "assets" / "schema" /
                         f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def duck_types(path: Path) -> dict[str, str]:
    rows = duckdb.connect().execute(
        "select column_name, column_type from (describe select * from read_parquet($p))",
        {"p": str(path)},
    ).fetchall()
    return dict(rows)


def test_recommendations_parquet_types_order_and_compression(small_run):
    _, result = small_run
    path = result.run_dir / "recommendations.parquet"
    assert pq.read_schema(path).equals(write.RECOMMENDATIONS_SCHEMA)
    assert duck_types(path) == {
        "movie_id": "BIGINT", "rank": "SMALLINT", "neighbor_id": "BIGINT", "score": "FLOAT",
        "cosine": "FLOAT",
        "co_watchers": "INTEGER", "neighbor_title": "VARCHAR", "neighbor_genres": "VARCHAR",
        "shared_genres": "VARCHAR",
    }
    meta = pq.ParquetFile(path).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    table = pq.read_table(path, columns=["movie_id", "rank"])
    keys = table["movie_id"].to_numpy() * 100 + table["rank"].to_numpy()
    assert np.all(np.diff(keys) > 0)


def test_movies_and_embeddings_parquet(small_run):
    _, result = small_run
    movies = duck_types(result.run_dir / "movies.parquet")
    assert movies["movie_id"] == "BIGINT" and movies["imdb_id"] == "BIGINT"
    assert movies["year"] == "SMALLINT" and movies["has_list"] == "BOOLEAN"
    emb = pq.read_table(result.run_dir / "embeddings.parquet")
    assert emb.num_rows == 9724
    vectors = np.stack(emb["vector"].to_numpy(zero_copy_only=False))
    assert vectors.shape == (9724, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_every_json_file_matches_its_schema(small_run):
    _, result = small_run
    root = result.run_dir / "json" / "v1"
    movie = validator("movie")
    files = sorted((root / "movies").glob("*.json"))
    assert len(files) == 9724
    for path in files:
        payload = json.loads(path.read_bytes())
        errors = list(movie.iter_errors(payload))
        assert not errors, (path.name, errors[0].message)
        assert path.name == f"{payload['movie_id']}.json"
    validator("index").validate(json.loads((root / "index.json").read_bytes()))
    validator("changes").validate(json.loads((root / "changes.json").read_bytes()))
    toy = (root / "movies" / "1.json").read_bytes()
    assert (root / "imdb" / "tt0114709.json").read_bytes() == toy
    assert (root / "schema" / "movie.schema.json").is_file()


def changes_of(result: nightly.RunResult) -> dict:
    return json.loads((result.run_dir / "json/v1/changes.json").read_bytes())


def test_unchanged_input_keeps_every_file_byte_identical(make_dataset, tmp_path):
    data = make_dataset()
    first = run_tiny(data, tmp_path)
    second = run_tiny(data, tmp_path)
    skip = {"manifest.json", "json/v1/changes.json"}
    a = {k: v for k, v in first.manifest["files"].items() if k not in skip}
    b = {k: v for k, v in second.manifest["files"].items() if k not in skip}
    assert a == b
    # unchanged files are the previous run's own inodes: mtime-based syncs skip them
    for rel in b:
        assert (first.run_dir / rel).stat().st_ino == (second.run_dir / rel).stat().st_ino, rel
    assert second.manifest["counts"]["files_reused"] > 0
    changes = changes_of(second)
    assert changes["previous_run_id"] == first.run_id
    assert changes["added"] == changes["removed"] == changes["changed"] == []
    assert changes["unchanged"] == 10
    assert changes_of(first)["added"] == [10, 11, 12, 13, 14, 20, 21, 22, 23, 24]


def test_changes_name_exactly_what_moved(make_dataset, tmp_path):
    before = two_groups()
    first = run_tiny(make_dataset(before, name="a"), tmp_path)
    # movie 15 joins group A (rated by users 1-6); movie 24 loses all its ratings
    after = [r for r in before if r[1] != 24]
    after += [(user, 15, 5.0, 1_600_000_000 + user) for user in range(1, 7)]
    second = run_tiny(make_dataset(after, name="b"), tmp_path)
    changes = changes_of(second)
    assert changes["previous_run_id"] == first.run_id
    assert changes["added"] == [15]
    assert changes["removed"] == [24]
    # group A lists now rank 15 among equals; group B lists lost 24
    assert set(changes["changed"]) <= {10, 11, 12, 13, 14, 20, 21, 22, 23}
    assert changes["unchanged"] + len(changes["changed"]) == 9
    for movie in set(range(20, 24)) - set(changes["changed"]):
        rel = f"json/v1/movies/{movie}.json"
        assert first.manifest["files"][rel] == second.manifest["files"][rel]


def test_history_is_hive_partitioned_and_pruned(make_dataset, tmp_path):
    out = tmp_path / "out"
    result = run_tiny(make_dataset(), tmp_path)
    rows = duckdb.connect().execute(
        "select run_date, count(*) from read_parquet($p, hive_partitioning = true) group by 1",
        {"p": str(out / "history" / "*" / "*.parquet")},
    ).fetchall()
    assert rows == [(date.fromisoformat(result.manifest["started_at"][:10]), 30)]
    old = out / "history" / "run_date=2020-01-01"
    old.mkdir()
    (out / "history" / "notes").mkdir()
    removed = history.prune_history(out, date(2020, 4, 1), keep_days=30)
    assert removed == ["run_date=2020-01-01"]
    assert (out / "history" / "notes").is_dir()


def test_precompressed_siblings_hold_the_same_bytes(make_dataset, tmp_path):
    result = run_tiny(make_dataset(), tmp_path, precompress=True)
    jsons = [p for p in result.run_dir.rglob("*.json")]
    assert jsons
    for path in jsons:
        if path.name == "manifest.json":
            continue
        assert gzip.decompress(path.with_name(path.name + ".gz").read_bytes()) == \
            path.read_bytes()


@pytest.mark.parametrize("title", ['Say "Hi" </script><b>x</b> & Amélie 北京 (2001)'])
def test_titles_stay_data(make_dataset, tmp_path, title):
    result = run_tiny(make_dataset(titles={10: title}), tmp_path)
    payload = json.loads((result.run_dir / "json/v1/movies/10.json").read_bytes())
    assert payload["title"] == title
    shown = [item["title"] for m in (11, 12, 13, 14)
             for item in json.loads((result.run_dir / f"json/v1/movies/{m}.json").read_bytes())
             ["similar"] if item["movie_id"] == 10]
    assert shown and all(t == title for t in shown)
