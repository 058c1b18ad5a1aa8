"""Load the project's SQL statements by name: `sql/<name>.sql`, shipped inside the wheel."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path


def _sql_dir() -> Path:
    packaged = Path(str(resources.files("recs"))) / "sql"
    if packaged.is_dir():
        return packaged
    # a source checkout or editable install: sql/ sits beside recs/
    return Path(__file__).resolve().parent.parent.parent / "sql"


@cache
def load_sql(name: str) -> str:
    """The text of `sql/<name>.sql`."""
    return (_sql_dir() / f"{name}.sql").read_text(encoding="utf-8")
