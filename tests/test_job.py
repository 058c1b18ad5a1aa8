"""The nightly job end to end: hand-made data with known lists, then real ml-latest-small."""

from __future__ import annotations

import json
import re

import duckdb
import pyarrow.parquet as pq
import pytest
from helpers import REPO, check_json_files, isolate_env, run_tiny, two_groups, write_dataset

pytestmark = pytest.mark.slow  # every test runs the whole job


# inside a group of `two_groups()` every pair counts alike, and so ties exactly, with the close
# window over a whole history and without the directed next-watcher term (every user rates her
# group's movies in id order, so 11 comes next after 10, never 10 after 11)
TIED = {"close_window": 5, "next_weight": 0.0, "next_pool": 0}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """`run_tiny` on `two_groups()` once for the module (settings `TIED`), as (root,
    result); tests only read it (out/ under root)."""
    root = tmp_path_factory.mktemp("tiny_run")
    with pytest.MonkeyPatch.context() as mp:
        isolate_env(mp, root)
        return root, run_tiny(write_dataset(root / "data", two_groups()), root, **TIED)


def two_group_lists(result) -> dict[int, list[int]]:
    recs = pq.read_table(result.run_dir / "recommendations.parquet").to_pylist()
    lists: dict[int, list[int]] = {}
    for row in recs:
        lists.setdefault(row["movie_id"], []).append(row["neighbor_id"])
    assert all(row["co_watchers"] == 6 for row in recs)
    # each user rates her group's 5 movies and nothing else: any two are <= 4 ratings apart,
    # inside close_window 5 (`TIED`), so all 6 co-watchers are close watchers
    assert all(row["close_watchers"] == 6 for row in recs)
    assert all(row["cosine"] == pytest.approx(1.0) for row in recs)
    return lists


def test_two_groups_stay_apart(tiny_run):
    _, result = tiny_run
    check_json_files(result.run_dir)
    lists = two_group_lists(result)
    assert sorted(lists) == [10, 11, 12, 13, 14, 20, 21, 22, 23, 24]
    for movie, nbrs in lists.items():
        group = range(10, 15) if movie < 20 else range(20, 25)
        assert len(nbrs) == 3 and len(set(nbrs)) == 3, (movie, nbrs)
        assert movie not in nbrs and set(nbrs) <= set(group), (movie, nbrs)


def test_equal_scores_are_not_always_won_by_the_same_movies(tiny_run):
    """Inside a group every pair ties exactly; a fixed hash of the pair breaks the ties, so
    the left-out movie differs between lists (by id, movie 14 would never be recommended)."""
    lists = two_group_lists(tiny_run[1])
    recommended = {n for nbrs in lists.values() for n in nbrs}
    assert recommended == {10, 11, 12, 13, 14, 20, 21, 22, 23, 24}


@pytest.mark.parametrize("engine", ["exact", "lancedb"])
def test_engines_publish_the_same_lists(make_dataset, tmp_path, engine, tiny_run):
    reference = two_group_lists(tiny_run[1])
    assert two_group_lists(run_tiny(make_dataset(), tmp_path / engine, engine=engine,
                                    **TIED)) == reference


def test_latest_points_at_complete_run(tiny_run):
    root, result = tiny_run
    latest = root / "out" / "latest"
    assert latest.resolve() == result.run_dir.resolve()
    manifest = json.loads((latest / "manifest.json").read_text())
    for rel, meta in manifest["files"].items():
        assert (latest / rel).stat().st_size == meta["bytes"], rel
    assert not list((root / "out" / "runs").glob(".partial-*"))


def test_small_counts_and_schemas(small_run):
    _, result = small_run
    out = result.run_dir
    recs = pq.read_table(out / "recommendations.parquet")
    assert recs.num_rows == 9724 * 10
    assert str(recs.schema.field("rank").type) == "int16"
    assert str(recs.schema.field("score").type) == "float"
    movies = pq.read_table(out / "movies.parquet")
    assert movies.num_rows == 9742
    assert sum(movies["has_list"].to_pylist()) == 9724
    assert len(list((out / "json/v1/movies").glob("*.json"))) == 9724
    index = json.loads((out / "json/v1/index.json").read_text())
    assert len(index["movies"]) == 9724
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["recommendations"] == 97240
    assert set(manifest["stages"]) >= {"read", "embed", "neighbors", "write", "lancedb"}
    # DuckDB reads the same Parquet an analyst would
    con = duckdb.connect()
    got = con.execute(
        "select count(*), count(distinct movie_id), min(rank), max(rank) from read_parquet($p)",
        {"p": str(out / "recommendations.parquet")},
    ).fetchone()
    assert got == (97240, 9724, 1, 10)


def test_toy_story_list_is_made_of_co_watched_hits(small_run):
    _, result = small_run
    toy = json.loads((result.run_dir / "json/v1/movies/1.json").read_text())
    assert toy["title"] == "Toy Story (1995)"
    assert toy["imdb_id"] == 114709
    assert len(toy["similar"]) == 10
    # neighbours that many of Toy Story's 215 raters also rated, not obscure ones
    assert all(s["co_watchers"] >= 40 for s in toy["similar"]), toy["similar"]
    assert all(0 <= s["close_watchers"] <= s["co_watchers"] for s in toy["similar"])
    assert 3114 in [s["movie_id"] for s in toy["similar"]]  # Toy Story 2 (1999)


def test_lists_are_sorted_by_score_then_cosine(small_run):
    _, result = small_run
    recs = pq.read_table(result.run_dir / "recommendations.parquet").to_pylist()
    for a, b in zip(recs, recs[1:], strict=False):
        if a["movie_id"] == b["movie_id"]:
            assert (a["score"], a["cosine"]) >= (b["score"], b["cosine"])
            assert b["rank"] == a["rank"] + 1
        assert a["neighbor_id"] != a["movie_id"]


def test_lancedb_table_answers_through_content(small_run):
    from recs.stages import store

    settings, _ = small_run
    table = store.open_table(settings.db_location(), settings.table)
    assert table.count_rows() == 9724
    hits = store.similar(table, 1, 10)
    assert len(hits) == 10
    assert type(hits[0][0]).__name__ == "Content"
    assert hits[0][0].movie_id != 1


def test_quality_gate_refuses_and_keeps_the_last_output(make_dataset, tmp_path):
    from click.testing import CliRunner

    from recs.cli import main

    # user 1 ends with one rating across the groups: the one last pair no list can hold
    data = make_dataset(two_groups() + [(1, 20, 3.0, 2_000_000_000)])
    first = run_tiny(data, tmp_path)
    assert first.manifest["quality"]["holdout_pairs"] == 12
    assert first.manifest["quality"]["hr"] == pytest.approx(11 / 12)
    result = CliRunner().invoke(main, [
        "run", "--data", str(data), "--out", str(tmp_path / "out"),
        "--db", str(tmp_path / "db"), "--dim", "2", "--top-k", "3", "--min-hr", "0.95",
    ])
    assert result.exit_code == 3, result.output
    assert "quality gate" in result.output
    assert (tmp_path / "out" / "latest").resolve() == first.run_dir.resolve()
    assert not list((tmp_path / "out" / "runs").glob(".partial-*"))


def test_gate_figures_on_real_data(small_run):
    _, result = small_run
    q = result.manifest["quality"]
    assert q["holdout_pairs"] >= 600
    assert q["hr"] > 0.05  # random lists score ~0.001
    assert q["coverage"] > 0.75


def test_documented_example_is_toy_story_2_in_a_real_run(small_run):
    """docs/output-contract.md's recommendations.parquet example row and JSON example item are
    Toy Story -> Toy Story 2 as a real run on ml-latest-small publishes it."""
    _, result = small_run
    readme = (REPO / "docs" / "output-contract.md").read_text()
    section = readme.split("## recommendations.parquet", 1)[1].split("\n## ", 1)[0]
    example = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) >= 4:
            example[cells[0]] = cells[-1]
    con = duckdb.connect()
    row = con.execute(
        "select rank, score, cosine, co_watchers, close_watchers, next_watchers "
        "from read_parquet($p) "
        "where movie_id = 1 and neighbor_id = 3114",
        {"p": str(result.run_dir / "recommendations.parquet")},
    ).fetchone()
    assert row is not None, "Toy Story 2 is not in Toy Story's list"
    rank, score, cosine, co, close, later = row
    assert (example["movie_id"], example["neighbor_id"]) == ("1", "3114")
    assert example["rank"] == str(rank)
    assert float(example["score"]) == round(score, 4)
    assert float(example["cosine"]) == round(cosine, 4)
    assert (example["co_watchers"], example["close_watchers"], example["next_watchers"]) == \
        (str(co), str(close), str(later))
    toy = json.loads((result.run_dir / "json/v1/movies/1.json").read_text())
    (item,) = [s for s in toy["similar"] if s["movie_id"] == 3114]
    shown = (f'"rank":{item["rank"]},"movie_id":3114,' in readme,
             f'"score":{item["score"]},"cosine":{item["cosine"]},"co_watchers":'
             f'{item["co_watchers"]},"close_watchers":{item["close_watchers"]},'
             f'"next_watchers":{item["next_watchers"]},' in readme)
    assert shown == (True, True), item


def test_design_notes_figures_are_a_real_run(small_run):
    """docs/design.md's Toy Story figures (the list's first three titles, Toy Story 2's rank, and
    its co-watch counts) are what a real run on ml-latest-small publishes."""
    _, result = small_run
    design = " ".join((REPO / "docs" / "design.md").read_text().split())
    opens = re.search(r"Toy Story's list opens with (.+?), (.+?) and (.+?), and Toy Story 2 is "
                      r"(\d+)th", design)
    counts = re.search(r'"(\d+) people rated both, (\d+) of them within a few ratings of each '
                       r'other, (\d+) watched it next', design)
    assert opens and counts, "docs/design.md no longer states the Toy Story figures"
    toy = json.loads((result.run_dir / "json/v1/movies/1.json").read_text())
    titles = [s["title"] for s in toy["similar"]]
    named = opens.groups()[:3]
    assert all(t.startswith(f"{n} (") for t, n in zip(titles[:3], named, strict=True)), (
        titles[:3], named
    )
    (item,) = [s for s in toy["similar"] if s["movie_id"] == 3114]
    assert item["rank"] == int(opens.group(4))
    assert (item["co_watchers"], item["close_watchers"], item["next_watchers"]) == \
        tuple(map(int, counts.groups()))
