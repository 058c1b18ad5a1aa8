"""Search shards against one index.json at a million titles: what the demo page downloads.

    python bench/search_index.py                      # 1,000,000 titles, about 2 minutes
    python bench/search_index.py --movies 62000       # the size of ml-25m's catalogue
    python bench/search_index.py --data /work/shared/data/ml-latest-small   # real titles

The titles come from `recs synth` (recs.tools.synth.write_synthetic, seed 0; generated once into
--cache, with a few ratings only) and are read with the job's own reader, so titles and years
are the ones the job would index. Prints the shard count, the largest shard and page (raw and
gzip -9, as --precompress writes them), the bytes the page's first search fetches (the root, the
first letter's shard, the two letters' shard: the worst two-letter query), the same for a whole
word, and index.json, which the page used to download in full. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recs.stages import write  # noqa: E402
from recs.stages.ingest import read_dataset  # noqa: E402
from recs.tools.synth import write_synthetic  # noqa: E402


def titles_folder(cache: Path, movies: int) -> Path:
    """A synthetic MovieLens folder of `movies` titles (and 20,000 ratings), made once."""
    folder = cache / f"titles-{movies}-seed0"
    marker = folder / "synth.json"
    code = hashlib.sha256((REPO / "recs" / "tools" / "synth.py").read_bytes()).hexdigest()[:16]
    if marker.exists() and json.loads(marker.read_text()).get("code") == code:
        return folder
    print(f"generating {movies:,} synthetic titles into {folder} ...", flush=True)
    info = write_synthetic(folder, users=100, movies=movies, ratings=20_000, seed=0)
    marker.write_text(json.dumps(info | {"code": code}))
    return folder


def walk(files: dict[str, bytes], query: str) -> list[str]:
    """The files the demo page fetches for a one-word `query`: shards from the root down while
    the shard is split (its movies fewer than its count) and shorter than the query."""
    path = write.search_file("")
    fetched = [path]
    for depth in range(1, len(query) + 1):
        shard = json.loads(files[path])
        if len(shard["movies"]) == shard["count"]:
            break
        if query[depth - 1] not in shard["children"]:
            break
        path = write.search_file(query[:depth])
        fetched.append(path)
    return fetched


def worst(files: dict[str, bytes], gz: dict[str, int], queries: set[str]) -> dict:
    """Of `queries`, the one whose walk fetches the most raw bytes; its raw and gzip bytes."""
    costs = []
    for query in queries:
        paths = walk(files, query)
        costs.append((sum(len(files[p]) for p in paths), sum(gz[p] for p in paths), query,
                      len(paths)))
    raw, packed, query, count = max(costs)
    return {"query": query, "files": count, "raw": raw, "gzip": packed}


def measure(folder: Path) -> dict:
    _, table = read_dataset(folder)
    entries = table.select(["movie_id", "title", "year"]).to_pylist()
    started = time.perf_counter()
    files = dict(write.search_files(entries))
    seconds = time.perf_counter() - started
    gz = {p: len(gzip.compress(b, compresslevel=9, mtime=0)) for p, b in files.items()}
    index = write.dumps({"version": 1, "movies": entries})
    pages = [p for p in files if p.count(".") == 2]
    shards = [p for p in files if p not in set(pages)]
    words = {w for e in entries for w in write.title_words(e["title"])}
    return {
        "titles": len(entries), "seconds": round(seconds, 1),
        "shards": len(shards), "pages": len(pages),
        "largest_shard": max((len(files[p]), gz[p], p) for p in shards),
        "largest_page": max((len(files[p]), gz[p], p) for p in pages) if pages else None,
        "total": (sum(len(b) for b in files.values()), sum(gz.values())),
        "first_search": worst(files, gz, {w[:2] for w in words if len(w) >= 2}),
        "whole_word": worst(files, gz, words),
        "index_json": (len(index), len(gzip.compress(index, compresslevel=9, mtime=0))),
    }


def kb(raw: int, packed: int) -> str:
    return f"{raw / 1000:,.1f} KB raw, {packed / 1000:,.1f} KB gzip"


def report(r: dict) -> str:
    first, word, index = r["first_search"], r["whole_word"], r["index_json"]
    lines = [
        f"titles: {r['titles']:,} ({r['source']}); shards built in {r['seconds']} s",
        f"files: {r['shards']:,} shards + {r['pages']:,} pages; all together "
        f"{kb(*r['total'])}",
        f"largest shard: {kb(*r['largest_shard'][:2])} ({r['largest_shard'][2]})",
    ]
    if r["largest_page"]:
        lines.append(f"largest page: {kb(*r['largest_page'][:2])} ({r['largest_page'][2]})")
    lines += [
        f"first search, worst two-letter query: {kb(first['raw'], first['gzip'])} in "
        f"{first['files']} files ('{first['query']}')",
        f"one whole word, worst: {kb(word['raw'], word['gzip'])} in {word['files']} files "
        f"('{word['query']}')",
        f"index.json: {kb(*index)}",
        f"first search / index.json: {first['raw'] / index[0]:.5f} raw, "
        f"{first['gzip'] / index[1]:.5f} gzip",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--movies", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/recs-bench-data"))
    parser.add_argument("--data", type=Path, help="a MovieLens folder instead of synthetic titles")
    args = parser.parse_args(argv)
    folder = args.data or titles_folder(args.cache, args.movies)
    print(report(measure(folder) | {"source": args.data or "recs synth, seed 0"}))


if __name__ == "__main__":
    main()
