"""`--metrics-file`: a Prometheus textfile-collector file after every run, ok or not, read
back with prometheus_client's own parser."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

try:
    from helpers import run_tiny, two_groups
except ImportError:  # before the helpers moved out of conftest
    from conftest import run_tiny, two_groups

from recs.cli import main
from recs.core.errors import InputError, QualityGateError
from recs.stages import monitor

pytestmark = pytest.mark.slow  # every test here runs the job (tiny data)


def gate_fails(make_dataset) -> Path:
    """The two taste groups plus a user who crosses over last (movie 11, then 20): that
    pair's target is in no list of 11, so HR@10 < 1 and `--min-hr 1` refuses to publish."""
    cross = [(13, 10, 4.0, 1_600_000_000), (13, 11, 4.0, 1_600_000_060),
             (13, 20, 4.0, 1_600_000_120)]
    return make_dataset(ratings=two_groups() + cross)


def parse(path: Path) -> dict[str, list]:
    """{metric name: [(labels, value)]} after checking the file's conventions."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), names  # each family once
    for family in families:
        assert family.name.startswith("recs_"), family.name
        assert family.type == "gauge", family.name
        assert family.documentation, family.name
        assert f"# HELP {family.name} " in text and f"# TYPE {family.name} gauge" in text
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in families}


def value(metrics: dict[str, list], name: str) -> float:
    [(labels, found)] = metrics[name]
    assert labels == {}
    return found


def test_a_published_run_writes_every_figure(make_dataset, tmp_path):
    path = tmp_path / "metrics" / "recs.prom"
    before = time.time()
    result = run_tiny(make_dataset(), tmp_path, metrics_file=path, min_hr=0.0)
    m = parse(path)
    assert value(m, "recs_last_run_exit_code") == 0
    assert value(m, "recs_last_run_success") == 1
    start = value(m, "recs_last_run_start_timestamp_seconds")
    end = value(m, "recs_last_run_end_timestamp_seconds")
    assert before - 1 <= start <= end <= time.time() + 1
    assert value(m, "recs_last_success_timestamp_seconds") == end
    assert value(m, "recs_last_run_duration_seconds") == pytest.approx(end - start, abs=1e-3)
    stages = {labels["stage"]: v for labels, v in m["recs_stage_duration_seconds"]}
    assert list(stages) == list(result.manifest["stages"])
    assert stages == pytest.approx(result.manifest["stages"])
    assert value(m, "recs_peak_rss_bytes") > 10 * 2**20
    counts = result.manifest["counts"]
    for name in ("ratings", "users", "movies", "lists", "lists_changed", "lists_added",
                 "lists_removed", "lists_unchanged", "files_reused"):
        assert value(m, f"recs_{name}") == counts[name], name
    quality = result.manifest["quality"]
    assert value(m, "recs_quality_hr") == pytest.approx(quality["hr"])
    assert value(m, "recs_quality_coverage") == pytest.approx(quality["coverage"])
    assert value(m, "recs_quality_holdout_pairs") == quality["holdout_pairs"]
    assert value(m, "recs_quality_min_hr") == 0.0


def test_a_failed_run_keeps_the_last_success_time(make_dataset, tmp_path):
    path = tmp_path / "metrics" / "recs.prom"
    data = gate_fails(make_dataset)
    run_tiny(data, tmp_path, metrics_file=path)
    success = value(parse(path), "recs_last_success_timestamp_seconds")

    with pytest.raises(QualityGateError):  # the gate: figures known, nothing published
        run_tiny(data, tmp_path, metrics_file=path, min_hr=1.0)
    m = parse(path)
    assert value(m, "recs_last_run_exit_code") == 3
    assert value(m, "recs_last_run_success") == 0
    assert value(m, "recs_last_success_timestamp_seconds") == success
    assert value(m, "recs_last_run_end_timestamp_seconds") > success
    assert value(m, "recs_quality_min_hr") == 1.0
    assert 0 <= value(m, "recs_quality_hr") < 1.0
    assert value(m, "recs_lists") == 10 and value(m, "recs_users") == 13  # as far as it got
    assert "recs_lists_changed" not in m  # known only once the files are written
    assert "quality" in {labels["stage"] for labels, _ in m["recs_stage_duration_seconds"]}

    with pytest.raises(InputError):  # bad input: no counts at all, success time kept
        run_tiny(tmp_path / "missing", tmp_path, metrics_file=path)
    m = parse(path)
    assert value(m, "recs_last_run_exit_code") == 2
    assert value(m, "recs_last_success_timestamp_seconds") == success
    assert "recs_ratings" not in m and "recs_quality_hr" not in m


def test_the_first_run_failing_has_no_success_time(tmp_path):
    path = tmp_path / "metrics" / "recs.prom"
    with pytest.raises(InputError):
        run_tiny(tmp_path / "missing", tmp_path, metrics_file=path)
    m = parse(path)
    assert value(m, "recs_last_run_exit_code") == 2
    assert "recs_last_success_timestamp_seconds" not in m


def test_flag_and_environment_variable(make_dataset, tmp_path, monkeypatch):
    data, flag_file, env_file = (gate_fails(make_dataset), tmp_path / "a" / "flag.prom",
                                  tmp_path / "b" / "env.prom")
    args = ["run", "--data", str(data), "--out", str(tmp_path / "out"), "--dim", "2",
            "--top-k", "3"]
    result = CliRunner().invoke(main, [*args, "--metrics-file", str(flag_file)])
    assert result.exit_code == 0, result.output
    assert value(parse(flag_file), "recs_last_run_exit_code") == 0
    monkeypatch.setenv("RECS_METRICS_FILE", str(env_file))
    result = CliRunner().invoke(main, [*args, "--min-hr", "1"])
    assert result.exit_code == 3, result.output
    assert value(parse(env_file), "recs_last_run_exit_code") == 3


def test_an_unwritable_metrics_file_does_not_change_the_outcome(make_dataset, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_tiny(make_dataset(), tmp_path, metrics_file=blocker / "recs.prom")
    assert result.run_dir.is_dir()


def test_render_escapes_and_reads_back(tmp_path):
    report = monitor.RunReport(stages={'odd "stage"\\': 1.5})
    report.finish(4)
    path = tmp_path / "x.prom"
    path.write_text(monitor.render(report, last_success=123.5))
    m = parse(path)
    assert m["recs_stage_duration_seconds"] == [({"stage": 'odd "stage"\\'}, 1.5)]
    assert value(m, "recs_last_success_timestamp_seconds") == 123.5
    assert monitor.read_last_success(path) == 123.5
