"""Every movie's top-k most similar movies: an exact in-process engine, a LanceDB engine, and
an approximate LanceDB IVF engine.

The engines only propose candidates; the final scores and order come from one shared function
(`pair_scores`, then rank by score and movie id), so "exact" and "lancedb" publish identical
lists. When their candidate pool cannot prove its k-th place (ties or near-ties at its edge),
that query is scored against every movie instead. The exact engine never needs that: from
each query's full float32 similarity row it keeps every movie within SELECT_TOLERANCE of the
pool's edge (a proven superset, ties included), so only those few are scored in float64.
"ivf" searches only the index partitions nearest each query: its pools are ranked the same
way but prove nothing about the movies they left out, so its lists are approximate (recall@10
about 0.96 on the 25m synthetic set's vectors, docs/cluster.md).

Cost at 62k movies: the float32 product (the floor) plus one max-reduction, one comparison
and one compaction pass over each row (`_select`); batches run on as many threads as BLAS
may use, each with single-threaded BLAS, so the numpy passes use every core too.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_info, threadpool_limits

from recs.core.types import Embeddings, Neighbors
from recs.stages.store import add_ivf_index, batch_search, vector_table, write_table

log = logging.getLogger(__name__)

# float32 dot products of unit vectors are within ~1e-6 of exact (worst case dim x 6e-8,
# 4e-6 at dim 64); a left-out movie closer to the k-th score than this might belong in the
# list, so the row is re-scored in full.
EDGE_TOLERANCE = 1e-5
# the exact engine keeps every column this close to the pool's edge in float32: twice the
# edge test's tolerance, so what it leaves out can never reach the edge test
SELECT_TOLERANCE = 2 * EDGE_TOLERANCE
_BLOCK_ELEMENTS = 1 << 22  # float32 similarities per exact block (16 MiB)
_SCORE_CHUNK = 4096  # pairs per float64 scoring chunk
# "ivf" below this many eligible movies runs "exact": there an index search is no faster
# than the exact product, and the exact lists cost nothing in recall
IVF_MIN_MOVIES = 5000
# share of the ~sqrt(movies) IVF partitions each query probes: on the 60,536 vectors of the
# 25m synthetic run, 37% gave recall@10 0.960 and 50% gave 0.979 (bench/ann.py)
IVF_PROBE_SHARE = 0.4


# Proposes candidates for the query rows `rows` (b,): candidate rows (b, m) and, per query,
# the lowest approximate score in its pool (b,), which bounds every movie left out; -inf
# claims no bound (an approximate pool), so `finish` ranks the pool as found.
Proposer = Callable[[NDArray[np.int64]], tuple[NDArray[np.int64], NDArray[np.float64]]]


def pair_scores(
    vectors: NDArray[np.float32], rows: NDArray[np.int64], cands: NDArray[np.int64]
) -> NDArray[np.float32]:
    """Cosine similarity of each query row with its candidates, (b,) x (b, m) -> (b, m) float32.

    Summed in float64 in a fixed order (numpy's pairwise sum over the `dim` axis, the same for
    every chunk of rows), so a pair's score does not depend on the engine, the batch, or the
    number of BLAS threads. A candidate of -1 (none) scores -inf.
    """
    out = np.full(cands.shape, -np.inf, np.float32)
    r, c = np.nonzero(cands >= 0)  # only real candidates: padded rows cost nothing
    cols, vals = cands[r, c], np.empty(len(r), np.float32)
    for start in range(0, len(r), _SCORE_CHUNK):  # (chunk, dim) float64 stays in cache
        sl = slice(start, start + _SCORE_CHUNK)
        pairs = vectors[cols[sl]].astype(np.float64)
        pairs *= vectors[rows[r[sl]]].astype(np.float64)
        vals[sl] = pairs.sum(axis=1)
    out[r, c] = vals
    return out


def _sortable(scores: NDArray[np.float32]) -> NDArray[np.uint32]:
    """float32 -> uint32 with the same order (-0.0 taken as 0.0; no NaN)."""
    u = (scores + np.float32(0.0)).view(np.uint32)
    return u ^ np.where(u >> 31 == 1, np.uint32(0xFFFFFFFF), np.uint32(0x80000000))


def rank(
    movie_ids: NDArray[np.int64], cands: NDArray[np.int64], scores: NDArray[np.float32], k: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The best k of each row's candidates by (score desc, movie id asc): rows (b, k).

    movie_ids must be ascending (as in `Embeddings`), so movie id order is row order: one
    sort of 64-bit keys (inverted score bits, candidate row) replaces a three-key lexsort.
    Slots past the candidates hold -1 / -inf.
    """
    b, m = cands.shape
    if b == 0 or m == 0:
        return np.full((b, k), -1, np.int64), np.full((b, k), -np.inf, np.float32)
    key = (~_sortable(scores)).astype(np.uint64) << np.uint64(32)
    key |= cands.astype(np.uint32).astype(np.uint64)  # -1 sorts last: its score is -inf
    key.sort(axis=1)
    key = key[:, :k]
    bits = ~(key >> np.uint64(32)).astype(np.uint32)
    bits ^= np.where(bits >> 31 == 1, np.uint32(0x80000000), np.uint32(0xFFFFFFFF))
    top_scores = bits.view(np.float32)
    top = (key & np.uint64(0xFFFFFFFF)).astype(np.int64)
    top[top_scores == -np.inf] = -1
    if top.shape[1] < k:  # fewer candidates than k: pad
        pad = k - top.shape[1]
        top = np.pad(top, ((0, 0), (0, pad)), constant_values=-1)
        top_scores = np.pad(top_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return top, top_scores


def _select(sims: NDArray[np.float32], m: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Every column of each row whose float32 score is within SELECT_TOLERANCE of the row's
    m-th best: (b, n) -> candidate columns (b, w) padded with -1, and floor (b,).

    This is a superset of the row's exact top m (float32 products are within ~4e-6 of the
    float64 ones), and every column left out scores below `floor`, which sits 2 x
    EDGE_TOLERANCE under the m-th score, so `finish` never has to re-score such a row.
    `sims` must hold -inf for banned columns.
    """
    b, n = sims.shape
    m = min(m, n)
    tol = np.float32(SELECT_TOLERANCE)
    low = _lower_bound(sims, m)
    flat = np.flatnonzero(sims >= (low - tol)[:, None])
    r, c = np.divmod(flat, n)
    vals = sims.ravel()[flat]
    pad_vals, _ = _pad(r, vals, c, b)
    thr = np.partition(pad_vals, -m, axis=1)[:, -m] - tol  # float32; -inf if < m allowed
    keep = (vals >= thr[r]) & (vals > -np.inf)
    _, cands = _pad(r[keep], vals[keep], c[keep], b)
    return cands, thr.astype(np.float64)


def _lower_bound(sims: NDArray[np.float32], m: int) -> NDArray[np.float32]:
    """A lower bound of each row's m-th largest value, (b, n) -> (b,), in one pass.

    The columns are dealt into g disjoint groups (column mod g); the m-th largest of the g
    group maxima is m distinct values of the row, so it is <= the row's m-th largest. With
    g ~ 5 m, few of the row's top m share a group, and only a few more than m values pass it.
    """
    b, n = sims.shape
    g = max(m, min(n, 5 * m + 12))
    w = n // g
    top = sims[:, : w * g].reshape(b, w, g).max(axis=1)
    rest = n - w * g
    if rest:
        np.maximum(top[:, :rest], sims[:, w * g :], out=top[:, :rest])
    return np.partition(top, -m, axis=1)[:, -m]


def _pad(
    r: NDArray[np.int64], vals: NDArray[np.float32], cols: NDArray[np.int64], b: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Row-sorted (row, value, column) triplets -> (b, w) values (-inf pad), columns (-1 pad)."""
    counts = np.bincount(r, minlength=b)
    width = int(counts.max()) if len(r) else 0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(r)) - starts[r]
    out_vals = np.full((b, width), -np.inf, np.float32)
    out_cols = np.full((b, width), -1, np.int64)
    out_vals[r, slot] = vals
    out_cols[r, slot] = cols
    return out_vals, out_cols


def _similarities(
    emb: Embeddings, rows: NDArray[np.int64], banned: NDArray[np.int64]
) -> NDArray[np.float32]:
    """float32 cosine of rows (b,) against every movie (b, n); banned columns and self -inf."""
    sims = emb.vectors[rows] @ emb.vectors.T
    if len(banned):
        sims[:, banned] = -np.inf
    sims[np.arange(len(rows)), rows] = -np.inf
    return sims


def _propose_exact(
    emb: Embeddings, rows: NDArray[np.int64], banned: NDArray[np.int64], m: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """`_select` over the full float32 rows, a few hundred rows at a time so the (rows, n)
    block stays small (about _BLOCK_ELEMENTS floats). Shapes as `_select`."""
    n = len(emb.movie_ids)
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    parts = [
        _select(_similarities(emb, rows[s : s + step], banned), m)
        for s in range(0, len(rows), step)
    ]
    width = max((p[0].shape[1] for p in parts), default=0)
    cands = np.concatenate(
        [np.pad(c, ((0, 0), (0, width - c.shape[1])), constant_values=-1) for c, _ in parts]
    ) if parts else np.empty((0, 0), np.int64)
    floor = np.concatenate([f for _, f in parts]) if parts else np.empty(0)
    return cands, floor


def _rank_full(
    emb: Embeddings, rows: NDArray[np.int64], eligible: NDArray[np.bool_], k: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Top-k of `rows` (u,) against every eligible movie: (u, k) each, exact scores."""
    cands, _ = _propose_exact(emb, rows, np.flatnonzero(~eligible), k)
    return rank(emb.movie_ids, cands, pair_scores(emb.vectors, rows, cands), k)


def finish(
    emb: Embeddings,
    rows: NDArray[np.int64],
    cands: NDArray[np.int64],
    floor: NDArray[np.float64],
    eligible: NDArray[np.bool_],
    k: int,
) -> tuple[NDArray[np.int64], NDArray[np.float32], int]:
    """Exact scores and order for proposed candidates; rows whose k-th place is not proven
    by the pool (k-th score within EDGE_TOLERANCE of `floor`) are re-scored against every
    eligible movie. A floor of -inf (no bound: an approximate pool) re-scores only rows with
    fewer than k candidates. Returns neighbour rows (b, k), scores (b, k), and the number
    re-scored.
    """
    top, scores = rank(emb.movie_ids, cands, pair_scores(emb.vectors, rows, cands), k)
    unproven = np.flatnonzero(scores[:, -1] <= floor + EDGE_TOLERANCE)
    if len(unproven):
        top[unproven], scores[unproven] = _rank_full(emb, rows[unproven], eligible, k)
    return top, scores, len(unproven)


def exact_proposer(emb: Embeddings, eligible: NDArray[np.bool_], pool: int) -> Proposer:
    """Candidates from a float32 matrix product against every movie: for each query, every
    eligible movie within SELECT_TOLERANCE of its `pool`-th best float32 score (so ties and
    near-ties at the edge come along and the pool is always proven). Pass pool = k: a margin
    only adds candidates to score.
    """
    banned = np.flatnonzero(~eligible)

    def propose(rows: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        return _propose_exact(emb, rows, banned, pool)

    return propose


def lancedb_proposer(emb: Embeddings, eligible: NDArray[np.bool_], pool: int, table) -> Proposer:
    """Candidates from one LanceDB batch search per block of queries (cosine, flat scan)."""

    def propose(rows: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        ids, sims = batch_search(table, emb.vectors[rows], pool + 1)
        found = ids >= 0
        cands = np.searchsorted(emb.movie_ids, np.where(found, ids, emb.movie_ids[0]))
        # a short answer means LanceDB returned every movie: nothing was left out
        floor = np.where(found.all(axis=1), sims.min(axis=1), -np.inf)
        keep = found & eligible[cands] & (cands != rows[:, None])
        return np.where(keep, cands, -1), floor

    return propose


class _Probed:
    """A LanceDB table whose every vector search probes `nprobes` IVF partitions (what
    `batch_search` calls on it: `search`)."""

    def __init__(self, table, nprobes: int) -> None:
        self.table, self.nprobes = table, nprobes

    def search(self, queries: NDArray[np.float32]):
        return self.table.search(queries).nprobes(self.nprobes)


def ivf_shape(movies: int) -> tuple[int, int]:
    """(partitions, partitions probed per query) of the IVF index over `movies` vectors."""
    partitions = max(1, round(float(np.sqrt(movies))))
    return partitions, max(1, int(np.ceil(IVF_PROBE_SHARE * partitions)))


def ivf_table(folder: Path, emb: Embeddings, eligible: NDArray[np.bool_]) -> _Probed:
    """A table of the eligible movies' vectors in `folder` with an IVF_FLAT cosine index
    (`ivf_shape`), searched with that many partitions probed."""
    listed = Embeddings(emb.vectors[eligible], emb.movie_ids[eligible])
    table = write_table(folder, "ivf", vector_table(listed))
    partitions, nprobes = ivf_shape(len(listed.movie_ids))
    started = time.perf_counter()
    add_ivf_index(table, partitions)
    log.info("ivf: %d partitions over %d movies in %.2f s, %d probed per query (approximate)",
             partitions, len(listed.movie_ids), time.perf_counter() - started, nprobes)
    return _Probed(table, nprobes)


def ivf_proposer(emb: Embeddings, eligible: NDArray[np.bool_], pool: int, table) -> Proposer:
    """Candidates from one IVF batch search per block of queries over `ivf_table`: each
    query's `pool` nearest among the partitions it probes. Floor -inf: the pool proves
    nothing about the partitions left unprobed, so `finish` never calls it complete."""

    def propose(rows: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        ids, _ = batch_search(table, emb.vectors[rows], pool + 1)  # + 1: the query itself
        found = ids >= 0
        cands = np.searchsorted(emb.movie_ids, np.where(found, ids, emb.movie_ids[0]))
        keep = found & eligible[cands] & (cands != rows[:, None])
        return np.where(keep, cands, -1), np.full(len(rows), -np.inf)

    return propose


@contextmanager
def proposer(
    emb: Embeddings, eligible: NDArray[np.bool_], pool: int, engine: str
) -> Iterator[Proposer]:
    """The configured engine's proposer for pools of `pool`: "exact" (its pools are always
    proven); "lancedb" over a scratch table of the vectors that lives as long as the context
    (asked for a margin more, so the pool's edge is usually proven); or "ivf", approximate
    pools from an IVF index in such a table ("exact" below IVF_MIN_MOVIES eligible movies)."""
    if engine == "ivf" and int(eligible.sum()) < IVF_MIN_MOVIES:
        log.info("ivf: %d movies, fewer than %d: exact top-k instead", eligible.sum(),
                 IVF_MIN_MOVIES)
        engine = "exact"
    if engine == "exact":
        yield exact_proposer(emb, eligible, pool)
        return
    with tempfile.TemporaryDirectory(prefix="recs-lancedb-") as tmp:
        if engine == "ivf":
            yield ivf_proposer(emb, eligible, pool, ivf_table(Path(tmp), emb, eligible))
            return
        table = write_table(Path(tmp), "staging", vector_table(emb))
        yield lancedb_proposer(emb, eligible, pool + max(16, pool // 4), table)


def topk(
    emb: Embeddings,
    k: int,
    propose: Proposer,
    eligible: NDArray[np.bool_],
    batch_size: int = 1024,
    rows: NDArray[np.int64] | None = None,
    threads: int | None = None,
) -> Iterator[Neighbors]:
    """Top-k lists for the query rows `rows` (default: every movie), one `Neighbors` per batch.

    Any range of rows can be computed on its own from the embeddings alone: shards of one
    catalog can run anywhere and be concatenated in any order.

    threads: batches computed at once (default: the BLAS thread limit in effect, e.g. the
    job's `threadpool_limits(settings.threads)`). With more than one, each batch runs on its
    own thread with single-threaded BLAS, so the numpy selection work, which is
    single-threaded, uses every core too. Results do not depend on it. While the generator
    is open, BLAS stays limited to one thread.
    """
    rows = np.arange(len(emb.movie_ids)) if rows is None else rows
    threads = blas_threads() if threads is None else threads
    batches = [rows[s : s + batch_size] for s in range(0, len(rows), batch_size)]
    rescored, started = 0, time.perf_counter()

    def one(block: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32], int]:
        cands, floor = propose(block)
        return finish(emb, block, cands, floor, eligible, k)

    if threads > 1 and len(batches) > 1:
        with ThreadPoolExecutor(threads) as pool, threadpool_limits(1, user_api="blas"):
            results = pool.map(one, batches)
            for block, (top, scores, n) in zip(batches, results, strict=True):
                rescored += n
                yield _neighbors(emb, block, top, scores)
    else:
        for block in batches:
            top, scores, n = one(block)
            rescored += n
            yield _neighbors(emb, block, top, scores)
    log.info(
        "ranked top-%d for %d movies in %.2f s (%d re-scored in full at a tied edge)",
        k, len(rows), time.perf_counter() - started, rescored,
    )


def _neighbors(
    emb: Embeddings, rows: NDArray[np.int64], top: NDArray[np.int64], scores: NDArray[np.float32]
) -> Neighbors:
    return Neighbors(emb.movie_ids[rows], np.where(top >= 0, emb.movie_ids[top], -1), scores)


def blas_threads() -> int:
    """The BLAS thread limit in effect (1 if there is no BLAS threadpool)."""
    info = threadpool_info()
    return max([i["num_threads"] for i in info if i.get("user_api") == "blas"], default=1)
