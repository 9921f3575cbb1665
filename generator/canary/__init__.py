"""Canary analysis decided by commit: ``make canary-analyze`` and ``make canary-history``
(README.md in this directory)."""
