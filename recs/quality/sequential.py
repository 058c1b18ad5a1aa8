"""Sequence-aware baselines: what people watched next, learned from each user's rating order.

- SR, sequential rules (Ludewig & Jannach 2018): score(X -> Y) = the sum over users of 1/d for
  each time Y comes d <= w ratings after X (w tuned over SR_WINDOWS);
- SR-sym: the same in either direction (Y before or after X);
- Markov chain: first order, transition counts at distance 1 (SR with w = 1);
- item2vec (Barkan & Koenigstein 2016): gensim Word2Vec skip-gram over each user's ratings in
  time order, lists by cosine; dimension, window and epochs tuned over I2V_GRID. gensim is an
  evaluation-only extra (`pip install -e '.[eval]'`): without it item2vec is skipped;
- blend: the best of SR, SR-sym and the Markov chain with item-kNN or EASE, each row divided by
  its largest score, weight tuned over BLEND_WEIGHTS: the upper anchor.

Equal rating times are unordered, as in the recipe with `close_ties = "unordered"`: distance
is counted between tie groups (one user's ratings with one time), so two movies rated in the
same second are 0 apart. For SR such a pair counts in both directions with weight 1 (as
distance 1); for item2vec each tie group is put in a seeded random order (skip-gram is
symmetric: only nearness in the sentence matters). No model can learn how ties were broken.

Every knob is tuned like EASE: on the validation split inside the training events (each user's
last 3 training pairs), by HR@k on the validation events whose query and target have different
times (the no-tie events), which is what a sequence model can honestly be asked to predict.
Rows with fewer positive scores than k are filled by popularity.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from threadpoolctl import threadpool_limits

from recs.core.types import Neighbors, Ratings
from recs.quality import baselines
from recs.quality.baselines import ScoreRows, binary, dense_lists, ease_rows, tune_ease
from recs.quality.metrics import hit_ranks
from recs.quality.splits import Events, NextWatch, Recipe, events_matrix, validation_split
from recs.stages.embed import column_counts

log = logging.getLogger(__name__)


def has_gensim() -> bool:
    """Whether the `eval` extra (gensim, for item2vec) is installed; gensim is imported only
    when item2vec trains, so no command pays its 1.4 s import otherwise."""
    return importlib.util.find_spec("gensim") is not None

SR_WINDOWS = (3, 5, 10, 20)
I2V_GRID = {"vector_size": (32, 64), "window": (5, 15), "epochs": (5, 10)}
BLEND_WEIGHTS = (0.25, 0.5, 0.75)

# (train events, their matrix) -> score rows for query columns
Model = Callable[[Events, Ratings], ScoreRows]


# --- tie groups and pairs -------------------------------------------------------------------


def tie_groups(events: Events) -> NDArray[np.int64]:
    """(n,) tie group of each event, numbered over all users (events in watch order): a new
    group starts at each user's first event and at each change of time."""
    fresh = np.r_[True, (events.user_ids[1:] != events.user_ids[:-1])
                  | (events.rated_at[1:] != events.rated_at[:-1])]
    return np.cumsum(fresh) - 1


def near_pairs(events: Events, cols: NDArray[np.int64], window: int):
    """Every ordered pair (i, j), i != j, of one user's events at most `window` tie groups
    apart: (source column, target column, group distance g(j) - g(i) in [-window, window])."""
    n = len(events)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    group = tie_groups(events)
    user_start = np.flatnonzero(np.r_[True, events.user_ids[1:] != events.user_ids[:-1]])
    user_end = np.r_[user_start[1:], n]
    user = np.repeat(np.arange(len(user_start)), np.diff(np.r_[user_start, n]))
    group_start = np.r_[np.flatnonzero(np.r_[True, group[1:] != group[:-1]]), n]
    first = np.maximum(group_start[np.maximum(group - window, 0)], user_start[user])
    last = np.minimum(group_start[np.minimum(group + window + 1, len(group_start) - 1)],
                      user_end[user])
    lengths = last - first
    src = np.repeat(np.arange(n), lengths)
    run_start = np.cumsum(lengths) - lengths
    dst = np.arange(int(lengths.sum())) + np.repeat(first - run_start, lengths)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    return cols[src], cols[dst], group[dst] - group[src]


def rule_matrix(events: Events, r: Ratings, window: int, directed: bool) -> sparse.csr_array:
    """SR scores (n_movies, n_movies): row X, column Y, the sum over users of 1/d for Y d tie
    groups after X (d <= window; either side if not `directed`; d = 0 weighs as 1)."""
    cols = np.searchsorted(r.movie_ids, events.movie_ids)
    src, dst, dist = near_pairs(events, cols, window)
    if directed:
        keep = dist >= 0
        src, dst, dist = src[keep], dst[keep], dist[keep]
    weight = 1.0 / np.maximum(np.abs(dist), 1)
    n = len(r.movie_ids)
    return sparse.coo_array((weight, (src, dst)), shape=(n, n)).tocsr()


def with_fallback(s: sparse.csr_array, counts: NDArray[np.int64]) -> ScoreRows:
    """Score rows of `s`; where a row has no positive score, popularity below every positive
    one (in (-1, 0)), so a short row is filled with the most rated movies."""
    pop = (counts / max(int(counts.max(initial=0)), 1)).astype(np.float64) - 1.0

    def rows(block: NDArray[np.int64]) -> NDArray[np.float32]:
        dense = s[block].toarray()
        return np.where(dense > 0, dense, pop[None, :]).astype(np.float32)

    return rows


def rules(window: int, directed: bool) -> Model:
    def model(train: Events, r: Ratings) -> ScoreRows:
        return with_fallback(rule_matrix(train, r, window, directed), column_counts(r.matrix))

    return model


# --- item2vec -------------------------------------------------------------------------------


def sentences(events: Events, seed: int) -> list[list[str]]:
    """Each user's movie ids (as words) in watch order, each tie group in a seeded random order."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(events)), tie_groups(events)))
    users, movies = events.user_ids[order], events.movie_ids[order].astype(str)
    cuts = np.flatnonzero(users[1:] != users[:-1]) + 1
    return [list(part) for part in np.split(movies, cuts)] if len(events) else []


def item2vec(vector_size: int, window: int, epochs: int, seed: int = 0) -> Model:
    """Skip-gram with negative sampling, one worker and a fixed seed: deterministic."""

    def model(train: Events, r: Ratings) -> ScoreRows:
        from gensim.models import Word2Vec  # the eval extra: loaded only to train item2vec

        logging.getLogger("gensim").setLevel(logging.WARNING)  # a line per epoch otherwise
        w2v = Word2Vec(sentences(train, seed), vector_size=vector_size, window=window, sg=1,
                       negative=5, min_count=1, epochs=epochs, workers=1, seed=seed)
        v = np.stack([w2v.wv[str(m)] for m in r.movie_ids]).astype(np.float32)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return lambda block: v[block] @ v.T

    return model


# --- blend ----------------------------------------------------------------------------------


def row_max_normalised(rows: ScoreRows) -> ScoreRows:
    def out(block: NDArray[np.int64]) -> NDArray[np.float32]:
        s = np.asarray(rows(block), np.float64)
        top = np.abs(s).max(axis=1, keepdims=True)
        return (s / np.maximum(top, 1e-12)).astype(np.float32)

    return out


def knn_rows(train: Events, r: Ratings) -> ScoreRows:
    return baselines.knn_rows(r)


def ease_model(lam: float) -> Model:
    def model(train: Events, r: Ratings) -> ScoreRows:
        _, x = binary(train)
        return ease_rows(x, lam)[0]

    return model


def blend(seq: Model, other: Model, weight: float) -> Model:
    """weight x seq + (1 - weight) x other, each row divided by its largest |score|."""

    def model(train: Events, r: Ratings) -> ScoreRows:
        a = row_max_normalised(seq(train, r))
        b = row_max_normalised(other(train, r))
        return lambda block: weight * a(block) + (1.0 - weight) * b(block)

    return model


# --- tuning and recipes ---------------------------------------------------------------------


def validation_hr(val: NextWatch, model: Model, k: int) -> tuple[float, float]:
    """(no-tie HR@k, all-events HR@k) of `model` trained on val.train, on the validation events."""
    r = events_matrix(val.train)
    pos = np.minimum(np.searchsorted(r.movie_ids, val.queries), len(r.movie_ids) - 1)
    qrows = np.unique(pos[r.movie_ids[pos] == val.queries])
    with threadpool_limits(limits=1, user_api="blas"):
        lists = dense_lists(model(val.train, r), r.movie_ids, k, rows=qrows)
    hits = hit_ranks(lists, val.queries, val.targets, k) >= 0
    untied = ~val.tied
    return float(hits[untied].mean()) if untied.any() else 0.0, float(hits.mean())


def tune(train: Events, grid: dict[str, Model], k: int, what: str) -> str:
    """The name of the model in `grid` with the best validation no-tie HR@k (then all-events
    HR@k, then the first listed)."""
    val = validation_split(train)
    best, best_key, scores = None, None, {}
    for name, model in grid.items():
        key = scores[name] = validation_hr(val, model, k)
        log.info("%s %s: validation HR@%d no-tie %.4f, all %.4f", what, name, k, *key)
        if best_key is None or key > best_key:
            best, best_key = name, key
    TUNED.append({"what": what, "scores": scores, "chosen": best})
    return best


# every tuning in call order: {"what", "scores": {name: (no-tie HR, HR)}, "chosen"}; the
# quality doc prints it (bench/quality.py clears it before each dataset)
TUNED: list[dict] = []


def tuned(grid_of: Callable[[int], dict[str, Model]], what: str) -> Recipe:
    """A `Recipe` that picks its model on the validation split inside the events it gets."""

    def recipe(train: Events, k: int, seed: int) -> Neighbors:
        grid = grid_of(seed)
        model = grid[tune(train, grid, k, what)]
        r = events_matrix(train)
        with threadpool_limits(limits=1, user_api="blas"):
            return dense_lists(model(train, r), r.movie_ids, k)

    return recipe


def sr_grid(seed: int = 0) -> dict[str, Model]:
    return {f"w={w}": rules(w, True) for w in SR_WINDOWS}


def sr_sym_grid(seed: int = 0) -> dict[str, Model]:
    return {f"w={w}": rules(w, False) for w in SR_WINDOWS}


def markov_grid(seed: int = 0) -> dict[str, Model]:
    return {"d=1": rules(1, True)}


def rule_grid(seed: int = 0) -> dict[str, Model]:
    """Every rule model: the candidates for the blend's sequential part."""
    return ({f"SR {n}": m for n, m in sr_grid().items()}
            | {f"SR-sym {n}": m for n, m in sr_sym_grid().items()}
            | {f"MC {n}": m for n, m in markov_grid().items()})


def i2v_grid(seed: int = 0) -> dict[str, Model]:
    return {f"dim={d} window={w} epochs={e}": item2vec(d, w, e, seed)
            for d in I2V_GRID["vector_size"] for w in I2V_GRID["window"]
            for e in I2V_GRID["epochs"]}


def blend_recipe(train: Events, k: int, seed: int) -> Neighbors:
    """The best rule model (validation) blended with item-kNN or EASE (lambda tuned as EASE's),
    partner and weight tuned on the same validation split."""
    rules_all = rule_grid(seed)
    seq_name = tune(train, rules_all, k, "blend: sequential part")
    lam = tune_ease(train, k)
    partners = {"item-kNN": knn_rows, f"EASE lambda={lam:g}": ease_model(lam)}
    grid = {f"{seq_name} + {p} weight={w}": blend(rules_all[seq_name], other, w)
            for p, other in partners.items() for w in BLEND_WEIGHTS}
    model = grid[tune(train, grid, k, "blend")]
    r = events_matrix(train)
    with threadpool_limits(limits=1, user_api="blas"):
        return dense_lists(model(train, r), r.movie_ids, k)


def recipes() -> dict[str, Recipe]:
    """The sequence-aware baselines by table name (item2vec only if gensim is installed)."""
    out = {
        "SR": tuned(sr_grid, "SR"),
        "SR-sym": tuned(sr_sym_grid, "SR-sym"),
        "Markov chain": tuned(markov_grid, "Markov chain"),
    }
    if has_gensim():
        out["item2vec"] = tuned(i2v_grid, "item2vec")
    else:
        log.warning("item2vec skipped: gensim is not installed (pip install -e '.[eval]')")
    out["blend (rules + kNN/EASE)"] = blend_recipe
    return out
