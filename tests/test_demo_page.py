"""The demo page (recs/assets/index.html) in headless Chromium, against a hand-made run folder.

The search shards in it come from the job's own writer (write.search_files): the page and the
writer must agree on keys and file names, which only a real browser can show.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: commands on
fd 3, replies on fd 4, NUL-separated JSON), so no websocket client or other dependency is
needed. Needs a Chromium binary: Debian's `chromium` package, or RECS_CHROMIUM=/path/to/binary.
Without one the tests skip, except under CI=true where they fail. The screenshot goes to
$RECS_ARTIFACTS (default: the test's tmp folder).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import random
import re
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recs.stages import write
from recs.tools.serve import make_server

pytestmark = pytest.mark.slow  # a real headless Chromium process per test module

PAGE = Path(__file__).resolve().parents[1] / "recs" / "assets" / "index.html"
TRICKY = (
    'Say "Hi" </script><script>window.pwned = 1</script><b id="bold">Amélie</b> & Co. 北京 (2001)'
)
MOVIES = {  # movie_id: (title, year, genres, imdb_id, tmdb_id)
    1: ("Toy Story (1995)", 1995, ["Adventure", "Animation", "Children"], 114709, 862),
    2: ("Jumanji (1995)", 1995, ["Adventure", "Children"], 113497, 8844),
    5: ("Babes in Toyland (1961)", 1961, ["Children", "Fantasy"], 54649, None),
    6: ("Léon: The Professional (1994)", 1994, ["Action", "Crime"], 110413, 101),
    7: (TRICKY, 2001, ["Comedy"], None, None),
    3114: ("Toy Story 2 (1999)", 1999, ["Adventure", "Animation", "Children"], 120363, 863),
    4000: ("Matrix, The (1999)", 1999, ["Action", "Sci-Fi"], 133093, 603),  # article last
}
LISTS = {  # movie_id: [(neighbour id, score, co_watchers, close_watchers, next_watchers)],
    # rank = position + 1
    1: [(3114, 0.8312, 97, 31, 20), (7, 0.41234, 1, 1, 0), (5, 0.2, 12, 0, 3)],
    2: [(1, 0.5, 40, 9, 4), (3114, 0.4, 30, 2, 1)],
    5: [(1, 0.2, 12, 0, 2)],
    6: [(2, 0.1, 3, 1, 1)],
    7: [(1, 0.41234, 1, 1, 1)],
    3114: [(1, 0.8312, 97, 31, 11), (2, 0.4, 30, 2, 0)],
    4000: [(6, 0.3, 5, 2, 2)],
}


BIG_LEAF = 30  # big/: a shard of more than 30 titles splits, so 2,000 titles make a deep tree
BIG_WORDS = ["Night", "Nightmare", "Story", "Stories", "Storm", "Toy", "Toys", "The", "Amélie",
             "Amelia", "ŒUVRE", "北京", "Love", "Lover", "Star", "Stardust", "2", "of"]  # fmt: skip


def big_titles(n: int = 2000, seed: int = 7) -> dict[int, str]:
    """n titles of one to three BIG_WORDS (words repeat, as in `recs synth`), most with a year."""
    rng = random.Random(seed)
    ids = sorted(rng.sample(range(1, 10 * n), n))
    return {
        m: " ".join(rng.choices(BIG_WORDS, k=rng.randint(1, 3)))
        + (f" ({rng.randint(1990, 1999)})" if rng.random() < 0.8 else "")
        for m in ids
    }


BIG_TITLES = big_titles()


def search_entries(titles: dict[int, str]) -> list[dict[str, Any]]:
    """index.json's movies for `titles`: movie_id, title, year (from a trailing "(YYYY)")."""
    years = {m: re.search(r"\((\d{4})\)$", t) for m, t in titles.items()}
    return [{"movie_id": m, "title": titles[m], "year": int(years[m][1]) if years[m] else None}
            for m in sorted(titles)]  # fmt: skip


def movie_fields(movie_id: int) -> dict[str, Any]:
    title, year, genres, imdb_id, tmdb_id = MOVIES[movie_id]
    return {"movie_id": movie_id, "title": title, "year": year, "genres": genres,
            "imdb_id": imdb_id, "tmdb_id": tmdb_id}  # fmt: skip


def write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")


def write_search(root: Path, index: list[dict[str, Any]], leaf: int, head: int) -> None:
    """The search shards of `index` under root/json/v1, as the job writes them."""
    for rel, raw in write.search_files(index, leaf, head):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(raw)


def build_run_folder(root: Path) -> Path:
    """A run folder as the nightly job publishes it (json/v1/... and index.html), by hand.

    big/: a page over BIG_TITLES (search files only), shards split small (BIG_LEAF)."""
    v1 = root / "json" / "v1"
    index = [{"movie_id": m, "title": MOVIES[m][0], "year": MOVIES[m][1]} for m in sorted(MOVIES)]
    write_json(v1 / "index.json", {"version": 1, "movies": index})  # for tools: the page never
    write_search(root, index, write.SEARCH_LEAF, write.SEARCH_HEAD)  # one shard: the root
    for movie_id, neighbours in LISTS.items():
        similar = [
            {"rank": rank, **movie_fields(other), "score": score, "co_watchers": co,
             "close_watchers": close, "next_watchers": later,
             "shared_genres": sorted(set(MOVIES[movie_id][2]) & set(MOVIES[other][2]))}
            for rank, (other, score, co, close, later) in enumerate(neighbours, start=1)
        ]  # fmt: skip
        payload = {**movie_fields(movie_id), "similar": similar}
        write_json(v1 / "movies" / f"{movie_id}.json", payload)
        if payload["imdb_id"] is not None:
            write_json(v1 / "imdb" / f"tt{payload['imdb_id']:07d}.json", payload)
    shutil.copy(PAGE, root / "index.html")
    # A copy of the page with no data next to it: the page must say so, not sit there empty.
    (root / "broken").mkdir()
    shutil.copy(PAGE, root / "broken" / "index.html")
    (root / "big").mkdir()
    shutil.copy(PAGE, root / "big" / "index.html")
    write_search(root / "big", search_entries(BIG_TITLES), BIG_LEAF, write.SEARCH_HEAD)
    return root


def find_chromium() -> str:
    """The Chromium binary, or skip (fail under CI, where it must be installed)."""
    candidates = [os.environ.get("RECS_CHROMIUM", ""), "chromium", "chromium-browser",
                  "google-chrome", "google-chrome-stable"]  # fmt: skip
    for name in filter(None, candidates):
        found = shutil.which(name)
        if found:
            return found
    message = "no Chromium found: `apt-get install -y chromium` or set RECS_CHROMIUM=/path/to/it"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


class Browser:
    """Headless Chromium, spoken to over the DevTools protocol on a pipe."""

    FLAGS = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--no-default-browser-check", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-extensions",
        "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
        "--remote-debugging-pipe",
    ]  # fmt: skip

    def __init__(self, binary: str, profile: Path, log_path: Path) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()

        def child_fds() -> None:
            # Chromium reads commands on fd 3 and writes replies on fd 4; go via fds >= 10 so
            # the dup2 calls cannot clobber each other.
            high_in = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            high_out = fcntl.fcntl(resp_w, fcntl.F_DUPFD, 10)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary, *self.FLAGS, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=child_fds, close_fds=False,  # Python's own fds are close-on-exec
            )  # fmt: skip
        os.close(cmd_r)
        os.close(resp_w)
        self._buf = b""
        self._last_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait (<= 15 s) for its reply; events read meanwhile are kept."""
        self._last_id += 1
        msg: dict[str, Any] = {"id": self._last_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._cmd_w, data) :]
        deadline = time.monotonic() + 15
        while True:
            reply = self._read(deadline, method)
            if reply.get("id") == self._last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _read(self, deadline: float, method: str) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Chromium did not answer {method}")
            if select.select([self._resp_r], [], [], left)[0]:
                chunk = os.read(self._resp_r, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"Chromium exited (code {self.proc.poll()}) during {method}")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._resp_r)


class Page:
    """One tab: navigate, run JavaScript, type, press keys, click, take screenshots."""

    KEYS = {"Enter": 13, "Escape": 27, "ArrowDown": 40, "ArrowUp": 38}

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        self.target = target
        self.session = browser.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=1000, height=1000,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.call(method, session=self.session, **params)

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)  # fmt: skip
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10) -> Any:
        """Poll until `expression` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            time.sleep(0.05)

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url="about:blank")
        self.call("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def type(self, text: str) -> None:
        """Key presses into the focused element, one character at a time, like a user."""
        for char in text:
            self.call("Input.dispatchKeyEvent", type="keyDown", key=char, text=char)
            self.call("Input.dispatchKeyEvent", type="keyUp", key=char)

    def press(self, key: str) -> None:
        code = self.KEYS[key]
        text = {"text": "\r"} if key == "Enter" else {}
        self.call("Input.dispatchKeyEvent", type="keyDown", key=key, code=key,
                  windowsVirtualKeyCode=code, **text)  # fmt: skip
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=key,
                  windowsVirtualKeyCode=code)  # fmt: skip

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the first element matching `selector`."""
        box = self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"],
                      button="left", clickCount=1)  # fmt: skip

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def events(self, method: str) -> list[dict[str, Any]]:
        self.js("0")  # read what is in flight
        return [
            e["params"]
            for e in self.browser.events
            if e.get("sessionId") == self.session and e.get("method") == method
        ]

    def close(self) -> None:
        self.browser.call("Target.closeTarget", targetId=self.target)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = build_run_folder(tmp_path_factory.mktemp("run"))
    server = make_server(folder, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("RECS_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[Browser]:
    binary = find_chromium()
    browser = Browser(binary, tmp_path_factory.mktemp("profile"), artifacts / "chromium.log")
    yield browser
    browser.close()


@pytest.fixture()
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    page = Page(browser)
    yield page
    page.close()


def requested(page: Page) -> list[str]:
    return [e["request"]["url"] for e in page.events("Network.requestWillBeSent")]


def assert_clean(page: Page, base_url: str) -> None:
    """No uncaught JavaScript error, nothing requested from anywhere but our server, and never
    the whole index.json (the search box reads shards)."""
    assert page.events("Runtime.exceptionThrown") == []
    urls = requested(page)
    assert urls, "no request seen: Network events are not being recorded"
    assert [u for u in urls if not u.startswith(base_url)] == []
    assert [u for u in urls if u.endswith("/index.json")] == []


ROWS_JS = """[...document.querySelectorAll('#similar > li')].map((li) => ({
  rank: li.querySelector('.rank').textContent,
  title: li.querySelector('a.title').textContent,
  href: li.querySelector('a.title').getAttribute('href'),
  score: li.querySelector('.score').textContent,
  co: li.querySelector('.co').textContent,
  why: li.querySelector('.why').textContent,
  shared: [...li.querySelectorAll('.shared .tag')].map((t) => t.textContent),
  imdb: li.querySelector('a.imdb') && li.querySelector('a.imdb').href,
}))"""
MATCHES_JS = "[...document.querySelectorAll('#matches [role=option]')].map((o) => o.textContent)"


def test_type_a_title_pick_it_and_see_its_list(page: Page, base_url: str, artifacts: Path) -> None:
    page.goto(base_url)
    page.click("#q")
    page.type("toy")
    # titles starting with the query first, then the rest, each group by movie id
    assert page.wait_for(MATCHES_JS) == [
        "Toy Story (1995)",
        "Toy Story 2 (1999)",
        "Babes in Toyland (1961)",
    ]
    page.press("Enter")
    page.wait_for("document.getElementById('movie-title').textContent === 'Toy Story (1995)'")
    assert page.js("location.hash") == "#movie=1"
    assert page.js("document.getElementById('matches').hidden") is True
    rows = page.js(ROWS_JS)
    assert rows == [
        {"rank": "1.", "title": "Toy Story 2 (1999)", "href": "#movie=3114", "score": "0.831",
         "co": "97 people watched both",
         "why": "97 people watched both · 31 right after one another · 20 watched it next",
         "shared": ["Adventure", "Animation", "Children"],
         "imdb": "https://www.imdb.com/title/tt0120363/"},
        {"rank": "2.", "title": TRICKY, "href": "#movie=7", "score": "0.412",
         "co": "1 person watched both", "why": "1 person watched both · 1 right after one another",
         "shared": [], "imdb": None},
        {"rank": "3.", "title": "Babes in Toyland (1961)", "href": "#movie=5", "score": "0.200",
         "co": "12 people watched both",  # 0 close: not shown
         "why": "12 people watched both · 3 watched it next",
         "shared": ["Children"], "imdb": "https://www.imdb.com/title/tt0054649/"},
    ]  # fmt: skip
    imdb_of_movie = page.js("document.querySelector('#movie-meta a.imdb').href")
    assert imdb_of_movie == "https://www.imdb.com/title/tt0114709/"
    page.screenshot(artifacts / "demo_page.png")
    assert_clean(page, base_url)


def test_arrow_keys_and_accent_insensitive_search(page: Page, base_url: str) -> None:
    page.goto(base_url)
    page.click("#q")
    page.type("LEON")
    assert page.wait_for(MATCHES_JS) == ["Léon: The Professional (1994)"]
    page.press("Escape")
    assert page.js("document.getElementById('matches').hidden") is True
    page.js("document.getElementById('q').select()")
    page.type("to")  # Toy Story, Toy Story 2, Babes in Toyland: pick the second
    page.wait_for(MATCHES_JS)
    page.press("ArrowDown")
    page.press("ArrowDown")
    second = page.js(MATCHES_JS)[1]
    assert page.js("document.getElementById('q').getAttribute('aria-activedescendant')") == (
        "match-1"
    )
    page.press("Enter")
    page.wait_for(f"document.getElementById('movie-title').textContent === {json.dumps(second)}")
    assert_clean(page, base_url)


def test_tricky_title_is_text_not_markup(page: Page, base_url: str) -> None:
    page.goto(base_url)
    page.click("#q")
    page.type("amelie")  # accent-insensitive: matches "Amélie" inside the tricky title
    assert page.wait_for(MATCHES_JS) == [TRICKY]
    page.click("#matches [role=option]")
    page.wait_for(f"document.getElementById('movie-title').textContent === {json.dumps(TRICKY)}")
    assert page.js("location.hash") == "#movie=7"
    assert page.js("document.title") == f"{TRICKY} · Because you watched…"
    # nothing from the title became an element or ran
    assert page.js("document.querySelectorAll('script').length") == 1
    assert page.js("document.getElementById('bold')") is None
    assert page.js("typeof window.pwned") == "undefined"
    assert page.js("document.querySelector('#movie-meta a.imdb')") is None  # imdb_id is null
    assert_clean(page, base_url)


def test_deep_link_then_click_a_title(page: Page, base_url: str) -> None:
    page.goto(base_url + "#movie=3114")
    page.wait_for("document.getElementById('movie-title').textContent === 'Toy Story 2 (1999)'")
    assert [r["title"] for r in page.js(ROWS_JS)] == ["Toy Story (1995)", "Jumanji (1995)"]
    page.click("#similar a.title[href='#movie=2']")
    page.wait_for("document.getElementById('movie-title').textContent === 'Jumanji (1995)'")
    assert page.js("location.hash") == "#movie=2"
    assert page.js("document.activeElement.id") == "movie-title"  # focus follows the list
    assert_clean(page, base_url)


def test_missing_list_says_so(page: Page, base_url: str) -> None:
    page.goto(base_url + "#movie=424242")
    message = page.wait_for("!document.getElementById('error').hidden && "
                            "document.getElementById('error').textContent")  # fmt: skip
    assert "No list for movie 424242" in message
    assert "json/v1/movies/424242.json: HTTP 404" in message
    assert page.js("document.getElementById('movie').hidden") is True


def test_page_without_data_says_so(page: Page, base_url: str) -> None:
    page.goto(base_url + "broken/")
    message = page.wait_for("!document.getElementById('error').hidden && "
                            "document.getElementById('error').textContent")  # fmt: skip
    assert "Could not load json/v1/search.json: HTTP 404" in message
    assert page.js("document.getElementById('q').disabled") is True


def test_opened_as_a_file_explains_how_to_serve(page: Page) -> None:
    page.goto(PAGE.as_uri())
    message = page.wait_for("!document.getElementById('error').hidden && "
                            "document.getElementById('error').textContent")  # fmt: skip
    assert "Could not load json/v1/search.json" in message
    assert "recs serve" in message


STATUS_JS = "document.getElementById('status').textContent"


def wait_equal(page: Page, expression: str, expected: Any, timeout: float = 10) -> None:
    """Poll until `expression` evaluates to `expected` (compared in Python)."""
    deadline = time.monotonic() + timeout
    while (value := page.js(expression)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{expression}: {value!r}, expected {expected!r}")
        time.sleep(0.05)


def expected_search(titles: dict[int, str], query: str) -> list[Any]:
    """[titles shown, status] for `query` by brute force over every title: each query word
    starts a word of the title; titles whose first word starts with the first query word
    first, then by movie id; the first 20."""
    tokens = write.title_words(query)
    words = {m: write.title_words(t) for m, t in titles.items()}
    hits = [m for m in sorted(titles)
            if all(any(w.startswith(t) for w in words[m]) for t in tokens)]  # fmt: skip
    hits.sort(key=lambda m: not (words[m] and words[m][0].startswith(tokens[0])))  # stable
    shown = [titles[m] for m in hits[:20]]
    status = (f"No title matches “{query}”." if not hits
              else f"{len(hits)} matches, showing the first 20: type more." if len(hits) > 20
              else f"{len(hits)} {'match' if len(hits) == 1 else 'matches'}.")  # fmt: skip
    return [shown, status]


def search_requests(page: Page) -> list[str]:
    return [u.split("/big/", 1)[1] for u in requested(page) if "/json/v1/search" in u]


def test_a_movie_is_found_by_any_word_of_its_title(page: Page, base_url: str) -> None:
    page.goto(base_url)
    page.click("#q")
    for query in ("matrix", "the matrix", "MATRIX, THE", "the 1999"):
        page.js("document.getElementById('q').select()")
        page.type(query)
        wait_equal(page, f"[{MATCHES_JS}, {STATUS_JS}]", [["Matrix, The (1999)"], "1 match."])
    page.js("document.getElementById('q').select()")
    page.type("professional")  # the third word
    assert page.wait_for(MATCHES_JS) == ["Léon: The Professional (1994)"]
    page.press("Enter")
    page.wait_for("document.getElementById('movie-title').textContent.startsWith('Léon')")
    assert_clean(page, base_url)


def test_first_search_reads_three_small_files(page: Page, base_url: str) -> None:
    page.goto(base_url + "big/")
    page.click("#q")
    page.type("s")  # one letter: no search yet, only the root shard loaded with the page
    wait_equal(page, STATUS_JS, "Type at least two letters of a word.")
    assert search_requests(page) == ["json/v1/search.json"]
    page.type("t")
    wait_equal(page, f"[{MATCHES_JS}, {STATUS_JS}]", expected_search(BIG_TITLES, "st"))
    # "st" has more than BIG_LEAF titles: its shard lists the first 20 and the count
    assert search_requests(page) == [
        "json/v1/search.json", "json/v1/search/s.json", "json/v1/search/st.json"]  # fmt: skip
    assert_clean(page, base_url)


BIG_QUERIES = [
    "st", "stor", "story", "storyx", "the", "the sto", "night st", "nightm", "amelie", "AMÉLIE",
    "œuvre", "Oeuvre", "北京", "lo", "lover", "19", "1995", "zz", "toy 2", "2 toy", "of the love",
]  # fmt: skip


def test_searches_match_a_brute_force_search(page: Page, base_url: str) -> None:
    page.goto(base_url + "big/")
    page.click("#q")
    for query in BIG_QUERIES:
        page.js("document.getElementById('q').select()")
        page.type(query)
        wait_equal(page, f"[{MATCHES_JS}, {STATUS_JS}]", expected_search(BIG_TITLES, query))
    fetched = search_requests(page)
    assert len(fetched) == len(set(fetched))  # each file once: the page caches them
    assert any(re.fullmatch(r"json/v1/search/[a-z0-9A-F_]+\.[0-9]+\.json", u) for u in fetched)
    assert "json/v1/search/_C5_93.json" in fetched  # œ: a key beyond ASCII
    assert_clean(page, base_url)


WORDS_CASES = [
    TRICKY, "Léon: The Professional (1994)", "北京 Amélie ŒUVRE e\u0301t\u00e9 🎬\u200d👩 (2004)",
    "ＡＢＣ ① ﬁlm", "İstanbul ΟΔΟΣ Σ", "Schindler's List", "Ça ira, Søren! Crème brûlée",
    "Straße", "서울 x\u2028y", "ΟΔΟΣ.Α ΟΔΟΣ: Α", "",
]  # fmt: skip


def test_page_cuts_words_and_names_files_as_the_writer_does(page: Page, base_url: str) -> None:
    page.goto(base_url)
    for text in WORDS_CASES:
        assert page.js(f"words({json.dumps(text)})") == write.title_words(text), text
    for key in ("st", "北京", "œ", "søren", "1995"):
        assert page.js(f"shardURL({json.dumps(key)})") == write.search_file(key), key
        assert page.js(f"shardURL({json.dumps(key)}, 3)") == write.search_file(key, 3), key
    assert page.js("shardURL('')") == write.search_file("")


def test_no_chromium_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("RECS_CHROMIUM", raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        find_chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        find_chromium()
