"""Change failures: which deployments failed, what restored them, and how long that took.

A deployment **failed** when, before the environment's next independent deployment (one that pins
something new; a traffic step, a canary weight or a blue-green switch, continues the release it
moves), it is

- **reverted**: a later commit says ``This reverts commit <id>`` (``git revert``) or carries a
  ``Reverts: <id>`` trailer naming it;
- **rolled back**: a later deployment brings the environment back to a state it had before; the
  failure is the latest independent deployment that undid (or, when only traffic steps were
  undone, the first of them), and the deployments in between are undone with it, not counted again;
- **aborted as a canary**: such a rollback in a canary environment that only moves the canary
  weight back to 0; counted apart, as "caught by the canary".

Each failure is counted once, and the restoring commit restores one failure. **Time to restore**
runs from the failed deployment to the commit that restored the state before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generator.insights.history import Deployment
from generator.strategy import CANARY, Strategy

REVERT_LINE = re.compile(r"This reverts commit ([0-9a-f]{7,40})")
REVERT, ROLLBACK, CANARY_ABORT = "revert", "rollback", "canary-abort"


@dataclass(frozen=True)
class Failure:
    """A failed deployment and the deployment that restored the state before it."""

    failed: Deployment
    restored_by: Deployment
    cause: str  # REVERT, ROLLBACK or CANARY_ABORT
    undone: tuple[str, ...]  # deployments undone with it (commit ids), not counted again

    @property
    def restore_seconds(self) -> int:
        """From the failed deployment to the restoring commit."""
        return self.restored_by.time - self.failed.time

    @property
    def caught_by_canary(self) -> bool:
        """Whether the canary caught it: counted apart from the change failure rate."""
        return self.cause == CANARY_ABORT


def reverted_ids(deployment: Deployment) -> list[str]:
    """The commit ids a deployment says it reverts (``Reverts:`` trailers, ``git revert``'s line)."""
    named = [value.split()[0] for value in deployment.commit.trailer("Reverts") if value.split()]
    return named + REVERT_LINE.findall(deployment.commit.body)


def _independent_between(deployments: list[Deployment], first: int, last: int) -> bool:
    return any(not d.traffic_only for d in deployments[first + 1 : last])


def _reverted(deployments: list[Deployment], j: int, failed: set[int]) -> int | None:
    for target in reverted_ids(deployments[j]):
        for k in range(j - 1, -1, -1):
            if deployments[k].commit.sha.startswith(target):
                if k not in failed and not _independent_between(deployments, k, j):
                    return k
                break
    return None


def _rolled_back_to(deployments: list[Deployment], j: int) -> int | None:
    for i in range(j - 2, -1, -1):
        if deployments[i].after == deployments[j].after:
            return i
    return None


def _is_canary_abort(strategy: Strategy, deployment: Deployment) -> bool:
    weights = dict(deployment.after.weights)
    before = dict(deployment.before.weights) if deployment.before else {}
    return (
        strategy is CANARY
        and deployment.traffic_only
        and weights.get(CANARY.canary) == 0
        and (before.get(CANARY.canary) or 0) > 0
    )


def find_failures(deployments: list[Deployment], strategy: Strategy) -> list[Failure]:
    """Every failure among one environment's deployments (in order), with what restored it."""
    found: list[Failure] = []
    failed: set[int] = set()
    for j, deployment in enumerate(deployments):
        k = _reverted(deployments, j, failed)
        if k is not None:
            undone = tuple(d.commit.sha for d in deployments[k + 1 : j])
            found.append(Failure(deployments[k], deployment, REVERT, undone))
            failed.add(k)
            continue
        i = _rolled_back_to(deployments, j)
        if i is None:
            continue
        undone_range = list(range(i + 1, j))
        independent = [n for n in undone_range if not deployments[n].traffic_only]
        k = independent[-1] if independent else undone_range[0]
        if k in failed:
            continue
        cause = CANARY_ABORT if _is_canary_abort(strategy, deployment) else ROLLBACK
        undone = tuple(deployments[n].commit.sha for n in undone_range if n != k)
        found.append(Failure(deployments[k], deployment, cause, undone))
        failed.add(k)
    return found
