"""Admission in the cluster: ValidatingAdmissionPolicies (Kubernetes' built-in CEL admission,
admissionregistration.k8s.io/v1) and their bindings, deployed from ``argocd/admin/``.

- In the production namespaces (environments with ``requireDigest: true``), every image of every
  container, init container, ephemeral container and image volume is pinned by digest, and every
  pod meets the Pod Security Standard "restricted", for Pods and for the pod templates of the
  workload kinds (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController,
  CronJob), so a bad template is refused when it is applied, not when its pods fail to start.
- In every environment namespace, Services of type NodePort or LoadBalancer and Services with
  ``externalIPs``, unless the environment's ``exposure`` in platform.yaml allows them.

Each policy checks one shape of pod spec (a Pod's, a template's, a CronJob's), so each expression
type-checks against every kind the policy matches. The CEL is the standard language only (macros,
``has``, ``matches``, ``in``, ``size``, ``string``; none of Kubernetes' extension libraries):
the tests evaluate every expression with a PyPI implementation, and so evaluate exactly what the
API server runs. Namespaces are selected by ``kubernetes.io/metadata.name``, derived from the
environments, never listed by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cdk8s_plus_33 import k8s
from constructs import Construct

from generator import pod_security
from generator.config import Environment
from services.contract import DIGEST

NAMESPACE_LABEL = "kubernetes.io/metadata.name"
#: What a pinned image reference ends with (any repository, an optional tag, then the digest).
DIGEST_PATTERN = f"^[^@]+@{DIGEST}$"
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def cel_string(text: str) -> str:
    """A CEL string literal holding ``text``."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cel_list(values: Iterable[str]) -> str:
    """A CEL list literal of strings."""
    return "[" + ", ".join(cel_string(value) for value in values) + "]"


def is_set(base: str, fields: str) -> str:
    """CEL: every field along the dotted ``fields`` below ``base`` (a value that always exists:
    ``c``, ``variables.spec``) is present, one ``has`` per step."""
    path = base
    steps = []
    for field in fields.split("."):
        path = f"{path}.{field}"
        steps.append(f"has({path})")
    return " && ".join(steps)


def unless_set(base: str, fields: str, holds: str) -> str:
    """CEL: the field at ``base.fields`` is absent, or ``holds`` (an expression on it) is true."""
    return f"!({is_set(base, fields)}) || {holds}"


@dataclass(frozen=True)
class Rule:
    """One thing every container (``c``) or the pod spec (``variables.spec``) must satisfy."""

    name: str
    holds: str  # CEL: true when the container or pod is fine
    says: str  # what must hold, for the message
    shows: str = ""  # CEL string: the offending value, for the message ("" for none)


@dataclass(frozen=True)
class Shape:
    """Where a kind keeps its pod spec, and the resources (by API group) of that kind."""

    name: str
    spec: str
    resources: tuple[tuple[str, tuple[str, ...]], ...]
    #: A CEL condition the object must meet to carry a pod spec at all ("" for always).
    has_spec: str = ""


SHAPES = (
    Shape("pods", "object.spec", (("", ("pods", "pods/ephemeralcontainers")),)),
    Shape(
        "workloads",
        "object.spec.template.spec",
        (
            ("", ("replicationcontrollers",)),
            ("apps", ("daemonsets", "deployments", "replicasets", "statefulsets")),
            ("batch", ("jobs",)),
        ),
        # A ReplicationController may leave its template out.
        has_spec="has(object.spec.template) && has(object.spec.template.spec)",
    ),
    Shape("cronjobs", "object.spec.jobTemplate.spec.template.spec", (("batch", ("cronjobs",)),)),
)

#: How the expressions name a container's securityContext, the pod spec and the pod's.
_SC = "c.securityContext"
SPEC = "variables.spec"
POD_SC = f"{SPEC}.securityContext"
_PROFILES = cel_list(pod_security.PROFILE_TYPES)

DIGEST_CONTAINER_RULES = (
    Rule(
        "digest",
        f"c.image.matches({cel_string(DIGEST_PATTERN)})",
        "its image must be pinned by digest (repository@sha256:<64 hex digits>)",
        "c.image",
    ),
)
DIGEST_POD_RULES = (
    Rule(
        "image-volume-digest",
        f"!has({SPEC}.volumes) || {SPEC}.volumes.all(v, !has(v.image) || "
        f"(has(v.image.reference) && v.image.reference.matches({cel_string(DIGEST_PATTERN)})))",
        "every image volume must be pinned by digest (repository@sha256:<64 hex digits>)",
    ),
)

RESTRICTED_CONTAINER_RULES = (
    Rule("privileged", f"!({is_set('c', 'securityContext.privileged')} && {_SC}.privileged)", "must not be privileged"),
    Rule(
        "host-ports",
        "!has(c.ports) || c.ports.all(p, !has(p.hostPort) || p.hostPort == 0)",
        "must not set a hostPort",
    ),
    Rule(
        "proc-mount",
        unless_set("c", "securityContext.procMount", f"{_SC}.procMount == 'Default'"),
        "procMount must be Default",
    ),
    Rule(
        "privilege-escalation",
        f"{is_set('c', 'securityContext.allowPrivilegeEscalation')} && {_SC}.allowPrivilegeEscalation == false",
        "securityContext.allowPrivilegeEscalation must be false",
    ),
    Rule(
        "run-as-non-root",
        f"{is_set('c', 'securityContext.runAsNonRoot')} ? {_SC}.runAsNonRoot : variables.podRunsAsNonRoot",
        "runAsNonRoot must be true (in the container's or the pod's securityContext)",
    ),
    Rule(
        "run-as-user", unless_set("c", "securityContext.runAsUser", f"{_SC}.runAsUser != 0"), "runAsUser must not be 0"
    ),
    Rule(
        "seccomp",
        f"{is_set('c', 'securityContext.seccompProfile')} ? {_SC}.seccompProfile.type in {_PROFILES} "
        ": variables.podSeccompAllowed",
        f"seccompProfile.type must be {' or '.join(pod_security.PROFILE_TYPES)} (in the container's or "
        "the pod's securityContext)",
    ),
    Rule(
        "capabilities-drop",
        f"{is_set('c', 'securityContext.capabilities.drop')} && 'ALL' in {_SC}.capabilities.drop",
        "securityContext.capabilities.drop must include ALL",
    ),
    Rule(
        "capabilities-add",
        unless_set(
            "c",
            "securityContext.capabilities.add",
            f"{_SC}.capabilities.add.all(a, a in {cel_list(pod_security.ADDABLE_CAPABILITIES)})",
        ),
        f"securityContext.capabilities.add may hold only {', '.join(pod_security.ADDABLE_CAPABILITIES)}",
    ),
    Rule(
        "apparmor",
        unless_set("c", "securityContext.appArmorProfile", f"{_SC}.appArmorProfile.type in {_PROFILES}"),
        f"appArmorProfile.type must be {' or '.join(pod_security.PROFILE_TYPES)}",
    ),
)
RESTRICTED_POD_RULES = (
    *(
        Rule(field, f"!({is_set(SPEC, field)} && {SPEC}.{field})", f"{field} must not be true")
        for field in ("hostNetwork", "hostPID", "hostIPC")
    ),
    Rule(
        "volume-types",
        f"!has({SPEC}.volumes) || {SPEC}.volumes.all(v, "
        + " || ".join(f"has(v.{kind})" for kind in pod_security.ALLOWED_VOLUME_TYPES)
        + ")",
        f"every volume must be of a type the restricted profile allows ({', '.join(pod_security.ALLOWED_VOLUME_TYPES)}"
        "; no hostPath)",
    ),
    Rule(
        "sysctls",
        unless_set(
            SPEC, "securityContext.sysctls", f"{POD_SC}.sysctls.all(s, s.name in {cel_list(pod_security.SAFE_SYSCTLS)})"
        ),
        "securityContext.sysctls may set only the safe sysctls",
    ),
    Rule(
        "pod-seccomp",
        unless_set(SPEC, "securityContext.seccompProfile", f"{POD_SC}.seccompProfile.type in {_PROFILES}"),
        f"the pod's seccompProfile.type must be {' or '.join(pod_security.PROFILE_TYPES)}",
    ),
    Rule(
        "pod-run-as-non-root",
        unless_set(SPEC, "securityContext.runAsNonRoot", f"{POD_SC}.runAsNonRoot"),
        "the pod's runAsNonRoot must not be false",
    ),
    Rule(
        "pod-run-as-user",
        unless_set(SPEC, "securityContext.runAsUser", f"{POD_SC}.runAsUser != 0"),
        "the pod's runAsUser must not be 0",
    ),
)


def variables(shape: Shape) -> list[dict[str, str]]:
    """The named values every expression of a pod policy reads: the pod spec, each container
    list (empty when absent), and the pod-wide defaults a container inherits."""
    named = [("spec", shape.spec), ("containers", f"{SPEC}.containers")]
    named += [(name, f"has({SPEC}.{name}) ? {SPEC}.{name} : []") for name in CONTAINER_LISTS[1:]]
    named += [
        ("podRunsAsNonRoot", f"{is_set(SPEC, 'securityContext.runAsNonRoot')} && {POD_SC}.runAsNonRoot"),
        (
            "podSeccompAllowed",
            f"{is_set(SPEC, 'securityContext.seccompProfile')} && {POD_SC}.seccompProfile.type in {_PROFILES}",
        ),
    ]
    return [{"name": name, "expression": expression} for name, expression in named]


def container_validation(rule: Rule, what: str) -> dict[str, str]:
    """A validation that ``rule`` holds for every container of every list; the message names the
    first container that breaks it (standard CEL has no ``join``)."""
    lists = [f"variables.{name}" for name in CONTAINER_LISTS]
    expression = " && ".join(f"{items}.all(c, {rule.holds})" for items in lists)
    shows = f" + ' (' + {rule.shows} + ')'" if rule.shows else ""
    first = [
        f"{items}.filter(c, !({rule.holds})).map(c, {cel_string(kind[:-1] + ' ')} + c.name{shows})"
        for kind, items in zip(CONTAINER_LISTS, lists, strict=True)
    ]
    offender = f"size({first[0]}) > 0 ? {first[0]}[0] : size({first[1]}) > 0 ? {first[1]}[0] : {first[2]}[0]"
    return {
        "expression": expression,
        "message": f"{what}: every container, initContainer and ephemeralContainer: {rule.says}",
        "messageExpression": f"{cel_string(what + ': ')} + ({offender}) + {cel_string(': ' + rule.says)}",
        "reason": "Forbidden",
    }


def pod_validation(rule: Rule, what: str) -> dict[str, str]:
    """A validation of the pod spec itself."""
    return {"expression": rule.holds, "message": f"{what}: {rule.says}", "reason": "Forbidden"}


@dataclass(frozen=True)
class Concern:
    """One policy's subject: its name, what a refusal says, and its rules."""

    name: str
    what: str
    container_rules: tuple[Rule, ...]
    pod_rules: tuple[Rule, ...]


POD_CONCERNS = (
    Concern("image-digest", "production runs images by digest only", DIGEST_CONTAINER_RULES, DIGEST_POD_RULES),
    Concern(
        "restricted",
        "production pods meet Pod Security restricted",
        RESTRICTED_CONTAINER_RULES,
        RESTRICTED_POD_RULES,
    ),
)


@dataclass(frozen=True)
class ServiceRule:
    """An exposure a Service may have only where platform.yaml allows it (``environments[].exposure``)."""

    name: str
    setting: str  # the Exposure field that allows it
    key: str  # its platform.yaml key
    holds: str
    says: str


SERVICE_RULES = (
    ServiceRule(
        "nodeport",
        "node_port",
        "nodePort",
        "!has(object.spec.type) || object.spec.type != 'NodePort'",
        "is of type NodePort",
    ),
    ServiceRule(
        "loadbalancer",
        "load_balancer",
        "loadBalancer",
        "!has(object.spec.type) || object.spec.type != 'LoadBalancer'",
        "is of type LoadBalancer",
    ),
    ServiceRule(
        "external-ips",
        "external_ips",
        "externalIPs",
        "!has(object.spec.externalIPs) || size(object.spec.externalIPs) == 0",
        "sets spec.externalIPs",
    ),
)


@dataclass(frozen=True)
class AdmissionProps:
    """The system the policies are named after, and the environments they bind to."""

    system: str
    environments: tuple[Environment, ...]


def _rules(resources: Iterable[tuple[str, Iterable[str]]], operations: list[str]) -> list[k8s.NamedRuleWithOperations]:
    """The matchConstraints rules for (API group, resources) pairs, every version."""
    return [
        k8s.NamedRuleWithOperations(
            api_groups=[group], api_versions=["*"], resources=list(names), operations=operations
        )
        for group, names in resources
    ]


class AdmissionPolicies(Construct):
    """The pod policies (per shape and concern) bound to the production namespaces, and one
    Service policy per exposure bound to the environments that do not allow it."""

    def __init__(self, scope: Construct, id: str, props: AdmissionProps):
        super().__init__(scope, id)
        self.system = props.system
        production = [env.namespace for env in props.environments if env.require_digest]
        for concern in POD_CONCERNS:
            for shape in SHAPES:
                self._pod_policy(concern, shape, production)
        for rule in SERVICE_RULES:
            refused = [env.namespace for env in props.environments if not getattr(env.exposure, rule.setting)]
            self._service_policy(rule, refused)

    def _pod_policy(self, concern: Concern, shape: Shape, namespaces: list[str]) -> None:
        validations = [container_validation(rule, concern.what) for rule in concern.container_rules]
        validations += [pod_validation(rule, concern.what) for rule in concern.pod_rules]
        conditions = [{"name": "has-pod-template", "expression": shape.has_spec}] if shape.has_spec else []
        self._policy(
            f"{concern.name}-{shape.name}",
            _rules(shape.resources, ["CREATE", "UPDATE"]),
            validations,
            namespaces,
            variables=variables(shape),
            match_conditions=conditions,
        )

    def _service_policy(self, rule: ServiceRule, namespaces: list[str]) -> None:
        setting = f"platform.yaml: environments[].exposure.{rule.key}"
        self._policy(
            f"service-{rule.name}",
            _rules([("", ["services"])], ["CREATE", "UPDATE"]),
            [
                {
                    "expression": rule.holds,
                    "message": f"Service {rule.says}, which this environment does not allow ({setting})",
                    "messageExpression": f"'Service ' + object.metadata.name + {cel_string(' ' + rule.says)}"
                    " + ', which namespace ' + namespaceObject.metadata.name"
                    f" + {cel_string(f' does not allow ({setting})')}",
                    "reason": "Forbidden",
                }
            ],
            namespaces,
        )

    def _policy(
        self,
        suffix: str,
        rules: list[k8s.NamedRuleWithOperations],
        validations: list[dict[str, str]],
        namespaces: list[str],
        variables: list[dict[str, str]] | None = None,
        match_conditions: list[dict[str, str]] | None = None,
    ) -> None:
        """A policy and, when some namespace must follow it, its binding to those namespaces."""
        name = f"{self.system}-{suffix}"
        k8s.KubeValidatingAdmissionPolicy(
            self,
            f"policy-{suffix}",
            metadata=k8s.ObjectMeta(name=name),
            spec=k8s.ValidatingAdmissionPolicySpec(
                failure_policy="Fail",
                match_constraints=k8s.MatchResources(resource_rules=rules),
                match_conditions=[k8s.MatchCondition(**condition) for condition in match_conditions or []] or None,
                variables=[k8s.Variable(**variable) for variable in variables or []] or None,
                validations=[
                    k8s.Validation(
                        expression=v["expression"],
                        message=v["message"],
                        message_expression=v.get("messageExpression"),
                        reason=v["reason"],
                    )
                    for v in validations
                ],
            ),
        )
        if not namespaces:
            return
        k8s.KubeValidatingAdmissionPolicyBinding(
            self,
            f"binding-{suffix}",
            metadata=k8s.ObjectMeta(name=name),
            spec=k8s.ValidatingAdmissionPolicyBindingSpec(
                policy_name=name,
                validation_actions=["Deny"],
                match_resources=k8s.MatchResources(
                    namespace_selector=k8s.LabelSelector(
                        match_expressions=[
                            k8s.LabelSelectorRequirement(key=NAMESPACE_LABEL, operator="In", values=sorted(namespaces))
                        ]
                    )
                ),
            ),
        )
