"""Generated-file freshness: the committed generated tree equals a fresh ``make synth``.

``generator.synth.render_tree(config_path)`` returns every generated file as bytes without
writing anything. It runs cdk8s (Node.js through jsii) and helm, so it runs in a child process
started first and collected last: it overlaps with the kustomize renders.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from generator.validate import cache
from generator.validate.model import Finding

CHECKS = {"freshness": "generated files equal a fresh make synth"}
GENERATED_ROOTS = ("overlays/base", "overlays/components", "argocd")

_CHILD = """
import hashlib, json, sys
from generator.synth import render_tree
tree = render_tree(sys.argv[1])
json.dump({path: hashlib.sha256(data).hexdigest() for path, data in tree.items()}, sys.stdout)
"""


# Everything render_tree reads: the config, the generator, the chart, the tool versions.
SYNTH_INPUTS = ("generator", "charts", ".tools/tools.json", "requirements/generator.txt")


class Synth:
    """A fresh ``render_tree`` in a child process, or its cached digests when no input changed."""

    def __init__(self, root: Path, config: Path):
        self.root = root
        inputs = [config] + [root / p for p in SYNTH_INPUTS]
        self.key = cache.tree_digest(
            root,
            [p for p in inputs if p.exists()],
            extra=sys.version,
            exclude=(root / "generator" / "validate", root / "generator" / "lint.py"),
        )
        self.expected = cache.load(root, "synth").get(self.key)
        self.proc = None
        if self.expected is None:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(config)],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

    def finish(self) -> list[Finding]:
        if self.proc is not None:
            stdout, stderr = self.proc.communicate()
            if self.proc.returncode != 0:
                last = [line for line in stderr.strip().splitlines() if line.strip()][-3:]
                return [
                    Finding(
                        "platform.yaml",
                        "",
                        "",
                        "",
                        "make synth fails, so freshness cannot be checked: " + " | ".join(s.strip() for s in last),
                        "freshness",
                    )
                ]
            self.expected = json.loads(stdout)
            cache.save(self.root, "synth", {self.key: self.expected})
        assert self.expected is not None  # from the cache, or computed just above
        return compare(self.root, self.expected)


def compare(root: Path, expected: dict[str, str]) -> list[Finding]:
    """``expected`` maps generated paths to sha256 hex digests."""
    out: list[Finding] = []
    for rel, digest in sorted(expected.items()):
        path = root / rel
        if not path.is_file():
            out.append(Finding(rel, "", "", "", "missing: run make synth and commit the result", "freshness"))
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            out.append(
                Finding(rel, "", "", "", "differs from a fresh make synth: run make synth and commit", "freshness")
            )
    roots = {r for r in GENERATED_ROOTS if (root / r).is_dir()}
    for generated in sorted(roots):
        for path in sorted((root / generated).rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and rel not in expected:
                out.append(
                    Finding(
                        rel, "", "", "", "not produced by make synth any more: delete it (make synth does)", "freshness"
                    )
                )
    return out
