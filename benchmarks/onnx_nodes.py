"""Node counts of exported ONNX graphs before and after shape folding, and the declared ``logits`` shape.

Graphs as ``nlseg export [--plugin]`` writes them (no ``--with-argmax``). "traced" is the TorchScript
exporter's graph (:func:`nlseg.onnx.export.traced_graph`), "exported" what ``nlseg export`` writes (:func:`nlseg.onnx.fold.fold_shapes` applied). Plumbing counts the
op types of :data:`nlseg.onnx.fold.PLUMBING_OPS`; the max |difference| column runs both graphs in
ONNX Runtime on the same input (plugin graphs need onnxruntime-extensions).

    python benchmarks/onnx_nodes.py              # the bundled default weights
    python benchmarks/onnx_nodes.py --thesis     # also the thesis's BDD100K segmenter, frac kernel, random init
    python benchmarks/onnx_nodes.py --latency    # and ONNX Runtime p50 ms of both graphs (default weights, 1x3x270x480)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from nlseg.assets import default_weights
from nlseg.nn.config import ModelConfig
from nlseg.onnx.export import ExportOptions, traced_graph
from nlseg.onnx.fold import census, fold_shapes
from nlseg.onnx.ort_op import custom_op_available, open_session
from nlseg.onnx.source_model import SourceModel, from_checkpoint, random_init


def declared(model: onnx.ModelProto, name: str) -> str:
    out = next(o for o in model.graph.output if o.name == name)
    return "[" + ", ".join(d.dim_param or str(d.dim_value) for d in out.type.tensor_type.shape.dim) + "]"


def max_difference(a: onnx.ModelProto, b: onnx.ModelProto, shape: tuple[int, ...]) -> str:
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / f"{i}.onnx" for i in range(2)]
        for model, path in zip((a, b), paths):
            onnx.save(model, str(path))
        got = [open_session(p).run(["logits"], {"image": x})[0] for p in paths]
    return f"{np.abs(got[0] - got[1]).max():.1e}"


def latency(a: onnx.ModelProto, b: onnx.ModelProto, shape: tuple[int, ...], runs: int = 15) -> list[float]:
    """p50 ms of each graph in ONNX Runtime (CPU), runs interleaved so background load hits both alike."""
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        sessions = []
        for i, model in enumerate((a, b)):
            path = Path(folder) / f"{i}.onnx"
            onnx.save(model, str(path))
            sessions.append(open_session(path))
        for session in sessions:
            for _ in range(3):
                session.run(None, {"image": x})
        times: list[list[float]] = [[], []]
        for _ in range(runs):
            for session, spent in zip(sessions, times):
                start = time.perf_counter()
                session.run(None, {"image": x})
                spent.append((time.perf_counter() - start) * 1e3)
    return [float(np.median(t)) for t in times]


def rows(name: str, source: SourceModel, shape: tuple[int, ...]) -> list[str]:
    out = []
    for graph in ("portable", "plugin"):
        traced = traced_graph(source, ExportOptions(graph=graph))
        folded = fold_shapes(traced)
        before, after = census(traced), census(folded)
        diff = max_difference(traced, folded, shape) if graph == "portable" or custom_op_available() else "n/a"
        out.append(f"| {name} | {graph} | {before.total} | {before.plumbing} | {before.compute} | {after.total} | "
                   f"{after.plumbing} | {after.compute} | `{declared(traced, 'logits')}` | "
                   f"`{declared(folded, 'logits')}` | {diff} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thesis", action="store_true", help="also the thesis's BDD100K segmenter (frac kernel)")
    parser.add_argument("--latency", action="store_true", help="also time both default portable graphs")
    args = parser.parse_args()
    print("| model | graph | traced nodes | plumbing | compute | exported nodes | plumbing | compute "
          "| traced logits | exported logits | max abs diff |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|")
    for line in rows("default weights", from_checkpoint(default_weights()), (1, 3, 90, 160)):
        print(line)
    if args.thesis:
        config = ModelConfig.from_preset("bdd100k", nonlocal_kernel="frac", pool=3)
        for line in rows("thesis BDD100K, frac", random_init(config, seed=0), (1, 3, 45, 80)):
            print(line)
    if args.latency:
        traced = traced_graph(from_checkpoint(default_weights()), ExportOptions())
        before, after = latency(traced, fold_shapes(traced), (1, 3, 270, 480))
        print(f"\nONNX Runtime CPU, default weights, portable, 1x3x270x480, p50 of 15 interleaved runs: "
              f"traced {before:.1f} ms, exported {after:.1f} ms")


if __name__ == "__main__":
    main()
