"""The `recs` command line: a thin shell over the library. Each command turns its flags into
`Settings`, calls one library function, and turns domain errors into one line and an exit code.
The flags that set a `Settings` field are generated from the field, so `--help`, the
environment variables and the defaults cannot drift apart."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import types
import typing
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from recs import __version__
from recs.core.errors import RecsError
from recs.core.settings import Settings, default_text
from recs.jobs import nightly
from recs.quality.evaluate import evaluate as run_evaluation
from recs.quality.evaluate import evaluate_lists, to_markdown
from recs.stages import store
from recs.stages.ingest import validate_folder
from recs.tools.serve import serve as serve_folder
from recs.tools.synth import FORMATS, ORDERS, TIMES, write_synthetic

log = logging.getLogger("recs")


class RecsClickError(click.ClickException):
    """A domain error shown as one line, with the error's own exit code."""

    def __init__(self, err: RecsError) -> None:
        super().__init__(str(err))
        self.exit_code = err.exit_code


def domain_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn RecsError (and invalid settings) into a one-line message and its exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecsError as err:
            log.error("%s failed: %s", fn.__name__, err)
            raise RecsClickError(err) from None
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "settings"
            raise click.BadParameter(f"{where}: {first['msg']}") from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:  # the traceback goes to the log; the last line says it in words
            log.exception("unexpected error")
            raise click.ClickException(
                f"{fn.__name__} failed unexpectedly ({type(err).__name__}: {err}); the traceback "
                "is in the log above; `latest` only changes when a run completes"
            ) from None

    return wrapper


def make_settings(**overrides: Any) -> Settings:
    """Settings from defaults, RECS_* variables, then the flags that were given."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def flag(name: str) -> str:
    """The command-line flag of a Settings field: top_k -> --top-k."""
    return "--" + name.replace("_", "-")


def _click_type(annotation: Any) -> Any:
    """The click type of a Settings field's annotation (Optional unwrapped)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return _click_type(args[0])
    if typing.get_origin(annotation) is typing.Literal:
        return click.Choice(list(typing.get_args(annotation)))
    if annotation is Path:
        return click.Path(path_type=Path)
    return annotation


def _option(name: str, field: FieldInfo) -> Callable[[Callable], Callable]:
    help_text = f"{field.description} [{Settings.env_name(name)}; {default_text(name)}]"
    if field.annotation is bool:
        return click.option(f"{flag(name)}/--no-{flag(name)[2:]}", name, default=None,
                            help=help_text)
    return click.option(flag(name), name, type=_click_type(field.annotation), default=None,
                        help=help_text)


def settings_options(*names: str) -> Callable[[Callable], Callable]:
    """One click option per named Settings field (every field when none are named)."""
    fields = Settings.model_fields

    def decorate(fn: Callable) -> Callable:
        for name in reversed(names or tuple(fields)):
            fn = _option(name, fields[name])(fn)
        return fn

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="recs")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only.")
def main(verbose: bool, quiet: bool) -> None:
    """Nightly "because you watched X" lists from a MovieLens ratings log.

    \b
    Example:
        recs run --data ../shared/data/ml-latest-small
        recs similar "Toy Story (1995)"
    """
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@main.command()
@settings_options()
@domain_errors
def run(**options: Any) -> None:
    """Run the nightly job: read, embed, rank, and publish every movie's top-k.

    Writes a new run folder under OUT and switches OUT/latest to it only when every file is
    complete; replaces the LanceDB table in one step. Exit codes: 0 ok, 1 unexpected error,
    2 bad input, 3 quality gate refused, 4 another run holds the lock, 5 the environment (the
    output or database folder is full, over quota or read-only), 6 the Ray cluster lost work
    it could not redo (--ray). Every flag can also be set by the environment variable in its
    help.

    \b
    Example:
        recs run --data ../shared/data/ml-latest-small --out output
    """
    settings = make_settings(**options)
    with _progress("ranking movies") as progress, _sigterm_unwinds():
        result = nightly.run(settings, progress=progress)
    click.echo(summary(result.manifest, result.published_to, result.upload), err=True)


class _sigterm_unwinds:
    """SIGTERM (cron's `timeout`, `systemctl stop`) unwinds the run like Ctrl-C does: it
    removes its unfinished run folder and writes its metrics, then exits 143 (128 + 15)."""

    def __enter__(self) -> None:
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:  # signal handlers can only be set from the main thread
            self.before = signal.signal(signal.SIGTERM, self._stop)

    @staticmethod
    def _stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.before or signal.SIG_DFL)


def summary(m: dict[str, Any], latest: str, upload: dict[str, Any] | None = None) -> str:
    """The end-of-run report: what was published, what changed, how good, how long."""
    c = m["counts"]
    lines = [
        f"published run {m['run_id']} to {latest} in {m['seconds']:.1f} s",
        f"  movies {c['movies']}, with lists {c['lists']} (x {m['settings']['top_k']}), "
        f"files {len(m['files']) + 1}",
        f"  since the last run: {c['lists_changed']} lists changed, {c['lists_added']} added, "
        f"{c['lists_removed']} removed, {c['lists_unchanged']} unchanged",
    ]
    if m.get("quality"):
        q = m["quality"]
        lines.append(f"  quality: next-watch HR@10 {q['hr']:.4f} on {q['holdout_pairs']} users' "
                     f"last pairs (in-sample), coverage@10 {q['coverage']:.3f}")
    if upload:
        lines.append(f"  uploaded: {upload['objects_put']} objects put, "
                     f"{upload['objects_unchanged']} unchanged, {upload['objects_deleted']} "
                     f"deleted in {upload['seconds']:.1f} s")
    stages = ", ".join(f"{k} {v:.2f}" for k, v in m["stages"].items())
    lines.append(f"  seconds: {stages}")
    return "\n".join(lines)


@main.command()
@click.argument("query")
@settings_options("db", "table")
@click.option("-k", "k", type=int, default=10, show_default=True, help="How many neighbours.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@domain_errors
def similar(query: str, db: str | None, table: str | None, k: int, as_json: bool) -> None:
    """Movies similar to QUERY (a movie id or a title), answered by LanceDB.

    A title matches exactly first, then as a case-insensitive substring; when several
    movies match, they are listed so you can pick one by id.

    \b
    Example:
        recs similar "Toy Story (1995)"
        recs similar 1 -k 5 --json
    """
    settings = make_settings(db=db, table=table)
    tbl = store.open_table(settings.db_location(), settings.table)
    matches = store.find_movies(tbl, query)
    if not matches:
        raise click.ClickException(f"no movie matches {query!r}: try part of its title or its id")
    if len(matches) > 1:
        shown = "\n".join(f"  {m:>7}  {t}" for m, t in matches[:20])
        more = f"\n  ... and {len(matches) - 20} more" if len(matches) > 20 else ""
        raise click.ClickException(
            f"{len(matches)} movies match {query!r}; pass one id:\n{shown}{more}"
        )
    movie_id, title = matches[0]
    hits = store.similar(tbl, movie_id, k)
    if as_json:
        rows = [{"rank": i, **row.model_dump(exclude={"vector"}), "score": round(score, 6)}
                for i, (row, score) in enumerate(hits, 1)]
        click.echo(json.dumps({"movie_id": movie_id, "title": title, "similar": rows},
                              ensure_ascii=False))
        return
    click.echo(f"Because you watched {title} ({movie_id}):")
    for i, (row, score) in enumerate(hits, 1):
        click.echo(f"{i:>3}  {score:6.3f}  {row.movie_id:>7}  {row.title}  [{row.genres}]")


@main.command()
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; loopback only unless --allow-remote.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host (exposes the folder to the network).")
@domain_errors
def serve(folder: Path | None, host: str, port: int, allow_remote: bool) -> None:
    """Preview an output folder over http: the demo page and its JSON.

    FOLDER defaults to the `latest` run under the output folder [RECS_OUT; ./output].
    Browsers refuse to load data into a page opened as a file, hence this server.

    \b
    Example:
        recs serve                      # output/latest on http://127.0.0.1:8000/
        recs serve output/runs/20261127T020000123456Z --port 8080
    """
    if folder is None:
        out = make_settings().out_location()
        if not isinstance(out, Path):
            raise click.BadParameter(f"{out} is a bucket: serve a local folder, or point a "
                                     "browser at the bucket's CDN", param_hint="FOLDER")
        folder = out / "latest"
    serve_folder(folder, host, port, allow_remote=allow_remote)


@main.command()
@settings_options("data", "cache", "threads")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@domain_errors
def validate(data: str | None, cache: Path | None, threads: int | None, as_json: bool) -> None:
    """Check the input files the way `recs run` would, and report; publishes nothing.

    Exits 2 with one line (file, line, column, what to do) on the first fatal problem;
    odd-but-usable inputs (duplicate ratings, unlisted movies, missing links) are warnings.

    \b
    Example:
        recs validate --data ../shared/data/ml-latest-small
    """
    settings = make_settings(data=data, cache=cache, threads=threads)
    report = validate_folder(nightly.data_folder(settings), settings.threads)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items())
    click.echo(f"ok: {report['folder']}: {counts}")
    for warning in report["warnings"]:
        click.echo(f"warning: {warning['message']}")


@main.command()
@settings_options("data", "cache", "dim", "threads")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md",
              show_default=True, help="Markdown table or JSON.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the user split, the bootstrap and the random baseline.")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="List length scored (HR@k, NDCG@k, recall@k, coverage@k).")
@click.option("--pairs", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Next-watch test pairs per user (each user's last ones).")
@click.option("--dataset-name", help="Name in the table's title [default: the folder].")
@click.option("--lists", "lists_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Score this Parquet file of lists (movie_id, rank, neighbor_id) on the "
                   "next-watch split instead of training the recipes.")
@domain_errors
def evaluate(data, cache, dim, threads, fmt, seed, k, pairs, dataset_name, lists_file) -> None:
    """Score the configured recipe and the baselines on held-out events.

    Next-watch HR@k/NDCG@k (95% bootstrap over users), co-liked recall on held-out users,
    coverage and popularity; random, most popular, item-kNN, EASE, the tutorial's SVD and
    close watchers alone on the same splits. A benchmark for small datasets (about a minute
    on ml-latest-small). With --lists, scores a given list file instead (lists trained on all
    of --data have seen the test events: an in-sample figure).

    \b
    Examples:
        recs evaluate --data ../shared/data/ml-100k --dataset-name ml-100k --format md
        recs evaluate --data ../shared/data/ml-latest-small --lists other_lists.parquet
    """
    settings = make_settings(data=data, cache=cache, dim=dim, threads=threads)
    folder = nightly.data_folder(settings)
    if lists_file is not None:
        result = evaluate_lists(folder, lists_file, k, seed, pairs, settings.threads)
    else:
        result = run_evaluation(folder, settings, k=k, seed=seed, pairs=pairs)
    if dataset_name:
        result["dataset"] = dataset_name
    text = json.dumps(result, indent=2) if fmt == "json" else to_markdown(result)
    click.echo(text, nl=not text.endswith("\n"))


@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--users", type=click.IntRange(1), default=610, show_default=True)
@click.option("--movies", type=click.IntRange(1), default=9742, show_default=True)
@click.option("--ratings", type=click.IntRange(1), default=100836, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv",
              show_default=True, help="parquet: ratings.parquet, movies.parquet, links.parquet")
@click.option("--order", type=click.Choice(ORDERS), default="user", show_default=True,
              help="rows by user then movie (as MovieLens), by user then time, or shuffled")
@click.option("--times", type=click.Choice(TIMES), default="phases", show_default=True,
              help="rating times: each user's window in taste phases, or uniform per rating")
@click.option("--clusters/--no-clusters", default=True, show_default=True,
              help="taste clusters; without, movies are picked by popularity alone")
@domain_errors
def synth(
    out: Path, users: int, movies: int, ratings: int, seed: int, fmt: str, order: str,
    times: str, clusters: bool,
) -> None:
    """Write a synthetic MovieLens-format folder (ratings.csv, movies.csv, links.csv) to OUT.

    Deterministic for a seed: Zipf-like movie popularity, heavy-tailed user activity, half-star
    ratings, spread timestamps, sparse movie ids, and taste clusters for SVD to find.
    --format parquet writes the same tables as Parquet files, which `recs run --data` reads too.
    --order random --times random --no-clusters writes the same sizes in the shape of an
    unsorted warehouse export, with no locality for the job to lean on.

    \b
    Example:
        recs synth --users 162000 --movies 62000 --ratings 25000000 /tmp/ml-25m-synth
    """
    try:
        info = write_synthetic(out, users, movies, ratings, seed, fmt, order=order, times=times,
                               clusters=clusters)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    click.echo(f"wrote {info['ratings']} ratings, {info['users']} users, "
               f"{info['movies']} movies to {out} in {info['seconds']:.1f} s")


class _progress:
    """A click progress bar on stderr when it is a terminal; otherwise nothing."""

    def __init__(self, label: str) -> None:
        self.label, self.bar = label, None

    def __enter__(self) -> Callable[[int], None] | None:
        if not sys.stderr.isatty():
            return None

        def advance(n: int) -> None:
            if self.bar is None:
                self.bar = click.progressbar(length=None, label=self.label, file=sys.stderr)
                self.bar.__enter__()
            self.bar.update(n)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


if __name__ == "__main__":
    main()
