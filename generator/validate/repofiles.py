"""Repository-wide checks on files rather than rendered objects: secret-looking strings
(``detect-secrets``) and duplicate keys in every YAML file a human or the generator writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from generator.inputs import InputError, read_text
from generator.validate import cache
from generator.validate.model import Finding
from generator.validate.yamlload import load_stream

CHECKS = {
    "secrets-scan": "no secret-looking string in any tracked file (detect-secrets)",
    "yaml-duplicate-key": "no YAML mapping repeats a key",
    "yaml-syntax": "every YAML file parses",
}

# Helm templates are Go templates, not YAML; the rest of the repository's YAML must parse.


def tracked_files(root: Path) -> list[str]:
    """Files git knows about or would add (tracked plus untracked, not ignored); sorted."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", ".cache", ".tools", "__pycache__", ".pytest_cache", ".hypothesis"}
        return sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(root).parts)
        )
    return sorted({name for name in out.decode().split("\0") if name and (root / name).is_file()})


def yaml_files(root: Path, files: list[str]) -> list[str]:
    """Every YAML file except Helm templates (``charts/<chart>/templates/``)."""
    return [
        f
        for f in files
        if f.endswith((".yaml", ".yml")) and not (f.startswith("charts/") and "templates" in Path(f).parts[2:-1])
    ]


def duplicate_keys(root: Path, files: list[str]) -> list[Finding]:
    out: list[Finding] = []
    for rel in yaml_files(root, files):
        try:
            text = read_text(root / rel, rel)
        except InputError as exc:
            out.extend(Finding(rel, "", "", "", line.removeprefix(f"{rel}: "), "yaml-syntax") for line in exc.problems)
            continue
        stream = load_stream(text)
        for dup in stream.duplicates:
            out.append(
                Finding(
                    rel,
                    "",
                    "",
                    dup.path or "(top level)",
                    f"duplicate key {dup.key!r} (first at line {dup.first_line})",
                    "yaml-duplicate-key",
                    dup.line,
                )
            )
        if stream.error:
            out.append(Finding(rel, "", "", "", f"invalid YAML: {stream.error}", "yaml-syntax", stream.error_line))
    return out


class SecretsScan:
    """detect-secrets on every file whose content it has not seen before, in a child process
    running while the overlays render; results are cached per file content."""

    def __init__(self, root: Path, files: list[str]):
        from importlib.metadata import version

        self.root = root
        self.key_prefix = f"detect-secrets {version('detect-secrets')}:"
        self.cached = cache.load(root, "secrets")
        self.digests: dict[str, str] = {}
        for name in files:
            try:
                self.digests[name] = self.key_prefix + cache.file_digest(root / name)
            except OSError:
                continue
        self.todo = [name for name, key in self.digests.items() if key not in self.cached]
        self.proc = None
        if self.todo:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "detect_secrets", "scan", *self.todo],
                cwd=root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

    def finish(self) -> list[Finding]:
        if self.proc is not None:
            stdout, stderr = self.proc.communicate()
            if self.proc.returncode != 0:  # the tool broke: an error (exit 2), not a finding
                raise RuntimeError(f"detect-secrets failed: {stderr.strip()[-500:]}")
            results = json.loads(stdout).get("results", {})
            for name in self.todo:
                self.cached[self.digests[name]] = [
                    {"type": hit["type"], "line": hit.get("line_number")} for hit in results.get(name, [])
                ]
            live = set(self.digests.values())
            cache.save(self.root, "secrets", {k: v for k, v in self.cached.items() if k in live})
        return [
            Finding(
                name,
                "",
                "",
                "",
                f"possible secret ({hit['type']}); remove it, or mark a false positive "
                "with an inline '# pragma: allowlist secret' comment",
                "secrets-scan",
                hit["line"],
            )
            for name, key in sorted(self.digests.items())
            for hit in self.cached.get(key, [])
        ]
