"""Second stage: re-rank each movie's SVD candidates by the people who watched both.

The SVD vectors (in LanceDB) retrieve a pool of candidates per movie; this stage orders that
pool by

    max(cos(q, c), 0) ** rerank_cos_power
        * (co_watchers + close_weight * close_watchers + next_weight * next_watchers)
        / ratings(c) ** rerank_pop_power

and keeps the best k. co_watchers: people who rated both movies. close_watchers: those of them
who rated the two within `close_window` ratings of each other (in time order), the "went on to
watch" signal that a plain co-count dilutes with a user's whole history. next_watchers: those
who rated c 1 to `next_window` ratings after q, the direction of "what did people watch next".
The pool is the SVD's nearest `pool` movies plus the `next_pool` movies with most next
watchers that the SVD pool lacks: a movie people watch next is a candidate even when its
vector is far. Ratings with equal times are ordered by movie id (`close_ties = "by_id"`) or
unordered (`"unordered"`: 0 apart, the window counted in tie groups, never next to each other,
so nothing depends on how ties were broken; `Timeline`). Every published pair is explainable:
"N people who rated X also rated Y, M of them right after, L of them next", weighted by taste
similarity, with a mild discount for blockbusters that everyone rates. Equal scores go by
cosine, then by a fixed hash of the pair (never always toward the same movies).

Counting is the cost at scale (25M ratings, 6M pairs). `CoWatch` counts both numbers of a pair
in one pass: each distinct pair once, the raters of its less rated movie looked up in a mark
of the more rated one's raters that holds where each of them rated it in her history; a pair
costs the smaller of its two rating counts, whatever the order of the queries. Groups of pairs
run on threads. `Timeline` and `co_counts` count the same numbers the direct way (the
baselines and the tests use them). Next watchers come from the `Timeline`, a block of queries
at a time: the movies in the `next_window` places after each of the queries' ratings, counted
per (query, movie) by one sort.

"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from recs.core.arrays import distinct, distinct_counts
from recs.core.ranking import order_rows, tie_hash
from recs.core.settings import Settings
from recs.core.types import Embeddings, Neighbors, RankedNeighbors, Ratings
from recs.stages.embed import column_counts
from recs.stages.neighbors import blas_threads, pair_scores

log = logging.getLogger(__name__)

BLOCK = 256  # queries scored at once
_ID_TABLE = 1 << 24  # movie ids below this map to columns through a table (64 MiB at most)
_LOOKUPS = 1 << 22  # raters looked up per chunk of pairs (CoWatch): 32 MiB of copied rows
_CLOSE_CHUNK = 1 << 20  # neighbouring ratings looked up per chunk (4 MiB of int32)
_SMALL_KEYS = 1 << 32  # `Timeline.after` keys below this are uint32
_NEXT_LOOKUPS = 1 << 19  # ratings of the queries one `Timeline.after` call looks past


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


_NOT_RATED = -(1 << 29)  # a mark's place where the hub was not rated: never near a real one


@dataclass(frozen=True)
class CoWatch:
    """Who watched what and when, for counting the co-watchers and close watchers of given
    (query, candidate) pairs.

    raters: (n_movies, n_users) CSR, sorted indices (each movie's raters); its values are
    where the rater rated the movie in her history (`history_places`, from 1), or 1 when
    there are no places (no rating times, or the close term off). support: (n_movies,) int64
    raters per movie. timed: whether the values are places.

    A pair is counted from its more rated movie, the hub: the hub's raters are marked in a
    dense row of n_users holding their places (small enough to stay in cache), and the raters
    of the other movie are looked up there. A rater found is a co-watcher; one whose two places
    are at most the window apart is a close watcher. A pair costs the smaller of its two rating
    counts, and every pair of one hub is looked up while it is marked.
    """

    raters: sparse.csr_array
    support: NDArray[np.int64]
    timed: bool

    @staticmethod
    def of(
        ratings: Ratings, ties: str | None = None, order: NDArray[np.int64] | None = None
    ) -> CoWatch:
        """ties: how `history_places` orders equal times ("by_id" or "unordered"); None, or
        ratings without times: no places (close watchers cannot be counted). order:
        `watch_order` of ratings, if the caller has it."""
        by_user = ratings.matrix
        timed = ties is not None and ratings.rated_at is not None
        values = (history_places(ratings, ties, order) if timed
                  else np.ones(by_user.nnz, np.int32))
        raters = sparse.csr_array((values, by_user.indices, by_user.indptr),
                                  shape=by_user.shape).T.tocsr()  # sorted indices
        return CoWatch(raters=raters, support=np.diff(raters.indptr).astype(np.int64),
                       timed=timed)

    def counts(
        self, rows: NDArray[np.int64], cands: NDArray[np.int64], window: int = 0,
        threads: int = 1,
    ) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
        """Co-watchers and close watchers (at most `window` apart; 0: none counted, as
        without places), for query columns rows (b,) and candidate columns cands (b, m)
        (-1: none, counts 0) -> two (b, m) int32. A movie is never close to itself.
        threads: groups of pairs counted at once; the counts do not depend on it."""
        valid = cands >= 0
        query = np.broadcast_to(np.asarray(rows, np.int64)[:, None], cands.shape)[valid]
        cand = cands[valid].astype(np.int64)
        support = self.support
        # the hub of a pair: the more rated movie, equal counts by the higher column
        flip = (support[cand] > support[query]) | (
            (support[cand] == support[query]) & (cand > query)
        )
        n_movies = np.int64(len(support))
        keys = np.where(flip, cand, query) * n_movies + np.where(flip, query, cand)
        del query, cand, flip
        pairs, where = np.unique(keys, return_inverse=True)  # sorted by hub, each pair once
        del keys
        hub, other = pairs // n_movies, pairs % n_movies
        together, near = self._pair_counts(hub, other, window if self.timed else 0, threads)
        near[hub == other] = 0
        co, close = np.zeros(cands.shape, np.int32), np.zeros(cands.shape, np.int32)
        co[valid], close[valid] = together[where.ravel()], near[where.ravel()]
        return co, close

    def _pair_counts(
        self, hub: NDArray[np.int64], other: NDArray[np.int64], window: int, threads: int,
    ) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
        """(co-watchers, close watchers) of each pair (hub[i], other[i]), (p,) with hub
        ascending -> two (p,) int32. Chunks of about `_LOOKUPS` lookups (a hub with more is
        cut), split into `threads` runs of about equal lookups, each run with its own mark."""
        together, near = np.zeros(len(hub), np.int32), np.zeros(len(hub), np.int32)
        if not len(hub):
            return together, near
        lookups = np.cumsum(self.support[other])
        # stretches of pairs with one hub; a hub with more than _LOOKUPS lookups is cut into
        # several, so no chunk copies many more than _LOOKUPS raters (memory)
        bounds = distinct(np.r_[np.flatnonzero(np.r_[True, hub[1:] != hub[:-1]]), len(hub),
                                np.flatnonzero(np.diff(lookups // _LOOKUPS)) + 1])
        done = lookups[bounds[1:] - 1]  # lookups up to each run's end
        cuts = np.searchsorted(done, np.arange(_LOOKUPS, done[-1], _LOOKUPS)) + 1
        chunks = distinct(np.r_[0, np.minimum(cuts, len(done)), len(done)])  # stretches
        share = np.searchsorted(done[chunks[1:] - 1], np.arange(1, threads) * done[-1] / threads)
        runs = [run for run in np.array_split(np.arange(len(chunks) - 1), np.unique(share + 1))
                if len(run)]

        def count_run(run: NDArray[np.int64]) -> None:
            mark = np.full(self.raters.shape[1], _NOT_RATED, self.raters.dtype)
            for a, b in zip(chunks[run], chunks[run + 1], strict=True):
                pairs = slice(bounds[a], bounds[b])
                looked = self.raters[other[pairs]]  # the other movies' raters, row by row
                theirs = self._look_up(mark, hub, bounds[a : b + 1], looked)
                starts = looked.indptr[:-1]
                together[pairs] = np.add.reduceat(theirs != _NOT_RATED, starts, dtype=np.int32)
                if window:  # |theirs - mine| <= window as one unsigned comparison
                    theirs -= looked.data
                    theirs += window
                    unsigned = theirs.view(f"u{theirs.itemsize}")
                    near[pairs] = np.add.reduceat(unsigned <= 2 * window, starts, dtype=np.int32)

        if threads > 1 and len(runs) > 1:
            with ThreadPoolExecutor(len(runs)) as pool:
                list(pool.map(count_run, runs))
        else:
            for run in runs:
                count_run(run)
        return together, near

    def _look_up(
        self, mark: NDArray, hub: NDArray[np.int64], bounds: NDArray[np.int64],
        looked: sparse.csr_array,
    ) -> NDArray:
        """The hub's place (or _NOT_RATED) for each rater in `looked` (the rows of the pairs
        bounds[0]:bounds[-1], one hub per run bounds[i]:bounds[i + 1]), each hub marked in
        `mark` (n_users,) while its pairs are looked up; `mark` is left as it came."""
        users, places = self.raters.indices, self.raters.data
        hubs = hub[bounds[:-1]]
        first, last = self.raters.indptr[hubs].tolist(), self.raters.indptr[hubs + 1].tolist()
        row = looked.indptr[bounds - bounds[0]].tolist()
        theirs = np.empty(looked.nnz, self.raters.dtype)
        for i in range(len(first)):  # python ints: the loop runs once per hub
            raters = users[first[i] : last[i]]
            mark[raters] = places[first[i] : last[i]]
            mark.take(looked.indices[row[i] : row[i + 1]], out=theirs[row[i] : row[i + 1]],
                      mode="clip")  # every index is a user: no check needed
            mark[raters] = _NOT_RATED
        return theirs


def history_places(
    ratings: Ratings, ties: str = "by_id", order: NDArray[np.int64] | None = None
) -> NDArray[np.int32]:
    """Where each rating stands in its rater's history, from 1, (nnz,) aligned with
    ratings.matrix.data; only differences within one rater mean anything. order:
    `watch_order(ratings)`, if the caller has it.

    ties "by_id": the place in time order, equal times by movie id (as `Timeline`);
    "unordered": the place of the rating's time among the rater's distinct times, so ratings
    with one time share a place and the distance between two ratings is counted in tie
    groups. int32 below 2^28 ratings, else int64.
    """
    if ties not in ("by_id", "unordered"):
        raise ValueError(f"ties must be 'by_id' or 'unordered', not {ties!r}")
    m = ratings.matrix
    order = watch_order(ratings) if order is None else order
    kind = np.int32 if m.nnz < 2**28 else np.int64
    if ties == "unordered":
        times = np.asarray(ratings.rated_at)[order]
        fresh = np.ones(m.nnz, np.bool_)  # a rating that starts a tie group
        fresh[1:] = times[1:] != times[:-1]
        del times
        ranked = np.cumsum(fresh, dtype=kind)
    else:
        ranked = np.arange(1, m.nnz + 1, dtype=kind)
    places = np.empty(m.nnz, kind)
    places[order] = ranked
    return places


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
    def of(
        ratings: Ratings, pad: int, ties: str = "by_id", order: NDArray[np.int64] | None = None
    ) -> Timeline | None:
        """The timeline of `ratings` (None without rating times); ties: "by_id" or
        "unordered" (see the class doc); order: `watch_order(ratings)`, if the caller has
        it."""
        m = ratings.matrix
        if ratings.rated_at is None:
            return None
        n_users, n_movies = m.shape
        per_user = np.diff(m.indptr)
        order = watch_order(ratings) if order is None else order
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

    def after(
        self, rows: NDArray[np.int64], window: int
    ) -> tuple[NDArray[np.integer], NDArray[np.int32]]:
        """Next watchers of query columns rows (b,) against every movie, sparse: users who
        rated movie c 1 to `window` (<= pad) places after rows[i] (ties unordered: in the
        `window` tie groups after the query's own, never in it). Returns keys (p,)
        ascending, i * n_movies + c (uint32 when b * n_movies fits, else int64), and their
        counts (p,) int32; pairs counting 0 are left out."""
        if window > self.pad:  # further would read into the next user's history
            raise ValueError(f"window {window} exceeds the timeline's padding {self.pad}")
        n_movies = self.starts.shape[0] - 1
        lo, hi = self.starts[rows], self.starts[rows + 1]
        at = self.where[_ranges(lo, hi)].astype(np.int64)
        kind = np.uint32 if len(rows) * n_movies < _SMALL_KEYS else np.int64  # sorts faster
        owner = np.repeat(np.arange(len(rows), dtype=kind) * kind(n_movies), hi - lo)
        if self.group is not None:
            g = self.group[at].astype(np.int64)
            first = self.group_starts[g + 1].astype(np.int64)
            last = self.group_starts[g + window + 1].astype(np.int64)
            cells = self.cols[_ranges(first, last)]
            owner = np.repeat(owner, last - first)
        else:
            cells = self.cols[at[:, None] + np.arange(1, window + 1)].ravel()
            owner = np.repeat(owner, window)
        real = cells < n_movies  # the pad holds no movie
        owner = owner[real]
        owner += cells[real].astype(kind)
        return distinct_counts(owner)

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
        cells = []
        for sl in row_blocks(last - first, _CLOSE_CHUNK, most=len(at)):  # _CLOSE_CHUNK places
            near = slot[self.cols[_ranges(first[sl], last[sl])]]
            mine = np.repeat(owner[sl], last[sl] - first[sl])
            near += mine
            cells.append(near[near >= mine])  # slot -1: dropped
        return cells


def watch_order(ratings: Ratings) -> NDArray[np.int64]:
    """The permutation of ratings.matrix's values (sorted columns within rows) into watch
    order: user by user, by time, equal times by column (needs ratings.rated_at)."""
    indptr, rated_at = ratings.matrix.indptr, np.asarray(ratings.rated_at)
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


@dataclass(frozen=True)
class Counts:
    """Everything the re-rank reads, built once per run and shared read-only by every range of
    query movies (a cluster ships it once). movie_ids: (n_movies,) int64 ascending, the
    matrix's columns; support: (n_movies,) int64 ratings per movie; watch: without places
    when the close term is off or rating times are unknown; timeline: for the next watchers
    (None when they are off or rating times are unknown)."""

    movie_ids: NDArray[np.int64]
    watch: CoWatch
    support: NDArray[np.int64]
    timeline: Timeline | None = None

    @staticmethod
    def of(ratings: Ratings, settings: Settings) -> Counts:
        ties = settings.close_ties if settings.close_weight > 0 else None
        nexts = next_on(settings)
        timed = ratings.rated_at is not None and (ties is not None or nexts)
        order = watch_order(ratings) if timed else None  # one sort for both
        return Counts(
            movie_ids=ratings.movie_ids,
            watch=CoWatch.of(ratings, ties, order),
            support=column_counts(ratings.matrix),
            timeline=(Timeline.of(ratings, settings.next_window, settings.close_ties, order)
                      if nexts else None),
        )


def next_on(settings: Settings) -> bool:
    """Whether the next watchers count: in the score, or to widen the pools."""
    return settings.next_weight > 0 or settings.next_pool > 0


def listed(support: NDArray[np.int64], settings: Settings) -> NDArray[np.bool_]:
    """The movies with at least settings.min_support ratings, from their (n_movies,) counts:
    the movies that get a list and the only ones listed."""
    return support >= settings.min_support


def columns_of(movie_ids: NDArray[np.int64], ids: NDArray[np.int64]) -> NDArray[np.int64]:
    """The matrix column of each id in `ids` (any shape; each one of movie_ids, ascending, or
    -1, which maps to column 0): a table lookup when the ids are small (MovieLens), else a
    binary search, which costs a cache miss per level on 6M ids."""
    top = int(movie_ids[-1]) if len(movie_ids) else 0
    if top >= _ID_TABLE:
        return np.searchsorted(movie_ids, ids)
    table = np.zeros(top + 1, np.int32)
    table[movie_ids] = np.arange(len(movie_ids), dtype=np.int32)
    return table[np.clip(ids, 0, top)].astype(np.int64)


def best_k(
    query_ids: NDArray[np.int64], cand_ids: NDArray[np.int64], score: NDArray[np.float64],
    cos: NDArray[np.float64], k: int,
) -> NDArray[np.int64]:
    """`order_rows(query_ids, cand_ids, score, cos)[:, :k]`: the positions (b, min(k, m)) of
    each row's k best columns, without ordering the rest.

    Rows where exactly k columns score at least the k-th best order just those k; a row whose
    k-th score is tied beyond the k-th place (or with fewer than k finite scores) is ordered
    whole, as order_rows does.
    """
    b, m = score.shape
    if k >= m:
        return order_rows(query_ids, cand_ids, score, cos)
    part = np.argpartition(-score, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(score, part, 1).min(axis=1)
    plain = (score >= kth[:, None]).sum(axis=1) == k  # those k columns, and no tie beyond
    out = np.empty((b, k), np.int64)
    rows = np.flatnonzero(plain)
    cols = part[rows]
    picked = (np.take_along_axis(a[rows], cols, 1) for a in (cand_ids, score, cos))
    out[rows] = np.take_along_axis(cols, order_rows(query_ids[rows], *picked), 1)
    rows = np.flatnonzero(~plain)
    out[rows] = order_rows(query_ids[rows], cand_ids[rows], score[rows], cos[rows])[:, :k]
    return out


_CAPPED = 64  # next-watcher counts told apart when choosing each row's n-th best


def row_blocks(weights: NDArray[np.integer], cap: int, most: int = BLOCK) -> list[slice]:
    """Consecutive slices of rows, each of at most `most` rows and at most `cap` total weight
    (or one row), covering all len(weights) rows in order."""
    ends = np.cumsum(weights)
    bounds = [0]
    while bounds[-1] < len(weights):
        start = bounds[-1]
        fits = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + cap, "right"))
        bounds.append(min(max(fits, start + 1), start + most))
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def next_counts(
    keys: NDArray[np.integer], counts: NDArray[np.int32], cands: NDArray[np.int64],
    n_movies: int,
) -> NDArray[np.int32]:
    """The count of each (row i, column cands[i, j]) in the sparse `Timeline.after` result
    (keys i * n_movies + c): (b, m) int32, 0 where absent or cands is -1."""
    want = np.arange(len(cands), dtype=np.int64)[:, None] * n_movies + np.maximum(cands, 0)
    at, hit = _find(keys, want.astype(keys.dtype))
    return np.where(hit & (cands >= 0), counts[at] if len(keys) else 0, 0).astype(np.int32)


def _find(keys: NDArray, want: NDArray) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Where each of `want` is in `keys` (ascending, same dtype), and whether it is there."""
    if not len(keys):
        return np.zeros(want.shape, np.int64), np.zeros(want.shape, np.bool_)
    at = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    return at, keys[at] == want


def next_pool(
    keys: NDArray[np.integer], counts: NDArray[np.int32], cands: NDArray[np.int64],
    query_ids: NDArray[np.int64], movie_ids: NDArray[np.int64], allowed: NDArray[np.bool_],
    n: int,
) -> NDArray[np.int64]:
    """Each query's `n` movies with most next watchers that its pool lacks.

    keys, counts: `Timeline.after` of the queries query_ids (b,); cands: (b, m) the pool's
    columns (-1: none); allowed: (n_movies,) may be listed. Returns (b, n) columns with at
    least one next watcher, never one in cands; equal counts go by the pair hash (as
    `order_rows`); -1 where fewer.
    """
    b, n_movies = len(cands), len(movie_ids)
    owner, col = np.divmod(keys, keys.dtype.type(n_movies))
    keep = allowed[col]
    pooled = (np.arange(b, dtype=np.int64)[:, None] * n_movies + cands)[cands >= 0]
    at, hit = _find(keys, pooled.astype(keys.dtype))
    keep[at[hit]] = False
    owner, col, counts = owner[keep].astype(np.int64), col[keep].astype(np.int64), counts[keep]
    # each row's n-th count from a histogram of capped counts: only what is above it or tied
    # with it is ordered by the pair hash
    capped = np.minimum(counts, _CAPPED)
    at_least = np.bincount(owner * (_CAPPED + 1) + capped, minlength=b * (_CAPPED + 1))
    at_least = np.cumsum(at_least.reshape(b, _CAPPED + 1)[:, ::-1], axis=1)[:, ::-1]
    nth = (at_least >= n).sum(axis=1) - 1  # the highest count with n at or above it; -1: all
    keep = capped >= nth[owner]
    owner, col, counts = owner[keep], col[keep], counts[keep]
    by = np.lexsort((tie_hash(query_ids[owner], movie_ids[col]), -counts, owner))
    owner, col = owner[by], col[by]
    place = np.arange(len(owner)) - np.searchsorted(owner, owner)  # rank within the row
    out = np.full((b, n), -1, np.int64)
    first = place < n
    out[owner[first], place[first]] = col[first]
    return out


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
    emb: the vectors the pools came from (rows in the order of counts.movie_ids), for the
    cosine of the `next_pool` candidates; needed when those are on. threads: work done at
    once (default: the BLAS thread limit in effect, as `neighbors.topk`); the result does not
    depend on it.
    """
    started = time.perf_counter()
    window = settings.close_window if settings.close_weight > 0 else 0
    # counts built for wider settings (the tuner's) may carry a timeline these leave unused
    timeline = counts.timeline if next_on(settings) else None
    extra = settings.next_pool if timeline is not None else 0
    if extra and emb is None:
        raise ValueError("next_pool adds candidates: rerank needs their embeddings (emb)")
    pop = counts.support.astype(np.float64)
    movie_ids = counts.movie_ids
    q_cols = columns_of(movie_ids, candidates.movie_ids)
    n, m = candidates.neighbor_ids.shape
    threads = blas_threads() if threads is None else threads

    def run(work: Callable[[slice], None], blocks: list[slice]) -> None:
        if threads > 1 and len(blocks) > 1:  # numpy's sorts and gathers release the GIL
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(work, blocks))
        else:
            for sl in blocks:
                work(sl)

    every_cand = np.full((n, m + extra), -1, np.int64)
    every_cand[:, :m] = np.where(candidates.neighbor_ids >= 0,
                                 columns_of(movie_ids, candidates.neighbor_ids), -1)
    every_cos = np.full((n, m + extra), -np.inf, np.float32)
    every_cos[:, :m] = candidates.scores
    every_next = np.zeros((n, m + extra), np.int32)
    allowed = listed(counts.support, settings)

    def add_next(sl: slice) -> None:  # rows `sl` of the every_* arrays, nothing shared
        keys, found = timeline.after(q_cols[sl], settings.next_window)
        if extra:
            added = next_pool(keys, found, every_cand[sl, :m], candidates.movie_ids[sl],
                              movie_ids, allowed, extra)
            every_cand[sl, m:] = added
            every_cos[sl, m:] = pair_scores(emb.vectors, q_cols[sl], added)
        every_next[sl] = next_counts(keys, found, every_cand[sl], len(movie_ids))

    # the pools' counts, then the added candidates' in a second call: half the pairs at once
    together = np.zeros((n, m + extra), np.int32)
    every_near = np.zeros((n, m + extra), np.int32)
    together[:, :m], every_near[:, :m] = counts.watch.counts(q_cols, every_cand[:, :m],
                                                             window, threads)
    if timeline is not None:
        run(add_next, row_blocks(counts.support[q_cols], _NEXT_LOOKUPS))
    if extra:
        together[:, m:], every_near[:, m:] = counts.watch.counts(q_cols, every_cand[:, m:],
                                                                 window, threads)
    every_valid = every_cand >= 0
    every_ids = np.where(every_valid, movie_ids[np.maximum(every_cand, 0)], -1)
    ids = np.full((n, k), -1, np.int64)
    scores = np.full((n, k), -np.inf, np.float32)
    cosine = np.full((n, k), -np.inf, np.float32)
    co, close, nxt = (np.zeros((n, k), np.int32) for _ in range(3))

    def one(sl: slice) -> None:  # rows `sl` of the outputs, nothing shared
        cand_ids, valid, cands = every_ids[sl], every_valid[sl], every_cand[sl]
        together_, near, later = together[sl], every_near[sl], every_next[sl]
        cos = every_cos[sl].astype(np.float64)
        discount = pop[np.maximum(cands, 0)] ** settings.rerank_pop_power
        watchers = together_ + settings.close_weight * near + settings.next_weight * later
        score = np.maximum(cos, 0.0) ** settings.rerank_cos_power * watchers / discount
        score = np.where(valid, score, -np.inf)
        order = best_k(candidates.movie_ids[sl], cand_ids, score, cos, k)
        kk = order.shape[1]
        picked = np.take_along_axis(cand_ids, order, 1)
        ids[sl, :kk] = np.where(np.take_along_axis(valid, order, 1), picked, -1)
        scores[sl, :kk] = np.take_along_axis(score, order, 1)
        cosine[sl, :kk] = np.take_along_axis(cos, order, 1)
        co[sl, :kk] = np.take_along_axis(together_, order, 1)
        close[sl, :kk] = np.take_along_axis(near, order, 1)
        nxt[sl, :kk] = np.take_along_axis(later, order, 1)

    run(one, [slice(s, s + BLOCK) for s in range(0, n, BLOCK)])
    missing = ids < 0
    scores[missing], cosine[missing] = -np.inf, -np.inf
    co[missing], close[missing], nxt[missing] = 0, 0, 0
    log.info("re-ranked %d pools of %d + %d in %.2f s", n, m, extra,
             time.perf_counter() - started)
    return RankedNeighbors(
        movie_ids=candidates.movie_ids, neighbor_ids=ids, scores=scores,
        cosine=cosine, co_watchers=co, close_watchers=close, next_watchers=nxt,
    )
