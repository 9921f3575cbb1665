"""Every fenced code block in the repository's Markdown pages is run, compared or visibly exempt.

Each test id names the block (``file:line`` of its opening fence). The rules:

- Every block has a language: ``sh`` and ``python`` are run, ``text`` is output, ``yaml`` is applied
  by the e2e suite (``tests/e2e/test_e2e_readme.py``), ``mermaid`` is a picture. Anything else,
  or no language, fails here.
- An ``sh`` block runs command by command (``\\`` continuations joined, comments dropped), each in
  its own ``bash -o pipefail`` and each must exit 0, in a scratch clone of this repository (its
  working tree as one commit, sharing .venv and .tools; :mod:`docs_blocks`), so commands that
  write files or commits never touch this checkout. Commands named in :data:`EXPECTATIONS` must
  also print or write what the page says (the prediction ``7``, the card's digest, the pins...).
- A ``python`` block runs with ``.venv/bin/python`` in such a clone; its top-level names are then
  checked by :data:`PYTHON_EXPECTATIONS`.
- A ``text`` block is output: it needs ``output checked by <check>`` (one of :data:`OUTPUT_CHECKS`,
  which produces that output for real and compares) or ``not run here``.

Annotations are HTML comments on the lines right above the opening fence, one per line:

- ``<!-- docs-test: not run here: <reason> -->``: the block is not run (the test is skipped with
  that reason). Only for what cannot run here: no Go module proxy or control plane, podman builds
  (``.ci/run`` runs ``make test-images``).
- ``<!-- docs-test: skip `<command>`: <reason> -->``: that command of the block is not run, the
  others are (``make test``, which would run this suite inside itself).
- ``<!-- docs-test: output checked by <check> -->``: a ``text`` block compared by that check.
- ``<!-- docs-test: commit each step -->``: a release walk, "each step a reviewed commit": after
  each command that changed the tree, everything is committed, as a merged pull request would.

What the test adds to a block, and nothing else (the commands run as written):

- Environment only: ``PATH`` starts with the directory of the helm ``make`` bootstraps;
  ``GIT_EDITOR=true`` (``git revert`` keeps its message); ``PORT``/``GRPC_PORT``/``METRICS_PORT`` (free
  loopback ports) for ``make serve`` and ``make predict``; ``PLAIN_HTTP=1`` where a registry is used;
  ``TRAINING_EPOCHS=1 TRAINING_MAX_EXAMPLES=600`` so a block's own trainings are quick. Nothing
  else is inherited (no ``MAKEFLAGS``, no ``ENV``/``VERSION``/server or trainer settings from the
  calling shell).
- The clone's files are dated 2000-01-01, so ``make`` finds the shared toolchain's stamps up to
  date and never reinstalls into this checkout's .venv or .tools.
- ``localhost:8080``/``localhost:8500``/``localhost:8081`` and the placeholder ``<n>`` are the only text replaced
  (below).
- ``make train`` is run once per module (with ``TRAINING_EPOCHS=8``, which keeps the card above
  the production gates), in the clone every block starts from a copy of: a block's ``make train``
  line is that run. The version it wrote replaces the placeholder ``<n>``.
- ``make serve`` starts in the background (its own process group), is waited for until
  ``/v2/health/ready`` answers, and is stopped at the end of the block; ``localhost:8080``,
  ``localhost:8500`` and ``localhost:8081`` in the block's other commands and in python blocks become its ports. A
  python block that calls the server gets a ``make serve`` of its own.
- A block that runs ``make push-model`` gets a registry on loopback (:mod:`oci_registry_server`):
  its clone's ``modelArtifacts.repository`` points there, committed first (a user's own setting).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml
from docs_blocks import (
    Block,
    Run,
    Server,
    commit_all,
    copy_clone,
    git,
    markdown_pages,
    parse_page,
    run_shell,
    scratch_clone,
    serving,
    shell_commands,
)
from oci_registry_server import running_registry

from generator.paths import REPO_ROOT
from generator.tools import helm_path

pytestmark = pytest.mark.slow

PAGES = markdown_pages(REPO_ROOT)
BLOCKS = [block for page in PAGES for block in page.blocks]
RUN = ("sh", "python")
OUTPUT = ("text",)
ELSEWHERE = {"yaml": "applied by tests/e2e/test_e2e_readme.py", "mermaid": "a picture"}
#: The blocks this module runs or compares (and the ones with no or an unknown language, which fail).
CHECKED = [b for b in BLOCKS if b.language not in ELSEWHERE]

SERVER_COMMAND = "make serve"
TRAIN_COMMAND = "make train"
DEFAULT_PORTS = re.compile(r"\b(localhost|127\.0\.0\.1):(8080|8500|8081)\b")
#: Environment variables a block inherits from the calling shell (everything else is dropped).
INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TMPDIR", "TZ")
#: A block's own trainings are quick ones; the module's one ``make train`` is longer (:data:`TRAIN_ENV`).
QUICK_TRAINING = {"TRAINING_EPOCHS": "1", "TRAINING_MAX_EXAMPLES": "600"}
#: 8 of the default 15 epochs on all the digits: held-out accuracy 0.96x, loss 0.13, above the prod gates.
TRAIN_ENV = {"TRAINING_EPOCHS": "8"}


def block_env(training: dict[str, str] = QUICK_TRAINING) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith("LC_")}
    env["PATH"] = f"{Path(helm_path()).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return {**env, "GIT_EDITOR": "true", **training}


# --- the shared training ------------------------------------------------------------


@dataclass
class Workspace:
    """A scratch clone in which ``make train`` ran once; each block gets a copy."""

    clone: Path
    version: int

    def copy(self, dest: Path) -> Path:
        return copy_clone(self.clone, dest)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    clone = scratch_clone(REPO_ROOT, tmp_path_factory.mktemp("docs-blocks") / "repo")
    registered = [int(p.stem) for p in (clone / "registry" / "mnist").glob("*.yaml") if p.stem.isdigit()]
    result = run_shell(TRAIN_COMMAND, clone, block_env(TRAIN_ENV))
    assert result.returncode == 0, result.describe()
    versions = [int(p.name) for p in (clone / "models" / "mnist").iterdir() if p.name.isdigit()]
    # "make train: models/mnist/<n>/ (n: one past the store and the registry)"
    assert versions == [max(registered, default=0) + 1], versions
    return Workspace(clone, versions[0])


# --- what commands must print or write --------------------------------------------------


@dataclass
class Context:
    """One block's run: its clone, the trained version, what it started and what it learned."""

    clone: Path
    version: int
    env: dict[str, str]
    registry: str | None = None
    server: Server | None = None
    pushed: str | None = None  # repository@digest that make push-model printed
    facts: dict[str, str] = field(default_factory=dict)

    def docs(self, rel: str) -> list[dict]:
        return [d for d in yaml.safe_load_all((self.clone / rel).read_text()) if d]

    def card(self, version: int) -> dict:
        return self.docs(f"registry/mnist/{version}.yaml")[0]

    def pinned(self, env: str) -> dict[str, tuple[str, str]]:
        """ConfigMap name -> (MODEL_VERSION, MODEL_DIGEST) in overlays/<env>/release.yaml."""
        return {
            d["metadata"]["name"]: (d["data"]["MODEL_VERSION"], d["data"].get("MODEL_DIGEST", ""))
            for d in self.docs(f"overlays/{env}/release.yaml")
        }


Expectation = Callable[[Run, Context, re.Match[str]], None]
#: (pattern matched against the command as the page writes it, what must hold after it ran)
EXPECTATIONS: list[tuple[re.Pattern[str], Expectation]] = []


def expect(pattern: str) -> Callable[[Expectation], Expectation]:
    def register(check: Expectation) -> Expectation:
        EXPECTATIONS.append((re.compile(pattern), check))
        return check

    return register


@expect(r"make synth$")
def _synth_changes_nothing_on_a_fresh_clone(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert "synth:" in run.output, run.describe()
    assert git(ctx.clone, "status", "--porcelain") == "", "make synth changed generated files on a fresh clone"


@expect(r"make predict\b")
def _predict_answers_seven_over_both_apis(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert ctx.server is not None
    answers = re.findall(r"^(REST|gRPC) .*->  (\d) \(p=[01]\.\d{3}\)", run.stdout, re.M)
    assert answers == [("REST", "7"), ("gRPC", "7")], run.describe()


@expect(r"curl .*/v1/models/mnist:predict$")
def _curl_predicts_seven(run: Run, ctx: Context, m: re.Match[str]) -> None:
    probabilities = json.loads(run.stdout)["predictions"][0]
    assert max(range(10), key=probabilities.__getitem__) == 7, run.stdout


@expect(r"curl .*/v2/health/ready$")
def _curl_says_ready(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert json.loads(run.stdout) == {"ready": True}, run.stdout


@expect(r"make push-model\b")
def _push_model_prints_the_image_the_registry_serves(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert ctx.registry is not None
    line = run.stdout.splitlines()[-1]  # after the command make echoes
    found = re.fullmatch(rf"({re.escape(ctx.registry)}/ml/models/mnist)@(sha256:[0-9a-f]{{64}})", line)
    assert found, run.describe()
    manifest = requests.get(
        f"http://{ctx.registry}/v2/ml/models/mnist/manifests/{found[2]}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    assert manifest.status_code == 200 and manifest.headers["Docker-Content-Digest"] == found[2]
    ctx.pushed = line


@expect(r"make register$")
def _register_writes_the_card_of_the_pushed_image(run: Run, ctx: Context, m: re.Match[str]) -> None:
    card = ctx.card(ctx.version)
    assert (card["model"], card["version"]) == ("mnist", ctx.version)
    if ctx.pushed:
        assert f"{card['artifact']['repository']}@{card['artifact']['digest']}" == ctx.pushed


@expect(r"git add registry/mnist/(\d+)\.yaml && git commit\b")
def _the_card_is_a_commit_of_its_own(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert git(ctx.clone, "show", "--name-only", "--format=", "HEAD").split() == [f"registry/mnist/{m[1]}.yaml"]


@expect(r"make set-image ENV=(\S+) IMAGE=server TAG=(\S+)$")
def _set_image_pins_the_tag(run: Run, ctx: Context, m: re.Match[str]) -> None:
    images = ctx.docs(f"overlays/{m[1]}/kustomization.yaml")[0]["images"]
    assert any("inference-server" in i["name"] and i.get("newTag") == m[2] for i in images), images


@expect(r"make pin-model ENV=(\S+) VERSION=(\d+)$")
def _pin_model_pins_the_version_and_its_digest(run: Run, ctx: Context, m: re.Match[str]) -> None:
    card = ctx.card(int(m[2]))
    assert (m[2], card["digest"]) in ctx.pinned(m[1]).values(), ctx.pinned(m[1])


@expect(r"make promote FROM=(\S+) TO=(\S+)$")
def _promote_carries_the_new_version(run: Run, ctx: Context, m: re.Match[str]) -> None:
    card = ctx.card(ctx.version)
    if (str(ctx.version), card["digest"]) in ctx.pinned(m[1]).values():
        assert (str(ctx.version), card["digest"]) in ctx.pinned(m[2]).values(), ctx.pinned(m[2])


@expect(r"make canary ENV=(\S+) WEIGHT=(\d+)$")
def _canary_sets_the_weights(run: Run, ctx: Context, m: re.Match[str]) -> None:
    weight = int(m[2])
    if 0 < weight < 100:
        spec = ctx.docs(f"overlays/{m[1]}/traffic.yaml")[0]["spec"]
        assert spec == {"stable": 100 - weight, "canary": weight}, spec


@expect(r"make switch ENV=(\S+)$")
def _switch_flips_the_production_service(run: Run, ctx: Context, m: re.Match[str]) -> None:
    rel = f"overlays/{m[1]}/active-slot.yaml"
    committed = yaml.safe_load_all(git(ctx.clone, "show", f"HEAD:{rel}"))
    before = {d["metadata"]["name"]: d["spec"]["selector"] for d in committed}
    after = {d["metadata"]["name"]: d["spec"]["selector"] for d in ctx.docs(rel)}
    assert before["mnist-server"] != after["mnist-server"], (before, after)
    assert after["mnist-server"] == before["mnist-server-preview"]


@expect(r"git revert HEAD$")
def _revert_restores_the_state_before_the_last_step(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert git(ctx.clone, "diff", "HEAD~2", "HEAD") == "", "git revert HEAD did not restore the previous state"


@expect(r"cd models/mnist/(\d+) && find \. -type f .*\| sha256sum$")
def _the_one_liner_gives_the_cards_digest(run: Run, ctx: Context, m: re.Match[str]) -> None:
    if not (ctx.clone / f"registry/mnist/{m[1]}.yaml").exists():  # the card to compare with
        register = run_shell(f"make register VERSION={m[1]}", ctx.clone, ctx.env)
        assert register.returncode == 0, register.describe()
    assert re.fullmatch(r"[0-9a-f]{64}  -\n", run.stdout), run.describe()
    assert f"sha256:{run.stdout.split()[0]}" == ctx.card(int(m[1]))["digest"]


@expect(r"\S*python -m services\.training\.train --help$")
def _train_help_lists_the_flags(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert "--model-root" in run.stdout and "--skip-existing" in run.stdout, run.describe()


@expect(r"\S*python -m services\.training\.train --model-root (\S+) --model-name (\S+) --version (\d+) --skip-\S+$")
def _train_publishes_the_version(run: Run, ctx: Context, m: re.Match[str]) -> None:
    metadata = json.loads((ctx.clone / m[1] / m[2] / m[3] / "metadata.json").read_text())
    assert (metadata["name"], metadata["version"]) == (m[2], int(m[3]))
    ctx.facts["published"] = m[3]


@expect(r"MODEL_ROOT=\S+ MODEL_VERSION=(\d+) SKIP_EXISTING=true \S*python -m services\.training\.train$")
def _skip_existing_is_a_no_op_for_a_published_version(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert ctx.facts.get("published") == m[1], "the line before publishes that version"
    assert f"version {m[1]} of mnist is already published" in run.output, run.describe()


@expect(r"make validate\b")
def _validate_is_clean(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert re.search(r"^validate: clean; ", run.output, re.M), run.describe()


@expect(r"\.venv/bin/python -m generator\.validate\.cli --help$")
def _validate_help(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert run.stdout.startswith("usage:") and "--overlay" in run.stdout, run.describe()


@expect(r"\.venv/bin/python -m generator\.validate\.cli --list-checks$")
def _validate_lists_its_checks(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert {"pss-privileged", "yaml-duplicate-key", "model-pin"} <= set(re.findall(r"[a-z][a-z0-9-]+", run.stdout))


@expect(r".* --output junit --output-file (\S+)$")
def _validate_writes_junit(run: Run, ctx: Context, m: re.Match[str]) -> None:
    root = ET.parse(ctx.clone / m[1]).getroot()
    assert root.tag in ("testsuites", "testsuite") and root.iter("testcase"), root.tag


@expect(r".* --kubernetes-version (\S+) --overlay (\S+)$")
def _validate_one_overlay_for_a_kubernetes_version(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert re.search(rf"validate: clean; 1 overlay\(s\), .*Kubernetes {re.escape(m[1])}\b", run.output), run.describe()


@expect(r"helm template (\S+) charts/inference-service\b")
def _helm_renders_what_the_values_say(run: Run, ctx: Context, m: re.Match[str]) -> None:
    values = dict(re.findall(r"--set (\S+?)=(\S+)", run.command))
    docs = [d for d in yaml.safe_load_all(run.stdout) if d]
    kinds = {d["kind"] for d in docs}
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert containers["server"]["image"] == f"{values['image.repository']}:{values['image.tag']}"
    if "slot" in values:
        assert deployment["metadata"]["name"].endswith(f"-{values['slot']}")
    if values.get("service.enabled") == "false":
        assert "Service" not in kinds
    if values.get("networkPolicy.enabled") == "false":
        assert "NetworkPolicy" not in kinds


@expect(r"helm lint --strict charts/inference-service$")
def _helm_lint_passes(run: Run, ctx: Context, m: re.Match[str]) -> None:
    assert "0 chart(s) failed" in run.output, run.describe()


# --- running a block ---------------------------------------------------------------------


def with_ports(text: str, server: Server | None) -> str:
    if server is None:
        return text
    ports = {"8080": server.port, "8500": server.grpc_port, "8081": server.metrics_port}
    return DEFAULT_PORTS.sub(lambda m: f"{m[1]}:{ports[m[2]]}", text)


def use_loopback_registry(ctx: Context, stack: ExitStack, tmp_path: Path) -> None:
    host = stack.enter_context(running_registry(tmp_path / "registry"))
    config = ctx.clone / "platform.yaml"
    text, count = re.subn(r"(modelArtifacts:\n  repository: )\S+", rf"\g<1>{host}/ml/models", config.read_text())
    assert count == 1, "platform.yaml: no modelArtifacts.repository to point at the loopback registry"
    config.write_text(text)
    commit_all(ctx.clone, "model images in a registry on loopback")
    ctx.registry = host
    ctx.env["PLAIN_HTTP"] = "1"


def run_sh_block(block: Block, workspace: Workspace, tmp_path: Path) -> None:
    commands = shell_commands(block.body)
    stale = set(block.skipped) - set(commands)
    assert not stale, f"{block.id}: skip annotations name no command of the block: {sorted(stale)}"
    clone = workspace.copy(tmp_path / "repo")
    ctx = Context(clone, workspace.version, block_env())
    with ExitStack() as stack:
        if any(c.startswith("make push-model") for c in commands):
            use_loopback_registry(ctx, stack, tmp_path)
        for command in commands:
            if command in block.skipped:
                continue
            if command == TRAIN_COMMAND:
                continue  # the module's one training (the workspace fixture), which this clone holds
            written = command.replace("<n>", str(ctx.version))
            if written == SERVER_COMMAND:
                ctx.server = stack.enter_context(serving(written, clone, ctx.env, tmp_path))
                assert f"127.0.0.1:{ctx.server.port}" in ctx.server.log(), ctx.server.log()
                assert f"127.0.0.1:{ctx.server.grpc_port}" in ctx.server.log(), ctx.server.log()
                assert f"127.0.0.1:{ctx.server.metrics_port}" in ctx.server.log(), ctx.server.log()
                continue
            env = ctx.env
            if ctx.server is not None:
                env = {
                    **env,
                    "PORT": str(ctx.server.port),
                    "GRPC_PORT": str(ctx.server.grpc_port),
                    "METRICS_PORT": str(ctx.server.metrics_port),
                }
            result = run_shell(with_ports(written, ctx.server), clone, env)
            assert result.returncode == 0, f"{block.id}:\n{result.describe()}"
            for pattern, check in EXPECTATIONS:
                found = pattern.match(written)
                if found:
                    check(result, ctx, found)
            if block.commit_each_step:
                commit_all(clone, f"docs step: {written}")


PYTHON_SUMMARY = """\
import json, runpy, sys

namespace = runpy.run_path(sys.argv[1], run_name="__main__")
summary = {}
for name, value in namespace.items():
    if name.startswith("_") or type(value).__name__ == "module":
        continue
    entry = {"type": type(value).__name__}
    if hasattr(value, "shape"):
        entry["shape"] = [None if n is None else int(n) for n in value.shape]
    try:
        entry["len"] = len(value)
    except Exception:
        pass
    summary[name] = entry
print("docs-test summary: " + json.dumps(summary))
"""
#: (pattern in a python block, what its top-level names must be after it ran)
PYTHON_EXPECTATIONS: list[tuple[re.Pattern[str], Callable[[dict], None]]] = []


def _grpc_client_gets_64_answers(summary: dict) -> None:
    assert summary["predictions"]["len"] == 64 * 10, summary["predictions"]  # "640 floats"
    assert summary["probabilities"]["shape"] == [64, 10], summary["probabilities"]  # "as an array [64, 10]"


PYTHON_EXPECTATIONS.append((re.compile(r"PredictionServiceStub\("), _grpc_client_gets_64_answers))


def run_python_block(block: Block, workspace: Workspace, tmp_path: Path) -> None:
    clone = workspace.copy(tmp_path / "repo")
    env = block_env()
    (tmp_path / "summary.py").write_text(PYTHON_SUMMARY)
    with ExitStack() as stack:
        server = None
        if DEFAULT_PORTS.search(block.body):
            server = stack.enter_context(serving(SERVER_COMMAND, clone, env, tmp_path))
        (tmp_path / "block.py").write_text(with_ports(block.body, server))
        proc = subprocess.run(
            [str(clone / ".venv/bin/python"), str(tmp_path / "summary.py"), str(tmp_path / "block.py")],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert proc.returncode == 0, f"{block.id}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("docs-test summary: ")]
    summary = json.loads(line.split(": ", 1)[1])
    checked = [check for pattern, check in PYTHON_EXPECTATIONS if pattern.search(block.body)]
    for check in checked:
        check(summary)


# --- output blocks ------------------------------------------------------------------------


def lines_in_order(expected: str, actual: str, mask: Callable[[str], str] = lambda s: s) -> list[str]:
    """The lines of ``expected`` (masked, trailing blanks ignored) that ``actual`` lacks in that order."""
    have = [mask(line.rstrip()) for line in actual.splitlines()]
    missing, at = [], 0
    for line in expected.splitlines():
        want = mask(line.rstrip())
        if not want:
            continue
        try:
            at = have.index(want, at) + 1
        except ValueError:
            missing.append(line)
    return missing


def check_chart_invalid_values(block: Block, workspace: Workspace, tmp_path: Path) -> None:
    """The chart's cross-field errors: helm, given values that break both rules, prints those lines."""
    proc = subprocess.run(
        [helm_path(), "template", "mnist", "charts/inference-service"]
        + ["--set", "terminationGracePeriodSeconds=20", "--set", "autoscaling.minReplicas=8"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout[-2000:]
    missing = lines_in_order(block.body, proc.stderr)
    assert not missing, f"helm does not print these lines:\n{missing}\nit prints:\n{proc.stderr}"


PRIVILEGED_PATCH = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: mnist-server
spec:
  template:
    spec:
      containers:
        - name: server
          securityContext:
            privileged: true
"""


def check_validate_findings(block: Block, workspace: Workspace, tmp_path: Path) -> None:
    """The format of validate's findings and summary, against a real run on a dev overlay with a
    privileged server and a repeated ``images:`` key (line numbers, counts and time may differ)."""
    clone = workspace.copy(tmp_path / "repo")
    dev = clone / "overlays/dev"
    (dev / "privileged.yaml").write_text(PRIVILEGED_PATCH)
    kustomization = (dev / "kustomization.yaml").read_text()
    assert "patches:\n" in kustomization
    kustomization = kustomization.replace("patches:\n", "patches:\n  - path: privileged.yaml\n", 1)
    (dev / "kustomization.yaml").write_text(kustomization + "images: []\n")
    result = run_shell(".venv/bin/python -m generator validate --no-freshness --no-secrets", clone, block_env())
    assert result.returncode == 1, result.describe()

    def mask(line: str) -> str:
        return re.sub(r"\d+(\.\d+)*", "N", line)

    missing = lines_in_order(block.body, result.output, mask)
    assert not missing, f"validate prints no lines of this form:\n{missing}\nit prints:\n{result.output}"


def check_model_directory(block: Block, workspace: Workspace, tmp_path: Path) -> None:
    """The layout of a published version against the one ``make train`` wrote."""
    version_dir = workspace.clone / "models" / "mnist" / str(workspace.version)
    lines = block.body.splitlines()
    assert lines[0].strip() == "<model-root>/<model-name>/<version>/"
    named = set()
    for line in lines[1:]:
        first_column = re.split(r" {2,}", line.strip())[0]
        if line.startswith("  ") and not line.startswith("   "):
            named |= {name.strip() for name in first_column.split(",")}
    present = {p.name + ("/" if p.is_dir() else "") for p in version_dir.iterdir()}
    assert named == present, f"the block lists {sorted(named)}, a published version holds {sorted(present)}"
    metadata = json.loads((version_dir / "metadata.json").read_text())
    signature = " -> ".join(
        f"{t['name']} {t['dtype']} [{','.join(str(n) for n in t['shape'])}]"
        for t in (metadata["input"], metadata["output"])
    )
    assert signature in block.body, f"the signature is {signature}"
    bound = float(re.search(r"max \|diff\| <= (\S+)\)", block.body)[1])  # type: ignore[index]
    assert metadata["metrics"]["tflite_max_abs_diff"] <= bound


OUTPUT_CHECKS: dict[str, Callable[[Block, Workspace, Path], None]] = {
    "chart-invalid-values": check_chart_invalid_values,
    "validate-findings": check_validate_findings,
    "model-directory": check_model_directory,
}


# --- the tests -------------------------------------------------------------------------------


def rule_violations(block: Block) -> list[str]:
    """What makes a block neither run, nor compared, nor visibly exempt."""
    problems = [f"unknown docs-test annotation: {a.text!r}" for a in block.unknown_annotations()]
    if not block.language:
        problems.append("a code block without a language (sh, python, text, yaml or mermaid)")
    elif block.language not in RUN + OUTPUT + tuple(ELSEWHERE):
        problems.append(f"language {block.language!r}: use sh, python, text, yaml or mermaid")
    if block.language in ELSEWHERE and block.annotations:
        problems.append(f"a {block.language} block takes no docs-test annotation ({ELSEWHERE[block.language]})")
    check = block.output_check
    if check and check not in OUTPUT_CHECKS:
        problems.append(f"no output check {check!r} (there are: {', '.join(sorted(OUTPUT_CHECKS))})")
    if check and block.language not in OUTPUT:
        problems.append("'output checked by' is for text blocks")
    if block.language in OUTPUT and not check and block.not_run is None:
        problems.append("an output block needs '<!-- docs-test: output checked by <check> -->' or 'not run here'")
    if (block.skipped or block.commit_each_step) and block.language != "sh":
        problems.append("'skip' and 'commit each step' are for sh blocks")
    return [f"{block.id}: {p}" for p in problems]


def test_the_pages_and_their_blocks_were_found():
    files = {p.file for p in PAGES}
    assert {"README.md", "docs/releases.md", "registry/README.md", "services/inference/README.md"} <= files
    languages = {b.language for b in BLOCKS}
    assert {"sh", "python", "text", "yaml", "mermaid"} <= languages
    assert TRAIN_COMMAND in {c for b in BLOCKS if b.language == "sh" for c in shell_commands(b.body)}


def test_every_annotation_belongs_to_a_block_and_every_fence_closes():
    problems = [problem for page in PAGES for problem in page.problems]
    problems += [p for b in BLOCKS if b.language in ELSEWHERE for p in rule_violations(b)]
    assert not problems, "\n".join(problems)


PAGE = """\
Text.
<!-- docs-test: skip `make test`: it is this suite -->
```sh
make synth   # the main job
make test
curl -s -d @f \\
     localhost:8080/x   # '#' starts a comment here
```

  ```
  indented # in a bare block
  ```
<!-- docs-test: output checked by nothing-of-the-kind -->
~~~~text
```
~~~~
```text
7 (p=1.000)
```
<!-- docs-test: not run here: nothing follows -->

Text.
"""


def test_the_parser_reads_fences_annotations_and_commands():
    page = parse_page("x.md", PAGE)
    [sh, bare, tilde, text] = page.blocks
    assert (sh.id, sh.language, sh.skipped, sh.not_run) == ("x.md:3", "sh", {"make test": "it is this suite"}, None)
    assert shell_commands(sh.body) == ["make synth", "make test", "curl -s -d @f localhost:8080/x"]
    assert rule_violations(sh) == []
    assert (bare.id, bare.language, bare.body) == ("x.md:10", "", "indented # in a bare block\n")
    assert (tilde.id, tilde.body, tilde.output_check) == ("x.md:14", "```\n", "nothing-of-the-kind")
    assert page.problems == ["x.md:20: a docs-test annotation no code fence follows"]
    # What fails a block that is neither run, nor compared, nor annotated, naming it:
    assert rule_violations(bare) == ["x.md:10: a code block without a language (sh, python, text, yaml or mermaid)"]
    assert rule_violations(tilde) == [
        "x.md:14: no output check 'nothing-of-the-kind' (there are: chart-invalid-values, model-directory, "
        "validate-findings)"
    ]
    assert rule_violations(text) == [
        "x.md:17: an output block needs '<!-- docs-test: output checked by <check> -->' or 'not run here'"
    ]


@pytest.mark.parametrize("block", CHECKED, ids=[b.id for b in CHECKED])
def test_the_block_runs_as_written_or_is_visibly_exempt(block: Block, request: pytest.FixtureRequest, tmp_path: Path):
    problems = rule_violations(block)
    assert not problems, "\n".join(problems)
    if block.not_run is not None:
        pytest.skip(f"{block.id}: not run here: {block.not_run}")
    workspace: Workspace = request.getfixturevalue("workspace")  # trained only for a block to run
    if block.language == "sh":
        run_sh_block(block, workspace, tmp_path)
    elif block.language == "python":
        run_python_block(block, workspace, tmp_path)
    else:
        assert block.output_check is not None
        OUTPUT_CHECKS[block.output_check](block, workspace, tmp_path)
