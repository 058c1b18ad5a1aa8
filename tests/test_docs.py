"""The settings table (docs/settings.md) follows `Settings`, and the docs' relative links
resolve.

In the spirit of sqlite-utils' test_docs.py: a field added to `Settings` fails here until its
row has the `recs run` flag, the `RECS_*` name and the default. Reads files only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import REPO as ROOT

from recs.cli import main
from recs.core.settings import Settings, default_text

README = ROOT / "README.md"
SETTINGS = ROOT / "docs" / "settings.md"
DOCS = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def settings_rows() -> dict[str, list[str]]:
    """Settings table rows by environment name: {RECS_X: [flag, env, default, meaning]}."""
    rows = {}
    for line in SETTINGS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4:
            for env in re.findall(r"RECS_[A-Z0-9_]+", cells[1]):
                rows[env] = cells
    return rows


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_settings_table(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = Settings.env_name(name)
    rows = settings_rows()
    assert env in rows, f"docs/settings.md has no row for {env} (Settings.{name})"
    flag, _, default, meaning = rows[env]
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)  # the cache default as documented
    wanted = default_text(name)
    cell = default.replace("`", "").strip()
    assert cell == wanted or cell.startswith(wanted + " "), (
        f"settings row for {env}: default {default!r}, Settings says {wanted!r}"
    )
    assert meaning, f"settings row for {env} has no meaning"
    options = {p.name: p.opts[0] for p in main.commands["run"].params}
    assert flag.strip("`") == options.get(name, ""), (
        f"settings row for {env}: flag {flag!r}, `recs run` has {options.get(name)!r}"
    )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(doc: Path) -> None:
    missing = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same file
        if not (doc.parent / target.split("#", 1)[0]).exists():
            missing.append(target)
    assert not missing, f"{doc.name}: links to missing files {missing}"
