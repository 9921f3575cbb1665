"""What Argo CD would deploy for one pull request's preview, and whether it may.

The previews' ApplicationSets (``argocd/admin/``, ``generator/synthesis/previews.py``) give a
labelled pull request one Application each. ``render`` does what the ApplicationSet controller and
Argo CD's repo server do with them, for a pull request given by number and head commit:

1. expand each ApplicationSet's template with the Pull Request generator's parameters, as Go's
   ``text/template`` does with ``missingkey=error``: ``{{.key}}`` only, an unknown key is an error
   (anything else in ``{{ }}`` is refused: this module does not evaluate Go templates);
2. check out each Application's source at its ``targetRevision`` (``materialize``: the pull
   request's head for the workload, the default branch for the guardrails), set its
   ``kustomize.namespace`` as ``kustomize edit set namespace`` does, and build it with the pinned
   kustomize; objects without a namespace get the Application's destination namespace.

``findings`` then holds the render to what the previews' AppProjects allow, naming each object:
every namespaced object in ``pr-<number>``, the only cluster-scoped one its Namespace, each kind
permitted by the Application's project, none of ``WORKLOAD_NEVER`` in the workload, and every
other check ``make validate`` runs on an overlay (schemas, Pod Security restricted, references),
over both Applications together, as they share the namespace.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

from generator.conventions import preview_namespace
from generator.tools import render_overlay
from generator.validate import policies
from generator.validate.kube import CLUSTER_SCOPED, as_list
from generator.validate.model import Finding, Resource
from generator.validate.render import kustomization_file, parse_rendered

CHECKS = {
    "preview-namespace": "a preview renders only into pr-<number>, and no cluster-scoped object but that Namespace",
    "preview-project-kinds": "each object of a preview is a kind its Application's AppProject permits",
    "preview-workload-kinds": "a preview's workload holds no Secret, RBAC, ServiceAccount, policy, quota or Job",
}
#: Kinds a preview's workload never holds, whatever its project says (issue 28): what would
#: let a pull request read secrets, grant itself rights, open its network, lift its quota or train.
WORKLOAD_NEVER = frozenset(
    {
        "Secret",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "ServiceAccount",
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "Job",
        "CronJob",
        "PersistentVolumeClaim",
    }
)
_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_FIELD = re.compile(r"^-?\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*-?$")


class TemplateError(ValueError):
    """An ApplicationSet template this pull request's parameters cannot fill."""


@dataclass(frozen=True)
class PullRequest:
    """The Pull Request generator's view of one pull request (its GitHub provider's parameters)."""

    number: int
    head_sha: str
    target_branch: str
    labels: tuple[str, ...]
    branch: str = ""

    def params(self) -> dict[str, object]:
        """The template parameters, as the generator names them (``branch`` only when known)."""
        out: dict[str, object] = {
            "number": str(self.number),
            "head_sha": self.head_sha,
            "head_short_sha": self.head_sha[:8],
            "head_short_sha_7": self.head_sha[:7],
            "target_branch": self.target_branch,
            "labels": list(self.labels),
        }
        return out | ({"branch": self.branch} if self.branch else {})


def expand(value: object, params: Mapping[str, object]) -> object:
    """``value`` with every ``{{.key}}`` of its strings replaced, recursively."""
    if isinstance(value, dict):
        return {key: expand(item, params) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item, params) for item in value]
    if not isinstance(value, str):
        return value

    def fill(match: re.Match) -> str:
        found = _FIELD.match(match.group(1))
        if found is None:
            raise TemplateError(f"{match.group(0)!r}: only {{{{.key}}}} is supported here")
        key = found.group(1)
        if key not in params or not isinstance(params[key], str):
            raise TemplateError(f"{match.group(0)!r}: map has no entry for key {key!r} (missingkey=error)")
        return str(params[key])

    return _ACTION.sub(fill, value)


def _selects(appset: Mapping, pr: PullRequest) -> bool:
    """An ApplicationSet whose Pull Request generator lists this pull request (its labels)."""
    for generator in as_list(appset.get("spec", {}).get("generators")):
        pull = generator.get("pullRequest") if isinstance(generator, dict) else None
        if isinstance(pull, dict):
            wanted = set(as_list((pull.get("github") or {}).get("labels")))
            if wanted <= set(pr.labels):
                return True
    return False


def generated_applications(appsets: Iterable[Mapping], pr: PullRequest) -> list[dict]:
    """The Applications the Pull Request ApplicationSets make for ``pr``; TemplateError when a
    template cannot be filled (or is not a Go template with ``missingkey=error``)."""
    apps = []
    for appset in appsets:
        if appset.get("kind") != "ApplicationSet" or not _selects(appset, pr):
            continue
        spec, name = appset["spec"], appset["metadata"]["name"]
        if spec.get("goTemplate") is not True or "missingkey=error" not in as_list(spec.get("goTemplateOptions")):
            raise TemplateError(f"ApplicationSet/{name}: not goTemplate with missingkey=error")
        try:
            template = expand(spec.get("template", {}), pr.params())
        except TemplateError as exc:
            raise TemplateError(f"ApplicationSet/{name}: spec.template: {exc}") from exc
        assert isinstance(template, dict)
        metadata = {**template.get("metadata", {}), "namespace": appset["metadata"].get("namespace", "")}
        apps.append(
            {"apiVersion": appset["apiVersion"], "kind": "Application", "metadata": metadata, "spec": template["spec"]}
        )
    return apps


#: Writes the repository's ``overlays/`` (all a preview's kustomizations read) as they are at a
#: revision into a directory; raises ValueError for a revision it does not know.
Materialize = Callable[[str, Path], None]


@dataclass
class Rendered:
    """One Application's render: its objects (with namespaces applied) and any build problem."""

    application: dict
    resources: list[Resource] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    text: str = ""

    @property
    def name(self) -> str:
        return str(self.application["metadata"]["name"])


def _set_namespace(directory: Path, namespace: str) -> None:
    """``kustomize edit set namespace``: the kustomization's own ``namespace`` field."""
    path = kustomization_file(directory)
    if path is None:
        raise ValueError(f"{directory.name}: no kustomization")
    data = yaml.safe_load(path.read_text()) or {}
    data["namespace"] = namespace
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def render_application(app: dict, materialize: Materialize, label: str) -> Rendered:
    """Build one Application's source as Argo CD's repo server does (see the module docstring)."""
    source, destination = app["spec"]["source"], app["spec"]["destination"]
    result = Rendered(app)
    with tempfile.TemporaryDirectory(prefix="preview-") as tmp:
        checkout = Path(tmp) / "repo"
        checkout.mkdir()
        directory = checkout / str(source["path"])
        namespace = (source.get("kustomize") or {}).get("namespace")
        try:
            materialize(str(source["targetRevision"]), checkout)
            if namespace:
                _set_namespace(directory, str(namespace))
            result.text = render_overlay(directory)
        except Exception as exc:  # a build failure is a finding about this preview
            message = " ".join(str(exc).replace(tmp, "").split())
            result.findings.append(
                Finding(label, "Application", result.name, "spec.source", f"build failed: {message}", "build")
            )
            return result
    result.resources, result.findings = parse_rendered(label, result.text, label)
    for res in result.resources:
        if res.kind not in CLUSTER_SCOPED and not res.namespace:
            res.doc.setdefault("metadata", {})["namespace"] = destination.get("namespace", "")
    return result


def render(appsets: Iterable[Mapping], pr: PullRequest, materialize: Materialize, label: str) -> list[Rendered]:
    """Every Application the previews' ApplicationSets make for ``pr``, rendered."""
    return [render_application(app, materialize, label) for app in generated_applications(appsets, pr)]


def _permitted(entries: object, res: Resource) -> bool:
    """An AppProject white-list entry matching the object (group, kind, and ``name`` as a glob)."""
    for entry in as_list(entries):
        if not isinstance(entry, dict):
            continue
        name = entry.get("name")
        if entry.get("group", "") == res.group and entry.get("kind") == res.kind:
            if not name or fnmatchcase(res.name, str(name)):
                return True
    return False


def _object_findings(res: Resource, project: dict, namespace: str, workload: bool) -> list[Finding]:
    out = []
    spec = project.get("spec", {})
    if res.kind in CLUSTER_SCOPED:
        if res.kind != "Namespace" or res.name != namespace:
            out.append(
                res.finding(
                    "metadata.name",
                    f"cluster-scoped; a preview may own only Namespace {namespace!r}",
                    "preview-namespace",
                )
            )
        if not _permitted(spec.get("clusterResourceWhitelist"), res):
            out.append(
                res.finding(
                    "kind", f"AppProject {project['metadata']['name']!r} does not permit it", "preview-project-kinds"
                )
            )
    else:
        if res.namespace != namespace:
            out.append(
                res.finding(
                    "metadata.namespace",
                    f"{res.namespace!r} is not this preview's namespace {namespace!r}",
                    "preview-namespace",
                )
            )
        if not _permitted(spec.get("namespaceResourceWhitelist"), res):
            out.append(
                res.finding(
                    "kind", f"AppProject {project['metadata']['name']!r} does not permit it", "preview-project-kinds"
                )
            )
    if workload and res.kind in WORKLOAD_NEVER:
        out.append(
            res.finding("kind", f"a preview's workload never holds a {res.kind} (issue 28)", "preview-workload-kinds")
        )
    return out


def findings(
    rendered: list[Rendered], projects: Mapping[str, dict], number: int, workload_project: str, check_overlay: Callable
) -> list[Finding]:
    """What the render does that the previews' projects, or ``make validate``'s checks, refuse."""
    namespace = preview_namespace(number)
    out: list[Finding] = []
    for item in rendered:
        out.extend(item.findings)
        app = item.application
        project_name = app["spec"].get("project", "")
        project = projects.get(project_name)
        destination = app["spec"]["destination"].get("namespace")
        if destination != namespace:
            out.append(
                Finding(
                    item.name,
                    "Application",
                    item.name,
                    "spec.destination.namespace",
                    f"{destination!r} is not {namespace!r}",
                    "preview-namespace",
                )
            )
        if project is None:
            out.append(
                Finding(
                    item.name,
                    "Application",
                    item.name,
                    "spec.project",
                    f"AppProject {project_name!r} does not exist",
                    "preview-project-kinds",
                )
            )
            continue
        for res in item.resources:
            out.extend(_object_findings(res, project, namespace, project_name == workload_project))
    resources = [res for item in rendered for res in item.resources]
    out.extend(check_overlay(resources, policies.Environment(namespace=namespace, train=False)))
    return out


def copy_tree(root: Path) -> Materialize:
    """A ``Materialize`` that copies the working tree's ``overlays/`` whatever the revision (what
    ``make validate`` checks: the pull request as it stands)."""

    def materialize(revision: str, dest: Path) -> None:
        shutil.copytree(root / "overlays", dest / "overlays", symlinks=True)

    return materialize


#: The pull request ``make validate`` renders the working tree's preview as (any number would do).
SAMPLE_NUMBER = 1
#: Its head commit: the working tree is read whatever the revision (``copy_tree``).
WORKING_TREE_SHA = "0" * 40


def working_tree_findings(
    root: Path, argocd: list[Resource], label: str, workload_project: str, check_overlay: Callable
) -> list[Finding]:
    """``make validate``'s preview check: the working tree's ApplicationSets, for a labelled pull
    request numbered ``SAMPLE_NUMBER``, rendered from the working tree and held to its projects."""
    appsets = [res.doc for res in argocd if res.kind == "ApplicationSet"]
    pr = PullRequest(SAMPLE_NUMBER, WORKING_TREE_SHA, "", (label,))
    try:
        rendered = render(appsets, pr, copy_tree(root), "preview")
    except TemplateError as exc:
        return [Finding("preview", "", "", "", str(exc), "preview-namespace")]
    projects = {res.name: res.doc for res in argocd if res.kind == "AppProject"}
    return findings(rendered, projects, SAMPLE_NUMBER, workload_project, check_overlay)
