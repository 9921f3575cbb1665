"""The generated ValidatingAdmissionPolicies, evaluated with a PyPI CEL implementation
(``admission_support``): every rendered workload of every overlay is admitted in its namespace,
and hostile variants of the real production server (a tag, an init container with a tag, no
seccomp profile, privileged, a NodePort, externalIPs, ...) are refused by exactly the rule that
should refuse them, in every pod shape (Pod, Deployment, CronJob), with a message naming what."""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable
from functools import cache

import cdk8s
import pytest
import yaml
from admission_support import RESOURCES, Admission, binds, compile_expression, expressions, load, matches, refusals

from generator.config import Exposure, load_config
from generator.conventions import KUBERNETES_VERSION
from generator.paths import REPO_ROOT
from generator.synthesis.admission import POD_CONCERNS, SERVICE_RULES, AdmissionPolicies, AdmissionProps
from generator.synthesis.admission import SHAPES as POD_SHAPES
from generator.synthesis.synth import render_tree, write_tree
from generator.tools import render_overlay
from generator.validate.kube import pod_template
from generator.validate.model import Resource
from generator.validate.policies import Environment as ValidateEnvironment
from generator.validate.policies import images as validate_images
from generator.validate.policies import pod_security
from generator.validate.schemas import SchemaStore

PLATFORM = load_config(REPO_ROOT / "platform.yaml")
ADMISSION = Admission.load()
OVERLAYS = [env.overlay for env in PLATFORM.environments]
TAG = "registry.example.com/ml/inference-server:0.1.0"
#: CEL's reserved words, which cel-go (the API server's CEL) refuses after a dot.
RESERVED_SELECTOR = re.compile(
    r"\.(as|break|const|continue|else|false|for|function|if|import|in|let|loop|namespace|null|package|return|true"
    r"|var|void|while)\b"
)


@cache
def rendered(overlay: str) -> tuple[dict, ...]:
    """The objects kustomize renders for an overlay (real kustomize)."""
    return tuple(doc for doc in yaml.safe_load_all(render_overlay(REPO_ROOT / overlay)) if doc)


def policy(concern: str, shape: str) -> dict:
    return ADMISSION.policies[f"{PLATFORM.name}-{concern}-{shape}"]


def rule_names(concern_name: str) -> list[str]:
    """The rules of a pod concern, in the order of its policies' validations."""
    concern = next(c for c in POD_CONCERNS if c.name == concern_name)
    return [rule.name for rule in (*concern.container_rules, *concern.pod_rules)]


def refused_rules(concern: str, shape: str, obj: dict, namespace: str) -> dict[str, str]:
    """rule name -> message, for each validation of the concern's policy that refuses ``obj``."""
    found = refusals(policy(concern, shape), obj, namespace)
    names = rule_names(concern)
    messages = {v["message"]: names[i] for i, v in enumerate(policy(concern, shape)["spec"]["validations"])}
    return {messages.get(static, "?"): text for static, text in found}


# --- the policies as generated ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ADMISSION.policies))
def test_every_expression_parses_and_uses_the_standard_library_only(name):
    found = expressions(ADMISSION.policies[name])
    assert found
    for expression in found:
        compile_expression(expression)
        for extension in (".join(", ".split(", ".lowerAscii(", "?.", ".orValue(", "cel.bind(", "url(", "quantity("):
            assert extension not in expression, f"{name}: Kubernetes CEL extension {extension!r} in {expression}"
        # cel-go refuses a reserved word as a field name (Kubernetes escapes them: __namespace__);
        # cel-python accepts it, so a test here must.
        assert not RESERVED_SELECTOR.search(expression), f"{name}: a reserved word as a field: {expression}"


def test_policies_fail_closed_and_bindings_deny():
    for obj in load():
        if obj["kind"] == "ValidatingAdmissionPolicy":
            assert obj["apiVersion"] == "admissionregistration.k8s.io/v1"
            assert obj["spec"]["failurePolicy"] == "Fail"
            assert all(v["message"] and v["reason"] == "Forbidden" for v in obj["spec"]["validations"])
        else:
            assert obj["spec"]["validationActions"] == ["Deny"]
            assert obj["spec"]["policyName"] in ADMISSION.policies


def test_the_pinned_kubernetes_serves_them_and_they_fit_its_schemas():
    """admissionregistration.k8s.io/v1 is GA from Kubernetes 1.30; the manifests target
    KUBERNETES_VERSION, whose strict schemas (kubernetes-validate) carry both kinds."""
    assert tuple(int(part) for part in KUBERNETES_VERSION.split(".")) >= (1, 30)
    store = SchemaStore()
    for obj in load():
        assert store.errors(obj) == [], obj["metadata"]["name"]


def test_bindings_select_the_namespaces_platform_yaml_derives():
    production = {env.namespace for env in PLATFORM.environments if env.require_digest}
    everywhere = {env.namespace for env in PLATFORM.environments}
    assert production and production < everywhere
    for binding in ADMISSION.bindings:
        selected = {ns for ns in everywhere if binds(binding, ns)}
        name = binding["spec"]["policyName"]
        assert selected == (everywhere if "-service-" in name else production), name
    assert {b["spec"]["policyName"] for b in ADMISSION.bindings} == set(ADMISSION.policies)


def test_every_matched_kind_is_one_the_evaluator_knows():
    known = {(group, resource) for group, resource in RESOURCES.values()}
    for obj in ADMISSION.policies.values():
        for rule in obj["spec"]["matchConstraints"]["resourceRules"]:
            for resource in rule["resources"]:
                assert (rule["apiGroups"][0], resource.split("/")[0]) in known
                assert set(rule["operations"]) == {"CREATE", "UPDATE"}


# --- what the overlays render is admitted ------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_every_rendered_object_is_admitted_in_its_namespace(overlay, operation):
    env = next(env for env in PLATFORM.environments if env.overlay == overlay)
    reviewed = 0
    for obj in rendered(overlay):
        assert obj["metadata"].get("namespace", env.namespace) == env.namespace
        assert ADMISSION.review(obj, env.namespace, operation) == {}, (
            f"{overlay}: {obj['kind']}/{obj['metadata']['name']}"
        )
        reviewed += sum(matches(p, obj, operation) for p in ADMISSION.bound(env.namespace))
    assert reviewed, f"{overlay}: no policy applies to anything it renders"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_meets_the_restricted_policies_wherever_it_runs(overlay):
    """Not only production: the restricted CEL and the generator agree on every pod it renders."""
    checked = 0
    for obj in rendered(overlay):
        shape = {"Pod": "pods", "CronJob": "cronjobs"}.get(obj["kind"], "workloads")
        if obj["kind"] in RESOURCES and obj["kind"] != "Service":
            assert refusals(policy("restricted", shape), obj, "anywhere") == [], obj["metadata"]["name"]
            checked += 1
    assert checked


# --- hostile variants of the real production server --------------------------------------------


def production_server() -> dict:
    """The prod overlay's server Deployment, as rendered."""
    return copy.deepcopy(next(o for o in rendered("overlays/prod") if o["kind"] == "Deployment"))


def in_shape(shape: str, mutate: Callable[[dict], None]) -> dict:
    """The production server's pod, mutated, as a Pod, a Deployment or a CronJob."""
    deployment = production_server()
    template = deployment["spec"]["template"]
    mutate(template["spec"])
    if shape == "pods":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hostile"}, "spec": template["spec"]}
    if shape == "cronjobs":
        job = {"template": template}
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "hostile"},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": job}},
        }
    return deployment


def _server(spec: dict) -> dict:
    return next(c for c in spec["containers"] if c["name"] == "server")


def _set(**fields) -> Callable[[dict], None]:
    return lambda spec: _server(spec)["securityContext"].update(fields)


def _pod(**fields) -> Callable[[dict], None]:
    return lambda spec: spec["securityContext"].update(fields)


def _tagged_init(spec: dict) -> None:
    spec["initContainers"][0]["image"] = TAG


def _debug_container(spec: dict) -> None:
    spec["ephemeralContainers"] = [{"name": "debug", "image": TAG, "securityContext": _server(spec)["securityContext"]}]


def _no_seccomp(spec: dict) -> None:
    del spec["securityContext"]["seccompProfile"]


def _pod_unconfined(spec: dict) -> None:
    spec["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    for container in (*spec["containers"], *spec["initContainers"]):
        container["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}


def _pod_root_allowed(spec: dict) -> None:
    spec["securityContext"]["runAsNonRoot"] = False
    for container in (*spec["containers"], *spec["initContainers"]):
        container["securityContext"]["runAsNonRoot"] = True


def _no_non_root(spec: dict) -> None:
    del spec["securityContext"]["runAsNonRoot"]


HOSTILE = {
    # name: (mutation, concern, refusing rule, words the message holds)
    "tag-only image": (
        lambda spec: _server(spec).update(image=TAG),
        "image-digest",
        "digest",
        f"container server ({TAG}): its image must be pinned by digest",
    ),
    "initContainer with a tag": (_tagged_init, "image-digest", "digest", "initContainer fetch-model"),
    "ephemeralContainer with a tag": (_debug_container, "image-digest", "digest", "ephemeralContainer debug"),
    "image volume by tag": (
        lambda spec: spec["volumes"].append({"name": "m", "image": {"reference": TAG}}),
        "image-digest",
        "image-volume-digest",
        "every image volume must be pinned by digest",
    ),
    "privileged": (_set(privileged=True), "restricted", "privileged", "container server: must not be privileged"),
    "hostPort": (
        lambda spec: _server(spec)["ports"][0].update(hostPort=8080),
        "restricted",
        "host-ports",
        "container server: must not set a hostPort",
    ),
    "procMount Unmasked": (_set(procMount="Unmasked"), "restricted", "proc-mount", "procMount must be Default"),
    "privilege escalation unset": (
        lambda spec: _server(spec)["securityContext"].pop("allowPrivilegeEscalation"),
        "restricted",
        "privilege-escalation",
        "allowPrivilegeEscalation must be false",
    ),
    "privilege escalation": (
        _set(allowPrivilegeEscalation=True),
        "restricted",
        "privilege-escalation",
        "container server: securityContext.allowPrivilegeEscalation must be false",
    ),
    "container runAsNonRoot false": (_set(runAsNonRoot=False), "restricted", "run-as-non-root", "container server"),
    "runAsNonRoot nowhere": (
        _no_non_root,
        "restricted",
        "run-as-non-root",
        "container server: runAsNonRoot must be true",
    ),
    "container runs as root": (_set(runAsUser=0), "restricted", "run-as-user", "runAsUser must not be 0"),
    "missing seccomp": (_no_seccomp, "restricted", "seccomp", "seccompProfile.type must be RuntimeDefault"),
    "container seccomp Unconfined": (
        _set(seccompProfile={"type": "Unconfined"}),
        "restricted",
        "seccomp",
        "container server",
    ),
    "capabilities not dropped": (
        _set(capabilities={}),
        "restricted",
        "capabilities-drop",
        "capabilities.drop must include ALL",
    ),
    "capability added": (
        _set(capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "SYS_ADMIN"]}),
        "restricted",
        "capabilities-add",
        "may hold only NET_BIND_SERVICE",
    ),
    "AppArmor unconfined": (_set(appArmorProfile={"type": "Unconfined"}), "restricted", "apparmor", "appArmorProfile"),
    "hostNetwork": (lambda spec: spec.update(hostNetwork=True), "restricted", "hostNetwork", "hostNetwork"),
    "hostPID": (lambda spec: spec.update(hostPID=True), "restricted", "hostPID", "hostPID must not be true"),
    "hostIPC": (lambda spec: spec.update(hostIPC=True), "restricted", "hostIPC", "hostIPC must not be true"),
    "hostPath volume": (
        lambda spec: spec["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
        "restricted",
        "volume-types",
        "no hostPath",
    ),
    "unsafe sysctl": (
        _pod(sysctls=[{"name": "kernel.msgmax", "value": "65536"}]),
        "restricted",
        "sysctls",
        "safe sysctls",
    ),
    "pod seccomp Unconfined": (_pod_unconfined, "restricted", "pod-seccomp", "the pod's seccompProfile"),
    "pod runAsNonRoot false": (_pod_root_allowed, "restricted", "pod-run-as-non-root", "the pod's runAsNonRoot"),
    "pod runs as root": (_pod(runAsUser=0), "restricted", "pod-run-as-user", "the pod's runAsUser must not be 0"),
}
SHAPES = ("pods", "workloads", "cronjobs")
PRODUCTION = next(env.namespace for env in PLATFORM.environments if env.require_digest)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_pod_is_refused_by_exactly_its_rule(case, shape):
    mutate, concern, rule, words = HOSTILE[case]
    obj = in_shape(shape, mutate)
    assert refused_rules(concern, shape, obj, PRODUCTION).keys() == {rule}
    message = refused_rules(concern, shape, obj, PRODUCTION)[rule]
    assert words in message and message.startswith(f"production {'runs' if concern == 'image-digest' else 'pods'}")
    other = next(c.name for c in POD_CONCERNS if c.name != concern)
    assert refused_rules(other, shape, obj, PRODUCTION) == {}, f"{case} also breaks {other}"
    assert set(ADMISSION.review(obj, PRODUCTION)) == {f"{PLATFORM.name}-{concern}-{shape}"}
    assert ADMISSION.review(obj, PRODUCTION, "UPDATE") == ADMISSION.review(obj, PRODUCTION)


def test_every_pod_rule_has_a_hostile_case():
    for concern in POD_CONCERNS:
        covered = {rule for _, c, rule, _ in HOSTILE.values() if c == concern.name}
        assert covered == set(rule_names(concern.name)), concern.name


def test_outside_production_pod_rules_are_not_bound():
    dev = next(env.namespace for env in PLATFORM.environments if not env.require_digest)
    tagged = in_shape("workloads", lambda spec: _server(spec).update(image=TAG, securityContext={}))
    assert ADMISSION.review(tagged, dev) == {}
    assert ADMISSION.review(tagged, PRODUCTION).keys() == {
        f"{PLATFORM.name}-image-digest-workloads",
        f"{PLATFORM.name}-restricted-workloads",
    }


def test_a_replication_controller_without_a_template_is_not_matched():
    bare = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "bare"}, "spec": {}}
    assert ADMISSION.review(bare, PRODUCTION) == {}


# --- Services -----------------------------------------------------------------------------------


def service(**spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "exposed"},
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}], **spec},
    }


@pytest.mark.parametrize("env", PLATFORM.environments, ids=lambda env: env.name)
@pytest.mark.parametrize(
    ("spec", "suffix", "words"),
    [
        ({"type": "NodePort"}, "service-nodeport", "Service exposed is of type NodePort"),
        ({"type": "LoadBalancer"}, "service-loadbalancer", "Service exposed is of type LoadBalancer"),
        ({"externalIPs": ["192.0.2.10"]}, "service-external-ips", "Service exposed sets spec.externalIPs"),
    ],
)
def test_an_exposed_service_is_refused_in_every_environment(env, spec, suffix, words):
    found = ADMISSION.review(service(**spec), env.namespace)
    assert list(found) == [f"{PLATFORM.name}-{suffix}"]
    [message] = found[f"{PLATFORM.name}-{suffix}"]
    assert message.startswith(words) and f"which namespace {env.namespace} does not allow" in message


@pytest.mark.parametrize("spec", [{}, {"type": "ClusterIP"}, {"clusterIP": "None"}, {"externalIPs": []}])
def test_an_internal_service_is_admitted(spec):
    for env in PLATFORM.environments:
        assert ADMISSION.review(service(**spec), env.namespace) == {}


def synthesized(environments) -> dict[str, dict]:
    """The admission objects for other environments, by name."""
    app = cdk8s.App()
    chart = cdk8s.Chart(app, "admission", disable_resource_name_hashes=True)
    AdmissionPolicies(chart, "admission", AdmissionProps(system=PLATFORM.name, environments=tuple(environments)))
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in chart.to_json()}


def test_an_environment_that_allows_an_exposure_is_left_out_of_its_binding():
    dev, *others = PLATFORM.environments
    objects = synthesized([dev.model_copy(update={"exposure": Exposure(nodePort=True)}), *others])
    binding = objects[f"ValidatingAdmissionPolicyBinding/{PLATFORM.name}-service-nodeport"]
    assert not binds(binding, dev.namespace) and all(binds(binding, env.namespace) for env in others)
    assert binds(objects[f"ValidatingAdmissionPolicyBinding/{PLATFORM.name}-service-loadbalancer"], dev.namespace)


def test_an_exposure_every_environment_allows_has_no_binding():
    everything = Exposure(nodePort=True, loadBalancer=True, externalIPs=True)
    objects = synthesized([env.model_copy(update={"exposure": everything}) for env in PLATFORM.environments])
    assert not any(key.startswith("ValidatingAdmissionPolicyBinding/") and "-service-" in key for key in objects)
    policies = [key for key in objects if key.startswith("ValidatingAdmissionPolicy/")]
    assert len(policies) == len(POD_CONCERNS) * len(POD_SHAPES) + len(SERVICE_RULES)


def test_exposure_is_refused_unless_platform_yaml_allows_it():
    assert Exposure() == Exposure(nodePort=False, loadBalancer=False, externalIPs=False)
    assert all(env.exposure == Exposure() for env in PLATFORM.environments)


@pytest.mark.parametrize(
    "case", sorted(case for case, (_, concern, _, _) in HOSTILE.items() if concern == "restricted")
)
def test_make_validate_refuses_what_the_cluster_refuses(case):
    """The pull-request checks (``pss-*``) and the admission policies hold pods to the same
    profile: each hostile pod the cluster refuses, make validate reports too."""
    mutate, *_ = HOSTILE[case]
    pod = pod_template(Resource(in_shape("workloads", mutate), "prod"))
    assert pod is not None
    found = {finding.check for finding in pod_security(pod)}
    assert any(check.startswith("pss-") for check in found), f"{case}: make validate finds {found}"
    assert not {f.check for f in pod_security(pod_template(Resource(production_server(), "prod")))}


@pytest.mark.parametrize(
    "case", sorted(case for case, (_, concern, _, _) in HOSTILE.items() if concern == "image-digest")
)
def test_make_validate_refuses_the_tags_the_cluster_refuses(case):
    mutate, *_ = HOSTILE[case]
    pod = pod_template(Resource(in_shape("pods", mutate), "prod"))
    assert pod is not None
    found = [f for f in validate_images(pod, ValidateEnvironment(require_digest=True)) if f.check == "image-digest"]
    assert len(found) == 1 and TAG in found[0].message, f"{case}: {found}"


def test_with_image_volumes_the_production_overlays_are_admitted_too(tmp_path):
    """modelArtifacts.delivery: imageVolume mounts the pinned model image: the image volume rule
    meets a real reference, pinned by digest, and admits it."""
    shutil.copytree(REPO_ROOT / "overlays", tmp_path / "overlays")
    data = yaml.safe_load((REPO_ROOT / "platform.yaml").read_text())
    data["modelArtifacts"]["delivery"] = "imageVolume"
    config = tmp_path / "platform.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    write_tree(render_tree(config), tmp_path)
    for env in (env for env in PLATFORM.environments if env.require_digest):
        objects = [d for d in yaml.safe_load_all(render_overlay(tmp_path / env.overlay)) if d]
        pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"]
        assert pods and all(any("image" in v for v in pod["volumes"]) for pod in pods), env.name
        for obj in objects:
            assert ADMISSION.review(obj, env.namespace) == {}, f"{env.name}: {obj['kind']}/{obj['metadata']['name']}"
