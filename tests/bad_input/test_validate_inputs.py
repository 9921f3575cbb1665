"""``make validate`` on broken input files the repository holds: a finding naming the file (and
the field) for each problem, exit 1, nothing changed on disk; never a traceback, a crash with no
file named, or a file silently left out. See "Broken input files" in generator/validate/README.md."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bad_input_support import assert_no_crash, copy_repo, findings, snapshot, validate

from generator.config import ConfigError, load_config
from generator.inputs import MAX_DEPTH, InputError, load_yaml
from generator.paths import REPO_ROOT
from generator.validate.render import NOT_ENVIRONMENTS
from generator.validate.yamlload import load_stream

DEEP = "a: " + "[" * 100_000 + "]" * 100_000 + "\n"


def break_file(path: Path, case: str) -> str:
    """Break ``path`` as ``case`` says; the problem the input layer names, without the file."""
    if case == "fifo":
        path.unlink()
        os.mkfifo(path)
        return "not a regular file (a FIFO, device or directory is never read)"
    if case == "latin-1":
        data = path.read_bytes()
        path.write_bytes(data + b"# caf\xe9\n")
        line = data.count(b"\n") + 1
        return f"line {line}: not UTF-8 (byte 0xe9 at offset {len(data) + 5})"
    path.write_text(DEEP)
    return f"nested more than {MAX_DEPTH} levels deep"


@pytest.mark.parametrize("freshness", [True, False], ids=["make-validate", "no-freshness"])
@pytest.mark.parametrize("case", ["fifo", "latin-1", "deep"])
def test_an_unreadable_platform_yaml_is_one_finding_naming_it(tmp_path, case, freshness):
    root = copy_repo(tmp_path)
    problem = break_file(root / "platform.yaml", case)
    before = snapshot(root)
    result = validate(root, *([] if freshness else ["--no-freshness"]))
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_crash(result)
    got = findings(result)
    assert [line for line in got if line.endswith("[platform-yaml]")] == [f"platform.yaml: {problem} [platform-yaml]"]
    # Like every tracked YAML file, it is also read for duplicate keys: at most that echo, nothing else.
    rest = [line for line in got if not line.endswith("[platform-yaml]")]
    assert all(line.startswith("platform.yaml") and line.endswith(f"{problem} [yaml-syntax]") for line in rest), rest
    assert len(rest) == (0 if case == "fifo" else 1), rest
    assert snapshot(root) == before


def test_a_platform_yaml_synth_refuses_is_reported_with_synths_own_lines(tmp_path):
    """Not a freshness finding quoting the last lines of a traceback: the lines make synth prints."""
    root = copy_repo(tmp_path)
    config = root / "platform.yaml"
    text = config.read_text()
    assert "    maxReplicas: 6\n" in text
    config.write_text(text.replace("    maxReplicas: 6\n", "    maxReplicas: 1\n"))
    before = snapshot(root)
    result = validate(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_crash(result)
    assert findings(result) == [
        "platform.yaml: serving.autoscaling.maxReplicas: must be >= minReplicas (2) [platform-yaml]"
    ]
    assert snapshot(root) == before


@pytest.mark.parametrize("case", ["fifo", "latin-1", "deep"])
def test_an_unreadable_kustomization_is_a_finding_and_its_overlay_is_never_skipped(tmp_path, case):
    root = copy_repo(tmp_path)
    # base and the previews' two are no environment
    overlays = len(
        [p for p in (root / "overlays").glob("*/kustomization.yaml") if p.parent.name not in NOT_ENVIRONMENTS]
    )
    problem = break_file(root / "overlays/dev/kustomization.yaml", case)
    before = snapshot(root)
    result = validate(root, "--no-freshness")
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_crash(result)
    got = findings(result)
    assert f"overlays/dev/kustomization.yaml: {problem} [release-file]" in got
    assert any(line.startswith("dev: kustomize build failed: ") and line.endswith("[build]") for line in got), got
    assert f"; {overlays} overlay(s)" in result.stdout  # dev is discovered, not silently left out
    assert snapshot(root) == before
    if case == "fifo":  # --overlay names it too, rather than "unknown overlay(s): dev"
        only = validate(root, "--no-freshness", "--overlay", "dev")
        assert only.returncode == 1 and f"overlays/dev/kustomization.yaml: {problem} [release-file]" in only.stdout


def test_an_unreadable_argocd_file_is_a_finding_naming_it(tmp_path):
    root = copy_repo(tmp_path)
    path = sorted((root / "argocd").glob("*.yaml"))[0]
    problem = break_file(path, "latin-1")
    result = validate(root, "--no-freshness")
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_crash(result)
    assert f"argocd/{path.name}: {problem} [yaml-syntax]" in findings(result)


def test_a_config_that_does_not_exist_is_a_usage_error(tmp_path):
    result = validate(copy_repo(tmp_path), "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"validate: --config {tmp_path / 'nope.yaml'} does not exist"]


@pytest.mark.parametrize(
    "text",
    [DEEP, "a:\n" + "".join("  " * i + "- b:\n" for i in range(1_000)), "[" * 100_000],
    ids=["flow", "block", "unterminated"],
)
def test_validates_yaml_reader_refuses_deep_nesting_without_crashing(text):
    """libyaml composes recursively in C: 100,000 levels used to kill the process (SIGSEGV), a
    few thousand ended in a RecursionError."""
    stream = load_stream(text)
    assert stream.error == f"nested more than {MAX_DEPTH} levels deep"
    assert stream.documents == []


def test_validates_yaml_reader_keeps_what_nests_within_the_limit():
    text = "a: " + "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1) + "\nb: 1\nb: 2\n"
    stream = load_stream(text)
    assert stream.error is None and len(stream.documents) == 1
    assert [(d.key, d.line, d.first_line) for d in stream.duplicates] == [("b", 3, 2)]
    assert load_stream("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n").error is not None


def test_synth_names_an_overlay_kustomization_that_is_not_a_regular_file(tmp_path):
    root = copy_repo(tmp_path)
    break_file(root / "overlays/dev/kustomization.yaml", "fifo")
    with pytest.raises(ConfigError) as caught:
        load_config(root / "platform.yaml")
    assert any(
        line.endswith(": overlays/dev/kustomization.yaml is not a regular file") for line in caught.value.problems
    ), caught.value.problems


SELF = "a: &a [*a]\n"  # a list that holds itself: every walk over it loops forever
LAUGHS = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
)  # 400 bytes, a billion values once expanded


@pytest.mark.parametrize(("text", "where"), [(SELF, "line 1, column 8"), (LAUGHS, "line 2, column 10")])
def test_the_input_layer_refuses_aliases_in_one_line(text, where):
    with pytest.raises(InputError) as caught:
        load_yaml(text, "f.yaml")
    anchor = "a" if text == SELF else "a0"
    assert caught.value.problems == [
        f"f.yaml: {where}: alias *{anchor}: aliases are not accepted here; write the value out"
    ]


@pytest.mark.parametrize("text", [SELF, LAUGHS], ids=["self", "laughs"])
def test_validates_yaml_reader_walks_each_aliased_node_once(text):
    started = time.monotonic()
    stream = load_stream(text + "\nb: 1\nb: 2\n")
    assert time.monotonic() - started < 5
    assert stream.error is None and [d.key for d in stream.duplicates] == ["b"]


def test_an_alias_in_platform_yaml_is_refused_by_synth_and_named_by_validate(tmp_path):
    root = copy_repo(tmp_path)
    config = root / "platform.yaml"
    config.write_text(config.read_text() + "x-loop: &loop [*loop]\n")
    line = config.read_text().count("\n")
    before = snapshot(root)
    problem = f"line {line}, column 16: alias *loop: aliases are not accepted here; write the value out"
    synth = subprocess.run(
        [sys.executable, "-m", "generator", "synth", "--config", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert synth.returncode == 2 and synth.stderr.splitlines()[0] == f"platform.yaml: {problem}", synth.stderr
    result = validate(root, "--no-freshness")
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_crash(result)
    assert findings(result) == [f"platform.yaml: {problem} [platform-yaml]"]
    assert snapshot(root) == before


def test_an_argocd_file_that_holds_itself_is_a_finding(tmp_path):
    root = copy_repo(tmp_path)
    (root / "argocd/loop.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: loop\n  labels: &l\n    a: *l\n"
    )
    result = validate(root, "--no-freshness")
    assert result.returncode == 1, result.stdout + result.stderr
    assert_no_crash(result)
    assert (
        "argocd/loop.yaml: line 6: alias *l: aliases are not accepted here; write the value out [yaml-syntax]"
        in findings(result)
    )
