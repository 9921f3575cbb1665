"""What git says about a canary: when its weight was set and every decision so far, read from the
commits' trailers (the analysis keeps no state of its own; ``generator/insights/gitlog.py`` parses
the log)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from generator.canary.decision import Previous
from generator.insights.gitlog import Commit, first_parent_chain
from generator.release.errors import Refused
from generator.release.git import git

#: The trailers of a decision commit, in the order they are written.
DECISION, ENV, WEIGHT, REASON, FAILURES, DIGEST, WINDOW = (
    "Canary-Decision",
    "Canary-Env",
    "Canary-Weight",
    "Canary-Reason",
    "Canary-Failures",
    "Model-Digest",
    "Analysis-Window",
)


@dataclass(frozen=True)
class WeightSet:
    """The commit that last changed an environment's traffic file (a step, an abort, a revert or
    a hand edit): where the current step begins."""

    sha: str
    time: int


def weight_set(root: Path, traffic_file: str) -> WeightSet:
    """The last first-parent commit of HEAD that changed ``traffic_file`` (repository-relative):
    a merged branch's change counts from its merge, when it reached the branch Argo CD follows."""
    out = git(root, "log", "--first-parent", "-1", "--format=%H %ct", "HEAD", "--", traffic_file).split()
    if len(out) != 2:
        raise Refused(f"{traffic_file} is in no commit of HEAD: commit the canary environment first")
    return WeightSet(out[0], int(out[1]))


def decisions(root: Path, env: str, rev: str = "HEAD") -> list[Commit]:
    """Every decision commit of ``env`` on the first-parent chain of ``rev``, oldest first."""
    return [c for c in first_parent_chain(root, rev) if c.trailer(DECISION) and env in c.trailer(ENV)]


def previous(root: Path, env: str, since: WeightSet) -> Previous | None:
    """The last decision of ``env`` since the commit that set the weight (that commit included)."""
    found = decisions(root, env, f"{since.sha}^!") + decisions(root, env, f"{since.sha}..HEAD")
    if not found:
        return None
    last = found[-1]
    failures = last.trailer(FAILURES)
    return Previous(last.trailer(DECISION)[0], (last.trailer(REASON) or [""])[0], int(failures[0]) if failures else 0)
