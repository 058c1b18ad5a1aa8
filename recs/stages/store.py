"""The movie embeddings in LanceDB: the `Content` row model, writing the table, querying it.

The only module that imports lancedb, and it does so on first use (`lance`), not at the top:
importing lancedb costs about 3 s of CPU (its REST client builds a pydantic validator for
every endpoint), as much as every other import of the job together. The job calls `preload`
first, so that the import runs on a thread while read, embed and top-k compute, and the first
function here that needs lancedb waits for it.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from recs.core.errors import InputError
from recs.core.location import BucketURI, Location, lance_storage_options
from recs.core.types import Embeddings

if TYPE_CHECKING:
    from lancedb.pydantic import LanceModel

log = logging.getLogger(__name__)

METRIC = "cosine"  # vectors are unit length; LanceDB returns 1 - cos as `_distance`


def lance() -> ModuleType:
    """lancedb, with its `pydantic` and `index` modules (imported here: see the module notes).
    While `preload`'s thread is importing it, this waits for that import to finish."""
    import lancedb.index
    import lancedb.pydantic

    return lancedb


def preload() -> None:
    """Start importing lancedb on a thread, unless it is imported already. Most of the job's
    early work runs outside the interpreter lock (DuckDB, BLAS, numpy), so the import mostly
    fills the other core. A failed import is left for `lance` to raise where it is needed."""
    if "lancedb" not in sys.modules:
        threading.Thread(target=_import_quietly, name="recs-import-lancedb", daemon=True).start()


def _import_quietly() -> None:
    try:
        lance()
    except Exception:  # raised again, with its traceback, where lancedb is first used
        log.debug("importing lancedb on a thread failed", exc_info=True)


def content_model(dim: int) -> type[LanceModel]:
    """The `Content` row model for vectors of `dim` floats."""
    pydantic = lance().pydantic

    class Content(pydantic.LanceModel):
        movie_id: int
        vector: pydantic.Vector(dim)  # type: ignore[valid-type]
        genres: str
        title: str
        imdb_id: int | None
        year: int | None = None
        n_ratings: int = 0

    return Content


def content_table(embeddings: Embeddings, movies: pa.Table) -> pa.Table:
    """Arrow rows of `Content` for every embedded movie, metadata joined by movie_id."""
    dim = embeddings.vectors.shape[1]
    schema = content_model(dim).to_arrow_schema()
    meta = movies.select(["movie_id", "genres", "title", "imdb_id", "year", "n_ratings"])
    # the movie table is sorted by movie_id, and every embedded movie is in it
    meta = meta.take(np.searchsorted(meta["movie_id"].to_numpy(), embeddings.movie_ids))
    vectors = vector_column(embeddings)
    columns = {
        "movie_id": pa.array(embeddings.movie_ids, pa.int64()),
        "vector": vectors,
        "genres": meta["genres"],
        "title": meta["title"],
        "imdb_id": meta["imdb_id"],
        "year": meta["year"].cast(pa.int64()),
        "n_ratings": meta["n_ratings"].cast(pa.int64()),
    }
    return pa.table([columns[f.name] for f in schema], schema=schema)


def connect(db: Location):
    """The LanceDB database at `db`: a local folder, or a bucket prefix (credentials and
    endpoint from the AWS variables, see lance_storage_options)."""
    if isinstance(db, BucketURI):
        return lance().connect(str(db), storage_options=lance_storage_options())
    return lance().connect(str(db))


def write_table(db: Location, name: str, rows: pa.Table):
    """Replace table `name` with `rows` in one write; the previous version stays restorable."""
    started = time.perf_counter()
    conn = connect(db)
    try:
        table = conn.open_table(name)
    except ValueError:  # absent, or a first create killed before its first version
        table = conn.create_table(name, data=rows, schema=rows.schema, mode="overwrite")
    else:
        table.add(rows, mode="overwrite")
    log.info(
        "stored %d vectors in LanceDB %s/%s (version %d) in %.2f s",
        rows.num_rows, db, name, table.version, time.perf_counter() - started,
    )
    return table


def add_ivf_index(table, partitions: int) -> None:
    """An IVF_FLAT cosine index over the table's `vector` column, in `partitions` partitions."""
    # with a config, create_index names the column; a metric passed beside it fails
    config = lance().index.IvfFlat(distance_type=METRIC, num_partitions=partitions)
    table.create_index("vector", config=config)


def batch_search(
    table, queries: NDArray[np.float32], limit: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Nearest neighbours of many query vectors in one LanceDB call.

    queries: (n, dim). Returns movie ids (n, limit) and cosine similarities (n, limit), each
    row best first; rows are padded with -1 / -inf when the table has fewer than `limit` rows.
    """
    result = (
        table.search(queries)
        .distance_type(METRIC)
        .limit(limit)
        .select(["movie_id"])
        .to_arrow()
    )
    qi = result["query_index"].to_numpy()
    ids = result["movie_id"].to_numpy()
    sims = 1.0 - result["_distance"].to_numpy().astype(np.float64)
    order = np.lexsort((-sims, qi))
    qi, ids, sims = qi[order], ids[order], sims[order]
    n = len(queries)
    out_ids = np.full((n, limit), -1, np.int64)
    out_sims = np.full((n, limit), -np.inf)
    starts = np.searchsorted(qi, np.arange(n))
    slot = np.arange(len(qi)) - starts[qi]
    out_ids[qi, slot] = ids
    out_sims[qi, slot] = sims
    return out_ids, out_sims


def vector_column(embeddings: Embeddings) -> pa.FixedSizeListArray:
    """The vectors as an Arrow fixed-size list column of float32 (n_movies x dim)."""
    flat = pa.array(embeddings.vectors.reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, embeddings.vectors.shape[1])


def vector_table(embeddings: Embeddings) -> pa.Table:
    """Just movie_id and vector: enough for a scratch table to search."""
    return pa.table({
        "movie_id": pa.array(embeddings.movie_ids, pa.int64()),
        "vector": vector_column(embeddings),
    })


def open_table(db: Location, name: str):
    """An existing table, or InputError saying how to create it."""
    conn = connect(db)
    if name not in conn.list_tables().tables:
        raise InputError(
            f"LanceDB {db} has no table {name!r}: run `recs run` first, or pass --db/--table"
        )
    return conn.open_table(name)


def find_movies(table, query: str) -> list[tuple[int, str]]:
    """Movies matching `query`, first rule that finds any: a movie id; the exact title; the
    title without its "(year)", ignoring case ("toy story" finds "Toy Story (1995)", not its
    sequels); a case-insensitive substring of titles. (movie_id, title) pairs by movie id."""
    rows = table.search().select(["movie_id", "title"]).limit(table.count_rows()).to_arrow()
    ids, titles = rows["movie_id"].to_pylist(), rows["title"].to_pylist()
    pairs = sorted(zip(ids, titles, strict=True))
    wanted = query.strip()
    if wanted.isdigit():
        return [(m, t) for m, t in pairs if m == int(wanted)]
    needle = wanted.casefold()
    rules = (
        lambda t: t == wanted,
        lambda t: re.sub(r"\s*\(\d{4}[^)]*\)\s*$", "", t).casefold() == needle,
        lambda t: needle in t.casefold(),
    )
    for rule in rules:
        found = [(m, t) for m, t in pairs if rule(t)]
        if found:
            return found
    return []


def similar(table, movie_id: int, k: int) -> list[tuple[LanceModel, float]]:
    """The k movies nearest to `movie_id` in `table` (itself excluded), as `Content` rows with
    their cosine similarity, best first, equal scores by movie id."""
    dim = table.schema.field("vector").type.list_size
    model = content_model(dim)
    me = table.search().where(f"movie_id = {int(movie_id)}").select(["vector"]).limit(1).to_list()
    if not me:
        raise InputError(f"movie {movie_id} has no vector in table {table.name!r}")
    hits = table.search(me[0]["vector"]).distance_type(METRIC).limit(k + 1).to_list()
    fields = set(model.model_fields)
    scored = [
        (model.model_validate({f: h[f] for f in fields if f in h}), 1.0 - float(h["_distance"]))
        for h in hits
        if h["movie_id"] != movie_id
    ]
    scored.sort(key=lambda pair: (-round(pair[1], 6), pair[0].movie_id))
    return scored[:k]
