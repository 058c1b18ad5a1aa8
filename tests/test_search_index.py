"""The search shards (recs.stages.write.search_files) on title lists whose shards are known.

The demo page's side (its JavaScript reading these files) is tested in tests/test_demo_page.py.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pytest
from helpers import REPO, schema_validator

from recs.stages import write

# leaf=2, head=2: a shard of more than two titles splits. Words per title:
#   1 toy story 1995 | 2 toy soldiers 1991 | 3 babes in toyland 1961 | 4 matrix the 1999
#   5 toys 1992 | 7 story of toy 2001
TITLES = {
    1: "Toy Story (1995)",
    2: "Toy Soldiers (1991)",
    3: "Babes in Toyland (1961)",
    4: "Matrix, The (1999)",
    5: "Toys (1992)",
    7: "Story of Toy (2001)",
}


def entries(titles: dict[int, str]) -> list[dict]:
    found = (re.search(r"\((\d{4})\)$", titles[m]) for m in sorted(titles))
    return [{"movie_id": m, "title": titles[m], "year": int(y[1]) if y else None}
            for m, y in zip(sorted(titles), found, strict=True)]  # fmt: skip


def shards(titles: dict[int, str], leaf: int, head: int) -> dict[str, dict]:
    """{path: payload} of search_files, each file checked to be what dumps gives."""
    out = {}
    for path, raw in write.search_files(entries(titles), leaf, head):
        payload = json.loads(raw)
        assert write.dumps(payload) == raw, path
        out[path] = payload
    return out


def ids(payload: dict) -> list[int]:
    return [m["movie_id"] for m in payload["movies"]]


def test_title_words_fold_case_and_accents_and_split_on_the_rest():
    assert write.title_words("Léon: The Professional (1994)") == [
        "leon", "the", "professional", "1994"]  # fmt: skip
    assert write.title_words("Matrix, The (1999)") == ["matrix", "the", "1999"]
    assert write.title_words("Schindler's List") == ["schindler", "s", "list"]
    # e + combining acute is one letter; emoji and the zero-width joiner separate words
    assert write.title_words("北京 Amélie ŒUVRE e\u0301t\u00e9 🎬\u200d👩 (2004)") == [
        "北京", "amelie", "œuvre", "ete", "2004"]  # fmt: skip
    assert write.title_words("ＡＢＣ ①") == ["abc", "1"]  # compatibility forms: NFKD
    assert write.title_words("İstanbul ΟΔΟΣ") == ["istanbul", "οδος"]
    assert write.title_words("... (?)") == []


def test_file_names_are_the_percent_encoded_key_with_underscores():
    assert write.search_file("") == "json/v1/search.json"
    assert write.search_file("st") == "json/v1/search/st.json"
    assert write.search_file("story", 2) == "json/v1/search/story.2.json"
    assert write.search_file("北京") == "json/v1/search/_E5_8C_97_E4_BA_AC.json"
    assert write.search_file("œ") == "json/v1/search/_C5_93.json"


def test_shards_of_a_hand_made_catalogue():
    found = shards(TITLES, leaf=2, head=2)
    root = found["json/v1/search.json"]
    assert root == {**root, "key": "", "count": 6, "pages": 0,
                    "children": ["1", "2", "b", "i", "m", "o", "s", "t"]}  # fmt: skip
    assert ids(root) == [1, 2]
    t = found["json/v1/search/t.json"]  # toy, toyland, the, toys: split by the next letter
    assert (t["count"], t["children"], t["pages"], ids(t)) == (6, ["h", "o"], 0, [1, 2])
    # "toy": 1, 2 and 7 have the word itself, so they stay in its pages; 3 and 5 go one down
    toy = found["json/v1/search/toy.json"]
    assert (toy["count"], toy["children"], toy["pages"], ids(toy)) == (5, ["l", "s"], 2, [1, 2])
    assert ids(found["json/v1/search/toy.1.json"]) == [1, 2]
    assert ids(found["json/v1/search/toy.2.json"]) == [7]
    assert found["json/v1/search/toy.2.json"] == {"key": "toy", "page": 2, "movies": [
        {"movie_id": 7, "title": "Story of Toy (2001)", "year": 2001}]}  # fmt: skip
    assert ids(found["json/v1/search/toyl.json"]) == [3]
    assert ids(found["json/v1/search/toys.json"]) == [5]
    # a title whose first word starts with the key comes first: "Story of Toy" before 1
    s = found["json/v1/search/s.json"]
    assert (s["count"], s["children"], ids(s)) == (3, ["o", "t"], [7, 1])
    st = found["json/v1/search/st.json"]
    assert (st["count"], st["children"], st["pages"], ids(st)) == (2, [], 0, [7, 1])
    assert "json/v1/search/sto.json" not in found  # "st" lists both: no deeper shard
    keys = ["", "1", "19", "196", "199", "1991", "1992", "1995", "1999", "2", "b", "i", "m", "o",
            "s", "so", "st", "t", "th", "to", "toy", "toyl", "toys"]  # fmt: skip
    pages = [write.search_file("toy", 1), write.search_file("toy", 2)]
    assert sorted(found) == sorted([write.search_file(k) for k in keys] + pages)


def test_a_small_catalogue_is_one_root_shard():
    found = shards(TITLES, leaf=write.SEARCH_LEAF, head=write.SEARCH_HEAD)
    assert list(found) == ["json/v1/search.json"]
    assert ids(found["json/v1/search.json"]) == [1, 2, 3, 4, 5, 7]  # all start with ""


def test_titles_without_words_are_in_no_shard():
    found = shards({1: "Toy Story (1995)", 2: "...", 3: "🎬"}, leaf=2, head=2)
    assert {m for payload in found.values() for m in ids(payload)} == {1}
    assert found["json/v1/search.json"]["count"] == 1


def shard_for(found: dict[str, dict], token: str) -> dict | None:
    """The shard a search for `token` reads, found as the demo page finds it: down from the
    root while the shard is split; None when a split shard has no child for the next letter."""
    shard = found["json/v1/search.json"]
    for depth, char in enumerate(token):
        if len(shard["movies"]) == shard["count"]:
            break
        if char not in shard["children"]:
            return None
        shard = found[write.search_file(token[: depth + 1])]
    return shard


def every_title(found: dict[str, dict], shard: dict) -> set[int]:
    if len(shard["movies"]) == shard["count"]:
        return set(ids(shard))
    pages = (found[write.search_file(shard["key"], n)] for n in range(1, shard["pages"] + 1))
    mine = {m for page in pages for m in ids(page)}
    for char in shard["children"]:
        mine |= every_title(found, found[write.search_file(shard["key"] + char)])
    return mine


def synthetic_titles(n: int, seed: int) -> dict[int, str]:
    """n titles of one to three words drawn from a small vocabulary (so words repeat, as
    in `recs synth`), some accented, some with a year."""
    vocab = ["Night", "Nightmare", "Story", "Stories", "Storm", "Toy", "Toys", "The", "Amélie",
             "Amelia", "Œuvre", "北京", "Love", "Lover", "Lo", "Star", "Stardust", "2"]
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(10 * n, n, replace=False)) + 1
    return {
        int(m): " ".join(vocab[w] for w in rng.integers(0, len(vocab), rng.integers(1, 4)))
        + (f" ({rng.integers(1990, 2000)})" if rng.random() < 0.5 else "")
        for m in ids
    }


@pytest.mark.parametrize(("leaf", "head"), [(5, 3), (40, 20), (400, 20)])
def test_every_word_prefix_reaches_exactly_its_titles(leaf, head):
    titles = synthetic_titles(600, seed=leaf)
    found = shards(titles, leaf, head)
    words = {m: write.title_words(t) for m, t in titles.items()}
    prefixes = {w[:n] for ws in words.values() for w in ws for n in range(1, len(w) + 1)}
    longer = {w + "x" for ws in words.values() for w in ws}
    for token in sorted(prefixes | longer | {"zz", "storx"}):
        expected = {m for m, ws in words.items() if any(w.startswith(token) for w in ws)}
        shard = shard_for(found, token)
        if shard is None:
            assert expected == set(), token
        elif len(shard["movies"]) == shard["count"]:  # the page filters a complete shard
            assert expected <= set(ids(shard)), token
        else:  # a split shard's key is the token: its count and titles are the answer
            assert shard["key"] == token, token
            assert shard["count"] == len(expected), token
            assert every_title(found, shard) == expected, token


def test_shards_stay_small_and_list_their_first_titles_in_order():
    titles = synthetic_titles(3000, seed=1)
    found = shards(titles, leaf=40, head=20)
    validator = schema_validator("search")
    first = {m: (write.title_words(t) or [""])[0] for m, t in titles.items()}
    for path, payload in found.items():
        validator.validate(payload)
        assert re.fullmatch(r"json/v1/search(/[a-z0-9A-F_]+(\.[1-9][0-9]*)?)?\.json", path), path
        assert len(payload["movies"]) <= 40, path
        if "page" in payload:
            assert ids(payload) == sorted(ids(payload)), path
            continue
        key, listed = payload["key"], ids(payload)
        starts = [first[m].startswith(key) for m in listed]
        assert starts == sorted(starts, reverse=True), path  # starting titles first ...
        for flag in (True, False):  # ... each group by movie id
            group = [m for m, s in zip(listed, starts, strict=True) if s == flag]
            assert group == sorted(group), path
        if payload["children"] or payload["pages"]:
            assert len(listed) == 20 < payload["count"], path
            everyone = every_title(found, payload)
            assert len(everyone) == payload["count"], path
            ranked = sorted(everyone, key=lambda m: (not first[m].startswith(key), m))
            assert listed == ranked[:20], path
        else:
            assert len(listed) == payload["count"], path
    assert sum(1 for p in found.values() if p.get("pages")) > 0  # the test covers pages too


def test_file_names_stay_plain_whatever_the_titles():
    hostile = {1: "../../etc/passwd /tmp/x \u202eevil.json (2005)", 2: "..\\..\\boot.ini CON",
               3: "%2e%2e%2f %00 nul\x00 (1999)", 4: "北京 🎬\u200d👩 Œuvre",
               5: "ab" * 10 + "x" * 300, 6: "ab" * 10 + "é" * 40}  # fmt: skip
    found = shards(hostile, leaf=1, head=1)  # every shard of two titles or more splits
    for path in found:
        assert re.fullmatch(r"json/v1/search(/[a-z0-9A-F_]+(\.[1-9][0-9]*)?)?\.json", path), path
        assert len(path.rsplit("/", 1)[1]) < 255, path  # a file name, on every file system
    deepest = max((p["key"] for p in found.values()), key=len)
    assert len(deepest) == write.SEARCH_DEPTH  # "abab...", shared by 5 and 6, stops there


def test_docs_and_page_state_the_writers_sizes():
    doc = " ".join((REPO / "docs" / "output-contract.md").read_text().split())
    for phrase in (f"A shard of at most {write.SEARCH_LEAF} titles lists all of them",
                   f"it lists its first {write.SEARCH_HEAD} and names",
                   f"({write.SEARCH_LEAF} each, by movie id",
                   f"Keys stop at {write.SEARCH_DEPTH} characters"):  # fmt: skip
        assert phrase in doc, phrase
    page = (REPO / "recs" / "assets" / "index.html").read_text()
    # a split shard lists exactly what the page shows while typing
    assert re.search(r"const LIMIT = (\d+);", page)[1] == str(write.SEARCH_HEAD)


def test_same_titles_same_bytes(tmp_path):
    titles = synthetic_titles(500, seed=3)
    first = write.search_files(entries(titles), 10, 5)
    assert write.search_files(entries(titles), 10, 5) == first
    assert [p for p, _ in first] == sorted(p for p, _ in first)


def test_index_json_is_dumps_of_its_entries_and_shares_them_with_the_shards():
    titles = {**TITLES, 8: 'Quote "this" \\ é\u2028 (2003)', 9: "No year"}
    ids = np.array(sorted(titles))
    movies = pa.table({"movie_id": pa.array(ids, pa.int64()),
                       "title": [titles[m] for m in ids],
                       "year": pa.array([e["year"] for e in entries(titles)], pa.int64())})
    raw, index, files = write.json_index(movies, ids)
    assert index == entries(titles)
    assert raw == write.dumps({"version": 1, "movies": index})
    assert files == write.search_files(index)


def test_write_search_index_logs_every_file(tmp_path):
    (tmp_path / "json" / "v1").mkdir(parents=True)
    written = write.FileLog(tmp_path)
    write.write_search_index(written, entries(TITLES))
    assert list(written.files) == ["json/v1/search.json"]
    raw = (tmp_path / "json/v1/search.json").read_bytes()
    assert written.files["json/v1/search.json"]["bytes"] == len(raw)
    assert json.loads(raw)["count"] == len(TITLES)


@pytest.mark.slow
def test_every_listed_movie_is_found_by_each_of_its_words(small_run):
    """ml-latest-small as the job publishes it: the shards match index.json, and each word of
    each title leads to its movie (prefixes of two letters and more, as the page searches)."""
    _, result = small_run
    root = result.run_dir / "json" / "v1"
    index = json.loads((root / "index.json").read_bytes())["movies"]
    found = {p.relative_to(result.run_dir).as_posix(): json.loads(p.read_bytes())
             for p in [root / "search.json", *(root / "search").glob("*.json")]}  # fmt: skip
    assert sorted(found) == [p for p, _ in write.search_files(index)]
    for path, payload in found.items():
        assert result.manifest["files"][path]["bytes"] == len(write.dumps(payload)), path
    assert found["json/v1/search.json"]["count"] == len(index)  # every title has a word
    for movie in index:
        for word in write.title_words(movie["title"]):
            for token in {word[:2], word}:
                shard = shard_for(found, token)
                listed = ids(shard) if len(shard["movies"]) == shard["count"] else \
                    every_title(found, shard)
                assert movie["movie_id"] in listed, (movie, token)
