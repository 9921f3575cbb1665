"""TensorFlow Serving's gRPC messages, from the repository's own ``.proto`` files (no TensorFlow).

``protos/*.proto`` declare the subset of TensorFlow Serving's API this server speaks, with its
package names and field numbers; ``protos/tfserving.binpb`` is their compiled descriptor set
(``make protos`` runs grpcio-tools' protoc; a test keeps it fresh). The descriptors are loaded into
a private pool, not protobuf's default one, so they never clash with TensorFlow's copies of the
same messages when the TensorFlow backend (or a test with the real client) runs in the process.

``services/inference/protoc.py`` (``make protos``) recompiles the descriptor set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# Defined in the contract: the generator's GRPCRoute names the same service.
from services.contract import PREDICTION_SERVICE as PREDICTION_SERVICE

PROTO_DIR = Path(__file__).resolve().parent / "protos"
DESCRIPTOR_SET = PROTO_DIR / "tfserving.binpb"  # written by services/inference/protoc.py

MODEL_SERVICE = "tensorflow.serving.ModelService"

#: A message of the private pool. Its class is built at run time from the descriptor set, not
#: generated, so a type checker cannot know its fields: they are left unchecked, and the name
#: says which values are such messages.
DynamicMessage: TypeAlias = Any


def _load_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    for file_proto in files.file:  # protoc lists every file after its imports
        pool.Add(file_proto)
    return pool


POOL = _load_pool()


def message_class(full_name: str) -> type[DynamicMessage]:
    """The Python class of a message of the private pool, e.g. ``tensorflow.serving.PredictRequest``."""
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(full_name))


TensorProto = message_class("tensorflow.TensorProto")
TensorShapeProto = message_class("tensorflow.TensorShapeProto")
TensorInfo = message_class("tensorflow.TensorInfo")
SignatureDef = message_class("tensorflow.SignatureDef")
ModelSpec = message_class("tensorflow.serving.ModelSpec")
PredictRequest = message_class("tensorflow.serving.PredictRequest")
PredictResponse = message_class("tensorflow.serving.PredictResponse")
SignatureDefMap = message_class("tensorflow.serving.SignatureDefMap")
GetModelMetadataRequest = message_class("tensorflow.serving.GetModelMetadataRequest")
GetModelMetadataResponse = message_class("tensorflow.serving.GetModelMetadataResponse")
GetModelStatusRequest = message_class("tensorflow.serving.GetModelStatusRequest")
GetModelStatusResponse = message_class("tensorflow.serving.GetModelStatusResponse")
ModelVersionStatus = message_class("tensorflow.serving.ModelVersionStatus")

DATA_TYPES = POOL.FindEnumTypeByName("tensorflow.DataType")
ERROR_CODES = POOL.FindEnumTypeByName("tensorflow.error.Code")
