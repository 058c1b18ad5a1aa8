"""recs.stages.source: every kind of --data input, the cache, and the errors, on 127.0.0.1."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from recs.core.errors import InputError
from recs.stages import source
from recs.stages.source import (
    DEFAULT_PINS,
    ML100K_PINS,
    dataset_files,
    fetch_known,
    resolve_data,
    sha256_file,
)

RATINGS = b"userId,movieId,rating,timestamp\n1,1,4.0,100\n1,2,3.5,101\n2,1,5.0,102\n"
MOVIES = b'movieId,title,genres\n1,"Toy, Story (1995)",Comedy\n2,Heat (1995),Action\n'
LINKS = b"movieId,imdbId,tmdbId\n1,0114709,862\n2,0113277,949\n"
LATEST = {"ratings.csv": RATINGS, "movies.csv": MOVIES, "links.csv": LINKS}


# --- helpers --------------------------------------------------------------------------------


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def make_zip(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(prefix + name, content)
    return path


def cache_entries(cache: Path) -> list[str]:
    """Everything in the cache folder, staging folders included."""
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


@dataclass
class Server:
    """Files served from memory on 127.0.0.1; `hits` lists the paths requested."""

    files: dict[str, bytes] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    port: int = 0
    stop: object = None
    half_sent: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            state.hits.append(self.path)
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            if self.path.startswith("/short"):
                # announce the whole file, send half, hang up: a download cut off mid-way
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path.startswith("/slow"):
                # half now, the rest once the test says so: a download that is in flight
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                state.half_sent.set()
                state.release.wait(10)
                body = body[len(body) // 2 :]
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()

    state.stop = stop
    yield state
    state.release.set()
    if thread.is_alive():
        stop()


# --- sha256_file, dataset_files, local folders -------------------------------------------------


def test_sha256_file_streams_in_chunks(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path, chunk_size=999) == hashlib.sha256(data).hexdigest()


def test_dataset_files_lists_the_three_csvs(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "d", LATEST | {"tags.csv": b"x\n"})
    assert dataset_files(folder) == {n: folder / n for n in ("ratings.csv", "movies.csv",
                                                             "links.csv")}


def test_local_folder_is_returned_as_is(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "d", LATEST)
    assert resolve_data(str(folder), tmp_path / "cache") == folder
    assert cache_entries(tmp_path / "cache") == []


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope: no such file or folder"):
        resolve_data(str(tmp_path / "nope"), tmp_path / "cache")


def test_plain_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_bytes(RATINGS)
    with pytest.raises(InputError, match="is a file but not a .zip"):
        resolve_data(str(tmp_path / "ratings.csv"), tmp_path / "cache")


@pytest.mark.parametrize("absent", ["ratings.csv", "movies.csv", "links.csv"])
def test_folder_missing_a_csv_names_it(tmp_path: Path, absent: str) -> None:
    folder = write_files(tmp_path / "d", {k: v for k, v in LATEST.items() if k != absent})
    with pytest.raises(InputError, match=f"missing {absent} beside") as info:
        resolve_data(str(folder), tmp_path / "cache")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=f"missing {absent};"):
        dataset_files(folder)


def test_folder_without_any_dataset_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no ratings.csv, movies.csv or links.csv"):
        resolve_data(str(tmp_path / "empty"), tmp_path / "cache")


# --- local zips -------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "ml-latest-small/"])
def test_zip_is_extracted_once_keyed_by_content(
    tmp_path: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    archive = make_zip(tmp_path / "a.zip", LATEST, prefix)
    with caplog.at_level(logging.INFO, logger="recs.stages.source"):
        folder = resolve_data(str(archive), cache)
    assert folder.parent == cache and folder.name.startswith("zip-")
    assert {n: p.read_bytes() for n, p in dataset_files(folder).items()} == LATEST
    assert "extracted" in caplog.text
    # the same bytes under another name: a cache hit, nothing extracted again
    copy = shutil.copy(archive, tmp_path / "renamed.zip")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="recs.stages.source"):
        assert resolve_data(str(copy), cache) == folder
    assert "cache hit" in caplog.text
    assert cache_entries(cache) == [folder.name]


def test_truncated_zip_is_refused_and_not_cached(tmp_path: Path) -> None:
    whole = make_zip(tmp_path / "whole.zip", LATEST, "ml/").read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match="cut.zip: not a readable zip"):
        resolve_data(str(cut), tmp_path / "cache")
    assert cache_entries(tmp_path / "cache") == []


def test_corrupt_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for name, content in LATEST.items():
            zf.writestr(name, content)
    raw = bytearray(archive.read_bytes())
    at = raw.index(b"3.5")  # inside ratings.csv's stored bytes: the CRC no longer matches
    raw[at] = ord("4")
    archive.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="not a readable zip"):
        resolve_data(str(archive), tmp_path / "cache")
    assert cache_entries(tmp_path / "cache") == []


def test_zip_without_the_csvs(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "other.zip", {"notes.txt": b"hi\n"}, "stuff/")
    with pytest.raises(InputError, match="other.zip: the zip has neither"):
        resolve_data(str(archive), tmp_path / "cache")
    assert cache_entries(tmp_path / "cache") == []


def test_zip_with_two_dataset_folders(tmp_path: Path) -> None:
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for prefix in ("a/", "b/"):
            for name, content in LATEST.items():
                zf.writestr(prefix + name, content)
    with pytest.raises(InputError, match="several sub-folders"):
        resolve_data(str(archive), tmp_path / "cache")


def test_zip_missing_one_csv(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "x.zip", {k: v for k, v in LATEST.items() if k != "links.csv"})
    with pytest.raises(InputError, match="x.zip: missing links.csv"):
        resolve_data(str(archive), tmp_path / "cache")


@pytest.mark.parametrize(
    "evil", ["../evil.csv", "ABS/evil.csv", "ml/../../evil.csv", "C:/evil.csv", "..\\evil.csv"]
)
def test_zip_entry_outside_the_folder_is_refused(tmp_path: Path, evil: str) -> None:
    # an absolute path inside tmp_path, so a broken check cannot write outside the test's folder
    evil = evil.replace("ABS", str(tmp_path))
    archive = tmp_path / "data" / "evil.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for name, content in LATEST.items():
            zf.writestr(name, content)
        zf.writestr(zipfile.ZipInfo(evil), b"pwned\n")
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match="would land outside the extraction folder"):
        resolve_data(str(archive), cache)
    assert cache_entries(cache) == []
    assert not list(tmp_path.rglob("evil.csv"))


def test_zip_symlink_entry_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, content in LATEST.items():
            zf.writestr(name, content)
        link = zipfile.ZipInfo("tags.csv")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(InputError, match="'tags.csv' is a symlink"):
        resolve_data(str(archive), tmp_path / "cache")
    assert cache_entries(tmp_path / "cache") == []


def test_zip_with_a_duplicate_entry_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "dup.zip", LATEST)
    with (
        pytest.warns(UserWarning, match="Duplicate name"),
        zipfile.ZipFile(archive, "a") as zf,
    ):
        zf.writestr("ratings.csv", b"userId,movieId,rating,timestamp\n9,9,1.0,1\n")
    with pytest.raises(InputError, match="holds 'ratings.csv' twice"):
        resolve_data(str(archive), tmp_path / "cache")


def test_failure_mid_extraction_leaves_no_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_copy = shutil.copyfileobj

    def copy_then_die(src, dst, length=0):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the run were stopped between two files
        return real_copy(src, dst, length)

    monkeypatch.setattr(source.shutil, "copyfileobj", copy_then_die)
    archive = make_zip(tmp_path / "a.zip", LATEST)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        resolve_data(str(archive), cache)
    assert cache_entries(cache) == []
    monkeypatch.undo()
    assert resolve_data(str(archive), cache).name.startswith("zip-")


def test_stale_staging_folders_are_swept(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    stale, fresh = cache / ".tmp-old", cache / ".tmp-new"
    for folder in (stale, fresh):
        (folder / "x").mkdir(parents=True)
    old = time.time() - 2 * source.STALE_STAGING_S
    os.utime(stale, (old, old))
    folder = resolve_data(str(make_zip(tmp_path / "a.zip", LATEST)), cache)
    assert cache_entries(cache) == sorted([".tmp-new", folder.name])


def test_concurrent_runs_share_one_entry(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", LATEST, "ml/")
    cache = tmp_path / "cache"
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(resolve_data(str(archive), cache)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert cache_entries(cache) == [results[0].name]
    assert (results[0] / "ratings.csv").read_bytes() == RATINGS


def test_publish_keeps_the_entry_a_concurrent_run_made(tmp_path: Path) -> None:
    entry = write_files(tmp_path / "entry", {"ratings.csv": b"first\n"})
    staged = write_files(tmp_path / "staged", {"ratings.csv": b"second\n"})
    source._publish(staged, entry)
    assert (entry / "ratings.csv").read_bytes() == b"first\n"


# --- URLs -------------------------------------------------------------------------------------


def test_url_is_downloaded_once(tmp_path: Path, server: Server) -> None:
    server.files["/d.zip"] = make_zip(tmp_path / "d.zip", LATEST, "ml/").read_bytes()
    cache = tmp_path / "cache"
    folder = resolve_data(server.url("/d.zip"), cache)
    assert folder.name.startswith("url-")
    assert (folder / "movies.csv").read_bytes() == MOVIES
    server.stop()
    assert resolve_data(server.url("/d.zip"), cache) == folder
    assert server.hits == ["/d.zip"]
    assert cache_entries(cache) == [folder.name]


@pytest.mark.slow
def test_killed_download_leaves_no_entry(tmp_path: Path, server: Server) -> None:
    body = make_zip(tmp_path / "d.zip", LATEST | {"pad.bin": os.urandom(200_000)}).read_bytes()
    server.files["/slow.zip"] = body
    cache = tmp_path / "cache"
    code = "import sys; from pathlib import Path; from recs.stages.source import resolve_data; "
    code += "resolve_data(sys.argv[1], Path(sys.argv[2]))"
    proc = subprocess.Popen([sys.executable, "-c", code, server.url("/slow.zip"), str(cache)])
    try:
        assert server.half_sent.wait(20)
        time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    staged = [p for p in cache.rglob("*") if p.is_file()]
    assert [p.name for p in staged] == ["download.part"]  # no complete-looking file
    assert all(n.startswith(".tmp-") for n in cache_entries(cache))
    server.release.set()
    folder = resolve_data(server.url("/slow.zip"), cache)
    assert (folder / "ratings.csv").read_bytes() == RATINGS


def test_url_404(tmp_path: Path, server: Server) -> None:
    with pytest.raises(InputError, match=r"download http://127\.0\.0\.1:\d+/x.zip: HTTP 404"):
        resolve_data(server.url("/x.zip"), tmp_path / "cache")
    assert cache_entries(tmp_path / "cache") == []


def test_url_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(InputError, match="cannot download .*refused"):
        resolve_data(f"http://127.0.0.1:{port}/d.zip", tmp_path / "cache", timeout=5)


def test_url_timeout(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)  # the kernel accepts the connection; nobody ever answers
        port = sock.getsockname()[1]
        started = time.perf_counter()
        with pytest.raises(InputError, match="cannot download .*timed out"):
            resolve_data(f"http://127.0.0.1:{port}/d.zip", tmp_path / "cache", timeout=0.3)
    assert time.perf_counter() - started < 5
    assert [n for n in cache_entries(tmp_path / "cache") if not n.startswith(".tmp-")] == []


def test_url_cut_off_mid_download(tmp_path: Path, server: Server) -> None:
    server.files["/short.zip"] = make_zip(tmp_path / "d.zip", LATEST).read_bytes()
    with pytest.raises(InputError, match=r"got \d+ of \d+ bytes"):
        resolve_data(server.url("/short.zip"), tmp_path / "cache")
    assert cache_entries(tmp_path / "cache") == []


def test_url_of_something_not_a_zip(tmp_path: Path, server: Server) -> None:
    server.files["/page.zip"] = b"<html>login first</html>"
    with pytest.raises(InputError, match="not a readable zip"):
        resolve_data(server.url("/page.zip"), tmp_path / "cache")


def test_other_url_schemes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="only http:// and https://"):
        resolve_data("ftp://example.org/d.zip", tmp_path / "cache")


# --- the default dataset ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_small_zip(tmp_path_factory: pytest.TempPathFactory, ml_small: Path) -> bytes:
    files = {n: (ml_small / n).read_bytes() for n in DEFAULT_PINS}
    path = tmp_path_factory.mktemp("zips") / "ml-latest-small.zip"
    return make_zip(path, files, "ml-latest-small/").read_bytes()


def test_default_dataset_downloads_verifies_and_then_stays_offline(
    tmp_path: Path, server: Server, real_small_zip: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server.files["/ml-latest-small.zip"] = real_small_zip
    cache = tmp_path / "cache"
    url = server.url("/ml-latest-small.zip")
    with caplog.at_level(logging.INFO, logger="recs.stages.source"):
        folder = resolve_data(None, cache, default_url=url)
    assert folder == cache / "ml-latest-small"
    assert {n: sha256_file(folder / n) for n in DEFAULT_PINS} == dict(DEFAULT_PINS)
    assert f"downloaded {url}" in caplog.text
    server.stop()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="recs.stages.source"):
        assert resolve_data(None, cache, default_url=url) == folder
    assert "cache hit" in caplog.text
    assert server.hits == ["/ml-latest-small.zip"]
    assert cache_entries(cache) == ["ml-latest-small"]


def test_default_dataset_with_wrong_checksums_is_not_cached(
    tmp_path: Path, server: Server, ml_small: Path
) -> None:
    files = {n: (ml_small / n).read_bytes() for n in DEFAULT_PINS}
    files["ratings.csv"] = files["ratings.csv"].replace(b"1,1,4.0,", b"1,1,5.0,", 1)
    tampered = make_zip(tmp_path / "t.zip", files, "ml-latest-small/")
    server.files["/tampered.zip"] = tampered.read_bytes()
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match="ratings.csv do not match the pinned sha256"):
        resolve_data(None, cache, default_url=server.url("/tampered.zip"))
    assert cache_entries(cache) == []


def test_default_dataset_altered_in_the_cache_is_refused(
    tmp_path: Path, server: Server, real_small_zip: bytes
) -> None:
    server.files["/ml-latest-small.zip"] = real_small_zip
    cache = tmp_path / "cache"
    folder = resolve_data(None, cache, default_url=server.url("/ml-latest-small.zip"))
    with (folder / "links.csv").open("ab") as f:
        f.write(b"1,2,3\r\n")
    with pytest.raises(InputError, match="links.csv no longer match .* delete"):
        resolve_data(None, cache, default_url=server.url("/ml-latest-small.zip"))


def test_default_dataset_download_failure(tmp_path: Path, server: Server) -> None:
    with pytest.raises(InputError, match="HTTP 404 .*download ml-latest-small.zip elsewhere"):
        resolve_data(None, tmp_path / "cache", default_url=server.url("/gone.zip"))
    assert cache_entries(tmp_path / "cache") == []


def test_ml100k_is_fetched_verified_and_then_served_from_the_cache(
    tmp_path: Path, server: Server, ml_100k: Path
) -> None:
    files = {n: (ml_100k / n).read_bytes() for n in ML100K_PINS}
    server.files["/ml-100k.zip"] = make_zip(tmp_path / "a.zip", files, "ml-100k/").read_bytes()
    files["u.data"] = files["u.data"][:-100]  # a truncated download of another kind
    server.files["/cut.zip"] = make_zip(tmp_path / "b.zip", files, "ml-100k/").read_bytes()
    with pytest.raises(InputError, match="u.data do not match the pinned sha256 of ml-100k"):
        fetch_known("ml-100k", tmp_path / "other", server.url("/cut.zip"))
    assert cache_entries(tmp_path / "other") == []
    cache = tmp_path / "cache"
    folder, how = fetch_known("ml-100k", cache, server.url("/ml-100k.zip"))
    assert folder == cache / "ml-100k" and how.startswith("downloaded")
    assert {n: sha256_file(folder / n) for n in ML100K_PINS} == dict(ML100K_PINS)
    server.stop()
    assert fetch_known("ml-100k", cache, server.url("/ml-100k.zip"))[1] == "cache hit for ml-100k"


# --- ml-100k ----------------------------------------------------------------------------------


def flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


U_DATA = b"2\t3\t5\t881250949\n1\t1\t4\t874965758\n1\t2\t1\t874965759\n"
U_ITEM = (
    f"1|Misérables, Les (1995)|01-Jan-1995||http://x/1|{flags(4, 5)}\n"
    f'2|Say "Hi" (1996)|01-Jan-1996||http://x/2|{flags(0)}\n'
    f"3|Nénette et Boni (1996)|01-Jan-1996||http://x/3|{flags(8, 18)}\n"
).encode("latin-1")
ML100K = {"u.data": U_DATA, "u.item": U_ITEM}


def test_ml100k_is_converted_to_utf8_latest_csvs(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "ml-100k", ML100K)
    cache = tmp_path / "cache"
    out = resolve_data(str(folder), cache)
    assert out.parent == cache and out.name.startswith("ml100k-")
    assert (out / "ratings.csv").read_text(encoding="utf-8") == (
        "userId,movieId,rating,timestamp\n"
        "1,1,4.0,874965758\n"
        "1,2,1.0,874965759\n"
        "2,3,5.0,881250949\n"
    )
    assert (out / "movies.csv").read_text(encoding="utf-8") == (
        "movieId,title,genres\n"
        '1,"Misérables, Les (1995)",Children|Comedy\n'
        '2,"Say ""Hi"" (1996)",(no genres listed)\n'
        "3,Nénette et Boni (1996),Drama|Western\n"
    )
    assert (out / "links.csv").read_text(encoding="utf-8") == (
        "movieId,imdbId,tmdbId\n1,,\n2,,\n3,,\n"
    )
    assert resolve_data(str(folder), cache) == out
    assert cache_entries(cache) == [out.name]


def test_ml100k_changed_input_gets_a_new_entry(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "ml-100k", ML100K)
    first = resolve_data(str(folder), tmp_path / "cache")
    (folder / "u.data").write_bytes(U_DATA + b"3\t1\t2\t881250950\n")
    second = resolve_data(str(folder), tmp_path / "cache")
    assert second != first
    assert (second / "ratings.csv").read_text().endswith("3,1,2.0,881250950\n")


def test_ml100k_in_a_zip(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ml-100k.zip", ML100K | {"u.genre": b"unknown|0\n"}, "ml-100k/")
    out = resolve_data(str(archive), tmp_path / "cache")
    assert out.name.startswith("ml100k-")
    assert "Nénette" in (out / "movies.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize("absent", ["u.item", "u.data"])
def test_ml100k_missing_a_file(tmp_path: Path, absent: str) -> None:
    folder = write_files(tmp_path / "ml-100k", {k: v for k, v in ML100K.items() if k != absent})
    with pytest.raises(InputError, match=f"ml-100k folder is missing {absent};"):
        resolve_data(str(folder), tmp_path / "cache")


def test_ml100k_malformed_u_item(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "ml-100k", {"u.data": U_DATA, "u.item": b"1|Heat (1995)|0\n"})
    with pytest.raises(InputError, match="cannot convert ml-100k") as info:
        resolve_data(str(folder), tmp_path / "cache")
    assert "\n" not in str(info.value)
    assert cache_entries(tmp_path / "cache") == []


def test_real_ml100k_conversion(tmp_path: Path, ml_100k: Path) -> None:
    out = resolve_data(str(ml_100k), tmp_path / "cache")
    with (out / "ratings.csv").open(encoding="utf-8", newline="") as f:
        ratings = list(csv.DictReader(f))
    with (out / "movies.csv").open(encoding="utf-8", newline="") as f:
        movies = {int(row["movieId"]): row for row in csv.DictReader(f)}
    with (out / "links.csv").open(encoding="utf-8", newline="") as f:
        links = list(csv.DictReader(f))
    assert len(ratings) == 100_000
    assert len({r["userId"] for r in ratings}) == 943
    assert len(movies) == 1682 and len(links) == 1682
    assert {r["rating"] for r in ratings} == {"1.0", "2.0", "3.0", "4.0", "5.0"}
    assert movies[543]["title"] == "Misérables, Les (1995)"
    assert movies[1]["genres"] == "Animation|Children|Comedy"
    assert movies[267]["genres"] == "(no genres listed)"
