"""The README's example decision commit (written by the live test) has the shape the code writes
today: its subject, the metrics table's columns and rows, and its trailers, in order."""

from __future__ import annotations

import re

from generator.canary import history, report
from generator.canary.queries import metric_specs
from generator.config import CanaryAnalysis, Platform
from generator.paths import REPO_ROOT
from generator.release.trailers import release_trailers


def example() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"```text\n(canary-analyze [^\n]*: STEP .*?)```", text, re.S)
    assert block, "README.md has no example decision commit"
    return block.group(1).splitlines()


def test_the_readme_example_is_a_decision_commit_as_the_code_writes_it():
    lines = example()
    assert re.fullmatch(r"canary-analyze prod-canary: STEP \d+% -> \d+%: every metric passes", lines[0])
    header = next(line.strip() for line in lines if line.strip().startswith("metric "))
    assert header.split() == " ".join(report.COLUMNS).split()
    objectives = Platform.model_fields["monitoring"].default
    names = [spec.name for spec in metric_specs(CanaryAnalysis(), objectives)]
    rows = [line.split()[0] for line in lines if line.startswith("  ") and line.split()[0] in names]
    assert rows == names
    trailers = [line.split(":", 1)[0] for line in lines[lines.index("") :] if re.match(r"^[A-Z][\w-]+: ", line)]
    step_keys = [history.DECISION, history.ENV, history.WEIGHT, history.REASON, history.DIGEST, history.WINDOW]
    assert trailers == [*step_keys, *(key for key, _ in release_trailers("canary-analyze", ["e"], weight=1))]
