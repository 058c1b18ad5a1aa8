"""The project's SQL, shipped inside the wheel: statements by name (`sql/<role>/<name>.sql`) and
DuckDB connections with the macros of `sql/macros/` created."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import duckdb


def _sql_dir() -> Path:
    packaged = Path(str(resources.files("recs"))) / "sql"
    if packaged.is_dir():
        return packaged
    # a source checkout or editable install: sql/ sits beside recs/
    return Path(__file__).resolve().parent.parent.parent / "sql"


@cache
def load_sql(name: str) -> str:
    """The text of `sql/<name>.sql`, `name` as "load/ratings_columns"."""
    return (_sql_dir() / f"{name}.sql").read_text(encoding="utf-8")


@cache
def _macros() -> tuple[str, ...]:
    """The statements of `sql/macros/*.sql` (each one `create or replace temp macro`)."""
    paths = sorted((_sql_dir() / "macros").glob("*.sql"))
    return tuple(load_sql(f"macros/{path.stem}") for path in paths)


def connect(threads: int = 2) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a fixed thread count and the project's macros
    (every statement of sql/macros/) created."""
    con = duckdb.connect(config={"threads": threads})
    try:
        for statement in _macros():
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con
