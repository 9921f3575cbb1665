"""The optional signature policy: a sigstore policy-controller ``ClusterImagePolicy`` that admits
the server and trainer images only with a keyless signature made by this repository's release
workflow on main (the identity its Fulcio certificate carries, issued to GitHub Actions' OIDC
tokens).

It is generated as a Kustomize Component (``argocd/components/release-signatures``), not into
``argocd/admin/``: it needs policy-controller in the cluster, and only namespaces labelled
``policy.sigstore.dev/include: "true"`` are checked (docs/admission.md says how to turn it on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cdk8s
from constructs import Construct

API_VERSION = "policy.sigstore.dev/v1beta1"
KIND = "ClusterImagePolicy"
#: The workflow that builds, pushes and signs the images (the certificate's subject names it).
RELEASE_WORKFLOW = ".github/workflows/release.yaml"
RELEASE_REF = "refs/heads/main"
#: The issuer of the OIDC tokens GitHub Actions jobs present to Fulcio.
GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"


def repository_web_url(repo_url: str) -> str:
    """``https://host/owner/repo`` of a clone URL (https, ssh:// or scp-like ``git@host:path``)."""
    scp = re.fullmatch(r"git@([^:/]+):(.+)", repo_url)
    if scp:
        host, path = scp.groups()
    else:
        host, _, path = re.sub(r"^(https|ssh)://([^@/]+@)?", "", repo_url).partition("/")
        host = host.split(":", 1)[0]  # an ssh port is not part of the web address
    return f"https://{host}/{path.removesuffix('.git').strip('/')}"


def workflow_identity(repo_url: str) -> str:
    """The certificate subject of a keyless signature made by the release workflow on main."""
    return f"{repository_web_url(repo_url)}/{RELEASE_WORKFLOW}@{RELEASE_REF}"


def image_glob(repository: str) -> str:
    """The glob that matches every reference into ``repository``, by tag or by digest.

    policy-controller matches a glob against the whole reference (``repo:tag`` or
    ``repo@sha256:...``), its ``*`` standing for anything but ``/``, and a glob may not hold
    ``@``: so ``<repository>*``. It also matches a sibling repository whose name starts with
    this one's; such images then need the release signature as well, which errs on the strict side.
    """
    return f"{repository}*"


@dataclass(frozen=True)
class SignatureProps:
    """What must be signed, and by whom."""

    system: str
    repositories: tuple[str, ...]  # image repositories (server, trainer)
    repo_url: str  # the git repository the release workflow runs in


class ReleaseSignaturePolicy(Construct):
    """One ClusterImagePolicy: every image of ``repositories`` carries a keyless signature by the
    release workflow's identity."""

    def __init__(self, scope: Construct, id: str, props: SignatureProps):
        super().__init__(scope, id)
        self.name = f"{props.system}-release-signatures"
        policy = cdk8s.ApiObject(
            self, "policy", api_version=API_VERSION, kind=KIND, metadata=cdk8s.ApiObjectMetadata(name=self.name)
        )
        spec = {
            "images": [{"glob": image_glob(repository)} for repository in sorted(set(props.repositories))],
            "authorities": [
                {
                    "name": "release-workflow",
                    "keyless": {
                        "identities": [{"issuer": GITHUB_ACTIONS_ISSUER, "subject": workflow_identity(props.repo_url)}]
                    },
                }
            ],
        }
        policy.add_json_patch(cdk8s.JsonPatch.add("/spec", spec))
