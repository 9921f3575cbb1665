"""Fixtures of the insights suites: the scripted history, built once, and its insights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from insights_support import SINCE, UNTIL, build_history

from generator.insights import cli


@pytest.fixture(scope="session")
def scripted(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The scripted repository and its commit ids by name (insights_support.build_history)."""
    root = tmp_path_factory.mktemp("scripted") / "repo"
    return root, build_history(root)


@pytest.fixture(scope="session")
def report(scripted, tmp_path_factory) -> tuple[Path, dict]:
    """``insights`` run on the scripted history over the scripted day: its directory and insights.json."""
    root, _ = scripted
    out = tmp_path_factory.mktemp("report")
    code = cli.main(["--repo", str(root), "--since", SINCE, "--until", UNTIL, "--out", str(out)])
    assert code == 0
    return out, json.loads((out / "insights.json").read_text())
