"""Parse config.pbtxt with protobuf's text format against Triton's ``inference.ModelConfig`` schema.

The official schema ships in the ``tritonclient`` package (``tritonclient/grpc/model_config_pb2.py``);
it is used when installed. Otherwise the fields nlseg writes are declared here with the names,
numbers, types and enum values of Triton's model_config.proto, so a misspelt field, a wrong
enum name or a malformed value fails the parse either way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

F = descriptor_pb2.FieldDescriptorProto
DATA_TYPES = ["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8",
              "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING",
              "TYPE_BF16"]
# message -> [(field, number, type, repeated, type_name)] as in model_config.proto
SCHEMA: dict[str, list[tuple[str, int, int, bool, str]]] = {
    "ModelInput": [("name", 1, F.TYPE_STRING, False, ""), ("data_type", 2, F.TYPE_ENUM, False, ".inference.DataType"),
                   ("format", 3, F.TYPE_ENUM, False, ".inference.ModelInput.Format"),
                   ("dims", 4, F.TYPE_INT64, True, ""), ("is_shape_tensor", 6, F.TYPE_BOOL, False, ""),
                   ("optional", 8, F.TYPE_BOOL, False, "")],
    "ModelOutput": [("name", 1, F.TYPE_STRING, False, ""), ("data_type", 2, F.TYPE_ENUM, False, ".inference.DataType"),
                    ("dims", 3, F.TYPE_INT64, True, ""), ("label_filename", 4, F.TYPE_STRING, False, "")],
    "ModelDynamicBatching": [("preferred_batch_size", 1, F.TYPE_INT32, True, ""),
                             ("max_queue_delay_microseconds", 2, F.TYPE_UINT64, False, ""),
                             ("preserve_ordering", 3, F.TYPE_BOOL, False, "")],
    "ModelInstanceGroup": [("name", 1, F.TYPE_STRING, False, ""), ("count", 2, F.TYPE_INT32, False, ""),
                           ("gpus", 3, F.TYPE_INT32, True, ""),
                           ("kind", 4, F.TYPE_ENUM, False, ".inference.ModelInstanceGroup.Kind")],
    "ModelConfig": [("name", 1, F.TYPE_STRING, False, ""), ("platform", 2, F.TYPE_STRING, False, ""),
                    ("max_batch_size", 4, F.TYPE_INT32, False, ""),
                    ("input", 5, F.TYPE_MESSAGE, True, ".inference.ModelInput"),
                    ("output", 6, F.TYPE_MESSAGE, True, ".inference.ModelOutput"),
                    ("instance_group", 7, F.TYPE_MESSAGE, True, ".inference.ModelInstanceGroup"),
                    ("default_model_filename", 8, F.TYPE_STRING, False, ""),
                    ("dynamic_batching", 11, F.TYPE_MESSAGE, False, ".inference.ModelDynamicBatching"),
                    ("backend", 17, F.TYPE_STRING, False, "")],
}
NESTED_ENUMS = {"ModelInput": ("Format", ["FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW"]),
                "ModelInstanceGroup": ("Kind", ["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"])}


def _enum(proto: Any, name: str, values: list[str]) -> None:
    proto.name = name
    for number, value in enumerate(values):
        proto.value.add(name=value, number=number)


def _transcribed() -> Any:
    file = descriptor_pb2.FileDescriptorProto(name="nlseg_test_model_config.proto", package="inference",
                                              syntax="proto3")
    _enum(file.enum_type.add(), "DataType", DATA_TYPES)
    for message, fields in SCHEMA.items():
        proto = file.message_type.add(name=message)
        if message in NESTED_ENUMS:
            _enum(proto.enum_type.add(), *NESTED_ENUMS[message])
        for name, number, kind, repeated, type_name in fields:
            field = proto.field.add(name=name, number=number, type=kind,
                                    label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def _official() -> Any | None:
    """tritonclient's generated ModelConfig, loaded without importing tritonclient.grpc (which needs grpcio)."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    if not path.is_file():
        return None
    module_spec = importlib.util.spec_from_file_location("_triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.ModelConfig


MODEL_CONFIG = _transcribed()
OFFICIAL_MODEL_CONFIG = _official()


def parse_config(text: str) -> Any:
    """The config as a ModelConfig message; google.protobuf.text_format.ParseError if it is not one."""
    if OFFICIAL_MODEL_CONFIG is not None:
        text_format.Parse(text, OFFICIAL_MODEL_CONFIG())
    return text_format.Parse(text, MODEL_CONFIG())
