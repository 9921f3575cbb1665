"""What every release command shares: arguments, refusals, the edit-commit-report cycle."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from generator.release import git
from generator.release.errors import EXIT_NOTHING, EXIT_OK, EXIT_REFUSED, EXIT_TOOL, NothingToDo, Refused, ToolFailed
from generator.release.git import ALLOW_DIRTY_ENV_VAR
from generator.release.overlay import Overlay, Pin, find_env, load_platform, resolve_root
from generator.release.trailers import Trailer, collect, commit_command, release_trailers

EPILOG = (
    "Exit codes: 0 done, 2 refused or bad input (one line says why; nothing changed), "
    "3 git or kustomize failed (nothing changed), 4 nothing to do (already so)."
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too)
        raise Refused(message)


def parser(prog: str, description: str, *, edits: bool = True) -> argparse.ArgumentParser:
    p = _Parser(
        prog=f"python -m generator {prog}",
        description=description,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--repo", metavar="PATH", help="repository root (default: $ML_GITOPS_ROOT, else this checkout)")
    if edits:
        p.add_argument(
            "--allow-dirty",
            action="store_true",
            help=f"skip the clean-tree check (or set {ALLOW_DIRTY_ENV_VAR}=1): for scripts that "
            "put several edits into one commit, such as CI's release workflow",
        )
        p.add_argument(
            "--dry-run",
            action="store_true",
            help="print the edit as a unified diff and prove it builds (in a scratch copy); write nothing",
        )
    return p


def run(
    name: str, p: argparse.ArgumentParser, argv: list[str] | None, body: Callable[[argparse.Namespace], int]
) -> int:
    """Parse, run ``body``, and turn Refused/ToolFailed into one line and an exit code."""
    try:
        try:
            args = p.parse_args(sys.argv[1:] if argv is None else argv)
        except SystemExit as exc:  # --help
            return int(exc.code or 0)
        return body(args)
    except Refused as exc:  # one line per problem
        print("\n".join(f"{name}: refused: {line}" for line in str(exc).splitlines()), file=sys.stderr)
        return EXIT_REFUSED
    except ToolFailed as exc:
        print(f"{name}: failed: {exc}", file=sys.stderr)
        return EXIT_TOOL
    except NothingToDo as exc:
        print(f"{name}: nothing to do: {exc}")
        return EXIT_NOTHING


@dataclass
class Edit:
    """One command's change to one overlay, described for the person who runs it."""

    overlay: Overlay
    title: str  # the commit subject the command suggests
    changes: list[str] = field(default_factory=list)  # human lines, "what: before -> after"
    #: The slot or track the edit releases into ("" in a rolling environment): its release after
    #: the edit is what the commit's trailers record.
    variant: str = ""
    #: The trainer image the edit pinned (set-image IMAGE=trainer, promote), if it pinned one.
    trainer: Pin | None = None
    #: The edit pins the trainer alone: no variant's release changes.
    trainer_only: bool = False
    #: The canary's new share of the traffic (make canary).
    weight: int | None = None

    def trailers(self, action: str) -> list[Trailer]:
        """The commit's trailers: this action, here, and the release now pinned in the variant."""
        envs = [self.overlay.env.name]
        if self.trainer_only:
            return release_trailers(action, envs, trainer=self.trainer)
        release = self.overlay.release(self.variant)
        return release_trailers(
            action,
            envs,
            self.variant,
            weight=self.weight,
            versions=release.versions,
            digests=release.digests,
            model_images=release.images,
            image=release.server,
            trainer=self.trainer,
        )

    def note(self, what: str, before: object, after: object) -> None:
        if before != after:
            self.changes.append(f"{what}: {before} -> {after}")


def open_overlay(args: argparse.Namespace, env_name: str, *, check_clean: bool = True) -> Overlay:
    root = resolve_root(args.repo)
    platform = load_platform(root)
    env = find_env(platform, env_name)
    if check_clean:
        ensure_clean(args, root)
    return Overlay(root, platform, env)


def ensure_clean(args: argparse.Namespace, root: Path) -> None:
    """The clean-tree check, unless --allow-dirty, $ML_GITOPS_ALLOW_DIRTY=1 or --dry-run (writes nothing)."""
    if not (
        getattr(args, "allow_dirty", False)
        or getattr(args, "dry_run", False)
        or os.environ.get(ALLOW_DIRTY_ENV_VAR) == "1"
    ):
        git.ensure_clean(root)


def finish(name: str, edit: Edit, nothing: str, dry_run: bool = False) -> int:
    """Stop on a no-op (exit 4, ``nothing`` says why), else commit the edit (or, dry run, show it)
    and report it."""
    if not edit.overlay.changed_files():
        raise NothingToDo(nothing)
    if dry_run:
        diff = edit.overlay.preview()
        print(f"{edit.title}  (dry run: nothing written)")
        for line in edit.changes:
            print(f"  {line}")
        sys.stdout.write(diff)
        return EXIT_OK
    paths = edit.overlay.commit()
    print(edit.title)
    for line in edit.changes:
        print(f"  {line}")
    print(f"  edited {', '.join(paths)} (kustomize build ok)")
    trailers = edit.trailers(name)
    collect(trailers)
    command = commit_command(edit.overlay.root, edit.title, trailers, paths)
    print(f"  next: review with `make diff BASE=HEAD`, then commit (the trailers say what this release is): {command}")
    return EXIT_OK
