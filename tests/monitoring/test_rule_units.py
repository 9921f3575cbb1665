"""``promtool test rules`` on the rules every overlay renders: every alert fires on its documented
cause (with the labels and annotations users route on) and stays quiet when healthy, and every
recording rule has its expected value, 0 included. The cases are the committed files in
``rules/``; this module runs them, checks that they cover every rule, and shows that they catch
the defects they were written for."""

from __future__ import annotations

import re
import tempfile
from functools import cache
from pathlib import Path

import pytest
import yaml
from monitoring_support import (
    OVERLAYS,
    RULE_FILE,
    RULE_TESTS,
    RUNBOOKS_PLACEHOLDER,
    rendered,
    rule_groups,
    rules_of,
    run_promtool,
    stage_rule_tests,
)

from generator.paths import REPO_ROOT
from generator.synthesis.monitoring import RUNBOOK_PAGE, runbooks_url


def test_case_files_exist():
    assert {t.name for t in RULE_TESTS} >= {
        "recording.test.yaml",
        "error_budget.test.yaml",
        "latency_budget.test.yaml",
        "no_model_loaded.test.yaml",
        "load_failures.test.yaml",
        "canary.test.yaml",
    }


@cache
def _promtool_on(rules_yaml: str) -> tuple[int, str]:
    """check + test on one rule set; overlays that render identical rules share the run."""
    with tempfile.TemporaryDirectory(prefix="promtool-") as tmp:
        workdir = Path(tmp)
        names = stage_rule_tests(yaml.safe_load(rules_yaml), workdir)
        checked = run_promtool("check", "rules", RULE_FILE, cwd=workdir)
        if checked.returncode != 0:
            return checked.returncode, checked.stdout + checked.stderr
        tested = run_promtool("test", "rules", *names, cwd=workdir)
        if tested.returncode == 0 and tested.stdout.count("SUCCESS") != len(names):
            return 1, f"expected {len(names)} files to succeed:\n{tested.stdout}"
        return tested.returncode, tested.stdout + tested.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rules_pass_promtool_check_and_every_unit_test(overlay):
    groups = rule_groups(rendered(overlay))
    returncode, output = _promtool_on(yaml.safe_dump(groups, sort_keys=False))
    assert returncode == 0, f"{overlay}:\n{output}"


def _cases() -> list[tuple[str, dict]]:
    return [(t.name, group) for t in RULE_TESTS for group in yaml.safe_load(t.read_text())["tests"]]


def test_every_alert_has_a_firing_and_a_quiet_case():
    alerts = {r["alert"]: r for r in rules_of(rule_groups(rendered("prod"))) if "alert" in r}
    fired: dict[str, list] = {name: [] for name in alerts}
    quiet: dict[str, int] = dict.fromkeys(alerts, 0)
    for _, group in _cases():
        for case in group.get("alert_rule_test", []):
            assert case["alertname"] in alerts, f"a test names an alert the rules do not have: {case['alertname']}"
            if case.get("exp_alerts"):
                fired[case["alertname"]] += case["exp_alerts"]
            else:
                quiet[case["alertname"]] += 1
    for name, rule in alerts.items():
        assert fired[name], f"no case makes {name} fire"
        assert quiet[name], f"no case shows {name} quiet"
        for expected in fired[name]:
            # what Alertmanager routes on and what the on-call reads
            assert {"severity", "namespace", "model"} <= set(expected["exp_labels"]), name
            assert expected["exp_labels"]["severity"] == rule["labels"]["severity"], name
            assert set(expected["exp_annotations"]) == {"summary", "description", "runbook_url"}, name
            assert expected["exp_annotations"]["runbook_url"].startswith(RUNBOOKS_PLACEHOLDER + "#"), name


def test_every_recording_rule_has_an_expected_value_and_a_zero_case():
    records = {r["record"] for r in rules_of(rule_groups(rendered("prod"))) if "record" in r}
    values: dict[str, set[float]] = {name: set() for name in records}
    for _, group in _cases():
        for case in group.get("promql_expr_test", []):
            if case["expr"] in values:
                values[case["expr"]] |= {float(s["value"]) for s in case["exp_samples"]}
    for name, seen in values.items():
        assert 0.0 in seen, f"no case shows {name} recording 0"
        assert seen - {0.0}, f"no case shows {name} recording a non-zero value"


def test_every_runbook_url_links_a_heading_of_the_runbook_page():
    groups = rule_groups(rendered("prod"))
    page = re.sub(r"^```.*?^```", "", (REPO_ROOT / RUNBOOK_PAGE).read_text(), flags=re.M | re.S)
    # GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens
    anchors = {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", page, re.M)
    }
    for rule in rules_of(groups):
        if "alert" in rule:
            url, _, anchor = rule["annotations"]["runbook_url"].partition("#")
            assert url.startswith("https://") and url.endswith(f"/{RUNBOOK_PAGE}"), url
            assert anchor in anchors, f"{rule['alert']}: {RUNBOOK_PAGE} has no heading for #{anchor}"


@pytest.mark.parametrize(
    "repo_url, expected",
    [
        (
            "https://git.example.com/ml/ml-gitops.git",
            "https://git.example.com/ml/ml-gitops/blob/main/docs/operating.md",
        ),
        ("git@github.com:org/repo.git", "https://github.com/org/repo/blob/main/docs/operating.md"),
        (
            "ssh://git@gitlab.example.com:2222/group/repo.git",
            "https://gitlab.example.com/group/repo/blob/main/docs/operating.md",
        ),
        ("https://token@git.example.com:8443/a/b/", "https://git.example.com:8443/a/b/blob/main/docs/operating.md"),
    ],
)
def test_runbook_links_follow_the_repository_argo_cd_reads(repo_url, expected):
    assert runbooks_url(repo_url, "main") == expected


# The defects the issue names, as the rules were before: each must make its test file fail.
REGRESSIONS = {
    "5xx ratio absent (not 0) without a 5xx series": (
        "recording.test.yaml",
        "inference:request_error_ratio:rate5m",
        'sum by (namespace, model) (rate(inference_requests_total{model="mnist",code=~"5.."}[5m]))\n/\n'
        'sum by (namespace, model) (rate(inference_requests_total{model="mnist"}[5m]))',
    ),
    "canary compared with an absent stable series": (
        "canary.test.yaml",
        "InferenceCanaryWorseThanStable",
        '(sum by (namespace, model) (rate(inference_requests_total{model="mnist",track="canary",code=~"5.."}[10m]))'
        ' / sum by (namespace, model) (rate(inference_requests_total{model="mnist",track="canary"}[10m])))\n'
        '> 2 * (sum by (namespace, model) (rate(inference_requests_total{model="mnist",track="stable",code=~"5.."}'
        '[10m])) / sum by (namespace, model) (rate(inference_requests_total{model="mnist",track="stable"}[10m])))'
        " + 0.001",
    ),
    "no model loaded blind to crash loops": (
        "no_model_loaded.test.yaml",
        "InferenceNoModelLoaded",
        'max by (namespace, model) (inference_model_ready{model="mnist"}) == 0',
    ),
    "load failures blind to a counter that appears at 1": (
        "load_failures.test.yaml",
        "InferenceModelLoadFailures",
        'sum by (namespace, model, version) (increase(inference_model_load_failures_total{model="mnist"}[15m])) > 0',
    ),
}


@pytest.mark.parametrize("defect", sorted(REGRESSIONS))
def test_the_unit_tests_catch_the_defect_they_were_written_for(defect, tmp_path):
    test_file, rule_name, old_expr = REGRESSIONS[defect]
    groups = rule_groups(rendered("prod"))
    (rule,) = [r for r in rules_of(groups) if rule_name in (r.get("alert"), r.get("record"))]
    rule["expr"] = old_expr
    names = stage_rule_tests(groups, tmp_path, [t for t in RULE_TESTS if t.name == test_file])
    result = run_promtool("test", "rules", *names, cwd=tmp_path)
    assert result.returncode != 0 and "FAILED" in result.stderr, result.stdout + result.stderr
