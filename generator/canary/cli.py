"""``make canary-analyze ENV=prod-canary [PROMETHEUS_URL=...] [DRY_RUN=1]``: one evaluation of a
canary against stable, one decision (STEP, HOLD or ABORT), at most one commit.

STEP moves the canary to the next weight of ``analysis.steps`` (at 100, the promotion of
``make canary WEIGHT=100``); ABORT sets weight 0 (``make canary WEIGHT=0``); each is one commit
carrying the evidence (pre-checks, every metric's counts, p-values, thresholds and verdicts, the
window) and the trailers Canary-Decision, Canary-Env, Canary-Weight, Canary-Reason, Model-Digest
and Analysis-Window. A HOLD writes nothing, except one empty commit saying why when the reason
is new (not for the expected wait of a step: warm-up and bake). At weight 0 nothing is analysed
(start a canary with ``make canary WEIGHT=<first step>``). State is read from git alone: the
commit that last changed the traffic file starts the step, the decision commits since then
carry the failing evaluations in a row. ``--push`` pushes the commit; a refused push (the remote
moved) undoes it.

Exit codes: 0 decided (a HOLD too), 2 refused (not a canary environment, a bad policy in
platform.yaml, a dirty tree; nothing written), 3 Prometheus unreachable or answering something
that is not its API, or git failed (nothing written; the reason in one line).
"""

from __future__ import annotations

import argparse
import os
import time

from generator.canary import history, record, report
from generator.canary.decision import Decision, Kind, Window, decide
from generator.canary.evaluate import evaluate
from generator.canary.prometheus import Prometheus
from generator.release import cli
from generator.release import git as release_git
from generator.release.errors import EXIT_OK, Refused
from generator.release.overlay import Overlay, find_env, load_platform, resolve_root
from generator.strategy import CANARY

#: Where Prometheus is when neither --prometheus-url nor $PROMETHEUS_URL says.
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"


def current_weight(overlay: Overlay) -> int:
    """The canary's weight, the same for every model (make canary sets them together)."""
    weights = {m: overlay.weights(m)[CANARY.canary] for m in overlay.models}
    if len(set(weights.values())) != 1:
        raise Refused(
            f"{overlay.env.name}'s models have different canary weights ({weights}): set one with make canary"
        )
    return next(iter(weights.values()))


def _idle(overlay: Overlay, weight: int) -> str:
    """Why there is nothing to analyse, or "" when there is."""
    if overlay.release(CANARY.canary) == overlay.release(CANARY.stable):
        return "no candidate: the canary track runs what stable runs (make promote a candidate first)"
    if weight == 0:
        return "the canary takes no traffic (weight 0): start it with make canary WEIGHT=<first step>"
    return ""


def analyze(args: argparse.Namespace) -> int:
    root = resolve_root(args.repo)
    platform = load_platform(root)
    if args.list_environments:
        print("\n".join(e.name for e in platform.environments if e.strategy is CANARY))
        return EXIT_OK
    env = find_env(platform, args.env)
    env.strategy.require(CANARY, env.name)
    policy = env.canary_analysis
    assert policy is not None  # a canary environment always has one (its defaults)
    if not args.dry_run:
        try:
            release_git.ensure_clean(root)
        except Refused as exc:  # a decision is a commit of its own: no batching it with other edits
            raise Refused(str(exc).split(" (or put several edits")[0]) from exc
    prom = Prometheus(args.prometheus_url)
    prom.check()
    overlay = Overlay(root, platform, env)
    weight = current_weight(overlay)
    since = history.weight_set(root, f"{env.overlay}/{CANARY.traffic_file}")
    window = Window.of(since.time, int(time.time()), policy)
    idle = _idle(overlay, weight)
    evidence = evaluate(prom, overlay, policy, platform.monitoring, None if idle else window, weight)
    if idle:
        decision = Decision(Kind.HOLD, weight, idle)
    else:
        decision = decide(
            policy, weight, window, evidence.checks, evidence.results, history.previous(root, env.name, since)
        )
    return _report(args, overlay, weight, decision, evidence)


def _report(
    args: argparse.Namespace, overlay: Overlay, weight: int, decision: Decision, evidence: report.Evidence
) -> int:
    """Print the decision and its evidence; record it unless a dry run or a quiet HOLD."""
    env = overlay.env.name
    subject = report.subject(env, decision, weight)
    body = "\n".join(evidence.lines())
    digests = [(m, overlay.model_digest(m, CANARY.canary)) for m in overlay.models]
    trailers = report.trailers(env, decision, digests, evidence.window)
    writes = decision.record and not args.dry_run
    note = "  (dry run: nothing written)" if args.dry_run else ("" if writes else "  (nothing written)")
    print(f"{subject}{note}")
    print("\n".join(f"  {line}" if line else "" for line in evidence.lines()))
    if not writes:
        return EXIT_OK
    before = release_git.git(overlay.root, "rev-parse", "HEAD").strip()
    if decision.kind == Kind.HOLD:
        sha = record.commit_empty(overlay.root, subject, body, trailers)
    else:
        sha = record.commit_edit(overlay, decision.weight, subject, body, trailers)
    print(f"canary-analyze: committed {sha[:12]}")
    if args.push:
        record.push(overlay.root, args.remote, args.branch, before)
        print(f"canary-analyze: pushed to {args.remote} {args.branch}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("canary-analyze", __doc__, edits=False)
    p.add_argument("--env", default="", help="a canary environment (strategy: canary in platform.yaml)")
    p.add_argument("--list-environments", action="store_true", help="print the canary environments, one a line")
    p.add_argument(
        "--prometheus-url",
        default=os.environ.get("PROMETHEUS_URL") or DEFAULT_PROMETHEUS_URL,
        help=f"Prometheus's base URL (default: $PROMETHEUS_URL, else {DEFAULT_PROMETHEUS_URL})",
    )
    p.add_argument("--dry-run", action="store_true", help="print the decision and its evidence; write nothing")
    p.add_argument("--push", action="store_true", help="push the decision commit (a refused push undoes it)")
    p.add_argument("--remote", default="origin", help="the remote --push pushes to (default: origin)")
    p.add_argument("--branch", default="main", help="the branch --push pushes to (default: main)")
    return cli.run("canary-analyze", p, argv, analyze)


if __name__ == "__main__":
    import sys

    sys.exit(main())
