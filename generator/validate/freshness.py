"""Generated-file freshness: the committed generated tree equals a fresh ``make synth``; and
platform.yaml, synth's input, is one ``make synth`` accepts.

``generator.synthesis.synth.render_tree(config_path)`` returns every generated file as bytes without
writing anything. It runs cdk8s (Node.js through jsii) and helm, so it runs in a child process
started first and collected last: it overlaps with the kustomize renders.

A platform.yaml that ``make synth`` refuses is reported with synth's own lines (check
``platform-yaml``), not as a freshness finding: ``config_findings`` reads and parses it in
process on every run (so ``--no-freshness`` still names a file that is not a regular UTF-8 YAML
file), and the child reports its schema problems. Both give the same line for a problem both
see; the engine keeps one.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from generator.inputs import InputError, load_yaml, read_text
from generator.paths import GENERATED_FILES, GENERATED_ROOTS
from generator.validate import cache
from generator.validate.model import Finding

CHECKS = {
    "freshness": "generated files equal a fresh make synth",
    "platform-yaml": "platform.yaml is a regular UTF-8 YAML file that make synth accepts (schema: with freshness)",
}

# Prints {"digests": {path: sha256}}, or {"problems": [...]}: the lines make synth prints for a
# platform.yaml it refuses. Anything else (a traceback) is a failure of synth itself.
_CHILD = """
import hashlib, json, sys
from generator.config import ConfigError
from generator.synthesis.synth import render_tree
try:
    tree = render_tree(sys.argv[1])
except ConfigError as exc:
    json.dump({"problems": exc.problems}, sys.stdout)
else:
    json.dump({"digests": {path: hashlib.sha256(data).hexdigest() for path, data in tree.items()}}, sys.stdout)
"""


def _as_findings(label: str, problems: list[str]) -> list[Finding]:
    """``label: where: message`` lines (generator.config, generator.inputs) as findings on the file."""
    return [Finding(label, "", "", "", line.removeprefix(f"{label}: "), "platform-yaml") for line in problems]


def config_findings(config: Path) -> list[Finding]:
    """platform.yaml read and parsed through the input layer: one finding per problem (not a
    regular file, too large, not UTF-8, not YAML, duplicate keys, nested too deep), named as
    ``make synth`` names it. A platform.yaml that does not exist is not a finding here."""
    label = config.name
    if not (config.exists() or config.is_symlink()):
        return []
    try:
        load_yaml(read_text(config, label), label)
    except InputError as exc:
        return _as_findings(label, exc.problems)
    return []


#: The module that renders the generated tree (a repository without it cannot be checked).
SYNTH_MODULE = "generator/synthesis/synth.py"
# Everything render_tree reads: the config, the generator, the chart, the rules it shares with the
# services, the tool versions.
SYNTH_INPUTS = ("generator", "charts", "services/contract.py", ".tools/tools.json", "requirements/generator.txt")


class Synth:
    """A fresh ``render_tree`` in a child process, or its cached digests when no input changed."""

    def __init__(self, root: Path, config: Path):
        self.root = root
        self.config = config
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
            answer = json.loads(stdout)
            if "problems" in answer:  # synth refuses platform.yaml: its lines, not a freshness finding
                return _as_findings(self.config.name, answer["problems"])
            self.expected = answer["digests"]
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
    for rel in GENERATED_FILES:
        if rel not in expected and (root / rel).is_file():
            out.append(
                Finding(
                    rel, "", "", "", "not produced by make synth any more: delete it (make synth does)", "freshness"
                )
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
