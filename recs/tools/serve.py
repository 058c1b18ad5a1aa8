"""Preview server: serve one output folder (usually `OUT/latest`) over http on loopback.

Standard library only. Not a production server: the CDN serves the real thing. It exists so the
demo page (`index.html`, which fetches `json/v1/...`) can be opened in a browser, since browsers
refuse `fetch()` from `file://` pages.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import socket
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from recs.core.errors import InputError

log = logging.getLogger(__name__)

_INDEX_FILES = ("index.html", "index.htm")


def is_loopback(host: str) -> bool:
    """True when every address `host` resolves to is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _inside(path: str, root: str) -> bool:
    """True when `path`, with every symlink resolved, is `root` or below it (both real paths)."""
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


class PreviewHandler(SimpleHTTPRequestHandler):
    """Static files below `directory`, never outside it, not even through a symlink."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".json": "application/json; charset=utf-8",
        ".html": "text/html; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".txt": "text/plain; charset=utf-8",
        ".csv": "text/csv; charset=utf-8",
        ".parquet": "application/vnd.apache.parquet",
    }

    def send_head(self):  # returns an open file or None, like the base class
        # The base class already drops `..` segments; the realpath check below also stops
        # symlinks that point out of the folder. The root is resolved per request so that a
        # `latest` symlink switched by the nightly job is followed.
        root = os.path.realpath(self.directory)
        path = self.translate_path(self.path)
        candidates = [path]
        if os.path.isdir(path):
            candidates += [os.path.join(path, name) for name in _INDEX_FILES]
        if any(os.path.lexists(p) and not _inside(p, root) for p in candidates):
            log.warning("refused %s: resolves outside %s", self.path, root)
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        return super().send_head()

    def end_headers(self) -> None:
        # A preview should always show the newest run, never a cached one.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def make_server(
    folder: Path, host: str = "127.0.0.1", port: int = 8000, *, allow_remote: bool = False
) -> ThreadingHTTPServer:
    """A bound, not yet running server for `folder`; port 0 picks a free port.

    Read the actual address from `server.server_address`. Raises InputError when the folder
    does not exist or `host` is not loopback and `allow_remote` is False.
    """
    if not folder.is_dir():
        raise InputError(
            f"{folder}: no such folder; run the nightly job first or pass the run folder to serve"
        )
    if not allow_remote and not is_loopback(host):
        raise InputError(
            f"--host {host}: not a loopback address; the preview server binds to 127.0.0.1 or ::1 "
            "only, pass --allow-remote to expose it on the network"
        )
    handler = functools.partial(PreviewHandler, directory=os.fspath(folder))
    server_class = _Server6 if ":" in host else ThreadingHTTPServer
    try:
        return server_class((host, port), handler)
    except OSError as exc:
        raise InputError(
            f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port"
        ) from exc


def serve(
    folder: Path, host: str = "127.0.0.1", port: int = 8000, *, allow_remote: bool = False
) -> None:
    """Serve `folder` until interrupted (Ctrl-C). Blocks."""
    server = make_server(folder, host, port, allow_remote=allow_remote)
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    log.info("serving %s at http://%s:%d/ (Ctrl-C to stop)", folder, shown, bound_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        server.server_close()
