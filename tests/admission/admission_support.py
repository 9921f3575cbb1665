"""ValidatingAdmissionPolicy evaluation as the API server does it, with a PyPI CEL implementation
(cel-python, ``celpy``): which generated policies match an object, whether their bindings select
its namespace, then the match conditions, the variables (in order) and every validation; a
refusal gives the message the API server would send (``messageExpression``, else ``message``).

What this does not reproduce, and why it does not matter here: the API server evaluates
variables lazily (every variable of the generated policies is safe to evaluate eagerly: each
guards with ``has``), checks cost budgets (these objects are small) and type-checks against the
OpenAPI schemas (the policies use the standard CEL library only, which celpy implements; no
Kubernetes extension such as ``join``, ``split`` or optional types appears in them). An
expression that fails to evaluate raises here, where the API server would refuse the object
(``failurePolicy: Fail``): the tests require every expression to evaluate cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import celpy
import yaml

from generator.paths import REPO_ROOT

ADMIN = REPO_ROOT / "argocd" / "admin"
#: kind -> (API group, resource), for every kind a generated policy matches.
RESOURCES = {
    "Pod": ("", "pods"),
    "ReplicationController": ("", "replicationcontrollers"),
    "Service": ("", "services"),
    "DaemonSet": ("apps", "daemonsets"),
    "Deployment": ("apps", "deployments"),
    "ReplicaSet": ("apps", "replicasets"),
    "StatefulSet": ("apps", "statefulsets"),
    "Job": ("batch", "jobs"),
    "CronJob": ("batch", "cronjobs"),
}
NAMESPACE_LABEL = "kubernetes.io/metadata.name"


class EvaluationError(AssertionError):
    """A CEL expression of a policy failed to compile or evaluate."""


@cache
def compile_expression(expression: str) -> celpy.Runner:
    """A compiled CEL program (cached: the policies repeat their sub-expressions)."""
    env = celpy.Environment()
    try:
        return env.program(env.compile(expression))
    except celpy.CELParseError as exc:
        raise EvaluationError(f"does not parse: {exc}\n{expression}") from exc


def evaluate(expression: str, activation: dict) -> object:
    """The value of one CEL expression; raises EvaluationError where the API server would fail."""
    try:
        result = compile_expression(expression).evaluate(activation)
    except celpy.CELEvalError as exc:
        raise EvaluationError(f"does not evaluate: {exc}\n{expression}") from exc
    if isinstance(result, celpy.CELEvalError):
        raise EvaluationError(f"does not evaluate: {result}\n{expression}")
    return result


ADMISSION_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def load(directory: Path = ADMIN) -> list[dict]:
    """The generated policies and bindings (argocd/admin/ also holds the projects, namespaces and
    deployers)."""
    objects = [yaml.safe_load(path.read_text()) for path in sorted(directory.glob("*.yaml"))]
    return [obj for obj in objects if obj["kind"] in ADMISSION_KINDS]


def expressions(policy: dict) -> list[str]:
    """Every CEL expression a policy holds."""
    spec = policy["spec"]
    found = [c["expression"] for c in spec.get("matchConditions", [])]
    found += [v["expression"] for v in spec.get("variables", [])]
    for validation in spec.get("validations", []):
        found += [validation["expression"]] + (
            [validation["messageExpression"]] if "messageExpression" in validation else []
        )
    return found


def matches(policy: dict, obj: dict, operation: str = "CREATE") -> bool:
    """Whether the policy's matchConstraints take this kind of object and operation."""
    group, resource = RESOURCES.get(obj["kind"], (None, None))
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and operation in rule["operations"]
        for rule in policy["spec"]["matchConstraints"]["resourceRules"]
    )


def binds(binding: dict, namespace: str) -> bool:
    """Whether a binding's namespace selector (generated: ``kubernetes.io/metadata.name In``) selects it."""
    selector = binding["spec"]["matchResources"]["namespaceSelector"]
    assert set(selector) == {"matchExpressions"}, selector
    return all(
        expr["key"] == NAMESPACE_LABEL and expr["operator"] == "In" and namespace in expr["values"]
        for expr in selector["matchExpressions"]
    )


def holds(expression: str, activation: dict) -> bool:
    """A condition's verdict: its value must be a CEL bool (anything else fails, as on the API server)."""
    value = evaluate(expression, activation)
    if not isinstance(value, celpy.celtypes.BoolType):
        raise EvaluationError(f"gives {type(value).__name__}, not a bool\n{expression}")
    return bool(value)


def refusals(policy: dict, obj: dict, namespace: str, operation: str = "CREATE") -> list[tuple[str, str]]:
    """(its ``message``, the message the API server sends) of every validation of ``policy`` that
    refuses ``obj`` (none: admitted)."""
    spec = policy["spec"]
    activation: dict = {
        "object": celpy.json_to_cel(obj),
        "oldObject": None,
        "request": celpy.json_to_cel({"namespace": namespace, "operation": operation, "name": obj["metadata"]["name"]}),
        "namespaceObject": celpy.json_to_cel({"metadata": {"name": namespace, "labels": {NAMESPACE_LABEL: namespace}}}),
    }
    for condition in spec.get("matchConditions", []):
        if not holds(condition["expression"], activation):
            return []
    variables: dict = {}
    for variable in spec.get("variables", []):
        activation["variables"] = celpy.celtypes.MapType(variables)
        variables[celpy.celtypes.StringType(variable["name"])] = evaluate(variable["expression"], activation)
    activation["variables"] = celpy.celtypes.MapType(variables)
    messages = []
    for validation in spec["validations"]:
        if holds(validation["expression"], activation):
            continue
        message = validation["message"]
        if "messageExpression" in validation:
            message = str(evaluate(validation["messageExpression"], activation))
        messages.append((validation["message"], message))
    return messages


@dataclass(frozen=True)
class Admission:
    """The generated policies and bindings, as the API server would hold them."""

    policies: dict[str, dict]
    bindings: list[dict]

    @classmethod
    def load(cls, directory: Path = ADMIN) -> Admission:
        objects = load(directory)
        return cls(
            {o["metadata"]["name"]: o for o in objects if o["kind"] == "ValidatingAdmissionPolicy"},
            [o for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding"],
        )

    def bound(self, namespace: str) -> list[dict]:
        """The policies some binding applies in ``namespace``."""
        return [self.policies[b["spec"]["policyName"]] for b in self.bindings if binds(b, namespace)]

    def review(self, obj: dict, namespace: str, operation: str = "CREATE") -> dict[str, list[str]]:
        """policy name -> its refusal messages, for every bound policy that refuses ``obj``."""
        found = {}
        for policy in self.bound(namespace):
            if matches(policy, obj, operation):
                messages = refusals(policy, obj, namespace, operation)
                if messages:
                    found[policy["metadata"]["name"]] = [sent for _, sent in messages]
        return found
