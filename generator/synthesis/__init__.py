"""The cdk8s constructs that turn the platform model into Kubernetes objects.

One way to write each manifest: the chart in ``charts/`` wherever it owns the workload (the
inference server, its Service, NetworkPolicy, autoscaler); typed ``k8s.Kube*`` objects for the
other core kinds (the training Jobs, their ServiceAccount and NetworkPolicies, the model store
claim, the dashboard ConfigMap); ``cdk8s.ApiObject`` only for custom resources (Argo CD, Gateway
API, Prometheus Operator), which have no typed class without ``cdk8s import`` code generated from
their CRDs; and Kustomize patches as data, dumped by ``delivery.inline_patch``.
"""
