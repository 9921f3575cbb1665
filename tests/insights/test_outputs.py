"""The files ``insights`` writes: insights.json against its schema, metrics.prom as Prometheus
reads it, deployments.csv, the same bytes for the same history, and the exit codes."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import jsonschema
import pytest
from insights_support import SINCE, UNTIL
from prometheus_client.parser import text_string_to_metric_families

from generator.insights import cli
from generator.insights.history import TRAILERS
from generator.insights.outputs import FILES, SCHEMA_PATH
from generator.paths import TOOLS_BIN


def test_insights_json_fits_its_schema_and_the_schema_refuses_a_wrong_shape(report):
    _, doc = report
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert doc["schemaVersion"] == 1
    assert doc["window"] == {"since": "2026-01-05T00:00:00Z", "until": "2026-01-06T00:00:00Z"}
    broken = json.loads(json.dumps(doc))
    broken["all"]["changeFailureRate"]["value"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)
    broken = json.loads(json.dumps(doc))
    broken["deployments"][0]["surprise"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)


def test_the_schema_names_every_trailer_a_release_command_writes():
    trailers = json.loads(SCHEMA_PATH.read_text())["$defs"]["deployment"]["properties"]["trailers"]
    assert trailers["propertyNames"]["enum"] == list(TRAILERS)


def test_metrics_prom_parses_and_carries_the_figures(report):
    out, _ = report
    text = (out / "metrics.prom").read_text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("ml_gitops_deployments", (("env", "all"),))] == 19
    assert samples[("ml_gitops_change_failure_ratio", (("env", "dev"),))] == 0.25
    assert ("ml_gitops_change_failure_ratio", (("env", "staging"),)) not in samples  # not enough data
    assert samples[("ml_gitops_canary_catches", (("env", "prod-canary"),))] == 1
    assert samples[("ml_gitops_lead_time_seconds", (("env", "prod"), ("quantile", "0.9")))] == 5 * 3600
    assert samples[("ml_gitops_time_to_restore_seconds", (("env", "all"), ("quantile", "0.5")))] == 7200
    live = {labels: v for (name, labels), v in samples.items() if name == "ml_gitops_live_model_info"}
    assert len(live) == 1 + 1 + 1 + 2 + 2  # one per variant of each environment
    promtool = TOOLS_BIN / "promtool"
    if promtool.exists():  # the tool bootstrap provides it for make test; the parser above always runs
        check = subprocess.run([str(promtool), "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_deployments_csv_has_one_line_per_deployment(report, scripted):
    out, doc = report
    _, ids = scripted
    with (out / "deployments.csv").open(newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == 19 == len(doc["deployments"])
    failed = {(r["env"], r["commit"]): (r["failure"], r["restored_by"], r["restore_seconds"]) for r in lines}
    assert failed[("prod", ids["c6"])] == ("revert", ids["c7"], "3600")
    assert failed[("prod", ids["c5"])] == ("", "", "")
    assert [r["time"] for r in lines] == sorted(r["time"] for r in lines)


def test_the_same_history_gives_the_same_bytes(scripted, report, tmp_path):
    root, _ = scripted
    first, _ = report
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)  # another clone path: nothing of the path leaks into the files
    assert cli.main(["--repo", str(copy), "--since", SINCE, "--until", UNTIL, "--out", str(tmp_path / "again")]) == 0
    for name in FILES:
        assert (tmp_path / "again" / name).read_bytes() == (first / name).read_bytes(), name


def test_one_environment_and_bad_input(scripted, tmp_path, capsys):
    root, _ = scripted
    args = ["--repo", str(root), "--since", SINCE, "--until", UNTIL, "--out", str(tmp_path)]
    assert cli.main([*args, "--env", "prod"]) == 0
    doc = json.loads((tmp_path / "insights.json").read_text())
    assert list(doc["environments"]) == ["prod"] and doc["all"]["deployments"]["count"] == 4
    assert cli.main([*args, "--env", "qa"]) == 2
    assert cli.main([*args[:2], "--since", "yesterday", "--out", str(tmp_path / "x")]) == 2
    assert cli.main([*args[:2], "--rev", "no-such-branch", "--out", str(tmp_path / "x")]) == 2
    assert cli.main(["--repo", str(tmp_path), "--out", str(tmp_path / "y")]) == 3  # not a git repository
    err = capsys.readouterr().err
    assert "unknown environment 'qa'" in err and "not an ISO 8601 time: 'yesterday'" in err
    assert "'no-such-branch' is not a commit" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
