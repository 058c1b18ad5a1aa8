"""The two contracts people build on: typed Parquet for BI, schema-valid JSON for a CDN."""

from __future__ import annotations

import gzip
import json
import re
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import REPO, check_json_files, run_tiny, two_groups

from recs.core.settings import Settings
from recs.jobs import nightly
from recs.stages import history, write

pytestmark = pytest.mark.slow  # every test runs the whole job (or reads the session run)


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
        "cosine": "FLOAT", "co_watchers": "INTEGER", "close_watchers": "INTEGER",
        "next_watchers": "INTEGER", "neighbor_title": "VARCHAR", "neighbor_genres": "VARCHAR",
        "shared_genres": "VARCHAR",
    }
    meta = pq.ParquetFile(path).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    table = pq.read_table(path, columns=["movie_id", "rank"])
    keys = table["movie_id"].to_numpy() * 100 + table["rank"].to_numpy()
    assert np.all(np.diff(keys) > 0)


def test_close_and_next_watchers_are_published_beside_co_watchers(small_run):
    _, result = small_run
    path = result.run_dir / "recommendations.parquet"
    names = pq.read_schema(path).names
    for offset, name in enumerate(("close_watchers", "next_watchers"), 1):
        field = pq.read_schema(path).field(name)
        assert str(field.type) == "int32" and not field.nullable
        assert names.index(name) == names.index("co_watchers") + offset
    table = pq.read_table(path, columns=["co_watchers", "close_watchers", "next_watchers"])
    co = table["co_watchers"].to_numpy()
    for name in ("close_watchers", "next_watchers"):
        assert table[name].null_count == 0
        count = table[name].to_numpy()
        assert np.all(count >= 0) and np.all(count <= co), name
        # a real count, not a constant: some pairs have none, most have fewer than co_watchers
        assert (count == 0).any() and (count > 0).mean() > 0.3 and (count < co).mean() > 0.5, name


def test_json_items_carry_the_parquet_counts(small_run):
    _, result = small_run
    rows = pq.read_table(result.run_dir / "recommendations.parquet",
                         columns=["movie_id", "rank", "neighbor_id", "co_watchers",
                                  "close_watchers", "next_watchers"]).to_pylist()
    parquet = {(r["movie_id"], r["rank"]): r for r in rows}
    seen = 0
    for path in (result.run_dir / "json/v1/movies").glob("*.json"):
        raw = path.read_bytes()
        payload = json.loads(raw)
        # string-spliced, yet the very bytes a serializer gives
        assert write.dumps(payload) == raw, path.name
        for item in payload["similar"]:
            keys = list(item)
            at = keys.index("co_watchers")
            assert keys[at + 1 : at + 3] == ["close_watchers", "next_watchers"]
            row = parquet[(payload["movie_id"], item["rank"])]
            counts = ("co_watchers", "close_watchers", "next_watchers")
            assert (item["movie_id"], *(item[c] for c in counts)) == \
                (row["neighbor_id"], *(row[c] for c in counts))
            seen += 1
    assert seen == len(parquet)


def test_close_watchers_on_hand_made_histories(make_dataset, tmp_path):
    """Four users; close = rated both at most 2 ratings apart (close_window=2) in time order.

    Time orders (positions 0, 1, 2, ...):
      u1: 10 11 12 13 14 15 16
      u2: 10 13 16 11 14 12 15
      u3: 12 13 14 15 16 10 11   (written to ratings.csv in movie id order, so file order
                                   would give u1's pairs: time order must decide)
      u4: 16 15 14
    Pairs at most 2 positions apart, per user:
      u1: 10-11 10-12 11-12 11-13 12-13 12-14 13-14 13-15 14-15 14-16 15-16
      u2: 10-13 10-16 13-16 11-13 11-16 14-16 11-14 11-12 12-14 14-15 12-15
      u3: 12-13 12-14 13-14 13-15 14-15 14-16 15-16 10-15 10-16 11-16 10-11
      u4: 14-15 14-16 15-16
    Summed (pairs not listed: 0, i.e. 10-14, 11-15, 12-16). co_watchers: 4 for pairs inside
    14-16 (u4 too), 3 for all others. top_k 6 of 7 movies: every pair is published both ways.
    """
    order = {1: [10, 11, 12, 13, 14, 15, 16], 2: [10, 13, 16, 11, 14, 12, 15],
             3: [12, 13, 14, 15, 16, 10, 11], 4: [16, 15, 14]}
    ratings = []
    for user, movies in order.items():
        at = {m: 1_500_000_000 + 1000 * user + 60 * pos for pos, m in enumerate(movies)}
        ratings += [(user, m, 4.0, at[m]) for m in sorted(movies)]
    expected = {
        (10, 11): 2, (10, 12): 1, (10, 13): 1, (10, 14): 0, (10, 15): 1, (10, 16): 2,
        (11, 12): 2, (11, 13): 2, (11, 14): 1, (11, 15): 0, (11, 16): 2,
        (12, 13): 2, (12, 14): 3, (12, 15): 1, (12, 16): 0,
        (13, 14): 2, (13, 15): 2, (13, 16): 1,
        (14, 15): 4, (14, 16): 4, (15, 16): 3,
    }
    result = nightly.run(Settings(data=str(make_dataset(ratings)), out=tmp_path / "out",
                                  db=tmp_path / "db", dim=2, top_k=6, close_window=2))
    rows = pq.read_table(result.run_dir / "recommendations.parquet").to_pylist()
    assert len(rows) == 42
    got = {}
    for r in rows:
        pair = (min(r["movie_id"], r["neighbor_id"]), max(r["movie_id"], r["neighbor_id"]))
        got.setdefault(pair, set()).add((r["co_watchers"], r["close_watchers"]))
    assert got == {
        pair: {(4 if min(pair) >= 14 else 3, close)} for pair, close in expected.items()
    }
    # next watchers are directed: users who rated the neighbour 1 to 3 (next_window) places
    # after the movie
    place = {user: {m: i for i, m in enumerate(movies)} for user, movies in order.items()}
    for r in rows:
        q, c = r["movie_id"], r["neighbor_id"]
        later = sum(1 for p in place.values() if q in p and c in p and 1 <= p[c] - p[q] <= 3)
        assert r["next_watchers"] == later, r
    for movie in range(10, 17):
        payload = json.loads((result.run_dir / f"json/v1/movies/{movie}.json").read_bytes())
        for item in payload["similar"]:
            pair = (min(movie, item["movie_id"]), max(movie, item["movie_id"]))
            assert item["close_watchers"] == expected[pair], (movie, item)
    # movies/, imdb/, index, changes, search.json (seven titles: one shard), four schemas
    assert check_json_files(result.run_dir) == 7 + 7 + 7


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


# a seeded sample of the 9,724 per-movie files; the tiny runs below check every file
JSON_SAMPLE, JSON_SEED = 200, 20240601


def test_a_sample_of_the_json_files_matches_the_schemas(small_run):
    _, result = small_run
    root = result.run_dir / "json" / "v1"
    assert len(list((root / "movies").glob("*.json"))) == 9724
    # the sample and its IMDb aliases, index.json, changes.json, every search shard (the
    # root and at least one per first letter), the four published schemas
    assert check_json_files(result.run_dir, JSON_SAMPLE, JSON_SEED) >= JSON_SAMPLE + 2 + 27 + 4
    toy = (root / "movies" / "1.json").read_bytes()
    assert (root / "imdb" / "tt0114709.json").read_bytes() == toy


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
    for run in (first, second):
        assert check_json_files(run.run_dir) == 10 + 10 + 7


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
    assert check_json_files(second.run_dir) == 10 + 10 + 7  # changes.json with every kind


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


def documented_history_query() -> str:
    """The query docs/output-contract.md gives analysts for reading every history partition,
    checked to be the one recs/stages/history.py documents."""
    doc = (REPO / "docs" / "output-contract.md").read_text()
    found = re.findall(r"^(select \* from read_parquet\('OUT/history/.*)$", doc, re.M)
    assert len(found) == 1, found
    assert " ".join(history.__doc__.split()).count(found[0]) == 1
    return found[0]


def test_history_reads_across_a_column_added_later(make_dataset, tmp_path):
    out = tmp_path / "out"
    result = run_tiny(make_dataset(), tmp_path)
    (today,) = (out / "history").glob("run_date=*/recommendations.parquet")
    current = pq.read_table(today)
    # a partition written before close_watchers existed
    old = out / "history" / "run_date=2020-01-01"
    old.mkdir()
    pq.write_table(current.drop_columns(["close_watchers"]), old / "recommendations.parquet")
    query = documented_history_query().replace("'OUT/", f"'{out}/")
    con = duckdb.connect()
    names = [row[0] for row in con.execute(f"describe {query}").fetchall()]
    assert set(names) == set(current.column_names) | {"run_date"}
    rows = con.execute(
        f"select run_date, count(*), count(close_watchers), sum(close_watchers), "
        f"sum(co_watchers) from ({query}) group by 1 order by 1"
    ).fetchall()
    run_date = date.fromisoformat(result.manifest["started_at"][:10])
    co, close = (pc.sum(current[c]).as_py() for c in ("co_watchers", "close_watchers"))
    assert close > 0
    assert rows == [(date(2020, 1, 1), 30, 0, None, co), (run_date, 30, 30, close, co)]


def test_precompressed_siblings_hold_the_same_bytes(make_dataset, tmp_path):
    result = run_tiny(make_dataset(), tmp_path, precompress=True)
    jsons = [p for p in result.run_dir.rglob("*.json")]
    assert jsons
    for path in jsons:
        if path.name == "manifest.json":
            continue
        assert gzip.decompress(path.with_name(path.name + ".gz").read_bytes()) == \
            path.read_bytes()
    check_json_files(result.run_dir)


@pytest.mark.parametrize("title", ['Say "Hi" </script><b>x</b> & Amélie 北京 (2001)'])
def test_titles_stay_data(make_dataset, tmp_path, title):
    result = run_tiny(make_dataset(titles={10: title}), tmp_path)
    payload = json.loads((result.run_dir / "json/v1/movies/10.json").read_bytes())
    assert payload["title"] == title
    shown = [item["title"] for m in (11, 12, 13, 14)
             for item in json.loads((result.run_dir / f"json/v1/movies/{m}.json").read_bytes())
             ["similar"] if item["movie_id"] == 10]
    assert shown and all(t == title for t in shown)
    check_json_files(result.run_dir)
