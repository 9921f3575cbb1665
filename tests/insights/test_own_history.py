"""``insights`` on this repository's own history: one environment's deployment count matches a
count taken here from ``git log --first-parent`` diffs of its release files, without the code
under test, and the whole history is read in a few seconds."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter

from generator.insights.cli import load
from generator.insights.metrics import Window, compute
from generator.paths import REPO_ROOT

#: A pinned fact on a changed line: an image tag or digest, a model version or digest (the older
#: ``MODEL_VERSION=<n>`` literal too), with its value.
PIN = re.compile(r"\b(newTag|digest|MODEL_VERSION|MODEL_DIGEST)\s*[:=]\s*\"?([^\"\s]+)")


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO_ROOT), *args], check=True, capture_output=True, text=True).stdout


def changed_pins(sha: str, files: list[str]) -> bool:
    """Whether the commit adds the overlay or changes the set of pinned values in its release files."""
    parent = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", "-q", f"{sha}^1"], capture_output=True
    )
    if parent.returncode != 0 or not git("ls-tree", f"{sha}^1", "--", files[0]).strip():
        return True  # the commit that creates the overlay
    diff = git("diff", "-U0", f"{sha}^1", sha, "--", *files)
    added, removed = Counter(), Counter()
    for line in diff.splitlines():
        if line.startswith(("+++", "---")) or line[:1] not in "+-" or line[1:].lstrip().startswith("#"):
            continue
        for key, value in PIN.findall(line):
            (added if line[0] == "+" else removed)[(key, value)] += 1
    return added != removed


def test_dev_deployments_match_git_log_by_hand():
    env = "dev"
    files = [f"overlays/{env}/kustomization.yaml", f"overlays/{env}/release.yaml"]
    touching = git("log", "--first-parent", "--format=%H", "HEAD", "--", *files).split()
    by_hand = [sha for sha in reversed(touching) if changed_pins(sha, files)]
    started = time.monotonic()
    loaded = load(REPO_ROOT, "HEAD", None, "all", None)
    elapsed = time.monotonic() - started
    found = [d.commit.sha for d in loaded.history.deployments[env]]
    assert found == by_hand and len(found) >= 4
    assert elapsed < 10, f"reading this repository's history took {elapsed:.1f}s"
    figures, _ = compute(loaded.history, Window(loaded.window.since, loaded.window.until))
    assert figures[env]["deployments"]["count"] == len(by_hand)
    assert figures[env]["changeFailureRate"]["denominator"] == len(by_hand)
