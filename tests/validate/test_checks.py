"""Every check against its fixtures: each case in fixtures/checks/*.yaml mutates the clean
overlay (fixtures/clean.yaml) and expects findings at exact locations, or their absence."""

from __future__ import annotations

import pytest
from validate_support import check_docs, clean_docs, has_finding, load_cases, mutate, parse_expectation

from generator.validate import engine
from generator.validate.policies import Environment

CASES = load_cases()
# Checks proven elsewhere (render, file-level, Argo CD, freshness, kubeconform): see test_engine.py.
CHECKED_ELSEWHERE = {
    "build",
    "yaml-duplicate-key",
    "yaml-syntax",
    "secrets-scan",
    "freshness",
    "kubeconform",
    "release-file",
    "platform-yaml",  # tests/bad_input/test_validate_inputs.py
    "model-card",
    "model-pin",
    "model-image",  # tests/validate/test_model_pins.py
    "argocd-app-path",
    "argocd-app-namespace",
    "argocd-project",
    "argocd-project-kinds",
    "argocd-project-wildcard",
    "argocd-hpa-replicas",
    "namespace",
    "argocd-overlay-synced",
    "cluster-scoped",
    "argocd-app-environment",  # both: tests/bad_input/test_boundaries.py, on the repository itself
    "preview-namespace",
    "preview-project-kinds",
    "preview-workload-kinds",  # tests/previews/test_preview_render.py, on a real git repository
}


def test_clean_fixture_passes_every_check():
    findings = check_docs(clean_docs())
    assert [f.render() for f in findings] == []


def test_clean_fixture_passes_with_digest_requirement_where_digests_are_used():
    findings = check_docs(clean_docs(), Environment(require_digest=True))
    assert {f.resource for f in findings if f.check == "image-digest"} == {"Deployment/web"}


@pytest.mark.parametrize("case", [c for _, c in CASES], ids=[i for i, _ in CASES])
def test_case(case):
    settings = case.get("env") or {}
    env = Environment(require_digest=bool(settings.get("requireDigest")), train=settings.get("train"))
    findings = check_docs(mutate(clean_docs(), case), env)
    rendered = "\n".join(f.render() for f in findings)
    for text in case.get("expect", []):
        check, resource, path = parse_expectation(text)
        assert has_finding(findings, check, resource, path), f"expected {text!r}; got:\n{rendered}"
    for check in case.get("absent", []):
        assert not [f for f in findings if f.check == check], f"{check} fired:\n{rendered}"
    for text in case.get("absent_for", []):
        check, resource, _ = parse_expectation(text)
        assert not has_finding(findings, check, resource), f"{text} fired:\n{rendered}"
    if not case.get("expect"):
        assert case.get("absent") or case.get("absent_for"), "a case must expect or forbid something"


def test_every_check_has_a_failing_fixture():
    fired = {parse_expectation(text)[0] for _, case in CASES for text in case.get("expect", [])}
    missing = set(engine.ALL_CHECKS) - fired - CHECKED_ELSEWHERE
    assert not missing, f"checks without a failing fixture: {sorted(missing)}"


def test_findings_render_in_the_documented_format():
    case = {"set": {"Deployment/web": {"spec.template.spec.containers[0].securityContext.privileged": True}}}
    finding = next(f for f in check_docs(mutate(clean_docs(), case)) if f.check == "pss-privileged")
    assert finding.render() == (
        "fixture: Deployment/web: spec.template.spec.containers[0].securityContext."
        "privileged: container 'server' is privileged [pss-privileged]"
    )


@pytest.mark.parametrize(
    "value",
    ["1", "0.5", "500m", "1.5Gi", "1e3", "1E3", "+1", "-1", ".5", "5.", "1Ki", "100M", "2Ti", "1n", "1u", 2, 0.25],
)
def test_valid_quantities(value):
    from generator.validate.schemas import quantity_ok

    assert quantity_ok(value)


@pytest.mark.parametrize("value", ["lots", "1.5 Gi", "1GB", "1gi", "Gi", "1e", "--1", "1.2.3", "", " 1", "1Mi ", True])
def test_invalid_quantities(value):
    from generator.validate.schemas import quantity_ok

    assert not quantity_ok(value)
