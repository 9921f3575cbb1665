"""Exit codes and the two ways a release command stops early."""

from __future__ import annotations

EXIT_OK, EXIT_REFUSED, EXIT_TOOL = 0, 2, 3


class Refused(Exception):
    """Bad input or a change the command will not make; nothing on disk changed (exit 2)."""


class ToolFailed(Exception):
    """git or kustomize failed; nothing on disk changed (exit 3)."""
