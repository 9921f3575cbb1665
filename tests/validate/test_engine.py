"""The whole pipeline with the real kustomize, on a small repository built in a temp dir from
fixtures/clean.yaml: discovery, rendering, Argo CD cross-checks, file-level checks, output
formats, exit codes, caches, charts and the kubeconform wiring (mutation tests: test_mutations.py)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from validate_support import CON, REPO, add_patch, build_repo, clean_docs, lines, run

from generator.paths import REPO_ROOT
from generator.tools.kubeconform import find_kubeconform
from generator.validate import cli, kubeconform
from generator.validate.schemas import k8s_schema_dir


@pytest.fixture
def repo(tmp_path):
    return build_repo(tmp_path)


def test_fixture_repository_is_clean(repo):
    result = run(repo, secrets=True)
    assert lines(result) == []
    assert result.stats["overlays"] == 1 and result.stats["resources"] == 17


def test_new_overlays_are_discovered_and_base_is_not_an_environment(tmp_path):
    result = run(build_repo(tmp_path, envs=("dev", "prod")))
    assert lines(result) == []
    assert result.stats["overlays"] == 2


def _edit_app(repo: Path, env: str, **changes) -> None:
    path = repo / "argocd" / f"application-{env}.yaml"
    app = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = app
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    path.write_text(yaml.safe_dump(app))


def test_application_pointing_at_a_missing_path(repo):
    _edit_app(repo, "dev", spec__source__path="overlays/dve")
    assert (
        "argocd: Application/app-dev: spec.source.path: path 'overlays/dve' does not exist in the repository "
        "[argocd-app-path]"
    ) in lines(run(repo))


def test_application_path_that_does_not_build(repo):
    (repo / "overlays" / "dev" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../nowhere\n"
    )
    got = lines(run(repo))
    assert any(line.startswith("dev: kustomize build failed:") and line.endswith("[build]") for line in got)
    assert (
        "argocd: Application/app-dev: spec.source.path: path 'overlays/dev' does not build "
        "(see the dev findings) [argocd-app-path]"
    ) in got


def test_application_destination_namespace_must_be_the_overlays(repo):
    _edit_app(repo, "dev", spec__destination__namespace="ml-prod")
    got = lines(run(repo))
    assert (
        "argocd: Application/app-dev: spec.destination.namespace: 'ml-prod' differs from the namespace of "
        "'overlays/dev' (ml-dev) [argocd-app-namespace]"
    ) in got
    assert any("[argocd-project]" in line and "does not permit destination" in line for line in got)


def test_appproject_must_permit_repo_and_every_kind(repo):
    path = repo / "argocd" / "appproject.yaml"
    project = yaml.safe_load(path.read_text())
    project["spec"]["namespaceResourceWhitelist"] = [
        e for e in project["spec"]["namespaceResourceWhitelist"] if e["kind"] != "NetworkPolicy"
    ]
    project["spec"]["sourceRepos"] = ["https://git.example.com/other.git"]
    path.write_text(yaml.safe_dump(project))
    got = lines(run(repo))
    refused = [
        line
        for line in got
        if line.startswith("argocd: Application/app-dev: spec.source.path: deploys NetworkPolicy '")
        and line.endswith("(group 'networking.k8s.io') but AppProject 'ml' does not permit it [argocd-project-kinds]")
    ]
    assert refused, got  # one line per object, each naming it
    assert (
        "argocd: Application/app-dev: spec.source.repoURL: AppProject 'ml' does not permit repo "
        f"'{REPO}' [argocd-project]"
    ) in got


def test_cluster_scoped_kinds_need_the_cluster_whitelist(repo):
    (repo / "overlays" / "base" / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: extra\n")
    kust = repo / "overlays" / "base" / "kustomization.yaml"
    kust.write_text(kust.read_text() + "- ns.yaml\n")
    refused = (
        "argocd: Application/app-dev: spec.source.path: deploys cluster-scoped Namespace 'ml-dev' (group '') but "
        "AppProject 'ml' does not whitelist it [argocd-project-kinds]"
    )
    assert refused in lines(run(repo))
    # Argo CD 3 whitelists cluster-scoped objects by name: another name permits nothing here.
    path = repo / "argocd" / "appproject.yaml"
    project = yaml.safe_load(path.read_text())
    project["spec"]["clusterResourceWhitelist"] = [{"group": "", "kind": "Namespace", "name": "ml-prod"}]
    path.write_text(yaml.safe_dump(project))
    assert refused in lines(run(repo))
    project["spec"]["clusterResourceWhitelist"][0]["name"] = "ml-dev"
    path.write_text(yaml.safe_dump(project))
    assert not [line for line in lines(run(repo)) if "[argocd-project-kinds]" in line]


def test_appproject_wildcards(repo):
    path = repo / "argocd" / "appproject.yaml"
    project = yaml.safe_load(path.read_text())
    project["spec"]["sourceRepos"].append("*")
    project["spec"]["clusterResourceWhitelist"] = [{"group": "*", "kind": "*"}]
    del project["spec"]["namespaceResourceWhitelist"]
    path.write_text(yaml.safe_dump(project))
    got = lines(run(repo))
    assert (
        "argocd: AppProject/ml: spec.namespaceResourceWhitelist: not set, so every namespaced kind is allowed: "
        "list the kinds the project deploys [argocd-project-wildcard]"
    ) in got
    assert "argocd: AppProject/ml: spec.sourceRepos[1]: wildcard source repo '*' [argocd-project-wildcard]" in got
    assert (
        "argocd: AppProject/ml: spec.clusterResourceWhitelist[0].group: wildcard group in "
        "clusterResourceWhitelist [argocd-project-wildcard]"
    ) in got


def test_application_with_unknown_project(repo):
    _edit_app(repo, "dev", spec__project="nope")
    assert (
        "argocd: Application/app-dev: spec.project: AppProject 'nope' is not defined in argocd/ [argocd-project]"
    ) in lines(run(repo))


def test_duplicate_keys_in_a_source_file_are_reported_with_lines(repo):
    path = repo / "overlays" / "dev" / "kustomization.yaml"
    path.write_text(path.read_text() + "namespace: ml-prod\n")
    got = lines(run(repo))
    assert (
        "overlays/dev/kustomization.yaml:6: (top level): duplicate key 'namespace' (first at line 3) "
        "[yaml-duplicate-key]"
    ) in got


def test_duplicate_keys_in_argocd_objects(repo):
    path = repo / "argocd" / "application-dev.yaml"
    path.write_text(path.read_text().replace("  project: ml\n", "  project: ml\n  project: ml\n"))
    got = lines(run(repo))
    assert any(
        line.startswith("argocd/application-dev.yaml:")
        and "duplicate key 'project'" in line
        and line.endswith("[yaml-duplicate-key]")
        for line in got
    ), got


def test_invalid_yaml_is_a_finding_not_a_crash(repo):
    (repo / "overlays" / "notes.yaml").write_text("a: [1, 2\n")
    got = lines(run(repo))
    assert any(line.startswith("overlays/notes.yaml:") and line.endswith("[yaml-syntax]") for line in got), got


def test_secret_looking_strings_are_found_by_detect_secrets(repo):
    # Assembled at run time so that this file itself carries no secret-looking string.
    key_id, secret = "AKIA" + "IOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
    (repo / "overlays" / "dev" / "creds.env").write_text(
        f'AWS_SECRET_ACCESS_KEY = "{secret}"\naws_access_key_id = {key_id}\n'
    )
    got = lines(run(repo, secrets=True))
    assert any(line.startswith("overlays/dev/creds.env:") and line.endswith("[secrets-scan]") for line in got), got


def test_freshness_compares_against_a_fresh_synth(repo):
    import hashlib

    from generator.validate import freshness

    (repo / "argocd" / "stale.yaml").write_text("# Generated by make synth\n")
    expected = {
        p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in [*(repo / "argocd").glob("application-*.yaml"), *(repo / "overlays" / "base").iterdir()]
    }
    expected["argocd/appproject.yaml"] = "0" * 64
    expected["argocd/missing.yaml"] = "0" * 64
    got = [f.render() for f in freshness.compare(repo, expected)]
    assert got == [
        "argocd/appproject.yaml: differs from a fresh make synth: run make synth and commit [freshness]",
        "argocd/missing.yaml: missing: run make synth and commit the result [freshness]",
        "argocd/stale.yaml: not produced by make synth any more: delete it (make synth does) [freshness]",
    ]


def test_cli_exit_codes_and_formats(repo, capsys, tmp_path):
    args = ["--root", str(repo), "--no-freshness", "--no-secrets", "--no-kubeconform"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("validate: clean; 1 overlay(s), 17 resource(s), Kubernetes 1.33, ")
    add_patch(
        repo / "overlays" / "dev",
        "Deployment/web",
        [{"op": "add", "path": f"{CON}/securityContext/privileged", "value": True}],
    )
    assert cli.main(args + ["--output", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    for finding in report["findings"]:
        finding.pop("line")
    assert {
        "check": "pss-privileged",
        "overlay": "dev",
        "kind": "Deployment",
        "name": "web",
        "resource": "Deployment/web",
        "path": "spec.template.spec.containers[0].securityContext.privileged",
        "message": "container 'server' is privileged",
    } in report["findings"]
    junit_file = tmp_path / "report.xml"
    assert cli.main(args + ["--output", "junit", "--output-file", str(junit_file)]) == 1
    tree = ET.parse(junit_file)
    failures = tree.getroot().findall(".//testsuite[@name='pss-privileged']/testcase/failure")
    assert len(failures) == 1 and "securityContext.privileged" in failures[0].text
    assert tree.getroot().get("failures") == "1"
    assert cli.main(args + ["--kubernetes-version", "1.99"]) == 2
    assert cli.main(args + ["--output", "yaml"]) == 2
    assert cli.main(args + ["--overlay", "nope"]) == 2
    assert cli.main(["--list-checks"]) == 0
    capsys.readouterr()


def test_kubernetes_version_is_configurable(repo):
    # autoscaling/v2 HPAs exist from 1.23; resizePolicy on containers appears in 1.27's schema.
    add_patch(
        repo / "overlays" / "dev",
        "Deployment/web",
        [
            {
                "op": "add",
                "path": f"{CON}/resizePolicy",
                "value": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
            }
        ],
    )
    assert lines(run(repo, kubernetes_version="1.33")) == []
    assert (
        "dev: Deployment/web: spec.template.spec.containers[0].resizePolicy: unknown field 'resizePolicy' [schema]"
    ) in lines(run(repo, kubernetes_version="1.26"))


def test_secrets_scan_is_cached_per_file_content(repo):
    from generator.validate import repofiles

    notes = repo / "overlays" / "dev" / "notes.txt"
    notes.write_text("nothing to see\n")
    files = repofiles.tracked_files(repo)
    first = repofiles.SecretsScan(repo, files)
    assert first.todo and first.finish() == []
    again = repofiles.SecretsScan(repo, files)
    assert again.todo == [] and again.finish() == []
    notes.write_text("nothing to see\naws_access_key_id = " + "AKIA" + "IOSFODNN7EXAMPLE\n")
    changed = repofiles.SecretsScan(repo, files)
    assert changed.todo == ["overlays/dev/notes.txt"]
    found = [f.render() for f in changed.finish()]
    assert found and all(line.startswith("overlays/dev/notes.txt:2: possible secret") for line in found), found


def _chart(repo: Path) -> Path:
    chart = repo / "charts" / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("tag: '1.0'\n")
    web = next(d for d in clean_docs() if d["kind"] == "Deployment")
    web["metadata"].pop("namespace")
    text = yaml.safe_dump(web).replace(
        "registry.example.com/ml/server:1.0.0", "registry.example.com/ml/server:{{ .Values.tag }}"
    )
    (chart / "templates" / "deployment.yaml").write_text(text)
    return chart


def test_charts_render_with_defaults_and_every_ci_values_file(repo):
    chart = _chart(repo)
    (chart / "ci").mkdir()
    (chart / "ci" / "latest-values.yaml").write_text("tag: latest\n")
    result = run(repo)
    assert result.stats["charts"] == 2
    got = lines(result)
    assert (
        "charts/demo[ci/latest-values.yaml]: Deployment/web: spec.template.spec.containers[0].image: image "
        "'registry.example.com/ml/server:latest' uses the mutable tag 'latest' [image-tag]"
    ) in got
    assert not [line for line in got if line.startswith("charts/demo:") and "[image-tag]" in line]


def test_a_chart_that_does_not_render_is_a_build_finding(repo):
    chart = _chart(repo)
    (chart / "templates" / "broken.yaml").write_text("{{ .Values.nope.deeper }}\n")
    got = lines(run(repo))
    assert any(line.startswith("charts/demo: helm template failed:") and line.endswith("[build]") for line in got)


#: The kubeconform make validate would use: no registry carries it, so it runs where the user (or
#: the pull-request workflow, which gives it to ``make test``) puts it on PATH or in $KUBECONFORM.
KUBECONFORM = find_kubeconform()


@pytest.mark.skipif(KUBECONFORM is None, reason="kubeconform is not on PATH and $KUBECONFORM is unset")
def test_kubeconform_runs_and_its_findings_name_overlay_resource_and_field(repo, monkeypatch):
    assert KUBECONFORM is not None
    monkeypatch.setenv("KUBECONFORM", KUBECONFORM.path)
    result = run(repo, kubeconform="auto")
    assert lines(result) == [] and any(note.startswith("kubeconform v") for note in result.stats["notes"])
    add_patch(repo / "overlays" / "dev", "Deployment/web", [{"op": "add", "path": "/spec/replicas", "value": "3"}])
    got = [line for line in lines(run(repo, kubeconform="auto")) if line.endswith("[kubeconform]")]
    assert got == ["dev: Deployment/web: spec.replicas: got string, want null or integer [kubeconform]"]


def test_without_kubeconform_validate_says_in_one_note_that_it_did_not_run(repo, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("KUBECONFORM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli.main(["--root", str(repo), "--no-freshness", "--no-secrets"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if "kubeconform" in line] == [
        "validate: note: kubeconform not run: not on PATH and $KUBECONFORM unset (no registry carries it)"
    ]


def test_a_kubeconform_that_was_asked_for_but_does_not_run_is_an_error(repo, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFORM", str(tmp_path / "missing"))
    args = ["--root", str(repo), "--no-freshness", "--no-secrets"]
    assert cli.main(args) == 2
    assert cli.main(args + ["--no-kubeconform"]) == 0


def test_kubeconform_schemas_are_readable_copies_of_the_pinned_ones(tmp_path):
    copies = kubeconform.prepare_schemas(tmp_path, "1.33")
    assert kubeconform.prepare_schemas(tmp_path, "1.33") == copies  # prepared once, then reused
    original = json.loads((k8s_schema_dir("1.33") / "deployment-apps-v1.json").read_text())
    copy = json.loads((copies / "deployment-apps-v1.json").read_text())
    text = json.dumps(copy)
    assert '"$id"' not in text and "/api/_definitions.json" not in text
    assert copy["properties"]["spec"]["$ref"] == "_definitions.json#/$defs/io.k8s.api.apps.v1.DeploymentSpec"
    assert original["properties"]["spec"] == {
        **copy["properties"]["spec"],
        "$ref": "/api/" + copy["properties"]["spec"]["$ref"],
    }
    assert sorted(p.name for p in copies.iterdir()) == sorted(p.name for p in k8s_schema_dir("1.33").iterdir())


def test_hpa_scaled_deployments_need_argocd_to_ignore_replicas(repo):
    _edit_app(repo, "dev", spec__ignoreDifferences=[])
    assert (
        "argocd: Application/app-dev: spec.ignoreDifferences: HPA 'web' scales Deployment/web, which sets "
        "spec.replicas: ignore /spec/replicas for it [argocd-hpa-replicas]"
    ) in lines(run(repo))
    _edit_app(
        repo,
        "dev",
        spec__ignoreDifferences=[{"group": "apps", "kind": "Deployment", "jqPathExpressions": [".spec.replicas"]}],
        spec__syncPolicy={},
    )
    assert (
        "argocd: Application/app-dev: spec.syncPolicy.syncOptions: ignoreDifferences on spec.replicas needs "
        "RespectIgnoreDifferences=true, or each sync resets the HPA's replica count [argocd-hpa-replicas]"
    ) in lines(run(repo))
    _edit_app(repo, "dev", spec__syncPolicy={"syncOptions": ["RespectIgnoreDifferences=true"]})
    assert lines(run(repo)) == []


def test_the_repository_itself_validates_clean():
    """make validate on this repository (freshness is left to make validate and the PR workflow's
    synth step, so that a generator change in progress fails there rather than in every test run)."""
    real = REPO_ROOT
    if not (real / "overlays").is_dir():
        pytest.skip("no overlays yet")
    result = run(real, secrets=True)
    assert lines(result) == []
    assert result.stats["overlays"] >= 1


def test_objects_outside_the_environment_namespace(repo):
    (repo / "overlays" / "dev" / "extra.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: kube-system\ndata: {}\n"
    )
    kust = repo / "overlays" / "dev" / "kustomization.yaml"
    kust.write_text(kust.read_text().replace("namespace: ml-dev\n", "") + "- extra.yaml\n")
    got = lines(run(repo))
    assert (
        "dev: ConfigMap/extra: metadata.namespace: namespace 'kube-system' is not the environment's 'ml-dev' "
        "[namespace]" in got
    )
    assert (
        "dev: Deployment/web: metadata.namespace: namespace '(none)' is not the environment's 'ml-dev' "
        "[namespace]" in got
    )


def test_an_overlay_no_application_deploys(repo):
    import shutil

    shutil.copytree(repo / "overlays" / "dev", repo / "overlays" / "qa")
    got = lines(run(repo))
    assert (
        "qa: no Argo CD Application deploys overlays/qa: add the environment to platform.yaml (make synth "
        "writes its Application) or remove the overlay [argocd-overlay-synced]"
    ) in got


def test_platform_yaml_require_digest_applies_to_its_overlay(repo):
    platform = yaml.safe_load((repo / "platform.yaml").read_text())
    platform["environments"][0]["requireDigest"] = True
    (repo / "platform.yaml").write_text(yaml.safe_dump(platform))
    got = [line for line in lines(run(repo)) if "[image-digest]" in line]
    assert got == [
        "dev: Deployment/web: spec.template.spec.containers[0].image: image "
        "'registry.example.com/ml/server:1.0.0' has no digest; this environment requires @sha256:... "
        "(platform.yaml requireDigest) [image-digest]"
    ]


def test_release_files_of_the_wrong_shape_are_findings_naming_file_and_field(repo):
    kustomization = repo / "overlays" / "dev" / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text() + "images: nginx\n")
    (repo / "overlays" / "dev" / "release.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-release\ndata:\n  MODEL_VERSION: [1]\n"
    )
    got = [line for line in lines(run(repo)) if line.endswith("[release-file]")]
    assert got == [
        "overlays/dev/kustomization.yaml: images: 'nginx' is not of type 'array' [release-file]",
        "overlays/dev/release.yaml: [0].data.MODEL_VERSION: [1] is not of type 'string' [release-file]",
    ]


def test_training_follows_each_environments_train_setting_in_platform_yaml(repo):
    """platform.yaml's environments[].train reaches the `train` check: an environment that should
    train but renders no training Job fails, naming the overlay; a serve-only one with a training
    Job fails, naming the Job."""
    platform = repo / "platform.yaml"
    data = yaml.safe_load(platform.read_text())
    data["environments"][0]["train"] = True
    platform.write_text(yaml.safe_dump(data))
    assert [line for line in lines(run(repo)) if "[train]" in line] == [
        "dev: platform.yaml sets train: true but the overlay renders no training Job: add "
        "../components/training-<strategy> to its components [train]"
    ]
    labels = {"app.kubernetes.io/component": "training"}
    add_patch(repo / "overlays" / "dev", "Job/train", [{"op": "add", "path": "/metadata/labels", "value": labels}])
    assert [line for line in lines(run(repo)) if "[train]" in line] == []
    data["environments"][0].pop("train")
    platform.write_text(yaml.safe_dump(data))
    assert [line for line in lines(run(repo)) if "[train]" in line] == [
        "dev: Job/train: metadata.labels[app.kubernetes.io/component]: platform.yaml makes this environment "
        "serve-only (train: false): remove the training component from the overlay's components, or set "
        "train: true [train]"
    ]
