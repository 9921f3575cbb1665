"""The namespace-wide NetworkPolicy every environment gets: deny all ingress and egress.

NetworkPolicies add up: a pod that one policy selects is open only to what some policy allows.
The generated workloads each carry their own allow-list (the server's and the training Job's
policies); this one selects every pod of the namespace, so a pod that nothing else selects (a
debugging pod, a workload added by hand) is closed too, instead of open to the whole cluster.
"""

from __future__ import annotations

from cdk8s_plus_33 import k8s
from constructs import Construct

from generator.synthesis.common import labels

#: The policy's name in every environment namespace.
DEFAULT_DENY = "default-deny"


class DefaultDeny(Construct):
    """A NetworkPolicy selecting every pod, with both policy types and no rule: nothing in, nothing out."""

    def __init__(self, scope: Construct, id: str, *, part_of: str):
        super().__init__(scope, id)
        k8s.KubeNetworkPolicy(
            self,
            "policy",
            metadata=k8s.ObjectMeta(
                name=DEFAULT_DENY,
                labels=labels(name=DEFAULT_DENY, instance=part_of, component="network", part_of=part_of),
            ),
            # Both types listed and no rules: everything denied (empty rule lists are dropped by
            # the API server, so every server-side apply would rewrite them).
            spec=k8s.NetworkPolicySpec(pod_selector=k8s.LabelSelector(), policy_types=["Ingress", "Egress"]),
        )
