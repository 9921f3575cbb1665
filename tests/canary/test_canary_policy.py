"""The analysis policy in platform.yaml: defaults, bounds and the checks a schema cannot express,
each bad value one line naming its key; and make canary-analyze refusing such a file (exit 2,
nothing written)."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from generator.config import CanaryAnalysis, ConfigError, load_config
from generator.paths import REPO_ROOT

GOOD = yaml.safe_load((REPO_ROOT / "platform.yaml").read_text())
CANARY_INDEX = next(i for i, e in enumerate(GOOD["environments"]) if e["strategy"] == "canary")
ROLLING_INDEX = next(i for i, e in enumerate(GOOD["environments"]) if e["strategy"] == "rolling")


def write(tmp_path: Path, data: dict) -> Path:
    for env in data["environments"]:
        (tmp_path / env["overlay"]).mkdir(parents=True, exist_ok=True)
        (tmp_path / env["overlay"] / "kustomization.yaml").write_text("resources: [../base]\n")
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def with_analysis(index: int, **values) -> dict:
    data = copy.deepcopy(GOOD)
    data["environments"][index]["analysis"] = {**data["environments"][index].get("analysis", {}), **values}
    return data


BAD = {
    "steps not increasing": (
        with_analysis(CANARY_INDEX, steps=[10, 5, 100]),
        f"environments[{CANARY_INDEX}].analysis.steps: [10, 5, 100] must increase strictly",
    ),
    "steps short of the promotion": (
        with_analysis(CANARY_INDEX, steps=[5, 50]),
        f"environments[{CANARY_INDEX}].analysis.steps: [5, 50] must end at 100 (the promotion)",
    ),
    "a step above 100": (
        with_analysis(CANARY_INDEX, steps=[5, 150]),
        f"environments[{CANARY_INDEX}].analysis.steps[1]: 150 must be <= 100",
    ),
    "stepping on missing data": (
        with_analysis(CANARY_INDEX, onInsufficientData="step"),
        f"environments[{CANARY_INDEX}].analysis.onInsufficientData: 'step' must be 'hold'",
    ),
    "no failure aborts": (
        with_analysis(CANARY_INDEX, failuresToAbort=0),
        f"environments[{CANARY_INDEX}].analysis.failuresToAbort: 0 must be >= 1",
    ),
    "alpha of one": (
        with_analysis(CANARY_INDEX, alpha=1),
        f"environments[{CANARY_INDEX}].analysis.alpha: 1 must be <= 0.2",
    ),
    "an unknown metric": (
        with_analysis(CANARY_INDEX, metrics={"cpu": {"maxIncrease": 0.1}}),
        f"environments[{CANARY_INDEX}].analysis.metrics.cpu: unknown key",
    ),
    "an unknown placeholder": (
        with_analysis(
            CANARY_INDEX, metrics={"errorRatio": {"maxIncrease": 0.1, "badQuery": "$job", "totalQuery": "x"}}
        ),
        f"environments[{CANARY_INDEX}].analysis.metrics.errorRatio.badQuery: may use only the placeholders",
    ),
    "half an override": (
        with_analysis(CANARY_INDEX, metrics={"latencyP99": {"maxIncrease": 0.1, "badQuery": "x"}}),
        f"environments[{CANARY_INDEX}].analysis.metrics.latencyP99: give both badQuery and totalQuery",
    ),
    "analysis of a rolling environment": (
        with_analysis(ROLLING_INDEX, steps=[50, 100]),
        f"environments[{ROLLING_INDEX}].analysis: only a canary environment has a canary analysis",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_policy_is_one_line_naming_its_key(tmp_path, case):
    data, says = BAD[case]
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data))
    assert len(caught.value.problems) == 1, caught.value.problems
    assert caught.value.problems[0].startswith(f"platform.yaml: {says}"), caught.value.problems


def test_a_canary_environment_without_a_policy_gets_the_defaults(tmp_path):
    data = copy.deepcopy(GOOD)
    data["environments"][CANARY_INDEX].pop("analysis", None)
    platform = load_config(write(tmp_path, data))
    assert platform.environments[CANARY_INDEX].canary_analysis == CanaryAnalysis()
    assert platform.environments[ROLLING_INDEX].canary_analysis is None
    assert CanaryAnalysis().on_insufficient_data == "hold" and CanaryAnalysis().steps[-1] == 100


def test_canary_analyze_refuses_a_bad_policy_with_exit_2_and_writes_nothing(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "overlays", root / "overlays")
    data = with_analysis(CANARY_INDEX, bakeSeconds=0)
    (root / "platform.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    before = sorted((p, p.read_bytes()) for p in root.rglob("*") if p.is_file())
    result = subprocess.run(
        [sys.executable, "-m", "generator", "canary-analyze", "--env", "prod-canary", "--repo", str(root)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result
    assert result.stderr.strip() == (
        "canary-analyze: refused: platform.yaml is invalid: platform.yaml: "
        f"environments[{CANARY_INDEX}].analysis.bakeSeconds: 0 must be >= 1"
    )
    assert sorted((p, p.read_bytes()) for p in root.rglob("*") if p.is_file()) == before


def test_canary_analyze_refuses_an_environment_that_is_not_a_canary_one():
    result = subprocess.run(
        [sys.executable, "-m", "generator", "canary-analyze", "--env", "prod", "--dry-run"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr.startswith("canary-analyze: refused: prod is a rolling environment, not a canary one")
