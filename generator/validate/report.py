"""Findings out: one line each (text), a JSON document, or JUnit XML for CI test reports."""

from __future__ import annotations

import json
from xml.sax.saxutils import escape, quoteattr

from generator.validate.model import Finding


def summary(findings: list[Finding], stats: dict) -> str:
    checks = len({f.check for f in findings})
    status = "clean" if not findings else f"{len(findings)} finding(s) from {checks} check(s)"
    extra = f", {stats['exempted']} exempted" if stats.get("exempted") else ""
    others = f", {stats['kustomizations']} other kustomization(s)" if stats.get("kustomizations") else ""
    charts = f", {stats['charts']} chart render(s)" if stats.get("charts") else ""
    return (
        f"validate: {status}{extra}; {stats['overlays']} overlay(s){others}{charts}, {stats['resources']} resource(s), "
        f"Kubernetes {stats['kubernetes_version']}, {stats['elapsed']:.2f}s"
    )


def text(findings: list[Finding], stats: dict) -> str:
    lines = [f.render() for f in findings]
    lines.extend(f"validate: note: {note}" for note in stats.get("notes", []))
    lines.append(summary(findings, stats))
    return "\n".join(lines) + "\n"


def as_json(findings: list[Finding], stats: dict) -> str:
    return (
        json.dumps(
            {"summary": summary(findings, stats), "stats": stats, "findings": [f.as_dict() for f in findings]},
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )


def _case_name(finding: Finding) -> str:
    return ": ".join(part for part in (finding.overlay, finding.resource, finding.path) if part)


def junit(findings: list[Finding], stats: dict, checks: dict[str, str]) -> str:
    """One testsuite per check id; one testcase per finding (failed) or per check (passed)."""
    by_check: dict[str, list[Finding]] = {check: [] for check in checks}
    for finding in findings:
        by_check.setdefault(finding.check, []).append(finding)
    suites = []
    for check, items in sorted(by_check.items()):
        cases = [
            f"    <testcase classname={quoteattr('validate.' + check)} name={quoteattr(_case_name(f))}>\n"
            f"      <failure message={quoteattr(f.message)} type={quoteattr(check)}>{escape(f.render())}"
            "</failure>\n    </testcase>"
            for f in items
        ]
        if not items:
            cases = [
                f"    <testcase classname={quoteattr('validate.' + check)} name={quoteattr(checks.get(check, check))}/>"
            ]
        suites.append(
            f'  <testsuite name={quoteattr(check)} tests="{len(cases)}" failures="{len(items)}" '
            f'errors="0">\n' + "\n".join(cases) + "\n  </testsuite>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites name="validate" tests="{sum(max(1, len(v)) for v in by_check.values())}" '
        f'failures="{len(findings)}" time="{stats["elapsed"]:.3f}">\n' + "\n".join(suites) + "\n</testsuites>\n"
    )
