"""The preview server: content types, 404s, no way out of the served folder."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from recs.core.errors import InputError
from recs.tools.serve import is_loopback, make_server

SECRET = "top secret, outside the served folder"


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    """tmp/secret.txt (must never be served) and tmp/site/{index.html, json/v1/index.json}."""
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "secret_dir").mkdir()
    (tmp_path / "secret_dir" / "index.html").write_text(SECRET)
    site = tmp_path / "site"
    (site / "json" / "v1").mkdir(parents=True)
    (site / "json" / "v1" / "index.json").write_text(
        json.dumps({"version": 1, "movies": [{"movie_id": 1, "title": "Amélie (2001)"}]}),
        encoding="utf-8",
    )
    (site / "index.html").write_text("<!doctype html><title>demo</title>", encoding="utf-8")
    return site


@pytest.fixture()
def port(site: Path) -> Iterator[int]:
    server = make_server(site, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def get(port: int, raw_path: str) -> tuple[int, str, bytes]:
    """GET with the path sent exactly as given (http.client does not normalise `..`)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", raw_path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


def test_serves_json_as_utf8_json(port: int) -> None:
    status, ctype, body = get(port, "/json/v1/index.json")
    assert status == 200
    assert ctype == "application/json; charset=utf-8"
    assert json.loads(body.decode("utf-8"))["movies"][0]["title"] == "Amélie (2001)"


def test_serves_index_html_at_root(port: int) -> None:
    status, ctype, body = get(port, "/")
    assert status == 200
    assert ctype == "text/html; charset=utf-8"
    assert b"<title>demo</title>" in body


def test_missing_file_is_404(port: int) -> None:
    assert get(port, "/json/v1/movies/999.json")[0] == 404


@pytest.mark.parametrize(
    "raw_path",
    ["/../secret.txt", "/json/../../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt"],
)
def test_traversal_is_refused(port: int, raw_path: str) -> None:
    status, _, body = get(port, raw_path)
    assert status == 404
    assert SECRET.encode() not in body


def test_symlink_out_of_folder_is_not_served(site: Path, port: int) -> None:
    (site / "leak.txt").symlink_to(site.parent / "secret.txt")
    (site / "leakdir").symlink_to(site.parent / "secret_dir", target_is_directory=True)
    for raw_path in ["/leak.txt", "/leakdir/", "/leakdir/index.html"]:
        status, _, body = get(port, raw_path)
        assert status == 404, raw_path
        assert SECRET.encode() not in body


def test_symlink_inside_folder_is_served(site: Path, port: int) -> None:
    # `OUT/latest -> runs/<id>` style links inside the tree stay usable.
    (site / "latest.json").symlink_to(site / "json" / "v1" / "index.json")
    assert get(port, "/latest.json")[0] == 200


def test_served_folder_may_itself_be_a_symlink(site: Path) -> None:
    latest = site.parent / "latest"
    latest.symlink_to(site, target_is_directory=True)
    server = make_server(latest, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        assert get(server.server_address[1], "/json/v1/index.json")[0] == 200
        assert get(server.server_address[1], "/../secret.txt")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_refuses_non_loopback_host(site: Path) -> None:
    with pytest.raises(InputError, match="not a loopback address"):
        make_server(site, "0.0.0.0", 0)


def test_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        make_server(tmp_path / "nope", "127.0.0.1", 0)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("::", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected
