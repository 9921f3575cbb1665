"""The release commands, which edit the hand-edited overlays (never a cluster).

Each command is ``python -m generator <command>`` and a ``make`` target; the list, with one line
each, is ``python -m generator --help`` (``DELEGATED`` in ``generator/__main__.py``, the one table).
Strategy-specific rules (which variant is live, where a promotion lands) are asked of
``generator.strategy``; the card rules every command shares are in ``card_rules``.

Exit codes (every command):
  0  done (``diff``: also when it found changes; it is a report)
  2  refused or bad input: the reason is printed in one line, nothing on disk changed
  3  a tool (git, kustomize) failed: nothing on disk changed (an edit whose result no longer
     builds is rolled back)
  4  nothing to do: what the command was asked for is already pinned (not an error)

The editing commands (promote, canary, switch, set-image, pin-model) refuse on a dirty tree
(``git status --porcelain -- overlays platform.yaml registry``), so each of them is exactly one
reviewable commit, and ``git revert`` of that commit is the rollback. They find the repository
from ``--repo PATH``, else the environment variable ``ML_GITOPS_ROOT``, else the repository this
package lives in. ``--dry-run`` prints the edit as a unified diff, proves it builds in a scratch
copy of ``overlays/`` and writes nothing.
"""
