"""make synth: deterministic, fresh in git, atomic, and never touching hand-edited overlays."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from generator.paths import REPO_ROOT
from generator.synthesis.synth import GENERATED_FILES, GENERATED_ROOTS, HEADER, render_tree, write_tree


@pytest.fixture(scope="module")
def tree() -> dict[str, bytes]:
    return render_tree(REPO_ROOT / "platform.yaml")


def copy_inputs(dest: Path) -> Path:
    """A throwaway copy of what synth reads and writes: platform.yaml and overlays/, argocd/."""
    shutil.copy(REPO_ROOT / "platform.yaml", dest / "platform.yaml")
    shutil.copytree(REPO_ROOT / "overlays", dest / "overlays")
    shutil.copytree(REPO_ROOT / "argocd", dest / "argocd")
    for path in GENERATED_FILES:
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / path, dest / path)
    return dest / "platform.yaml"


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()
    }


def run_synth(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "generator", "synth", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )


def test_same_inputs_give_identical_bytes(tree):
    assert render_tree(REPO_ROOT / "platform.yaml") == tree


def test_committed_generated_files_equal_a_fresh_synth(tree):
    on_disk = {
        str(p.relative_to(REPO_ROOT)): p.read_bytes()
        for root in GENERATED_ROOTS
        for p in sorted((REPO_ROOT / root).rglob("*"))
        if p.is_file()
    } | {path: (REPO_ROOT / path).read_bytes() for path in GENERATED_FILES if (REPO_ROOT / path).is_file()}
    stale = sorted(set(tree) ^ set(on_disk) | {k for k in tree if on_disk.get(k) != tree[k]})
    assert not stale, f"generated files are stale, run `make synth`: {stale}"


def test_every_generated_file_says_so_in_its_first_line(tree):
    for path, data in tree.items():
        assert data.decode().startswith(HEADER), path
        assert list(yaml.safe_load_all(data)), path


def test_generated_names_have_no_hash_suffixes(tree):
    for path, data in tree.items():
        for doc in yaml.safe_load_all(data):
            if doc and "metadata" in doc:
                assert not re.search(r"-c8[0-9a-f]{6}$", doc["metadata"]["name"]), (path, doc["metadata"]["name"])


def test_base_has_no_namespace(tree):
    for path, data in tree.items():
        if path.startswith("overlays/base/"):
            for doc in yaml.safe_load_all(data):
                assert "namespace" not in doc.get("metadata", {}), path


def test_synth_twice_changes_nothing_the_second_time(tmp_path):
    config = copy_inputs(tmp_path)
    first = run_synth(config)
    assert first.returncode == 0, first.stderr
    before = snapshot(tmp_path)
    second = run_synth(config)
    assert second.returncode == 0, second.stderr
    assert "0 changed" in second.stdout
    assert snapshot(tmp_path) == before


def test_synth_never_touches_hand_edited_overlays(tmp_path):
    config = copy_inputs(tmp_path)
    (tmp_path / "overlays" / "base" / "stray.yaml").write_text("# left over\n")

    def hand_edited():
        return {k: v for k, v in snapshot(tmp_path / "overlays").items() if not k.startswith(("base/", "components/"))}

    before = hand_edited()
    assert run_synth(config).returncode == 0
    assert hand_edited() == before
    assert not (tmp_path / "overlays" / "base" / "stray.yaml").exists()


def test_failed_synth_leaves_the_tree_untouched(tmp_path):
    config = copy_inputs(tmp_path)
    config.write_text(config.read_text().replace("minReplicas: 2", "minReplicas: 20"))
    before = snapshot(tmp_path)
    result = run_synth(config)
    assert result.returncode == 2
    assert (
        result.stderr.splitlines()[0] == "platform.yaml: serving.autoscaling.maxReplicas: must be >= minReplicas (20)"
    )
    assert "nothing was written" in result.stderr
    assert snapshot(tmp_path) == before


def test_write_failure_midway_keeps_the_previous_tree(tmp_path, tree, monkeypatch):
    """A failure while staging the second generated directory leaves the first one untouched too."""
    config = copy_inputs(tmp_path)
    before = snapshot(tmp_path)
    changed = {path: data + b"# changed\n" for path, data in tree.items()}
    fail_at = sum(path.startswith(GENERATED_ROOTS[0] + "/") for path in tree) + 2
    calls = {"n": 0}
    real_write = Path.write_bytes

    def failing_write(self, data):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing_write)
    with pytest.raises(OSError):
        write_tree(changed, config.parent)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before
    assert not [p for p in tmp_path.rglob(".*") if p.name.startswith((".base-", ".argocd-"))]


def test_check_fails_on_a_stale_and_on_an_untracked_generated_file(tmp_path):
    """`make check` (what CI and pre-commit call): fresh is 0; a file synth rewrites, or a
    generated file git does not know, is 1."""
    config = copy_inputs(tmp_path)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "fresh"], check=True)

    def check() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "generator", "check", "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        )

    assert check().returncode == 0
    subprocess.run([*git, "rm", "-q", "--cached", "argocd/admin/appproject-ml-platform-dev.yaml"], check=True)
    untracked = check()
    assert untracked.returncode == 1
    assert (
        "not in git: argocd/admin/appproject-ml-platform-dev.yaml" in untracked.stderr and "stale" in untracked.stderr
    )
    subprocess.run([*git, "add", "-A"], check=True)  # staged, as at a pre-commit: fresh
    assert check().returncode == 0
    (tmp_path / "argocd/admin/appproject-ml-platform-dev.yaml").write_text("# edited by hand\n")
    stale = check()
    assert stale.returncode == 1 and "synth wrote argocd/admin/appproject-ml-platform-dev.yaml" in stale.stderr
    assert check().returncode == 0  # the first check rewrote it


def _objects(tree: dict[str, bytes], path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(tree[path]) if d]


def test_distributed_training_renders_an_indexed_job_that_validates_clean(tmp_path, tree):
    """`training.workers: 2` in a copy of the repository: synth, then `validate` (freshness
    included) finds nothing; the Job is Indexed on its own headless Service, per variant too."""
    # synth quotes bad values with services.values; validate checks the pins against registry/
    for part in ("generator", "charts", "services", "registry"):
        shutil.copytree(REPO_ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    config = copy_inputs(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["training"].update(workers=2, schedule="0 3 * * 0")
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    assert run_synth(config).returncode == 0
    validated = subprocess.run(
        [sys.executable, "-m", "generator", "validate", "--root", str(tmp_path), "--no-kubeconform"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "freshness not checked" not in validated.stderr

    distributed = render_tree(config)
    training = "overlays/components/training-rolling/mnist.yaml"
    base = {(d["kind"], d["metadata"]["name"]): d for d in _objects(distributed, training)}
    job = base[("Job", "mnist-train")]["spec"]
    assert (job["completionMode"], job["completions"], job["parallelism"]) == ("Indexed", 2, 2)
    assert (job["backoffLimitPerIndex"], job["maxFailedIndexes"]) == (data["training"]["backoffLimit"], 0)
    assert "backoffLimit" not in job and job["successPolicy"] == {"rules": [{"succeededIndexes": "0"}]}
    assert job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2, 3]
    pod = job["template"]["spec"]
    assert pod["subdomain"] == "mnist-train-workers"
    assert job["template"]["metadata"]["labels"]["training.gitops/job"] == "mnist-train"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["TRAINING_WORKERS"]["value"] == "2" and env["TRAINING_WORKER_SERVICE"]["value"] == "mnist-train-workers"
    assert (
        env["TRAINING_JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"]
        == "metadata.labels['batch.kubernetes.io/job-name']"
    )
    assert pod["containers"][0]["ports"] == [{"containerPort": 2222, "name": "worker"}]
    assert pod["securityContext"] == base[("Job", "mnist-train")]["spec"]["template"]["spec"]["securityContext"]
    svc = base[("Service", "mnist-train-workers")]["spec"]
    assert (svc["clusterIP"], svc["publishNotReadyAddresses"]) == ("None", True)
    assert svc["selector"] == {"training.gitops/job": "mnist-train"}
    policy = base[("NetworkPolicy", "mnist-train-workers")]["spec"]
    assert policy["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": svc["selector"]}}], "ports": [{"port": 2222, "protocol": "TCP"}]}
    ]
    assert ("Service", "mnist-retrain-workers") in base
    cron = base[("CronJob", "mnist-retrain")]["spec"]["jobTemplate"]["spec"]
    assert cron["completionMode"] == "Indexed" and cron["template"]["spec"]["subdomain"] == "mnist-retrain-workers"
    assert base[("Job", "mnist-train")]["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "Sync"
    for strategy, variants in (("blue-green", ("blue", "green")), ("canary", ("stable", "canary"))):
        objects = {
            (d["kind"], d["metadata"]["name"])
            for d in _objects(distributed, f"overlays/components/training-{strategy}/mnist.yaml")
        }
        for variant in variants:
            assert {("Job", f"mnist-train-{variant}"), ("Service", f"mnist-train-{variant}-workers")} <= objects
            assert ("NetworkPolicy", f"mnist-train-{variant}-workers") in objects
        # A variant's training trains only the variants' releases: no Job of the rolling release.
        assert ("Job", "mnist-train") not in objects and ("Service", "mnist-train-workers") not in objects
        assert ("CronJob", "mnist-retrain") in objects

    # workers: 1 renders exactly the committed Job
    assert tree[training] == (REPO_ROOT / training).read_bytes()
    assert b"completionMode" not in tree[training]
