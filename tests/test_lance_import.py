"""lancedb is imported by recs/stages/store.py alone, on first use or on `preload`'s thread,
so that its slow import can overlap the job's first stages. Each case runs in a fresh
interpreter: this test process has long imported lancedb."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from helpers import REPO


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` run by a fresh interpreter, which must exit 0."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done


def lancedb_importers() -> list[str]:
    found = []
    for path in sorted([*(REPO / "recs").rglob("*.py"), *(REPO / "jobs").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "lancedb" or n.startswith("lancedb.") for n in names):
                found.append(str(path.relative_to(REPO)))
    return sorted(set(found))


def test_only_the_store_imports_lancedb() -> None:
    assert lancedb_importers() == ["recs/stages/store.py"]


@pytest.mark.slow
def test_importing_the_job_leaves_lancedb_for_later() -> None:
    code = ("import sys\nimport recs.cli, recs.jobs.nightly, recs.stages.store\n"
            "assert 'lancedb' not in sys.modules, 'lancedb was imported'\n")
    run_python(code)


@pytest.mark.slow
def test_preload_imports_lancedb_on_a_thread_and_the_first_use_waits_for_it() -> None:
    code = (
        "import sys, threading\nfrom recs.stages import store\n"
        "started, start = [], threading.Thread.start\n"
        "def noting(self):\n"
        "    if self.name == 'recs-import-lancedb':  # (lancedb starts threads of its own)\n"
        "        started.append(self.name)\n"
        "    start(self)\n"
        "threading.Thread.start = noting  # the real start, each thread's name noted\n"
        "store.preload()\n"
        "assert started == ['recs-import-lancedb'], started\n"
        "assert store.content_model(3).to_arrow_schema().field('vector').type.list_size == 3\n"
        "assert 'lancedb.index' in sys.modules and 'lancedb.pydantic' in sys.modules\n"
        "store.preload()  # imported already: no second thread\n"
        "assert started == ['recs-import-lancedb'], started\n"
    )
    run_python(code)


@pytest.mark.slow
def test_a_failed_import_on_the_thread_is_raised_where_lancedb_is_used() -> None:
    code = (
        "import sys, threading\n"
        "class NoLance:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'lancedb':\n"
        "            raise ImportError('lancedb is broken here')\n"
        "sys.meta_path.insert(0, NoLance())\n"
        "from recs.stages import store\n"
        "store.preload()\n"
        "[t.join() for t in threading.enumerate() if t.name == 'recs-import-lancedb']\n"
        "try:\n"
        "    store.connect('/nonexistent/db')\n"
        "except ImportError as err:\n"
        "    print('raised:', err)\n"
    )
    done = run_python(code)
    assert done.stdout.strip() == "raised: lancedb is broken here"
    assert "Traceback" not in done.stderr  # the thread's failure is not printed
