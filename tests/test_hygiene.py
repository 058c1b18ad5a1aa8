"""Hygiene of what the job writes and touches:
- output file names come only from integer ids, whatever the titles say;
- JSON comes from a serializer: hostile titles round-trip exactly through the whole job;
- nothing is written through a symlink out of the output folder (refused with exit 2);
- a run on a local folder needs no network at all.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import check_json_files, run_tiny, two_groups, write_dataset
from jobtools import TIMEOUT_S, verify_run

from recs.cli import main
from recs.jobs import nightly
from recs.stages import write

HOSTILE = {
    10: 'Say "Hi" to the \\ back\\slash (2001)',
    11: "</script><script>alert(1)</script> (2002)",
    12: "<!-- x --> & &amp; ' ; DROP TABLE movies; -- (2003)",
    13: "北京 Amélie Œuvre e\u0301 🎬\u200d👩 (2004)",
    14: "../../etc/passwd /tmp/x \u202eevil.json (2005)",
    20: "Line\u2028and\u2029paragraph separators (2006)",
    21: 'Hello, "World", {"json": [1]} (2007)',
    22: "${HOME} $(id) `id` %s %(x)s {0} (2008)",
}

ALLOWED = [
    r"manifest\.json",
    r"index\.html",
    r"(recommendations|movies|embeddings)\.parquet",
    r"json/v1/(index|changes|search)\.json",
    r"json/v1/search/[a-z0-9A-F_]+(\.[1-9][0-9]*)?\.json",  # a key, percent-encoded, % as _
    r"json/v1/schema/[a-z]+\.schema\.json",
    r"json/v1/movies/[0-9]+\.json",
    r"json/v1/imdb/tt[0-9]{7,}\.json",
]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> nightly.RunResult:
    root = tmp_path_factory.mktemp("hostile")
    data = write_dataset(root / "data", two_groups(), HOSTILE)
    return run_tiny(data, root, cache=root / "cache")


@pytest.mark.slow
def test_output_names_come_only_from_integer_ids(hostile_run):
    names = list(verify_run(hostile_run.run_dir)["files"]) + ["manifest.json"]
    allowed = re.compile("|".join(f"(?:{a})" for a in ALLOWED))
    assert [n for n in names if not allowed.fullmatch(n)] == []
    movies = sorted(int(n.rsplit("/", 1)[1][:-5]) for n in names if "/movies/" in n)
    assert movies == [10, 11, 12, 13, 14, 20, 21, 22, 23, 24]
    check_json_files(hostile_run.run_dir)


@pytest.mark.slow
def test_hostile_titles_stay_data_through_the_whole_job(hostile_run):
    root = hostile_run.run_dir / write.JSON_ROOT
    seen = 0
    for movie_id, title in HOSTILE.items():
        raw = (root / "movies" / f"{movie_id}.json").read_bytes()
        payload = json.loads(raw)
        assert payload["title"] == title
        assert payload["movie_id"] == movie_id
        # the same movie in other movies' lists, and its IMDb alias
        for other in root.glob("movies/*.json"):
            for item in json.loads(other.read_bytes())["similar"]:
                if item["movie_id"] == movie_id:
                    assert item["title"] == title
                    seen += 1
        assert (root / "imdb" / f"{write.imdb_key(movie_id)}.json").read_bytes() == raw
    assert seen > 0
    index = {m["movie_id"]: m["title"] for m in json.loads((root / "index.json").read_bytes())
             ["movies"]}
    assert {m: index[m] for m in HOSTILE} == HOSTILE
    parquet = pq.read_table(hostile_run.run_dir / "movies.parquet").to_pylist()
    assert {r["movie_id"]: r["title"] for r in parquet if r["movie_id"] in HOSTILE} == HOSTILE


def run_cli(data: Path, out: Path, tmp_path: Path):
    return CliRunner().invoke(main, ["run", "--data", str(data), "--out", str(out), "--db",
                                     str(tmp_path / "db"), "--dim", "2", "--top-k", "3"])


def everything(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize("name", ["runs", "history"])
def test_a_symlinked_output_folder_is_refused(make_dataset, tmp_path, name):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "keep.txt").parent.mkdir()
    (elsewhere / "keep.txt").write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(elsewhere, target_is_directory=True)
    result = run_cli(make_dataset(), out, tmp_path)
    assert result.exit_code == 2, result.output
    assert f"{out / name} is a symlink" in result.output
    assert everything(elsewhere) == ["keep.txt"]
    assert not (out / "latest").exists()


def test_a_symlinked_lock_file_is_refused_and_its_target_kept(make_dataset, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").symlink_to(victim)
    result = run_cli(make_dataset(), out, tmp_path)
    assert result.exit_code == 2, result.output
    assert ".lock is a symlink" in result.output
    assert victim.read_text() == "precious"


def test_latest_that_is_not_a_symlink_is_refused(make_dataset, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "latest").write_text("someone's notes")
    result = run_cli(make_dataset(), out, tmp_path)
    assert result.exit_code == 2, result.output
    assert "latest is not a symlink" in result.output
    assert (out / "latest").read_text() == "someone's notes"
    assert not (out / "runs").exists() or everything(out / "runs") == []


def test_file_writes_never_follow_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim.json"
    victim.write_text("precious")
    stage = tmp_path / "stage"
    (stage / "json").mkdir(parents=True)
    (stage / "json" / "1.json").symlink_to(victim)
    files = write.FileLog(stage)
    with pytest.raises(OSError):
        files.write("json/1.json", b"{}")
    files.write("json/2.json", b"{}")
    (stage / "json" / "3.json").symlink_to(victim)
    with pytest.raises(OSError):
        files.link("json/3.json", "json/2.json")
    assert victim.read_text() == "precious"
    assert (stage / "json" / "1.json").is_symlink() and (stage / "json" / "3.json").is_symlink()


@pytest.mark.slow
def test_a_local_run_needs_no_network(make_dataset, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network use: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    result = run_tiny(make_dataset(), tmp_path)
    verify_run(result.run_dir)


@pytest.mark.slow
def test_a_local_run_works_in_a_namespace_without_network(make_dataset, tmp_path):
    """The whole CLI process, LanceDB's Rust core included, with no network interface up."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"]).returncode != 0:
        pytest.skip("cannot make a network namespace here (needs unshare and root)")
    out = tmp_path / "out"
    proc = subprocess.run(
        [unshare, "-n", sys.executable, "-m", "recs.cli", "run", "--data", str(make_dataset()),
         "--out", str(out), "--db", str(tmp_path / "db"), "--dim", "2", "--top-k", "3"],
        capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    verify_run(out / "latest")
