"""``make preview-render PR=7 SHA=<commit>``: what Argo CD would deploy for pull request 7 at that
head commit, and whether the previews' AppProjects and ``make validate``'s checks allow it.

The ApplicationSets, AppProjects and ``platform.yaml`` are read as they are on the default branch
(``argocd.targetRevision``, where the admin Application syncs them from); the workload is built at
``SHA``, the guardrails at the default branch (``generator/validate/preview.py``). Nothing is
checked out: ``git archive`` writes each revision's ``overlays/`` into a temporary directory.

Prints the Applications and their manifests (or, with ``--out DIR``, writes
``DIR/applications.yaml`` and ``DIR/<application>.yaml``), and any finding on stderr.

Exit codes: 0 the preview validates; 1 findings; 2 bad input (PR not a positive integer, SHA or
the default branch not a commit here, an ApplicationSet template that cannot be filled), nothing
written; 3 git or kustomize could not run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from generator.config import ConfigError, Platform, load_config
from generator.files import write_atomic
from generator.paths import ARGOCD_ADMIN_DIR, REPO_ROOT
from generator.release.errors import Refused, ToolFailed
from generator.release.git import export_tree, resolve_revision
from generator.validate import preview
from generator.validate.model import Finding

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_TOOL = 0, 1, 2, 3


def pr_number(text: str) -> int:
    """A pull request's number: a positive integer written in digits, nothing else."""
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise Refused(f"PR must be a pull request's number (a positive integer), got {text!r}")
    return int(text)


def _default_branch(root: Path) -> tuple[str, str]:
    """The default branch's name (the working tree's ``argocd.targetRevision``) and its commit."""
    try:
        name = load_config(root / "platform.yaml").argocd.target_revision
    except ConfigError as exc:
        raise Refused(f"platform.yaml does not load: {exc.problems[0]}") from exc
    try:
        return name, resolve_revision(root, name)
    except Refused as exc:
        raise Refused(f"the default branch {name!r} (argocd.targetRevision) is not a revision here") from exc


def _admin_objects(directory: Path) -> list[dict]:
    """Every object of ``argocd/admin/`` as a revision holds it."""
    objects: list[dict] = []
    for path in sorted(directory.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
    return objects


def _git_materialize(root: Path, default: tuple[str, str]) -> preview.Materialize:
    """A ``preview.Materialize`` over git: the default branch by name, any other revision as a commit."""

    def materialize(revision: str, dest: Path) -> None:
        commit = default[1] if revision == default[0] else resolve_revision(root, revision)
        export_tree(root, commit, ("overlays",), dest)

    return materialize


def render_pr(root: Path, number: int, sha: str) -> tuple[list[preview.Rendered], list[Finding]]:
    """Render and check pull request ``number`` at ``sha`` (see the module docstring)."""
    from generator.validate.engine import check_overlay
    from generator.validate.schemas import SchemaStore

    default = _default_branch(root)
    head = resolve_revision(root, sha)
    with tempfile.TemporaryDirectory(prefix="preview-main-") as tmp:
        export_tree(root, default[1], ("platform.yaml", "overlays", ARGOCD_ADMIN_DIR), Path(tmp))
        try:
            platform: Platform = load_config(Path(tmp) / "platform.yaml")
        except ConfigError as exc:
            raise Refused(f"platform.yaml on {default[0]} does not load: {exc.problems[0]}") from exc
        objects = _admin_objects(Path(tmp) / ARGOCD_ADMIN_DIR)
    if platform.previews is None:
        raise Refused(f"platform.yaml on {default[0]} has no previews section: no previews to render")
    pr = preview.PullRequest(number, head, default[0], (platform.previews.label,))
    label = f"preview pr-{number}"
    try:
        rendered = preview.render(objects, pr, _git_materialize(root, default), label)
    except preview.TemplateError as exc:
        raise Refused(str(exc)) from exc
    projects = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "AppProject"}
    store = SchemaStore()
    found = preview.findings(
        rendered, projects, number, platform.argocd.previews_project, lambda res, env: check_overlay(store, res, env)
    )
    return rendered, sorted(set(found), key=lambda f: (f.kind, f.name, f.path, f.check, f.message))


def _streams(rendered: list[preview.Rendered]) -> dict[str, str]:
    """File name -> YAML: the Applications, then each one's manifests."""
    apps = yaml.safe_dump_all([item.application for item in rendered], sort_keys=False)
    return {"applications.yaml": apps, **{f"{item.name}.yaml": item.text for item in rendered}}


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, render the preview, print or write it; the exit code says how it went."""
    parser = argparse.ArgumentParser(
        prog="python -m generator preview-render",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pr", required=True, help="the pull request's number")
    parser.add_argument("--sha", required=True, help="its head commit (any revision git resolves here)")
    parser.add_argument("--out", type=Path, help="write the manifests here instead of printing them")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        rendered, found = render_pr(args.root, pr_number(args.pr), args.sha)
    except Refused as exc:
        print(f"preview-render: {exc}; nothing written", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ToolFailed as exc:
        print(f"preview-render: {exc}; nothing written", file=sys.stderr)
        return EXIT_TOOL
    streams = _streams(rendered)
    if args.out:
        for name, text in streams.items():
            write_atomic(args.out / name, text.encode())
    else:
        sys.stdout.write("---\n".join(streams.values()))
    for finding in found:
        print(finding.render(), file=sys.stderr)
    where = f" into {args.out}" if args.out else ""
    verdict = f"{len(found)} finding(s)" if found else "validates"
    print(f"preview-render: PR {args.pr}: {len(rendered)} Application(s) rendered{where}; {verdict}", file=sys.stderr)
    return EXIT_FINDINGS if found else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
