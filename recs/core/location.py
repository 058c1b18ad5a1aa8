"""Where a run reads and writes: a local folder, or a prefix in an S3 bucket.

`--data`, `--out` and `--db` take either. Anything else that looks like a URI (gs://, file://,
s3:/one-slash) is refused with an InputError before any work, never taken for a relative path:
`Path("s3://b/p")` would quietly become the local folder `s3:/b/p`.

The object-store client itself is an optional engine (recs/engines/objects.py); stages see it
only through the `Bucket` protocol below, so the local path never needs it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from recs.core.errors import InputError

SCHEME = "s3"
_URI = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):(?P<rest>.*)$")
# S3's rule for new buckets: 3-63 of lowercase letters, digits, dots and hyphens
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class BucketURI:
    """s3://bucket/prefix: `prefix` has no leading or trailing slash ("" for the whole bucket)."""

    bucket: str
    prefix: str = ""

    def key(self, rel: str = "") -> str:
        """The object key of `rel` (a POSIX path relative to the prefix)."""
        return "/".join(p for p in (self.prefix, rel.strip("/")) if p)

    def __str__(self) -> str:
        return f"{SCHEME}://{self.bucket}/{self.prefix}".rstrip("/")


Location = Path | BucketURI


def is_uri(text: str | Path) -> bool:
    """True for anything with a scheme (s3://, gs://, http://), however many slashes follow."""
    return isinstance(text, str) and bool(_URI.match(text)) and not re.match(r"^[A-Za-z]:\\", text)


def is_s3(text: str | None) -> bool:
    """True for an s3: URI (well formed or not: parse_location says what is wrong)."""
    return bool(text) and text.strip().lower().startswith(f"{SCHEME}:")


def parse_location(text: str | Path, flag: str) -> Location:
    """A local folder (user home expanded) or a BucketURI; InputError for any other URI."""
    if isinstance(text, Path) or not is_uri(text):
        return Path(text).expanduser()
    match = _URI.match(text)
    assert match is not None
    scheme, rest = match["scheme"].lower(), match["rest"]
    if scheme != SCHEME or not rest.startswith("//"):
        raise InputError(
            f"{flag} {text}: only local folders and s3://BUCKET/PREFIX are supported (S3, or "
            "GCS and R2 through their S3 APIs with AWS_ENDPOINT_URL); nothing was written"
        )
    bucket, _, prefix = rest[2:].partition("/")
    if not _BUCKET.match(bucket):
        raise InputError(
            f"{flag} {text}: {bucket!r} is not a bucket name (3-63 lowercase letters, digits, "
            "dots or hyphens); nothing was written"
        )
    prefix = "/".join(p for p in prefix.split("/") if p)
    if any(p in (".", "..") for p in prefix.split("/")):
        raise InputError(f"{flag} {text}: '.' and '..' are not allowed in a key prefix")
    return BucketURI(bucket, prefix)


def lance_storage_options() -> dict[str, str]:
    """LanceDB's `storage_options` for the same bucket settings obstore reads from the
    environment (LanceDB does not read AWS_ENDPOINT_URL itself)."""
    env = os.environ
    options = {
        "aws_access_key_id": env.get("AWS_ACCESS_KEY_ID", ""),
        "aws_secret_access_key": env.get("AWS_SECRET_ACCESS_KEY", ""),
        "aws_session_token": env.get("AWS_SESSION_TOKEN", ""),
        "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "",
        "endpoint": env.get("AWS_ENDPOINT_URL", ""),
    }
    if options["endpoint"].startswith("http://"):
        options["allow_http"] = "true"
    if options["endpoint"]:  # S3-compatible servers answer path-style requests
        options["aws_virtual_hosted_style_request"] = "false"
    return {k: v for k, v in options.items() if v}


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or HEAD says about one object."""

    key: str
    size: int
    etag: str
    last_modified: float  # seconds since the epoch


@dataclass(frozen=True)
class Upload:
    """One object to PUT: the bytes of `path` (or `data`) under `key`, with its headers."""

    key: str
    path: Path | None = None
    data: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


class Bucket(Protocol):
    """The small interface the stages use (recs/engines/objects.py implements it on S3).

    Every method raises a RecsError whose one line names the URI for anything the user can
    fix (no such bucket, wrong credentials, an endpoint that cannot be reached, throttling
    beyond the retries); reads of a missing key return None.
    """

    uri: BucketURI

    def get(self, key: str) -> bytes | None: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def download(self, key: str, path: Path) -> ObjectInfo | None: ...

    def put(self, key: str, data: bytes, headers: Iterable[tuple[str, str]] = ()) -> str: ...

    def put_many(self, uploads: list[Upload]) -> None: ...

    def copy(self, src: str, dst: str) -> None: ...

    def delete_many(self, keys: list[str]) -> None: ...

    def create(self, key: str, data: bytes) -> str | None:
        """PUT only if `key` does not exist (If-None-Match: *): the new ETag, or None."""
        ...

    def replace(self, key: str, data: bytes, etag: str) -> str | None:
        """PUT only if `key` still has `etag` (If-Match): the new ETag, or None."""
        ...

    def check(self) -> None:
        """Fail now, with one line, when the bucket cannot be read (before any work)."""
        ...
