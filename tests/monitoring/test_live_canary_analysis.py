"""make canary-analyze against the real thing: the canary environment's stable and canary pods run
as real gunicorn servers on loopback (one stable, two canary), scraped by a real Prometheus with
the generated scrape job and rules (the live harness of test_live_prometheus.py); the analysis
runs in-process against a release repository of its own, with the policy's intervals in
seconds (canary_support.FAST_POLICY), never other logic.

Scenarios (issue 30, item 5): a failing canary (1 predict in 16 a 5xx) is aborted within two
evaluations, stable untouched, and `git revert` of the abort restores the weight and the next
analysis resumes; a healthy canary steps 5 -> 10 -> 25 -> 50 -> 100, the last commit the
promotion; too little traffic, or a canary serving another digest than git pins, holds with no
manifest change; Prometheus down, or answering HTML, exits 3 with the tree and HEAD unchanged.
"""

from __future__ import annotations

import http.server
import shutil
import threading
import time
from pathlib import Path

import pytest
import requests
from canary_support import CANDIDATE_IMAGE, ENV, GIT_ENV, Repo, git, template
from loopback import free_port
from monitoring_support import Prometheus, one, rendered, rule_groups, service_monitor_scrape_config
from svc_helpers import MODEL, Server

pytestmark = pytest.mark.slow

INTERVAL = "1s"
DIGIT = [[[0.5] for _ in range(28)] for _ in range(28)]
#: The canary pods: "a" serves from the start, "b" starts without a model (its predicts are 503s).
CANARY_PODS = ("a", "b")
DEADLINE_SECONDS = 120.0


class Live:
    """The servers, the Prometheus that scrapes them, and the template repository."""

    def __init__(self, prometheus: Prometheus, servers: dict[str, Server], stores: dict[str, Path], template: Path):
        self.prometheus, self.servers, self.stores, self.template = prometheus, servers, stores, template
        self.session = requests.Session()

    @property
    def url(self) -> str:
        return self.prometheus.url

    def predicts(self, pod: str, count: int) -> list[int]:
        """``count`` REST predicts of one digit to one pod; their status codes."""
        path = f"{self.servers[pod].url}/v1/models/{MODEL}:predict"
        return [self.session.post(path, json={"instances": [DIGIT]}, timeout=10).status_code for _ in range(count)]

    def serve(self, pod: str) -> None:
        """Give a pod the model git pins (pod b starts without one), and wait until it serves it."""
        version = self.stores[pod] / MODEL / "1"
        if not version.exists():
            shutil.copytree(self.stores["a"] / MODEL / "1", version)
        self.servers[pod].wait_ready()

    def traffic(self, weight: int, canary: int, *, canary_pods: tuple[str, ...] = ("a",)) -> None:
        """Predicts split as the weight says: ``canary`` to the canary pods (round robin), the
        rest of the share to stable, interleaved; all answered 200."""
        for pod in canary_pods:
            self.serve(pod)
        stable = round(canary * (100 - weight) / weight)
        sent = 0
        for index in range(canary):  # interleaved, as concurrent users would send them
            due = round((index + 1) * stable / canary) - sent
            assert set(self.predicts("stable", due)) <= {200}
            sent += due
            assert self.predicts(canary_pods[index % len(canary_pods)], 1) == [200]

    def settle(self) -> None:
        """Wait until the traffic sent so far is scraped and a look of the analysis sees it (the
        window ends at a multiple of the policy's interval: 2 s; scrapes every second)."""
        time.sleep(4.5)


def _served_digest(prometheus: Prometheus, namespace: str) -> str:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        found = prometheus.query(f'inference_model_digest_info{{namespace="{namespace}",track="stable"}} == 1')
        if found:
            return found[0]["metric"]["digest"]
        time.sleep(0.5)
    raise AssertionError("the stable server's digest never reached Prometheus")


@pytest.fixture(scope="module")
def live(tmp_path_factory, trained_store):
    tmp = tmp_path_factory.mktemp("live-canary-analysis")
    objects = rendered(ENV)
    monitor = one(objects, "ServiceMonitor", f"{MODEL}-server")
    namespace = monitor["metadata"]["namespace"]
    stores = {"stable": tmp / "store-stable", "a": tmp / "store-a", "b": tmp / "store-b"}
    shutil.copytree(trained_store, stores["stable"])
    shutil.copytree(trained_store, stores["a"])
    (stores["b"] / MODEL).mkdir(parents=True)  # canary pod b starts with no model: 503s
    servers: dict[str, Server] = {}
    prometheus = None
    try:
        for pod, store in stores.items():
            servers[pod] = Server(store, tmp / f"server-{pod}.log", MODEL_POLL_SECONDS="1")
        servers["stable"].wait_ready()
        servers["a"].wait_ready()
        pods = {}
        for pod, server in servers.items():
            track = "stable" if pod == "stable" else "canary"
            deployment = one(objects, "Deployment", f"{MODEL}-server-{track}")
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            # The address the generated ServiceMonitor scrapes, as test_live_prometheus.py builds it.
            pods[f"{deployment['metadata']['name']}-live-{pod}"] = (labels, f"127.0.0.1:{server.metrics_port}")
        job = service_monitor_scrape_config(monitor, one(objects, "Service", f"{MODEL}-server-metrics"), pods, INTERVAL)
        groups = [{**group, "interval": INTERVAL} for group in rule_groups(objects)]
        config = {"global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL}, "scrape_configs": [job]}
        prometheus = Prometheus(tmp / "prometheus", config, groups)
        root = template(tmp / "template", _served_digest(prometheus, namespace))
        with pytest.MonkeyPatch.context() as patch:
            for key, value in GIT_ENV.items():
                patch.setenv(key, value)
            patch.delenv("PROMETHEUS_URL", raising=False)
            yield Live(prometheus, servers, stores, root)
    finally:
        if prometheus is not None:
            prometheus.stop()
        for server in servers.values():
            server.terminate()


@pytest.fixture
def repo(live, tmp_path, capsys) -> Repo:
    """A private copy of the template with a candidate in the canary track."""
    repo = Repo.copy(live.template, tmp_path / "repo", capsys)
    repo.release(
        "set-image", "--image", "server", "--digest", CANDIDATE_IMAGE, "--variant", "canary", message="candidate"
    )
    return repo


def show(repo: Repo, kind: str, message: str) -> None:
    """Print a decision commit's message past pytest's capture (with -s: the README's example)."""
    with repo.capsys.disabled():
        print(f"\n--- {kind} commit message ---\n{message}--- end ---")


def start(repo: Repo, weight: int) -> None:
    """A person starts the canary (make canary WEIGHT=...), then the step's warm-up passes."""
    repo.release("canary", "--weight", str(weight), message=f"canary at {weight}")
    time.sleep(2)


def test_a_failing_canary_is_aborted_within_two_evaluations_and_a_revert_resumes(live, repo):
    start(repo, 25)
    stable_before = git(repo.root, "show", "HEAD:overlays/prod-canary/kustomization.yaml")
    # 1 predict in 16 reaches pod b, which has no model yet: a 503
    codes = live.predicts("stable", 480)
    for index in range(160):
        codes += live.predicts("b" if index % 16 == 15 else "a", 1)
    assert codes.count(503) == 10 and set(codes) == {200, 503}
    # pod b then loads the model git pins, so the pre-checks hold: the 5xx are in the window
    live.serve("b")
    live.settle()

    first = repo.analyze(live.url)
    assert first.code == 0, first
    assert "HOLD at 25%: error_ratio failing (1 of 2 in a row abort)" in first.out, first.out
    assert repo.trailers()["Canary-Failures"] == ["1"]
    assert repo.weights() == {"stable": 75, "canary": 25}
    time.sleep(2)  # the next look
    second = repo.analyze(live.url)
    assert second.code == 0, second
    assert repo.trailers()["Canary-Decision"] == ["ABORT"]
    assert repo.trailers()["Canary-Weight"] == ["0"]
    assert repo.weights() == {"stable": 100, "canary": 0}
    message = repo.message()
    assert "error_ratio" in message and "FAIL" in message and "10/" in message
    show(repo, "ABORT", message)
    after = git(repo.root, "show", "HEAD:overlays/prod-canary/kustomization.yaml")
    stable_pins = [line for line in stable_before.splitlines() if "stable" in line or "sha256" in line]
    assert [line for line in after.splitlines() if "stable" in line or "sha256" in line][:2] == stable_pins[:2]
    assert repo.status() == ""

    # git revert of the abort: the weight is back, and the next analysis resumes from there
    abort = repo.head()
    git(repo.root, "revert", "--no-edit", abort)
    assert repo.weights() == {"stable": 75, "canary": 25}
    time.sleep(2)
    live.traffic(25, 80, canary_pods=CANARY_PODS)
    live.settle()
    resumed = repo.analyze(live.url)
    assert resumed.code == 0, resumed
    assert repo.trailers()["Canary-Decision"] == ["STEP"], resumed.out
    assert repo.weights() == {"stable": 50, "canary": 50}
    history = repo.history()
    assert [line.split()[2] for line in history.out.splitlines()[1:]] == ["HOLD", "ABORT", "STEP"], history.out


def test_a_healthy_canary_steps_to_the_promotion(live, repo):
    start(repo, 5)
    for weight in (5, 10, 25, 50):
        live.traffic(weight, 40 if weight < 50 else 60, canary_pods=CANARY_PODS)
        live.settle()
        run = repo.analyze(live.url)
        assert run.code == 0, run
        trailers = repo.trailers()
        assert trailers["Canary-Decision"] == ["STEP"], run.out
        if weight == 5:
            show(repo, "STEP", repo.message())
        time.sleep(2)
    assert trailers["Canary-Weight"] == ["100"]
    assert repo.weights() == {"stable": 100, "canary": 0}
    kustomization = (repo.root / "overlays" / ENV / "kustomization.yaml").read_text()
    assert kustomization.count(CANDIDATE_IMAGE) == 2, "the promotion pins the candidate in both tracks"
    assert "promote the canary to stable" in repo.message()
    rows = repo.history().out.splitlines()[1:]
    assert [(r.split()[2], r.split()[3]) for r in rows] == [
        ("STEP", "10"),
        ("STEP", "25"),
        ("STEP", "50"),
        ("STEP", "100"),
    ]
    idle = repo.analyze(live.url)  # nothing left to analyse: a HOLD that writes nothing
    assert idle.code == 0 and "no candidate" in idle.out and repo.trailers()["Canary-Decision"] == ["STEP"]


def test_too_little_traffic_holds_and_changes_no_manifest(live, repo):
    start(repo, 10)
    files = repo.overlay_files()
    live.traffic(10, 5, canary_pods=CANARY_PODS)
    live.settle()
    head = repo.head()
    shadow = repo.analyze(live.url, "--dry-run")  # DRY_RUN=1: the decision, and nothing written
    assert shadow.code == 0 and "HOLD at 10%: insufficient data" in shadow.out, shadow.out
    assert "(dry run: nothing written)" in shadow.out and repo.head() == head and repo.status() == ""
    run = repo.analyze(live.url)
    assert run.code == 0, run
    assert "HOLD at 10%: insufficient data" in run.out, run.out
    assert repo.overlay_files() == files and repo.status() == ""
    assert repo.trailers()["Canary-Decision"] == ["HOLD"]  # the empty commit that says why
    head = repo.head()
    again = repo.analyze(live.url)  # the same reason again: nothing written
    assert again.code == 0 and "insufficient data" in again.out and repo.head() == head


def test_a_canary_serving_another_digest_than_git_pins_holds(live, repo):
    release = repo.root / f"overlays/{ENV}/release.yaml"
    docs = release.read_text().split("---")
    docs[1] = docs[1].replace(docs[1].split('MODEL_DIGEST: "')[1].split('"')[0], "sha256:" + "0d" * 32)
    release.write_text("---".join(docs))
    git(repo.root, "commit", "-q", "-a", "-m", "canary pins another model digest")
    start(repo, 25)
    files = repo.overlay_files()
    live.traffic(25, 60, canary_pods=CANARY_PODS)
    live.settle()
    run = repo.analyze(live.url)
    assert run.code == 0, run
    assert "HOLD at 25%: pre-check failed: mnist model digest" in run.out, run.out
    assert "git pins sha256:" + "0d" * 32 in run.out
    assert repo.overlay_files() == files and repo.status() == ""


class _Html(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>Sign in</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_prometheus_down_or_answering_html_exits_3_and_changes_nothing(live, repo):
    start(repo, 10)
    head, files = repo.head(), repo.overlay_files()
    traffic = repo.root / "overlays" / ENV / "traffic.yaml"
    traffic.write_text(traffic.read_text() + "# a hand edit in progress\n")
    dirty = repo.analyze(live.url)
    assert dirty.code == 2 and "uncommitted changes in overlays/prod-canary/traffic.yaml" in dirty.err, dirty
    assert repo.head() == head
    git(repo.root, "checkout", "--", str(traffic))
    down = repo.analyze(f"http://127.0.0.1:{free_port()}")
    assert down.code == 3 and "unreachable" in down.err and len(down.err.strip().splitlines()) == 1, down
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        html = repo.analyze(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert html.code == 3 and "other than JSON" in html.err and len(html.err.strip().splitlines()) == 1, html
    assert repo.head() == head and repo.overlay_files() == files and repo.status() == ""


def test_a_push_that_finds_the_remote_moved_changes_nothing(live, repo, tmp_path):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo.root, "remote", "add", "origin", str(remote))
    start(repo, 5)
    git(repo.root, "push", "-q", "origin", "HEAD:refs/heads/main")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(other))
    git(other, "commit", "-q", "--allow-empty", "-m", "someone else's commit")
    git(other, "push", "-q", "origin", "HEAD:main")
    moved = git(other, "rev-parse", "HEAD").strip()
    time.sleep(2)  # a look: no predicts reach the canary, so the traffic share fails (a HOLD that writes)
    head, files = repo.head(), repo.overlay_files()

    refused = repo.analyze(live.url, "--push")
    assert refused.code == 3 and "the push to origin main was refused" in refused.err, refused
    assert "HOLD at 5%: pre-check failed: " in refused.out, refused.out
    assert repo.head() == head and repo.overlay_files() == files and repo.status() == ""
    assert git(remote, "rev-parse", "main").strip() == moved

    git(repo.root, "pull", "-q", "--rebase", "origin", "main")  # the next run, on the remote's history
    pushed = repo.analyze(live.url, "--push")
    assert pushed.code == 0, pushed
    assert git(remote, "rev-parse", "main").strip() == repo.head() != moved
    assert repo.trailers()["Canary-Decision"] == ["HOLD"]
