"""Second stage: re-rank each movie's SVD candidates by the people who watched both.

The SVD vectors (in LanceDB) retrieve a pool of candidates per movie; this stage orders that
pool by

    max(cos(q, c), 0) ** rerank_cos_power * (co_watchers + close_weight * close_watchers)
        / ratings(c) ** rerank_pop_power

and keeps the best k. co_watchers: people who rated both movies. close_watchers: those of them
who rated the two within `close_window` ratings of each other (in time order), the "went on to
watch" signal that a plain co-count dilutes with a user's whole history. Ratings with equal
times are ordered by movie id (`close_ties = "by_id"`) or unordered (`"unordered"`: 0 apart,
the window counted in tie groups, so nothing depends on how ties were broken; `Timeline`).
Every published pair is explainable: "N people who rated X also rated Y, M of them right
after", weighted by taste similarity, with a mild discount for blockbusters that everyone
rates. Equal scores go by
cosine, then by a fixed hash of the pair (never always toward the same movies).

Counting co-watchers is the cost at scale (25M ratings): queries are processed in blocks of
similar movies (`locality_order`, when the embeddings are passed) so each block's candidate
union is small, heavy raters are counted by bitsets (`CoWatch`), and blocks run on threads.

"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from recs.core.ranking import order_rows
from recs.core.settings import Settings
from recs.core.types import Embeddings, Neighbors, RankedNeighbors, Ratings
from recs.stages.embed import column_counts
from recs.stages.neighbors import blas_threads

log = logging.getLogger(__name__)

BLOCK = 256
# raters with this many ratings are counted by bitsets (see CoWatch)
HEAVY_RATER = 300  # measured on 25m synthetic: 1.8x faster than none, 1000 no gain
_BITS_CHUNK = 1 << 18  # uint64 words per popcount chunk (2 MiB)
_CLOSE_CHUNK = 1 << 20  # neighbouring ratings looked up per chunk (4 MiB of int32)


def watched_by(ratings: Ratings) -> sparse.csc_array:
    """Binary users x movies matrix, CSC (one column per movie), float32."""
    return _binary_columns(ratings.matrix)


def _binary_columns(matrix: sparse.csr_array) -> sparse.csc_array:
    """1.0 where `matrix` has an entry: a new CSC float32 matrix of the same shape."""
    x = matrix.tocsc(copy=True).astype(np.float32, copy=False)  # never the caller's arrays
    x.data[:] = 1.0
    return x


# a block's candidate columns once: (union (u,) ascending, inverse (b, m) positions in union)
PoolColumns = tuple[NDArray[np.int64], NDArray[np.int64]]


def pool_columns(cands: NDArray[np.int64]) -> PoolColumns:
    """The distinct columns of cands (b, m) (-1 counted as column 0) and where each one is."""
    union, inverse = np.unique(np.maximum(cands, 0), return_inverse=True)
    return union, inverse.reshape(cands.shape)


def _at_pool(
    found: NDArray, inverse: NDArray[np.int64], cands: NDArray[np.int64]
) -> NDArray[np.int32]:
    """(b, m) int32: found (b, u) per union column, picked for each candidate; -1 counts 0."""
    counts = np.take_along_axis(found, inverse, 1)
    return np.where(cands >= 0, counts, 0).astype(np.int32)


def co_counts(
    x: sparse.csc_array, rows: NDArray[np.int64], cands: NDArray[np.int64],
    columns: PoolColumns | None = None,
) -> NDArray[np.int32]:
    """Users who rated both, for query columns rows (b,) and candidate columns cands (b, m).

    Only the columns in the block's candidate union are multiplied, so the cost follows the
    pool, not the catalog. A candidate of -1 counts 0. columns: pool_columns(cands), if the
    caller has it already.
    """
    union, inverse = columns or pool_columns(cands)
    return _at_pool((x[:, rows].T @ x[:, union]).toarray(), inverse, cands)


@dataclass(frozen=True)
class CoWatch:
    """Who watched what, split for counting co-watchers of given (query, candidate) pairs.

    Heavy raters (at least `heavy` ratings) cost a sparse product the square of their
    ratings, so their part is kept as bitsets instead, one bit per heavy user:
    bits (n_movies, words) uint64, counted per pair with popcount. Everyone else stays a
    binary CSC users x movies matrix `light`, float32 (one column per movie).
    """

    light: sparse.csc_array
    bits: NDArray[np.uint64]

    @staticmethod
    def of(ratings: Ratings, heavy: int = HEAVY_RATER) -> CoWatch:
        m = ratings.matrix.tocsr()
        heavy_rows = np.flatnonzero(np.diff(m.indptr) >= heavy)
        light_rows = np.setdiff1d(np.arange(m.shape[0]), heavy_rows)
        light = _binary_columns(m[light_rows])
        words = (len(heavy_rows) + 63) // 64
        bits = np.zeros((m.shape[1], words), np.uint64)
        for start in range(0, len(heavy_rows), 4096):  # a few heavy users at a time: small
            part = m[heavy_rows[start : start + 4096]]
            user = np.repeat(np.arange(start, start + part.shape[0]), np.diff(part.indptr))
            bit = np.left_shift(np.uint64(1), (user % 64).astype(np.uint64))
            cell = part.indices.astype(np.int64) * words + user // 64
            np.bitwise_or.at(bits.reshape(-1), cell, bit)
        return CoWatch(light=light, bits=bits)

    def counts(
        self, rows: NDArray[np.int64], cands: NDArray[np.int64],
        columns: PoolColumns | None = None,
    ) -> NDArray[np.int32]:
        """Users who rated both, as `co_counts`: rows (b,), cands (b, m) -> (b, m) int32."""
        counts = co_counts(self.light, rows, cands, columns)  # 0 where cands is -1
        if not self.bits.shape[1]:
            return counts
        step = max(1, _BITS_CHUNK // max(cands.shape[1] * self.bits.shape[1], 1))
        for start in range(0, len(rows), step):
            sl = slice(start, start + step)
            both = self.bits[np.maximum(cands[sl], 0)]  # (step, m, words)
            both &= self.bits[rows[sl]][:, None, :]
            counts[sl] += np.bitwise_count(both).sum(axis=2, dtype=np.int32)
        counts[cands < 0] = 0  # a -1 was counted as column 0 above
        return counts


@dataclass(frozen=True)
class Timeline:
    """Every user's rated movies in time order, for counting who rated two movies within a few
    ratings of each other.

    Equal rating times (`ties`): "by_id" puts them in movie id order, so two movies rated in
    the same second are `d` places apart by their ids; "unordered" never orders them: the
    distance is counted between tie groups (a user's ratings with one time), so two movies in
    one group are 0 apart (close at any window), and a movie in group g is `d` from every movie
    in groups g - d and g + d. Then nothing depends on how equal times were broken.

    cols: (nnz + pad * (n_users + 1),) int32 matrix columns in watch order, user after user,
    with `pad` entries of n_movies (no movie) before each user and after the last, so looking
    up to `pad` places away never leaves a user's history. where: (nnz,) positions into cols
    (int32, int64 past 2^31), grouped by movie (column); starts: (n_movies + 1,) int64 each
    movie's run in where. "unordered" only: group (len(cols),) the tie group of each place
    (every pad entry is a group of its own, so `pad` groups away never leaves a user either),
    group_starts (groups + 1,) the first place of each group.
    """

    cols: NDArray[np.int32]
    where: NDArray[np.integer]
    starts: NDArray[np.int64]
    pad: int
    group: NDArray[np.integer] | None = None
    group_starts: NDArray[np.integer] | None = None

    @staticmethod
    def of(ratings: Ratings, pad: int, ties: str = "by_id") -> Timeline | None:
        """The timeline of `ratings` (None without rating times); ties: "by_id" or
        "unordered" (see the class doc)."""
        m = ratings.matrix
        if ratings.rated_at is None:
            return None
        n_users, n_movies = m.shape
        per_user = np.diff(m.indptr)
        order = _watch_order(m.indptr, ratings.rated_at)
        cols = np.full(m.nnz + pad * (n_users + 1), n_movies, np.int32)
        index = np.int32 if len(cols) < 2**31 else np.int64
        # padded position of rating i of the watch order: i + pad * (its user's row + 1)
        pos = np.repeat(np.arange(1, n_users + 1, dtype=index) * index(pad), per_user)
        pos += np.arange(m.nnz, dtype=index)
        cols[pos] = m.indices[order]
        group = group_starts = None
        if ties == "unordered":
            fresh = np.ones(len(cols), np.bool_)  # a place that starts a tie group
            times = np.asarray(ratings.rated_at)[order]
            first = np.zeros(m.nnz, np.bool_)
            first[m.indptr[:-1][per_user > 0]] = True  # each user's first rating
            fresh[pos[1:]] = first[1:] | (times[1:] != times[:-1])
            del times, first
            group_starts = np.r_[np.flatnonzero(fresh), len(cols)].astype(index)
            group = np.cumsum(fresh, dtype=index)
            group -= 1
            del fresh
        elif ties != "by_id":
            raise ValueError(f"ties must be 'by_id' or 'unordered', not {ties!r}")
        # the same positions, in the CSR's own (row, column) order, then grouped by column
        at = np.empty_like(pos)
        at[order] = pos
        del order, pos
        by_movie = sparse.csr_array((at, m.indices, m.indptr), shape=m.shape).tocsc()
        return Timeline(cols=cols, where=by_movie.data, starts=by_movie.indptr.astype(np.int64),
                        pad=pad, group=group, group_starts=group_starts)

    def counts(
        self, rows: NDArray[np.int64], cands: NDArray[np.int64], window: int,
        columns: PoolColumns | None = None,
    ) -> NDArray[np.int32]:
        """Users who rated query column rows[i] and candidate column cands[i, j] at most
        `window` (<= pad) ratings apart: rows (b,), cands (b, m) (-1: none) -> (b, m) int32.
        columns: pool_columns(cands), if the caller has it already."""
        union, inverse = columns or pool_columns(cands)
        slot = np.full(self.starts.shape[0], -1, np.int64)  # n_movies + 1: the pad maps to -1
        slot[union] = np.arange(len(union))
        return _at_pool(self._near(rows, slot, len(union), window), inverse, cands)

    def rows(self, rows: NDArray[np.int64], window: int) -> NDArray[np.int64]:
        """`counts` against every movie: (b,) query columns -> (b, n_movies)."""
        n_movies = self.starts.shape[0] - 1
        slot = np.r_[np.arange(n_movies), -1]
        return self._near(rows, slot, n_movies, window)

    def _near(
        self, rows: NDArray[np.int64], slot: NDArray[np.int64], n_slots: int, window: int
    ) -> NDArray[np.int64]:
        """(b, n_slots): per query column, users with movie c at most `window` ratings away,
        counted at slot[c] (-1: not counted)."""
        if window > self.pad:  # further would read into the next user's history
            raise ValueError(f"window {window} exceeds the timeline's padding {self.pad}")
        b = len(rows)
        lo, hi = self.starts[rows], self.starts[rows + 1]
        cell_type = np.int32 if b * n_slots < 2**31 else np.int64
        slot = slot.astype(cell_type)
        owner = np.repeat(np.arange(b, dtype=cell_type) * cell_type(n_slots), hi - lo)
        at = self.where[_ranges(lo, hi)]
        if self.group is not None:
            cells = self._near_groups(at, owner, slot, window)
        else:  # offset 0 (the place itself) is never looked up
            offsets = np.r_[-window:0, 1 : window + 1]
            step = max(1, _CLOSE_CHUNK // max(len(offsets), 1))
            cells = []
            for start in range(0, len(at), step):
                near = slot[self.cols[at[start : start + step, None] + offsets]]
                near += owner[start : start + step, None]
                cells.append(near[near >= owner[start : start + step, None]])  # slot -1: dropped
        found = np.bincount(np.concatenate(cells) if cells else np.zeros(0, cell_type),
                            minlength=b * n_slots).reshape(b, n_slots)
        if self.group is not None:  # each place counted itself once: the query movie, per user
            own = slot[rows]
            mine = own >= 0
            found[np.flatnonzero(mine), own[mine]] -= (hi - lo)[mine]
        return found

    def _near_groups(
        self, at: NDArray[np.integer], owner: NDArray[np.integer], slot: NDArray[np.integer],
        window: int,
    ) -> list[NDArray[np.integer]]:
        """The cells of `_near` with ties unordered: every place of the tie groups at most
        `window` groups from each place in `at`, the place itself included (`_near` takes it
        off the counts: it is the query movie, once per user who rated it)."""
        g = self.group[at].astype(np.int64)
        first = self.group_starts[g - window].astype(np.int64)
        last = self.group_starts[g + window + 1].astype(np.int64)
        reach = np.cumsum(last - first)
        cells, start = [], 0
        while start < len(at):  # chunks of about _CLOSE_CHUNK places looked up
            base = reach[start - 1] if start else 0
            stop = max(int(np.searchsorted(reach, base + _CLOSE_CHUNK, "right")), start + 1)
            sl = slice(start, stop)
            near = slot[self.cols[_ranges(first[sl], last[sl])]]
            mine = np.repeat(owner[sl], last[sl] - first[sl])
            near += mine
            cells.append(near[near >= mine])  # slot -1: dropped
            start = stop
        return cells


def _watch_order(indptr: NDArray, rated_at: NDArray[np.int64]) -> NDArray[np.int64]:
    """The permutation of a CSR's values (sorted columns within rows) into watch order: row by
    row, by time, equal times by column. rated_at: (nnz,) aligned with the values."""
    n_users = len(indptr) - 1
    if not len(rated_at):
        return np.zeros(0, np.int64)
    low = int(rated_at.min())
    if int(rated_at.max()) - low < 2**32 and n_users < 2**31:  # one int64 key, in place
        key = np.repeat(np.arange(n_users, dtype=np.int64) << 32, np.diff(indptr))
        key += rated_at
        key -= low
        return np.argsort(key, kind="stable")  # stable: equal times keep column order
    row = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(indptr))
    return np.lexsort((rated_at, row))


def _ranges(lo: NDArray[np.int64], hi: NDArray[np.int64]) -> NDArray[np.int64]:
    """The concatenation of arange(lo[i], hi[i]) over i (hi >= lo)."""
    lengths = hi - lo
    run_start = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(lo - run_start, lengths)


def locality_order(vectors: NDArray[np.float32], leaf: int) -> NDArray[np.int64]:
    """A permutation of the rows of `vectors` (n, dim) that puts similar vectors together:
    split at the median of the widest coordinate, recursively, down to `leaf` rows.

    Consecutive `leaf` rows are then near each other, so their candidate pools overlap and a
    block's union of candidates is a few times smaller than in id order.
    """
    out, stack = [], [np.arange(len(vectors))]
    while stack:
        idx = stack.pop()
        if len(idx) <= leaf:
            out.append(idx)
            continue
        sub = vectors[idx]
        axis = int(np.argmax(sub.var(axis=0)))
        idx = idx[np.argsort(sub[:, axis], kind="stable")]
        half = len(idx) // 2
        stack += [idx[half:], idx[:half]]
    return np.concatenate(out) if out else np.arange(0)


@dataclass(frozen=True)
class Counts:
    """Everything the re-rank reads, built once per run and shared read-only by every range of
    query movies (a cluster ships it once). movie_ids: (n_movies,) int64 ascending, the
    matrix's columns; support: (n_movies,) int64 ratings per movie; timeline: None when the
    close term is off or rating times are unknown."""

    movie_ids: NDArray[np.int64]
    watch: CoWatch
    timeline: Timeline | None
    support: NDArray[np.int64]

    @staticmethod
    def of(ratings: Ratings, settings: Settings) -> Counts:
        window = settings.close_window if settings.close_weight > 0 else 0
        return Counts(
            movie_ids=ratings.movie_ids,
            watch=CoWatch.of(ratings),
            timeline=Timeline.of(ratings, window, settings.close_ties) if window else None,
            support=column_counts(ratings.matrix),
        )


def rerank(
    counts: Counts,
    candidates: Neighbors,
    k: int,
    settings: Settings,
    emb: Embeddings | None = None,
    threads: int | None = None,
) -> RankedNeighbors:
    """The best k of each movie's candidate pool by the co-watch score (see module doc).

    candidates: pools from `neighbors.topk` with k = pool (neighbor_ids -1 where short),
    scores = cosine. Deterministic and independent per query movie: shard freely.
    emb: the embeddings the pools came from, only to order the work (queries with similar
    vectors share candidates, which makes the co-watch counts several times cheaper); the
    result does not depend on it. threads: blocks of queries re-ranked at once (default: the
    BLAS thread limit in effect, as `neighbors.topk`); the result does not depend on it.
    """
    started = time.perf_counter()
    watch, timeline = counts.watch, counts.timeline
    window = settings.close_window if timeline is not None and settings.close_weight > 0 else 0
    pop = counts.support.astype(np.float64)
    movie_ids = counts.movie_ids
    q_cols = np.searchsorted(movie_ids, candidates.movie_ids)
    n, m = candidates.neighbor_ids.shape
    ids = np.full((n, k), -1, np.int64)
    scores = np.full((n, k), -np.inf, np.float32)
    cosine = np.full((n, k), -np.inf, np.float32)
    co = np.zeros((n, k), np.int32)
    close = np.zeros((n, k), np.int32)
    if emb is not None and n > BLOCK:
        work = locality_order(emb.vectors[np.searchsorted(emb.movie_ids, candidates.movie_ids)],
                              BLOCK)
    else:
        work = np.arange(n)

    def one(sl: NDArray[np.int64]) -> None:  # rows `sl` of the outputs, nothing shared
        cand_ids = candidates.neighbor_ids[sl]
        valid = cand_ids >= 0
        cands = np.where(valid, np.searchsorted(movie_ids, cand_ids), -1)
        columns = pool_columns(cands)  # shared by both counts
        counts = watch.counts(q_cols[sl], cands, columns)
        near = (timeline.counts(q_cols[sl], cands, window, columns) if window
                else np.zeros_like(counts))
        cos = candidates.scores[sl].astype(np.float64)
        discount = pop[np.maximum(cands, 0)] ** settings.rerank_pop_power
        watchers = counts + settings.close_weight * near
        score = np.maximum(cos, 0.0) ** settings.rerank_cos_power * watchers / discount
        score = np.where(valid, score, -np.inf)
        order = order_rows(candidates.movie_ids[sl], cand_ids, score, cos)[:, :k]
        kk = order.shape[1]
        picked = np.take_along_axis(cand_ids, order, 1)
        ids[sl, :kk] = np.where(np.take_along_axis(valid, order, 1), picked, -1)
        scores[sl, :kk] = np.take_along_axis(score, order, 1)
        cosine[sl, :kk] = np.take_along_axis(cos, order, 1)
        co[sl, :kk] = np.take_along_axis(counts, order, 1)
        close[sl, :kk] = np.take_along_axis(near, order, 1)

    blocks = [work[s : s + BLOCK] for s in range(0, n, BLOCK)]
    threads = blas_threads() if threads is None else threads
    if threads > 1 and len(blocks) > 1:  # scipy's sparse product releases the GIL
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, blocks))
    else:
        for sl in blocks:
            one(sl)
    missing = ids < 0
    scores[missing], cosine[missing], co[missing], close[missing] = -np.inf, -np.inf, 0, 0
    log.info("re-ranked %d pools of %d in %.2f s", n, m, time.perf_counter() - started)
    return RankedNeighbors(
        movie_ids=candidates.movie_ids, neighbor_ids=ids, scores=scores,
        cosine=cosine, co_watchers=co, close_watchers=close,
    )
