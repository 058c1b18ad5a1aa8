"""The quality table of the README: `recs evaluate` on ml-latest-small and ml-100k, one command.

    python bench/quality.py                        # about a minute on 2 cores
    python bench/quality.py --data DIR [DIR ...]   # other MovieLens folders (or ml-100k ones)

Prints one markdown table per dataset and the total wall time, and writes them to
bench/results/quality.md. The configured recipe comes from the same settings as `recs run`
(RECS_* variables apply).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from recs.evaluate import evaluate, to_markdown
from recs.settings import Settings
from recs.source import resolve_data

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def datasets_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose --data takes dataset folders, by default ml-latest-small and ml-100k."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=[str(DATA / "ml-latest-small"),
                                                      str(DATA / "ml-100k")])
    return parser


def main() -> None:
    parser = datasets_parser(__doc__)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    settings = Settings()
    tables = []
    for data in args.data:
        result = evaluate(resolve_data(data, settings.cache), settings, seed=args.seed)
        tables.append(to_markdown(result, Path(data).name))
    seconds = time.perf_counter() - started
    text = "\n".join(tables) + f"\n{len(tables)} datasets in {seconds:.0f} s\n"
    print(text, end="")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quality.md").write_text(text)


if __name__ == "__main__":
    main()
