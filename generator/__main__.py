"""The repository's one command line; every `make` target that touches manifests calls it.

Exit codes (the same for every subcommand):
  0  success
  1  the check ran and found problems (validate, lint)
  2  bad input: an invalid platform.yaml, bad arguments; nothing on disk changed
  3  an external tool (helm, kubectl) failed; nothing on disk changed
  4  a release command had nothing to do: what it was asked for is already pinned
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_TOOL = 0, 1, 2, 3


def synth(args: argparse.Namespace) -> int:
    """Render platform.yaml (through generator/ and charts/) into overlays/base, overlays/components
    and argocd/, atomically."""
    from generator.config import ConfigError
    from generator.synthesis.synth import render_tree, write_tree
    from generator.tools import ToolError

    started = time.monotonic()
    try:
        tree = render_tree(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        print(f"synth: {len(exc.problems)} problem(s) in {args.config}; nothing was written", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ToolError as exc:
        print(f"synth: {exc}\nsynth: nothing was written", file=sys.stderr)
        return EXIT_TOOL
    changed = write_tree(tree, args.config.resolve().parent)
    for path in changed:
        print(f"synth: {'wrote' if path in tree else 'removed'} {path}")
    print(f"synth: {len(tree)} files, {len(changed)} changed, {time.monotonic() - started:.1f}s")
    return EXIT_OK


def schema(args: argparse.Namespace) -> int:
    """Write the JSON Schemas of platform.yaml and the release files from their models."""
    from generator import schema_files
    from generator.paths import REPO_ROOT

    for path in schema_files.write():
        print(f"schema: wrote {path.relative_to(REPO_ROOT)}")
    print(f"schema: {len(schema_files.SCHEMAS)} files")
    return EXIT_OK


def check(args: argparse.Namespace) -> int:
    """Fail when a generated file was stale: make schema or make synth changed a file, or a
    generated file is not in git (what CI and pre-commit call, so both mean the same thing by
    "fresh"). The schemas come first: synth checks platform.yaml against them."""
    import subprocess

    from generator import schema_files
    from generator.config import ConfigError
    from generator.paths import REPO_ROOT
    from generator.synthesis.synth import GENERATED_FILES, GENERATED_ROOTS, render_tree, write_tree
    from generator.tools import ToolError

    schemas = [f"schema wrote {path.relative_to(REPO_ROOT)}" for path in schema_files.write()]
    try:
        tree = render_tree(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return EXIT_BAD_INPUT
    except ToolError as exc:
        print(f"check: {exc}", file=sys.stderr)
        return EXIT_TOOL
    root = args.config.resolve().parent
    changed = write_tree(tree, root)
    untracked = subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "ls-files",
            "--others",
            "--exclude-standard",
            "--",
            *GENERATED_ROOTS,
            *GENERATED_FILES,
        ],
        capture_output=True,
        text=True,
    )
    if untracked.returncode != 0:
        print(f"check: git ls-files failed: {untracked.stderr.strip()}", file=sys.stderr)
        return EXIT_TOOL
    stale = schemas + [f"synth {'wrote' if path in tree else 'removed'} {path}" for path in changed]
    stale += [f"not in git: {path}" for path in untracked.stdout.split()]
    if stale:
        print("\n".join(stale), file=sys.stderr)
        print(
            "check: the generated files were stale: add and commit what make schema and make synth wrote",
            file=sys.stderr,
        )
        return EXIT_FINDINGS
    print(f"check: the {len(schema_files.SCHEMAS)} schemas and the {len(tree)} generated files are fresh")
    return EXIT_OK


#: Subcommands with parsers of their own: name -> (module with main(argv) -> int, help).
DELEGATED = {
    "validate": ("generator.validate.cli", "render and check every overlay"),
    "preview-render": ("generator.validate.preview_cli", "render and check a pull request's preview as Argo CD would"),
    "lint": ("generator.lint", "helm lint --strict every chart (make lint runs every other linter too)"),
    "promote": ("generator.release.promote", "copy the pinned image and model version between overlays"),
    "canary": ("generator.release.canary", "set the canary weight (100 promotes, 0 aborts)"),
    "switch": ("generator.release.switch", "flip the active blue-green slot"),
    "set-image": ("generator.release.set_image", "pin a new image tag or digest in an overlay"),
    "diff": ("generator.release.diff", "render every overlay at a base revision and now; show changes"),
    "status": ("generator.release.status", "one table of every environment"),
    "register": ("generator.release.register", "write a trained version's model card into registry/"),
    "pin-model": ("generator.release.pin_model", "pin a registered model version and its digest in an overlay"),
    "package-model": ("generator.release.package_model", "write a model version as an OCI image layout"),
    "push-model": ("generator.release.push_model", "push a model version's OCI image; print its digest"),
    "serve-env": ("generator.release.serve_env", "print the server settings that pin an environment's live model"),
    "bootstrap": ("generator.release.bootstrap", "train, push, register and pin a first version everywhere; commit"),
    "insights": ("generator.insights.cli", "DORA keys and model lineage from git history, into build/insights/"),
    "lineage": ("generator.insights.lineage_cli", "which model ran in each environment's variants, commit to commit"),
    "canary-analyze": ("generator.canary.cli", "evaluate a canary against stable; STEP, HOLD or ABORT by commit"),
    "canary-history": ("generator.canary.history_cli", "every decision of canary-analyze so far, from the trailers"),
}


def main(argv: list[str] | None = None) -> int:
    """Parse the subcommand and run it."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        import importlib

        return importlib.import_module(DELEGATED[argv[0]][0]).main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m generator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "synth", help="generate the overlays' base, components and previews, argocd/ and a workflow from platform.yaml"
    )
    p.add_argument("--config", type=Path, default=Path("platform.yaml"), help="path to platform.yaml")
    p.set_defaults(run=synth)
    p = sub.add_parser("schema", help="write platform.schema.json and release-files.schema.json from the models")
    p.set_defaults(run=schema)
    p = sub.add_parser("check", help="schema and synth, then fail if the generated files in git were stale (or new)")
    p.add_argument("--config", type=Path, default=Path("platform.yaml"), help="path to platform.yaml")
    p.set_defaults(run=check)
    for name, (_, text) in DELEGATED.items():
        sub.add_parser(name, help=f"{text} (see: python -m generator {name} --help)")
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    # A reader that stops early (`make status | head`) ends the command quietly, as it ends any Unix
    # tool, instead of a BrokenPipeError traceback; every edit is written before anything is printed.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
