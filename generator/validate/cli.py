"""``python -m generator validate``: render every overlay and check it; see ``--help``.

Exit codes: 0 clean, 1 findings, 2 usage or internal error.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from generator.validate import engine, release_commits, report
from generator.validate.schemas import DEFAULT_K8S_VERSION, SchemaError, supported_versions

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m generator validate",
        description="Render every overlay (overlays/*/kustomization.yaml except base and components) and "
        "argocd/, then check strict schemas (CRDs included), policies, cross-references, "
        "duplicate YAML keys, secrets and generated-file freshness.",
        epilog="Findings: 'overlay: Kind/name: field.path: message [check-id]'. Exempt one object from one "
        'check with the annotation validate.gitops/skip-<check-id>: "<reason>". '
        "Exit codes: 0 clean, 1 findings, 2 usage or internal error.",
    )
    parser.add_argument(
        "--kubernetes-version",
        default=DEFAULT_K8S_VERSION,
        metavar="X.Y",
        help=f"Kubernetes version of the schemas (default {DEFAULT_K8S_VERSION}; "
        f"available {supported_versions()[0]}..{supported_versions()[-1]})",
    )
    parser.add_argument("--output", "-o", choices=("text", "json", "junit"), default="text")
    parser.add_argument(
        "--output-file",
        type=Path,
        help="write the report here instead of stdout (the summary line still goes to stderr)",
    )
    parser.add_argument(
        "--junit-file",
        type=Path,
        metavar="FILE",
        help="also write the findings as a JUnit report to FILE (for CI test reports)",
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: .)")
    parser.add_argument("--config", type=Path, help="platform.yaml (default: <root>/platform.yaml)")
    parser.add_argument(
        "--overlay",
        action="append",
        metavar="NAME",
        help="check only this overlay (repeatable); skips the Argo CD cross-checks",
    )
    parser.add_argument("--no-freshness", action="store_true", help="skip the generated-file freshness check")
    parser.add_argument("--no-secrets", action="store_true", help="skip the detect-secrets scan")
    parser.add_argument(
        "--no-kubeconform", action="store_true", help="do not run kubeconform even when it is available"
    )
    parser.add_argument("--jobs", "-j", type=int, help="parallel renders (default: 2 x CPUs)")
    parser.add_argument(
        "--base",
        metavar="REV",
        help="a pull request's base: note each commit since REV that changes a release state without "
        "Release-* trailers (a note, never a finding)",
    )
    parser.add_argument("--list-checks", action="store_true", help="print every check id and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return int(exc.code or 0)
    if args.list_checks:
        for check, text in sorted(engine.ALL_CHECKS.items()):
            print(f"{check:28} {text}")
        return EXIT_CLEAN
    if not args.root.is_dir():
        print(f"validate: --root {args.root} is not a directory", file=sys.stderr)
        return EXIT_ERROR
    if args.config is not None and not (args.config.exists() or args.config.is_symlink()):
        print(f"validate: --config {args.config} does not exist", file=sys.stderr)
        return EXIT_ERROR
    if args.base and (problem := release_commits.base_problem(args.root, args.base)):
        print(f"validate: {problem}", file=sys.stderr)
        return EXIT_ERROR
    opts = engine.Options(
        root=args.root,
        kubernetes_version=args.kubernetes_version,
        config=args.config,
        overlays=args.overlay,
        freshness=not args.no_freshness,
        secrets=not args.no_secrets,
        kubeconform="off" if args.no_kubeconform else "auto",
        jobs=args.jobs,
        base=args.base,
    )
    try:
        result = engine.run(opts)
    except (SchemaError, ValueError) as exc:
        print(f"validate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except RuntimeError as exc:  # a tool could not run (generator.tools.ToolError is one)
        print(f"validate: {exc}", file=sys.stderr)
        print("validate: a tool failed; nothing was validated", file=sys.stderr)
        return EXIT_ERROR
    except Exception:
        traceback.print_exc()
        print("validate: internal error (see the traceback above)", file=sys.stderr)
        return EXIT_ERROR
    if args.output == "json":
        body = report.as_json(result.findings, result.stats)
    elif args.output == "junit":
        body = report.junit(result.findings, result.stats, engine.ALL_CHECKS)
    else:
        body = report.text(result.findings, result.stats)
    if args.junit_file:
        args.junit_file.write_text(report.junit(result.findings, result.stats, engine.ALL_CHECKS))
    if args.output_file:
        args.output_file.write_text(body)
        print(report.summary(result.findings, result.stats), file=sys.stderr)
    else:
        sys.stdout.write(body)
        if args.output != "text":
            print(report.summary(result.findings, result.stats), file=sys.stderr)
    return EXIT_FINDINGS if result.findings else EXIT_CLEAN


if __name__ == "__main__":
    sys.exit(main())
