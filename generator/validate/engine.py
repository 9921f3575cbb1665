"""Run every check on the repository and return the findings (``cli.py`` prints them).

Order, chosen for wall time: the two slow child processes (detect-secrets, and the fresh
``make synth`` for the freshness check) start first; argocd/ is read; every overlay (and any
other kustomization an Application points at) renders in parallel; then the in-process checks
run on the parsed objects with cached schema validators; the children are collected last.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from generator.config import ConfigError, load_config
from generator.conventions import application_name, environment_project
from generator.inputs import InputError, load_yaml, read_text
from generator.release import files as release_files
from generator.tools.kubeconform import ENV_VAR as KUBECONFORM_ENV
from generator.tools.kubeconform import find_kubeconform
from generator.validate import (
    crossrefs,
    freshness,
    kubeconform,
    model_pins,
    policies,
    preview,
    release_commits,
    render,
    repofiles,
    semantics,
    stored,
)
from generator.validate.kube import as_list
from generator.validate.model import Finding, Resource, fmt_path
from generator.validate.schemas import DEFAULT_K8S_VERSION, SchemaStore, without_schema

EXEMPT_PREFIX = "validate.gitops/skip-"
SCHEMA_CHECKS = {
    "schema": "every resource matches the strict JSON schema of its kind",
    "no-schema": "every resource's kind has a schema (Kubernetes or converted CRD)",
    "build": "every overlay builds with kustomize",
    "exemption": "exemption annotations name a real check and give a reason",
    "kubeconform": "kubeconform -strict agrees (whenever kubeconform is available)",
    "release-file": "each overlay's release files (kustomization, release, active-slot, traffic) fit their schema",
}
# Checks no annotation can switch off: they say the object is not what the cluster will accept.
NOT_EXEMPTABLE = {
    "schema",
    "no-schema",
    "build",
    "exemption",
    "yaml-duplicate-key",
    "yaml-syntax",
    "freshness",
    "secrets-scan",
    "kubeconform",
    "release-file",
    # about files in git (platform.yaml, cards, release.yaml): no object to annotate
    "platform-yaml",
    *model_pins.CHECKS,
}
ALL_CHECKS = {
    **SCHEMA_CHECKS,
    **repofiles.CHECKS,
    **semantics.CHECKS,
    **stored.CHECKS,
    **policies.CHECKS,
    **crossrefs.CHECKS,
    **freshness.CHECKS,
    **model_pins.CHECKS,
    **preview.CHECKS,
}
# Generated from pinned registry packages and checked by crd_schemas.py --check instead; model
# cards are digests (hex, which detect-secrets takes for keys) held to their schema by model-card.
SECRETS_SCAN_EXCLUDE = ("generator/validate/crds/schemas/", "registry/")


@dataclass
class Options:
    root: Path
    kubernetes_version: str = DEFAULT_K8S_VERSION
    config: Path | None = None  # platform.yaml; default root/platform.yaml
    overlays: list[str] | None = None  # restrict to these overlay names
    render: Callable[[Path], str] | None = None
    freshness: bool = True
    secrets: bool = True
    kubeconform: str = "auto"  # auto: run whenever kubeconform is found; off
    charts: bool = True  # also helm-template every chart under charts/ (defaults and ci/*values.yaml)
    jobs: int | None = None
    base: str | None = None  # a pull request's base revision: note release commits without trailers


@dataclass
class Result:
    findings: list[Finding]
    stats: dict = field(default_factory=dict)


def environments(config: Path) -> dict[str, policies.Environment]:
    """Overlay path -> what platform.yaml's environments ask of it. Read through the input layer;
    a platform.yaml that cannot be read or parsed gives none here: the platform-yaml check
    (``freshness.config_findings``) reports it, naming the file."""
    try:
        data = load_yaml(read_text(config, config.name), config.name) if config.exists() else {}
    except InputError:
        return {}
    data = data if isinstance(data, dict) else {}
    system = _d(data.get("system")).get("name")
    project = _d(data.get("argocd")).get("project")
    out = {}
    environments = data.get("environments")
    for env in environments if isinstance(environments, list) else []:
        if isinstance(env, dict) and isinstance(env.get("overlay"), str):
            name = env.get("name")
            named = isinstance(name, str)
            out[env["overlay"].strip("/")] = policies.Environment(
                require_digest=env.get("requireDigest") is True,
                namespace=str(env.get("namespace") or ""),
                train=env.get("train") is True,
                application=application_name(system, str(name)) if named and isinstance(system, str) else "",
                project=environment_project(project, str(name)) if named and isinstance(project, str) else "",
            )
    return out


def _d(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def apply_exemptions(findings: list[Finding], resources: list[Resource]) -> tuple[list[Finding], int]:
    index = {(r.overlay, r.kind, r.name): r for r in resources}
    kept, exempted, extra = [], 0, []
    for res in resources:
        for key, value in res.annotations.items():
            if isinstance(key, str) and key.startswith(EXEMPT_PREFIX):
                check = key[len(EXEMPT_PREFIX) :]
                path = fmt_path(["metadata", "annotations", key])
                if check not in ALL_CHECKS:
                    extra.append(res.finding(path, f"unknown check {check!r}", "exemption"))
                elif check in NOT_EXEMPTABLE:
                    extra.append(res.finding(path, f"check {check!r} cannot be exempted", "exemption"))
                elif not isinstance(value, str) or not value.strip():
                    extra.append(res.finding(path, "an exemption must give its reason as the value", "exemption"))
    for finding in findings:
        owner = index.get((finding.overlay, finding.kind, finding.name))
        reason = owner.annotations.get(EXEMPT_PREFIX + finding.check) if owner else None
        if finding.check not in NOT_EXEMPTABLE and isinstance(reason, str) and reason.strip():
            exempted += 1
        else:
            kept.append(finding)
    return kept + extra, exempted


def schema_findings(store: SchemaStore, res: Resource) -> list[Finding]:
    if not res.api_version or not res.kind:
        return [res.finding("", "apiVersion and kind are required", "schema")]
    errors = store.errors(res.doc)
    if errors is None and without_schema(res.api_version, res.kind):
        return []  # a note names it (unschemed_notes)
    if errors is None:
        served, crds = store.known_versions(res.kind)
        if served:
            return [
                res.finding(
                    "apiVersion",
                    f"{res.api_version} {res.kind} is not served by Kubernetes "
                    f"{store.kubernetes_version}; use {' or '.join(served)}",
                    "no-schema",
                )
            ]
        if crds:
            return [
                res.finding(
                    "apiVersion",
                    f"no converted CRD schema for {res.api_version} {res.kind}; there is "
                    f"one for {' and '.join(crds)} (add versions with crd_schemas.py)",
                    "no-schema",
                )
            ]
        return [
            res.finding(
                "",
                f"no schema for {res.api_version} {res.kind} (Kubernetes {store.kubernetes_version} "
                "or the converted CRDs in generator/validate/crds): add it with crd_schemas.py",
                "no-schema",
            )
        ]
    return [res.finding(path, message, "schema") for path, message in errors]


def unschemed_notes(resources: list[Resource]) -> list[str]:
    """One note for each object of a kind no registry package has a schema for (WITHOUT_SCHEMA)."""
    notes = []
    for res in resources:
        reason = without_schema(res.api_version, res.kind)
        if reason:
            notes.append(f"{res.overlay}: {res.kind}/{res.name} ({res.api_version}) not schema-checked: {reason}")
    return sorted(set(notes))


def resource_findings(store: SchemaStore, res: Resource) -> list[Finding]:
    """The checks of one object on its own: its schema, its names and labels, what the cluster keeps."""
    return [*schema_findings(store, res), *semantics.check(res), *stored.check(store, res)]


def check_overlay(
    store: SchemaStore, resources: list[Resource], env: policies.Environment | None = None
) -> list[Finding]:
    """Every in-process check of one rendered overlay (schemas, semantics, policies, references)."""
    out: list[Finding] = []
    for res in resources:
        out.extend(resource_findings(store, res))
    out.extend(policies.check_overlay(resources, env or policies.Environment()))
    out.extend(crossrefs.check_overlay(resources))
    return out


def release_file_findings(root: Path, overlay_dirs: list[Path]) -> list[Finding]:
    """The hand-edited release files of every overlay, checked against their schema."""
    out: list[Finding] = []
    for directory in overlay_dirs:
        for name in release_files.FILES:
            path = directory / name
            if not path.exists():
                continue
            rel = path.relative_to(root).as_posix()
            try:
                docs = release_files.read_release_file(path, rel)
            except InputError as exc:
                out.extend(
                    Finding(rel, "", "", "", line.removeprefix(f"{rel}: "), "release-file") for line in exc.problems
                )
                continue
            for where, message in release_files.release_file_problems(name, docs):
                out.append(Finding(rel, "", "", where, message, "release-file"))
    return out


def _select_overlays(root: Path, names: list[str] | None) -> list[Path]:
    overlay_dirs = render.discover_overlays(root)
    if names:
        unknown = set(names) - {d.name for d in overlay_dirs}
        if unknown:
            raise ValueError(
                f"unknown overlay(s): {', '.join(sorted(unknown))}; "
                f"found: {', '.join(d.name for d in overlay_dirs) or 'none'}"
            )
        overlay_dirs = [d for d in overlay_dirs if d.name in set(names)]
    return overlay_dirs


def run(opts: Options) -> Result:
    """Validate the repository at ``opts.root``; raises on usage errors and broken tools."""
    started = time.perf_counter()
    root = opts.root.resolve()
    config = (opts.config or root / "platform.yaml").resolve()
    store = SchemaStore(opts.kubernetes_version)  # raises SchemaError on a bad version (usage)
    overlay_dirs = _select_overlays(root, opts.overlays)
    renderer = opts.render or render.default_renderer()  # raises if kubectl cannot be provided
    notes: list[str] = []
    children: list = []
    try:
        return _run(opts, root, config, store, overlay_dirs, renderer, notes, children, started)
    finally:
        for child in children:  # on success they are done; on an error, leave no orphans
            if child.proc is not None and child.proc.poll() is None:
                child.proc.kill()
                child.proc.wait()


def _release_commit_notes(root: Path, config: Path, base: str) -> list[str]:
    """The pull request's release commits without trailers (notes: hand edits stay possible)."""
    try:
        platform = load_config(config)
    except ConfigError:
        return ["release trailers not checked: platform.yaml does not load (its findings say why)"]
    return release_commits.untold_releases(root, platform, base)


def _run(
    opts: Options,
    root: Path,
    config: Path,
    store: SchemaStore,
    overlay_dirs: list[Path],
    renderer: Callable[[Path], str],
    notes: list[str],
    children: list,
    started: float,
) -> Result:
    """``run`` once its arguments are checked: start the slow children, render, check what was
    rendered, collect the children's findings, then drop the exempted ones."""
    fresh_proc, secrets_scan, files = _start_children(opts, root, config, notes, children)
    argocd = render.load_argocd(root, renderer)
    if argocd and not opts.overlays:
        overlay_dirs.extend(_deployed_kustomizations(root, argocd, overlay_dirs))
        known = {d.resolve() for d in overlay_dirs}
        overlay_dirs.extend(d for d in render.argocd_kustomizations(root) if d.resolve() not in known)
    chart_futures = _start_charts(root) if opts.charts and not opts.overlays else []
    rendered, _ = render.render_all(root, overlay_dirs, renderer, opts.jobs, with_argocd=False)
    for item in rendered:
        if item.path.startswith("overlays/"):
            continue
        item.name = item.path  # a non-overlay kustomization is named by its path

    envs = environments(config)
    findings: list[Finding] = [*freshness.config_findings(config)]
    all_resources: list[Resource] = []
    findings.extend(_rendered_findings(store, rendered, envs, all_resources))
    charts = [future.result() for future in chart_futures]
    findings.extend(_chart_findings(store, charts, all_resources))
    if argocd is not None:
        findings.extend(_argocd_findings(root, store, argocd, rendered, all_resources, not opts.overlays, envs))
    elif not opts.overlays:
        notes.append("argocd/ not found: Argo CD checks not run")

    findings.extend(repofiles.duplicate_keys(root, files))
    findings.extend(release_file_findings(root, overlay_dirs))
    findings.extend(model_pins.findings(root, overlay_dirs, envs, rendered))
    if opts.kubeconform == "auto":
        streams = rendered + charts + ([argocd] if argocd else [])
        findings.extend(_kubeconform_findings(root, opts.kubernetes_version, streams, notes))
    if opts.base:
        notes.extend(_release_commit_notes(root, config, opts.base))
    if secrets_scan is not None:
        findings.extend(secrets_scan.finish())
    if fresh_proc is not None:
        findings.extend(fresh_proc.finish())

    notes.extend(unschemed_notes(all_resources))
    findings, exempted = apply_exemptions(findings, all_resources)
    findings = sorted(set(findings), key=lambda f: (f.overlay, f.kind, f.name, f.path, f.check, f.message))
    stats = {
        "overlays": sum(item.path.startswith("overlays/") for item in rendered),
        # kustomizations that are no environment: one an Application deploys, argocd/'s components
        "kustomizations": sum(not item.path.startswith("overlays/") for item in rendered),
        "charts": len(charts),
        "resources": len(all_resources),
        "exempted": exempted,
        "kubernetes_version": store.kubernetes_version,
        "elapsed": time.perf_counter() - started,
        "notes": notes,
        "checks": len(ALL_CHECKS),
    }
    return Result(findings, stats)


def _start_children(
    opts: Options, root: Path, config: Path, notes: list[str], children: list
) -> tuple[freshness.Synth | None, repofiles.SecretsScan | None, list[str]]:
    """Start the two slow child processes first (a fresh ``make synth``, detect-secrets), so they
    run while everything else renders and checks; returns them and the files git tracks."""
    fresh_proc = None
    if opts.freshness:
        if config.is_file() and (root / freshness.SYNTH_MODULE).is_file():
            fresh_proc = freshness.Synth(root, config)
            children.append(fresh_proc)
        else:
            missing = f"platform.yaml is not a regular file, or {freshness.SYNTH_MODULE} is missing"
            notes.append(f"freshness not checked: {missing}")
    files = repofiles.tracked_files(root)
    secrets_scan = None
    if opts.secrets:
        secrets_scan = repofiles.SecretsScan(root, [f for f in files if not f.startswith(SECRETS_SCAN_EXCLUDE)])
        children.append(secrets_scan)
    return fresh_proc, secrets_scan, files


def _deployed_kustomizations(root: Path, argocd: render.Rendered, overlay_dirs: list[Path]) -> list[Path]:
    """Kustomizations an Application deploys that are not environment overlays: they get rendered
    and checked too."""
    found: list[Path] = []
    known = {d.resolve() for d in overlay_dirs} | {(root / "argocd").resolve()}
    for res in argocd.resources:
        if res.kind == "Application":
            for source in [res.spec.get("source"), *as_list(res.spec.get("sources"))]:
                rel = source.get("path") if isinstance(source, dict) else None
                if isinstance(rel, str):
                    directory = (root / rel).resolve()
                    if directory not in known and root in directory.parents and render.kustomization_file(directory):
                        found.append(directory)
                        known.add(directory)
    return found


def _start_charts(root: Path) -> list[Future[render.Rendered]]:
    """helm-template every chart under charts/ (defaults and ci/*values.yaml) in the background."""
    pool = ThreadPoolExecutor(max_workers=2)
    futures = [pool.submit(render.render_chart, root, chart, values) for chart, values in render.chart_targets(root)]
    pool.shutdown(wait=False)
    return futures


def _rendered_findings(
    store: SchemaStore,
    rendered: list[render.Rendered],
    envs: dict[str, policies.Environment],
    all_resources: list[Resource],
) -> list[Finding]:
    """Every in-process check of each rendered kustomization, and its namespace; adds what each
    rendered to ``all_resources``."""
    findings: list[Finding] = []
    for item in rendered:
        findings.extend(item.findings)
        all_resources.extend(item.resources)
        env = envs.get(item.path)
        findings.extend(check_overlay(store, item.resources, env))
        if item.ok:
            findings.extend(crossrefs.check_namespaces(item.resources, env.namespace if env else item.namespace))
    return findings


def _chart_findings(store: SchemaStore, charts: list[render.Rendered], all_resources: list[Resource]) -> list[Finding]:
    """Each chart's render on its own: schemas, semantics and policies.

    A chart is a fragment (its PVC, say, comes from elsewhere): no cross-references here; what
    it renders with the generator's values is checked whole in every overlay."""
    findings: list[Finding] = []
    for chart in charts:
        findings.extend(chart.findings)
        all_resources.extend(chart.resources)
        for res in chart.resources:
            findings.extend(resource_findings(store, res))
        findings.extend(policies.check_overlay(chart.resources, policies.Environment()))
    return findings


def _argocd_findings(
    root: Path,
    store: SchemaStore,
    argocd: render.Rendered,
    rendered: list[render.Rendered],
    all_resources: list[Resource],
    whole_repository: bool,
    envs: dict[str, policies.Environment],
) -> list[Finding]:
    """argocd/'s own objects, and (when every overlay was rendered) what its Applications and
    AppProjects say about the rest of the repository."""
    findings = list(argocd.findings)
    all_resources.extend(argocd.resources)
    for res in argocd.resources:
        findings.extend(resource_findings(store, res))
    # Admin objects are namespaced kinds and cluster-scoped objects like any overlay's: the same
    # policies hold (no token automounted, no wildcard RBAC ...).
    findings.extend(policies.check_overlay(argocd.resources, policies.Environment()))
    deployed: dict[str, render.Rendered | None] = {item.path: item for item in rendered}
    # An Application deploys the files of its own directory (Argo CD's directory source does not
    # recurse unless told to): argocd/ is the root app's, argocd/admin/ the admin app's.
    deployed.update(render.by_directory(argocd))
    if whole_repository:
        findings.extend(crossrefs.check_argocd(root, argocd.resources, deployed))
        findings.extend(crossrefs.check_environment_apps(argocd.resources, envs))
        findings.extend(_preview_findings(root, store, argocd))
    return findings


def _preview_findings(root: Path, store: SchemaStore, argocd: render.Rendered) -> list[Finding]:
    """A pull request's preview, rendered from the working tree as Argo CD would (platform.yaml
    with previews only; one that does not load is the platform-yaml check's finding)."""
    try:
        platform = load_config(root / "platform.yaml")
    except ConfigError:
        return []
    if platform.previews is None:
        return []
    return preview.working_tree_findings(
        root,
        argocd.resources,
        platform.previews.label,
        platform.argocd.previews_project,
        lambda resources, env: check_overlay(store, resources, env),
    )


def _kubeconform_findings(
    root: Path, kubernetes_version: str, streams: list[render.Rendered], notes: list[str]
) -> list[Finding]:
    """kubeconform -strict on every rendered stream, whenever it can be found (a note says which)."""
    found = find_kubeconform()
    if found is None:
        notes.append(f"kubeconform not run: not on PATH and ${KUBECONFORM_ENV} unset (no registry carries it)")
        return []
    findings = kubeconform.run(found.path, streams, root, kubernetes_version)
    notes.append(f"kubeconform {found.version} agrees on every resource it checked")
    return findings
