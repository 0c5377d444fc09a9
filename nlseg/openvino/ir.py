"""OpenVINO IR files (``.xml`` + ``.bin``) that carry the nlseg metadata, and reading nlseg models into OpenVINO.

An IR holds the entries of an ONNX export's ``metadata_props`` (:mod:`nlseg.onnx.metadata`)
in its ``rt_info`` under ``nlseg``, so ``nlseg infer``, ``profile`` and ``benchmark`` know its
classes, palette, input size and normalisation as they do for the ``.onnx``. An nlseg ``.onnx``
export (portable graph) is read directly as well.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from nlseg.errors import InputError
from nlseg.onnx.metadata import ModelMetadata, read_metadata

RT_SECTION = "nlseg"
INSTALL = "pip install 'nlseg[openvino]'"


def import_openvino(what: str) -> ModuleType:
    """The ``openvino`` module; InputError saying how to install it when it is missing."""
    try:
        import openvino
    except ImportError:
        raise InputError(f"{what} needs OpenVINO, which is not installed: {INSTALL}") from None
    return openvino


def ir_files(xml: Path) -> tuple[Path, Path]:
    """The (.xml, .bin) pair of an IR."""
    return xml, xml.with_suffix(".bin")


def read_model(core: Any, path: Path) -> tuple[Any, ModelMetadata]:
    """(``openvino.Model``, its nlseg metadata) of an IR ``.xml`` or an nlseg ``.onnx`` export.

    InputError naming the file when it is missing, unreadable, not an nlseg model, or a plugin
    graph (OpenVINO has no ``nlseg::PairwiseKernel``).
    """
    if path.suffix.lower() == ".onnx":
        metadata = read_metadata(path)
        if metadata.graph == "plugin":
            raise InputError(f"{path}: a plugin graph (nlseg::PairwiseKernel nodes), which OpenVINO cannot run; "
                             "export a portable graph (nlseg export without --plugin)")
    else:
        xml, weights = ir_files(path)
        missing = next((p for p in (xml, weights) if not p.is_file()), None)
        if missing is not None:
            raise InputError(f"{missing}: OpenVINO IR file not found (an IR is a .xml with its .bin beside it)")
    try:
        model = core.read_model(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: OpenVINO cannot read this model ({first})") from None
    if path.suffix.lower() != ".onnx":
        metadata = ir_metadata(model, path)
    return model, metadata


def ir_metadata(model: Any, source: Path) -> ModelMetadata:
    """The nlseg metadata in an IR's ``rt_info``; InputError naming ``source`` when it has none."""
    section = model.get_rt_info()[RT_SECTION] if model.has_rt_info([RT_SECTION]) else None
    if not isinstance(section, dict):
        raise InputError(f"{source}: not an nlseg OpenVINO model (no '{RT_SECTION}' rt_info; "
                         "write one with nlseg export --format openvino)")
    props = {key: value.astype(str) for key, value in section.items()}
    try:
        return ModelMetadata.from_props(props)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputError(f"{source}: its nlseg metadata is damaged ({exc})") from None


def write_ir(ov: ModuleType, model: Any, metadata: ModelMetadata, out: Path) -> Path:
    """Save ``model`` with ``metadata`` as ``out`` (.xml) and its .bin, float32 weights, each file written
    under a temporary name and renamed when complete (the .bin first, so a .xml never lacks its weights)."""
    for key, value in metadata.to_props().items():
        model.set_rt_info(value, [RT_SECTION, key])
    xml, weights = ir_files(out)
    try:
        with tempfile.TemporaryDirectory(prefix=f".{out.stem}.tmp-", dir=out.parent) as tmp:
            staged = Path(tmp) / xml.name
            ov.save_model(model, str(staged), compress_to_fp16=False)
            os.replace(staged.with_suffix(".bin"), weights)
            os.replace(staged, xml)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(out)) from exc
    return out
