"""--data, --out and --db on a real S3-compatible server on 127.0.0.1 (the `s3_server` and
`bucket` fixtures): what is uploaded, what a killed upload leaves, LanceDB on the bucket, and
each bad input as one line with nothing published.

Checks read the bucket through pyarrow's S3 client, not through the job's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import obstore
import pytest
import s3server
from click.testing import CliRunner
from helpers import REPO, two_groups, write_dataset
from obstore.store import S3Store
from pyarrow import fs

from recs.cli import main
from recs.core.errors import RunLockedError
from recs.core.location import BucketURI
from recs.core.settings import Settings
from recs.engines import open_bucket
from recs.jobs import nightly
from recs.stages import lease
from recs.tools.synth import write_synthetic

pytestmark = pytest.mark.slow  # a real server, whole runs


def tiny(**overrides) -> dict:
    return {"dim": 2, "top_k": 3, **overrides}


def run_to(data: str, out: str, db: str, cache: Path, **overrides) -> nightly.RunResult:
    return nightly.run(Settings(data=data, out=out, db=db, cache=cache, **tiny(**overrides)))


def objects(s3: fs.S3FileSystem, root: str) -> dict[str, fs.FileInfo]:
    """Every object under bucket/prefix `root`, by key relative to it."""
    infos = s3.get_file_info(fs.FileSelector(root, recursive=True, allow_not_found=True))
    return {i.path[len(root) + 1:]: i for i in infos if i.type == fs.FileType.File}


def read(s3: fs.S3FileSystem, path: str) -> bytes:
    with s3.open_input_stream(path) as f:
        return f.read()


def sha256s(s3: fs.S3FileSystem, root: str, rels: list[str]) -> dict[str, str]:
    """The sha256 of each object root/rel, read 16 at a time."""
    with ThreadPoolExecutor(16) as pool:
        sums = pool.map(lambda rel: hashlib.sha256(read(s3, f"{root}/{rel}")).hexdigest(), rels)
        return dict(zip(rels, sums, strict=True))


def check_latest_matches_manifest(s3: fs.S3FileSystem, root: str) -> dict:
    """Every key under latest/ is in the manifest with its sha256, and vice versa."""
    manifest = json.loads(read(s3, f"{root}/latest/manifest.json"))
    found = objects(s3, f"{root}/latest")
    assert set(found) == set(manifest["files"]) | {"manifest.json"}
    got = sha256s(s3, f"{root}/latest", list(manifest["files"]))
    assert got == {rel: meta["sha256"] for rel, meta in manifest["files"].items()}
    return manifest


def changed_groups() -> list[tuple[int, int, float, int]]:
    """two_groups with movie 24 gone, a new movie 25 in the second group, and movie 10 also
    rated by the second group (its list and its neighbours' lists change)."""
    rows = [r for r in two_groups() if r[1] != 24]
    rows += [(u, 25, 4.0, 1_600_000_000 + u) for u in range(7, 13)]
    rows += [(u, 10, 5.0, 1_600_000_100 + u) for u in range(7, 10)]
    return rows


def test_two_runs_upload_only_changed_objects(bucket: str, s3_server, tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", two_groups())
    b = write_dataset(tmp_path / "b", changed_groups())
    out, db, s3 = f"s3://{bucket}/nightly", f"s3://{bucket}/lancedb", s3_server.filesystem()
    first = run_to(str(a), out, db, tmp_path / "cache")
    assert first.upload["objects_deleted"] == 0
    before = check_latest_matches_manifest(s3, f"{bucket}/nightly")
    stamps = {k: i.mtime for k, i in objects(s3, f"{bucket}/nightly/latest").items()}
    time.sleep(1.1)  # Last-Modified has one-second resolution: a re-upload must show

    second = run_to(str(b), out, db, tmp_path / "cache")
    after = check_latest_matches_manifest(s3, f"{bucket}/nightly")
    now = {k: i.mtime for k, i in objects(s3, f"{bucket}/nightly/latest").items()}
    same = {r for r in after["files"] if before["files"].get(r) == after["files"][r]}
    changed = set(after["files"]) - same
    assert same and changed and "json/v1/movies/25.json" in changed
    assert all(now[r] == stamps[r] for r in same), "an unchanged object was uploaded again"
    assert all(r not in stamps or now[r] > stamps[r] for r in changed)
    assert "json/v1/movies/24.json" in before["files"] and "json/v1/movies/24.json" not in now
    assert second.upload["objects_put"] == len(changed)
    assert second.upload["objects_deleted"] == len(set(before["files"]) - set(after["files"]))
    assert s3server.SECRET_KEY.encode() not in read(s3, f"{bucket}/nightly/latest/manifest.json")
    changes = json.loads(read(s3, f"{bucket}/nightly/latest/json/v1/changes.json"))
    assert changes["removed"] == [24] and 25 in changes["added"]
    # the run's Parquet files and manifest under runs/, the history partition under history/
    runs = objects(s3, f"{bucket}/nightly/runs")
    assert f"{second.run_id}/manifest.json" in runs
    assert f"{second.run_id}/recommendations.parquet" in runs
    assert any(k.startswith("run_date=") for k in objects(s3, f"{bucket}/nightly/history"))
    assert not objects(s3, f"{bucket}/nightly").keys() & {".pending.json", ".lock"}


def test_headers_and_lancedb_on_the_bucket(bucket: str, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "a", two_groups())
    out, db = f"s3://{bucket}/site", f"s3://{bucket}/lancedb"
    run_to(str(data), out, db, tmp_path / "cache", cache_control="public, max-age=60")
    store = S3Store(bucket, client_options={"allow_http": True})  # headers: pyarrow hides them
    got = obstore.get(store, "site/latest/json/v1/movies/10.json")
    assert got.attributes.get("Content-Type") == "application/json"
    assert got.attributes.get("Cache-Control") == "public, max-age=60"
    result = CliRunner().invoke(main, ["similar", "10", "--db", db, "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    similar = json.loads(result.output)["similar"]
    assert [row["movie_id"] for row in similar] == [11, 12]  # same group, cosine 1, by id


def test_data_from_a_bucket_is_cached_and_verified(bucket: str, s3_server,
                                                   tmp_path: Path) -> None:
    local = write_dataset(tmp_path / "a", two_groups())
    s3 = s3_server.filesystem()
    for name in ("ratings.csv", "movies.csv", "links.csv"):
        fs.copy_files(str(local / name), f"{bucket}/ml/{name}", destination_filesystem=s3)
    cache = tmp_path / "cache"
    remote = run_to(f"s3://{bucket}/ml/", str(tmp_path / "out"), str(tmp_path / "db"), cache)
    plain = run_to(str(local), str(tmp_path / "out2"), str(tmp_path / "db2"), cache)
    sums = {n: m["sha256"] for n, m in remote.manifest["source"]["files"].items()}
    assert sums == {n: m["sha256"] for n, m in plain.manifest["source"]["files"].items()}
    [entry] = cache.glob("s3-*")
    recorded = json.loads((entry / "source.json").read_text())["sha256"]
    assert recorded == sums
    checked = CliRunner().invoke(main, ["validate", "--data", f"s3://{bucket}/ml/", "--json",
                                        "--cache", str(cache)])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["counts"]["ratings_rows"] == len(two_groups())
    (entry / "movies.csv").write_bytes(b"movieId,title,genres\r\n")  # tampered with
    result = CliRunner().invoke(main, ["run", "--data", f"s3://{bucket}/ml", "--out",
                                       str(tmp_path / "out3"), "--cache", str(cache)])
    assert result.exit_code == 2 and "was altered" in result.output
    assert not (tmp_path / "out3" / "latest").exists()


def bad(args: list[str], cwd: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-q", "run", *args, "--dim", "2", "--top-k", "3"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    return result.exit_code, lines[-1] if lines else ""


@pytest.mark.parametrize("case", ["no-bucket", "bad-credentials", "no-endpoint",
                                  "no-ratings", "gs-uri", "one-slash"])
def test_bad_input_is_one_line_and_publishes_nothing(
    case: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = write_dataset(tmp_path / "a", two_groups())
    monkeypatch.chdir(tmp_path)
    out, expect_code, expect = f"s3://{bucket}/nightly", 2, bucket
    args = ["--data", str(data), "--out", out, "--s3-retry-seconds", "1"]
    if case == "no-bucket":
        args[3], expect = "s3://no-such-bucket/nightly", "'no-such-bucket' does not exist"
    elif case == "bad-credentials":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        expect = "access denied"
    elif case == "no-endpoint":
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        expect_code, expect = 5, "cannot reach the endpoint"
    elif case == "no-ratings":
        args[1], expect = f"s3://{bucket}/empty/", "no ratings.csv"
    elif case == "gs-uri":
        args[3], expect = "gs://bucket/nightly", "only local folders and s3://"
    elif case == "one-slash":
        args[3], expect = f"s3:/{bucket}/nightly", "only local folders and s3://"
    code, line = bad(args, tmp_path)
    assert code == expect_code, line
    assert expect in line
    assert line.count("\n") == 0 and "Traceback" not in line
    assert "wrong" not in line  # a secret never appears in a message
    assert not any(p.name.startswith(("s3:", "gs:")) for p in tmp_path.iterdir())
    assert not list((tmp_path / "cache").glob("buckets/*/*/latest"))


class Throttle(BaseHTTPRequestHandler):
    """An S3 endpoint that answers every request 503 SlowDown."""

    def _slow(self) -> None:
        body = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _slow

    def log_message(self, *args) -> None:
        pass


def test_throttling_beyond_the_retries(bucket: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_dataset(tmp_path / "a", two_groups())
    server = ThreadingHTTPServer(("127.0.0.1", 0), Throttle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
        code, line = bad(["--data", str(data), "--out", f"s3://{bucket}/n",
                          "--s3-retry-seconds", "1"], tmp_path)
    finally:
        server.shutdown()
    assert code == 5 and "throttling" in line and f"s3://{bucket}" in line


def test_a_live_lease_refuses_a_second_run(bucket: str, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "a", two_groups())
    store = open_bucket(BucketURI(bucket, "nightly"))
    with lease.lease(store, "nightly/.lock", "other-run", "s3://x") as held:
        assert held is not None
        with pytest.raises(RunLockedError, match="another recs run is writing to"):
            run_to(str(data), f"s3://{bucket}/nightly", str(tmp_path / "db"), tmp_path / "c")
    # released: the run goes through, and leaves no lease behind
    run_to(str(data), f"s3://{bucket}/nightly", str(tmp_path / "db"), tmp_path / "c")
    assert store.head("nightly/.lock") is None


def test_a_dead_or_expired_lease_is_taken_over(bucket: str) -> None:
    store = open_bucket(BucketURI(bucket))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    host = os.uname().nodename
    for holder in ({"host": host, "pid": int(dead.stdout), "run_id": "d", "expires": 1e12},
                   {"host": "elsewhere", "pid": 1, "run_id": "e", "expires": time.time() - 1}):
        store.put("k/.lock", json.dumps(holder).encode())
        with lease.lease(store, "k/.lock", "mine", "k") as held:
            assert json.loads(store.get("k/.lock"))["run_id"] == "mine"
            assert held is not None
    live = {"host": "elsewhere", "pid": 1, "run_id": "live", "expires": time.time() + 60}
    store.put("k/.lock", json.dumps(live).encode())
    with pytest.raises(RunLockedError, match="run live on elsewhere"):
        with lease.lease(store, "k/.lock", "mine", "k"):
            pass


def test_sigkill_mid_upload_then_next_run(bucket: str, s3_server, tmp_path: Path) -> None:
    """A synthetic catalog of ~800 movies is ~1,600 objects: an upload long enough to be
    killed in, once the first of today's objects is up."""
    a = write_dataset(tmp_path / "a", two_groups())
    big = tmp_path / "big"
    write_synthetic(big, users=200, movies=800, ratings=16_000)
    out, s3 = f"s3://{bucket}/nightly", s3_server.filesystem()
    env = {**os.environ, "RECS_DB": str(tmp_path / "db"), "RECS_CACHE": str(tmp_path / "c")}
    cmd = [sys.executable, "-m", "recs", "-q", "run", "--out", out]
    subprocess.run([*cmd, "--data", str(a), "--dim", "2", "--top-k", "3"], env=env,
                   check=True, cwd=REPO)
    yesterday = check_latest_matches_manifest(s3, f"{bucket}/nightly")
    job = subprocess.Popen([*cmd, "--data", str(big)], env=env, cwd=REPO,
                           start_new_session=True)
    deadline = time.monotonic() + 300
    runs = tmp_path / "c" / "buckets" / bucket / "nightly" / "runs"
    while s3.get_file_info(f"{bucket}/nightly/.pending.json").type != fs.FileType.File:
        assert job.poll() is None, "the run ended before its upload could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # today's run is complete in the local mirror: wait for one of its new objects, then kill
    [today_dir] = [p for p in runs.iterdir() if p.name != yesterday["run_id"]]
    today = json.loads((today_dir / "manifest.json").read_text())["files"]
    first_new = min(rel for rel in today if rel not in yesterday["files"])
    while s3.get_file_info(f"{bucket}/nightly/latest/{first_new}").type != fs.FileType.File:
        assert job.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    served = objects(s3, f"{bucket}/nightly/latest")
    assert json.loads(read(s3, f"{bucket}/nightly/latest/manifest.json")) == yesterday
    mixed = 0
    rels = [r for r in served if r != "manifest.json"]
    served_sums = sha256s(s3, f"{bucket}/nightly/latest", rels)
    for rel, sha in served_sums.items():
        olds, news = yesterday["files"].get(rel, {}), today.get(rel, {})
        assert sha in (olds.get("sha256"), news.get("sha256")), rel  # never a broken object
        mixed += sha == news.get("sha256") and sha != olds.get("sha256")
    assert mixed > 0, "the kill came before any of today's objects were up"
    index = json.loads(read(s3, f"{bucket}/nightly/latest/json/v1/index.json"))
    assert all(f"json/v1/movies/{m['movie_id']}.json" in served for m in index["movies"])

    subprocess.run([*cmd, "--data", str(big)], env=env, check=True, cwd=REPO)
    check_latest_matches_manifest(s3, f"{bucket}/nightly")
    assert ".pending.json" not in objects(s3, f"{bucket}/nightly")


def test_cluster_workers_upload_the_same_bytes(bucket: str, s3_server, tmp_path: Path) -> None:
    """--ray local (a throwaway cluster whose workers inherit the AWS_* variables): the
    workers PUT the movie files and IMDb aliases themselves; the published objects are the
    serial run's, byte for byte, and a second cluster run on the same data sends nothing new
    but changes.json."""
    big = tmp_path / "big"
    write_synthetic(big, users=200, movies=600, ratings=12_000)  # two ranges on the cluster
    s3 = s3_server.filesystem()
    serial = run_to(str(big), f"s3://{bucket}/serial", str(tmp_path / "db1"), tmp_path / "c")
    cluster = run_to(str(big), f"s3://{bucket}/cluster", str(tmp_path / "db2"), tmp_path / "c",
                     ray="local")
    a = check_latest_matches_manifest(s3, f"{bucket}/serial")
    b = check_latest_matches_manifest(s3, f"{bucket}/cluster")
    skip = {"json/v1/changes.json"}
    assert {r: m for r, m in a["files"].items() if r not in skip} == \
        {r: m for r, m in b["files"].items() if r not in skip}
    assert cluster.upload["objects_put"] == serial.upload["objects_put"] == len(a["files"])
    assert any(r.startswith("json/v1/imdb/") for r in b["files"])
    again = run_to(str(big), f"s3://{bucket}/cluster", str(tmp_path / "db2"), tmp_path / "c",
                   ray="local")
    assert again.upload["objects_put"] == 1  # changes.json: it names the run
    check_latest_matches_manifest(s3, f"{bucket}/cluster")
