"""make canary-analyze DRY_RUN=1 against a real Prometheus that has no data (issue 30, "Done
when"): a canary at 5 % is held, the reason printed, nothing written; at weight 0 there is
nothing to analyse, also a HOLD."""

from __future__ import annotations

import time

import pytest
from canary_support import CANDIDATE_IMAGE, GIT_ENV, Repo, template
from monitoring_support import Prometheus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def empty_prometheus(tmp_path_factory):
    prometheus = Prometheus(tmp_path_factory.mktemp("empty-prometheus"), {"scrape_configs": []}, [])
    yield prometheus
    prometheus.stop()


@pytest.fixture
def repo(tmp_path, capsys, monkeypatch) -> Repo:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    return Repo(template(tmp_path / "repo", "sha256:" + "5e" * 32), capsys)


def test_no_data_is_a_hold_with_its_reason_and_nothing_written(empty_prometheus, repo):
    idle = repo.analyze(empty_prometheus.url, "--dry-run")
    assert idle.code == 0 and "HOLD at 0%: no candidate" in idle.out, idle
    repo.release("set-image", "--image", "server", "--digest", CANDIDATE_IMAGE, "--variant", "canary", message="c")
    repo.release("canary", "--weight", "5", message="canary at 5")
    time.sleep(3)  # the warm-up and a first look (the fast policy: 1 s and 2 s)
    head, files = repo.head(), repo.overlay_files()
    run = repo.analyze(empty_prometheus.url, "--dry-run")
    assert run.code == 0, run
    first = run.out.splitlines()[0]
    assert first == (
        "canary-analyze prod-canary: HOLD at 5%: pre-check failed: mnist model digest, targets, traffic share"
        "  (dry run: nothing written)"
    ), run.out
    assert "no canary pod is scraped" in run.out and "insufficient" in run.out
    assert repo.head() == head and repo.overlay_files() == files and repo.status() == ""
