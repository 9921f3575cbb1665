"""The repository's TF Serving protos: a fresh compile, and wire-compatible with the real package."""

from __future__ import annotations

import subprocess

import pytest
from svc_helpers import PY, REPO_ROOT
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    status_pb2,
)

from services.inference import protoc, tfserving

pytestmark = pytest.mark.slow


def test_committed_descriptor_set_is_a_fresh_compile():
    # In its own process: grpcio-tools' protoc crashes where TensorFlow's protobuf is loaded.
    out = subprocess.run(
        [PY, "-m", "services.inference.protoc", "--check"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "tensorflow/core/framework/tensor.proto" in protoc.proto_files()


def _fields(descriptor) -> dict[str, tuple]:
    return {
        f.name: (f.number, f.type, f.is_repeated, f.message_type.full_name if f.message_type else None)
        for f in descriptor.fields
    }


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (tfserving.PredictRequest, predict_pb2.PredictRequest),
        (tfserving.PredictResponse, predict_pb2.PredictResponse),
        (tfserving.ModelSpec, model_pb2.ModelSpec),
        (tfserving.GetModelMetadataRequest, get_model_metadata_pb2.GetModelMetadataRequest),
        (tfserving.GetModelMetadataResponse, get_model_metadata_pb2.GetModelMetadataResponse),
        (tfserving.SignatureDefMap, get_model_metadata_pb2.SignatureDefMap),
        (tfserving.GetModelStatusRequest, get_model_status_pb2.GetModelStatusRequest),
        (tfserving.GetModelStatusResponse, get_model_status_pb2.GetModelStatusResponse),
        (tfserving.ModelVersionStatus, get_model_status_pb2.ModelVersionStatus),
        (tfserving.TensorProto, tensor_pb2.TensorProto),
        (tfserving.SignatureDef, meta_graph_pb2.SignatureDef),
        (tfserving.TensorInfo, meta_graph_pb2.TensorInfo),
        (tfserving.message_class("tensorflow.serving.StatusProto"), status_pb2.StatusProto),
    ],
)
def test_every_field_matches_tensorflow_serving(ours, theirs):
    mine, upstream = ours.DESCRIPTOR, theirs.DESCRIPTOR
    assert mine.full_name == upstream.full_name
    ours_fields, their_fields = _fields(mine), _fields(upstream)
    for name, spec in ours_fields.items():
        assert their_fields.get(name) == spec, name  # same number, type, cardinality, message type
    left_out = set(their_fields) - set(ours_fields)
    for name in left_out:  # a field we do not read is reserved, so its number is never reused
        number = their_fields[name][0]
        assert any(lo <= number < hi for lo, hi in _reserved_ranges(mine)), name


def _reserved_ranges(descriptor) -> list[tuple[int, int]]:
    from google.protobuf import descriptor_pb2

    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    return [(r.start, r.end) for r in proto.reserved_range]


def test_enums_match():
    upstream = types_pb2.DataType.DESCRIPTOR
    for value in tfserving.DATA_TYPES.values:
        assert upstream.values_by_name[value.name].number == value.number
    codes = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type
    assert {v.name: v.number for v in tfserving.ERROR_CODES.values}.items() <= {
        v.name: v.number for v in codes.values
    }.items()
