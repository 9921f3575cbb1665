"""Helpers of the live canary-analysis suite: a release repository of its own (the release suites'
template, tests/release/release_support.py) with a fast analysis policy, and the analysis and
history commands run in-process against it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from generator.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests" / "release"))

import release_support
from release_support import GIT_ID, Result, make_template

ENV = "prod-canary"
TRAFFIC = f"overlays/{ENV}/traffic.yaml"
#: The policy of the live tests: the default logic, its intervals in seconds instead of minutes,
#: fewer requests per decision, and latency bounds a loaded test machine meets (2 cores, shared).
#: Stable's p99 here is the 1 ms bucket, and the harness sends the canary single requests between
#: stable's bursts, so an idle canary process's wake-up alone can put several of its few requests
#: above it: a healthy canary failed the 5-point default in a CI run. No live scenario is a latency
#: regression; the latency comparison's logic is tested in tests/canary.
FAST_POLICY = {
    "steps": [5, 10, 25, 50, 100],
    "warmupSeconds": 1,
    "bakeSeconds": 2,
    "intervalSeconds": 2,
    "minRequests": 40,
    "maxHoldSeconds": 3600,
    "failuresToAbort": 2,
    "trafficTolerance": 5,
    "maxScrapeAgeSeconds": 30,
    "metrics": {"latencyP99": {"maxIncrease": 0.5, "cap": 0.2}},
}
#: A server image digest for the candidate (the canary must run something other than stable).
CANDIDATE_IMAGE = "sha256:" + "c4" * 32
#: The identity the analysis commits as (no global git configuration needed).
GIT_ENV = {
    "GIT_AUTHOR_NAME": "canary-analysis-tests",
    "GIT_AUTHOR_EMAIL": "canary-analysis-tests@example.com",
    "GIT_COMMITTER_NAME": "canary-analysis-tests",
    "GIT_COMMITTER_EMAIL": "canary-analysis-tests@example.com",
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "commit.gpgsign",
    "GIT_CONFIG_VALUE_0": "false",
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *GIT_ID, "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def template(dest: Path, served_digest: str) -> Path:
    """The release state with the fast policy, and the model digest the live servers serve
    pinned in both tracks (the candidate differs from stable by its server image only)."""
    root = make_template(dest)
    platform = yaml.safe_load((root / "platform.yaml").read_text())
    (env,) = [e for e in platform["environments"] if e["name"] == ENV]
    env["analysis"] = FAST_POLICY
    (root / "platform.yaml").write_text(yaml.safe_dump(platform, sort_keys=False))
    release = root / f"overlays/{ENV}/release.yaml"
    text = release.read_text()
    pinned = {line.split('"')[1] for line in text.splitlines() if "MODEL_DIGEST" in line}
    for digest in pinned:
        text = text.replace(digest, served_digest)
    release.write_text(text)
    git(root, "commit", "-q", "-a", "-m", "test release state: fast canary analysis, the live servers' model")
    return root


class Repo(release_support.Repo):
    """A private copy of the template, and the commands (analysis and history) run in-process against it."""

    @classmethod
    def copy(cls, template_root: Path, dest: Path, capsys) -> Repo:
        shutil.copytree(template_root, dest, symlinks=True)
        return cls(dest, capsys)

    def command(self, module: str, *args: str) -> Result:
        import importlib

        self.capsys.readouterr()
        code = importlib.import_module(module).main([*args, "--repo", str(self.root)])
        out = self.capsys.readouterr()
        return Result(code, out.out, out.err)

    def release(self, command: str, *args: str, message: str) -> None:
        """A release command (``canary``, ``set-image``), committed as a person would."""
        run = self.command(f"generator.release.{command.replace('-', '_')}", "--env", ENV, *args)
        assert run.code == 0, run
        git(self.root, "commit", "-q", "-a", "-m", message)

    def analyze(self, prometheus_url: str, *args: str) -> Result:
        return self.command("generator.canary.cli", "--env", ENV, "--prometheus-url", prometheus_url, *args)

    def history(self) -> Result:
        return self.command("generator.canary.history_cli", "--env", ENV)

    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD").strip()

    def message(self, rev: str = "HEAD") -> str:
        return git(self.root, "log", "-1", "--format=%B", rev)

    def trailers(self, rev: str = "HEAD") -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for line in git(self.root, "log", "-1", "--format=%(trailers:only=true,unfold=true)", rev).splitlines():
            key, _, value = line.partition(": ")
            if key:
                out.setdefault(key, []).append(value)
        return out

    def weights(self) -> dict[str, int]:
        return yaml.safe_load((self.root / TRAFFIC).read_text())["spec"]

    def overlay_files(self) -> dict[str, bytes]:
        base = self.root / "overlays" / ENV
        return {p.name: p.read_bytes() for p in sorted(base.iterdir())}

    def status(self) -> str:
        return git(self.root, "status", "--porcelain", "--untracked-files=all")
