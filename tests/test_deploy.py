"""The KubeRay manifest in deploy/ parses and runs the nightly job on the cluster."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[1] / "deploy" / "kuberay" / "recs-nightly.yaml"


def test_kuberay_rayjob_runs_recs_on_the_cluster() -> None:
    docs = list(yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")))
    jobs = [d for d in docs if d and d.get("kind") == "RayJob"]
    assert len(jobs) == 1 and jobs[0]["apiVersion"].startswith("ray.io/")
    spec = jobs[0]["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:4] == ["recs", "run", "--ray", "auto"], argv
    assert spec["shutdownAfterJobFinishes"] is True  # nothing keeps running after the job
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"  # the version the extra pins and the tests ran
    assert cluster["workerGroupSpecs"], "no worker group"
    mounts = {m["mountPath"] for g in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
              for c in g["template"]["spec"]["containers"] for m in c.get("volumeMounts", [])}
    out = argv[argv.index("--out") + 1]
    assert any(out.startswith(m + "/") for m in mounts), (out, mounts)
