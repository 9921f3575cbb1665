"""Release insights from git alone: the DORA keys and the model lineage of every environment,
computed from the repository's first-parent history (``make insights``, ``make lineage``; the
definitions are in this package's README.md).

Exit codes (both commands):
  0  written or printed
  2  bad input: an argument, an unknown environment or revision, no valid platform.yaml there
  3  git failed (not a repository): nothing was written
"""
