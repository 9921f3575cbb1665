"""What the REST and the gRPC API share: which model and version a request gets, and the signature.

Both front ends ask the same questions of the repository (is this the served model, is that
version loaded, what is the signature) and differ only in how they report a refusal: REST with an
HTTP status, gRPC with a status code. :class:`RequestRefused` carries the kind, each API maps it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.inference.backends import SIGNATURE, TensorSpec
from services.inference.repository import LoadedModel, ModelRepository, VersionState

METHOD_NAME = "tensorflow/serving/predict"
#: The largest input value a float32 model takes; REST and gRPC refuse larger ones, NaN and infinities.
FLOAT32_MAX = float(np.finfo(np.float32).max)

NOT_FOUND, UNAVAILABLE, INVALID, PRECONDITION = "not_found", "unavailable", "invalid", "failed_precondition"


class RequestRefused(Exception):
    """A request the server cannot serve: ``kind`` is NOT_FOUND, UNAVAILABLE, INVALID or PRECONDITION."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


@dataclass(frozen=True)
class Signature:
    """The ``serving_default`` signature as TF Serving describes it (tensor names as a SavedModel has them)."""

    input: TensorSpec
    output: TensorSpec

    @property
    def input_tensor_name(self) -> str:
        """The graph tensor name TF Serving reports for the input."""
        return f"{SIGNATURE}_{self.input.name}:0"

    @property
    def output_tensor_name(self) -> str:
        """The graph tensor name TF Serving reports for the output."""
        return "StatefulPartitionedCall:0"


def check_name(repo: ModelRepository, name: str) -> None:
    """Refuse (NOT_FOUND) a model name this server does not serve."""
    if name != repo.settings.model_name:
        raise RequestRefused(NOT_FOUND, f"model '{name}' not found; this server serves '{repo.settings.model_name}'")


def check_signature(name: str | None) -> None:
    """Refuse any signature but ``serving_default`` (empty means the default): PRECONDITION, the code
    TF Serving answers (``Serving signature key "..." not found``); REST says 400 for it."""
    if name not in (None, "", SIGNATURE):
        raise RequestRefused(PRECONDITION, f"signature_name {name!r} not found; the model has '{SIGNATURE}'")


def version_for_label(repo: ModelRepository, label: str) -> int:
    """The version a label (``MODEL_VERSION_LABELS``) names; unknown labels are INVALID, as in TF Serving."""
    labels = repo.settings.model_version_labels
    if label not in labels:
        known = ", ".join(sorted(labels)) or "none are defined (MODEL_VERSION_LABELS)"
        raise RequestRefused(INVALID, f"unrecognized version label '{label}'; labels: {known}")
    return labels[label]


def served_model(repo: ModelRepository, version: int | None = None) -> LoadedModel:
    """The model serving now; UNAVAILABLE before the first load, NOT_FOUND for another version."""
    model = repo.current()
    if model is None:
        detail = f": {repo.last_error}" if repo.last_error else ""
        raise RequestRefused(UNAVAILABLE, f"model '{repo.settings.model_name}' is not loaded yet{detail}")
    if version is not None and version != model.version:
        raise RequestRefused(
            NOT_FOUND,
            f"version {version} of model '{model.name}' is not loaded; this server serves version {model.version}",
        )
    return model


def version_states(repo: ModelRepository, version: int | None = None) -> list[VersionState]:
    """The status list of TF Serving's model status call (NOT_FOUND / UNAVAILABLE when there is none)."""
    states = repo.states()
    if version is not None:
        states = [s for s in states if s.version == version]
        if not states:
            raise RequestRefused(
                NOT_FOUND, f"version {version} of model '{repo.settings.model_name}' is not known to this server"
            )
    if not states:
        raise RequestRefused(
            UNAVAILABLE,
            f"model '{repo.settings.model_name}' has no version loaded or loading: {repo.last_error or 'starting'}",
        )
    return states


def signature(model: LoadedModel) -> Signature:
    """The served model's ``serving_default`` signature."""
    return Signature(model.backend.input, model.backend.output)
