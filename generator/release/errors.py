"""Exit codes and the three ways a release command stops early."""

from __future__ import annotations

EXIT_OK, EXIT_REFUSED, EXIT_TOOL, EXIT_NOTHING = 0, 2, 3, 4


class Refused(Exception):
    """Bad input or a change the command will not make; nothing on disk changed (exit 2)."""


class ToolFailed(Exception):
    """git or kustomize failed; nothing on disk changed (exit 3)."""


class NothingToDo(Exception):
    """The state asked for is already what git pins: no edit, not an error (exit 4), so a script
    can tell "already done" from bad input."""
