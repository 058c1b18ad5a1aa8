"""The CLI through click's CliRunner: help everywhere, run and similar on hand-made data."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from helpers import isolate_env, two_groups, write_dataset

from recs import __version__
from recs.cli import main


def all_commands():
    return sorted(main.commands)


@pytest.mark.parametrize("name", all_commands())
def test_every_command_has_help_with_an_example(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert main.commands[name].help


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


@pytest.fixture(scope="module")
def published_root(tmp_path_factory):
    """`recs run` once for the module on hand-made titles; the tests only read what it published
    (out/ and lancedb/ under the returned root)."""
    root = tmp_path_factory.mktemp("published")
    titles = {10: "Alpha (2001)", 11: "Alpha Beta (2002)", 12: "Gamma (2003)",
              13: "Delta (2004)", 14: 'Say "Hi" (2005)', 20: "Zeta (2010)"}
    data = write_dataset(root / "data", two_groups(), titles)
    with pytest.MonkeyPatch.context() as mp:
        isolate_env(mp, root)
        mp.setenv("RECS_OUT", str(root / "out"))
        result = CliRunner().invoke(main, ["run", "--data", str(data), "--dim", "2",
                                           "--top-k", "3"])
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def published(published_root, monkeypatch):
    """The module's published OUT folder, with RECS_DB pointing at its LanceDB table."""
    monkeypatch.setenv("RECS_DB", str(published_root / "lancedb"))
    return published_root / "out"


@pytest.mark.slow
def test_run_publishes_and_reports(published):
    assert (published / "latest" / "manifest.json").is_file()
    assert (published / "latest" / "index.html").is_file()


@pytest.mark.slow
def test_similar_by_exact_title_prints_the_list(published):
    result = CliRunner().invoke(main, ["similar", "Alpha (2001)", "-k", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Alpha (2001)" in lines[0]
    assert [line.split()[2] for line in lines[1:]] == ["11", "12", "13"]


@pytest.mark.slow
def test_similar_json_by_id(published):
    result = CliRunner().invoke(main, ["similar", "14", "--json", "-k", "2"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["title"] == 'Say "Hi" (2005)'
    assert [row["movie_id"] for row in payload["similar"]] == [10, 11]
    assert set(payload["similar"][0]) >= {"movie_id", "title", "genres", "imdb_id", "score"}


@pytest.mark.slow
def test_similar_title_without_year_prefers_the_exact_film(published):
    result = CliRunner().invoke(main, ["similar", "alpha"])  # "Alpha (2001)", not "Alpha Beta"
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "Because you watched Alpha (2001) (10):"


@pytest.mark.slow
def test_similar_ambiguous_title_lists_candidates(published):
    result = CliRunner().invoke(main, ["similar", "alph"])
    assert result.exit_code != 0
    assert "2 movies match" in result.output
    assert "Alpha Beta (2002)" in result.output


@pytest.mark.slow
def test_similar_unknown_title(published):
    result = CliRunner().invoke(main, ["similar", "no such film"])
    assert result.exit_code == 1
    assert "no movie matches" in result.output


def test_similar_without_a_table_says_run_first(tmp_path):
    result = CliRunner().invoke(main, ["similar", "x", "--db", str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert "recs run" in result.output


def test_run_on_missing_folder_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["run", "--data", str(tmp_path / "nope"),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert str(tmp_path / "nope") in result.output


def test_bad_setting_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RECS_DIM", "lots")
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "dim" in result.output


@pytest.mark.slow
def test_run_from_a_zip_served_on_loopback(make_dataset, tmp_path):
    import functools
    import http.server
    import threading
    import zipfile

    data = make_dataset()
    site = tmp_path / "site"
    site.mkdir()
    with zipfile.ZipFile(site / "ml-tiny.zip", "w") as zf:
        for name in ("ratings.csv", "movies.csv", "links.csv"):
            zf.write(data / name, f"ml-tiny/{name}")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/ml-tiny.zip"
        args = ["run", "--data", url, "--out", str(tmp_path / "out"), "--dim", "2",
                "--top-k", "3"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        server.shutdown()  # the second run must come from the cache
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    finally:
        server.server_close()
    payload = json.loads((tmp_path / "out/latest/json/v1/movies/10.json").read_bytes())
    assert {s["movie_id"] for s in payload["similar"]} <= {11, 12, 13, 14}


def test_evaluate_scores_a_list_file_and_refuses_a_wrong_one(make_dataset, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = make_dataset()
    lists = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"movie_id": [10, 20], "rank": [1, 1], "neighbor_id": [11, 21]}),
                   lists)
    result = CliRunner().invoke(main, ["evaluate", "--data", str(data), "--lists", str(lists),
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert list(payload["rows"]) == ["lists.parquet"]
    assert payload["rows"]["lists.parquet"]["lists"] == 2
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"movie_id": [10]}), bad)
    result = CliRunner().invoke(main, ["evaluate", "--data", str(data), "--lists", str(bad)])
    assert result.exit_code == 2
    assert "bad.parquet: needs an integer column 'rank'" in result.output
