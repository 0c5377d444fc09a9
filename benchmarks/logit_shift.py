"""What a class-weighted run's predictions owe to its class weights: held-out mIoU with the logits shifted.

A network trained with class weights w on the cross-entropy predicts argmax w_c p(c | x) at best, so
rare classes win pixels that belong to common ones. Shifting its logits by -a·log w (the run's own
weights, recomputed from its training split with ``nlseg.train.class_balance``) undoes a share a of
that: a = 1 is the prediction of the unweighted loss's optimum, what ``nlseg train --logit-adjustment``
trains into the network itself. Per run and a: mIoU, pixel accuracy and IoU per class on the split the
run validated on (its held-out drive for a fold run), in CamVid's 11 classes, scored by the trainer's own
validation (``nlseg.train.loop.evaluate``), torch on the CPU.

    python benchmarks/logit_shift.py runs/folds/h1_110/holdout-0006R0/last.pt [...] [--alphas 0,0.5,1] [--json]

a = 1 needs no choice; any other a picked on these numbers is picked on the held-out drive itself.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from nlseg.checkpoint import load_model
from nlseg.data.registry import Request, dataset_info, load_split
from nlseg.errors import InputError
from nlseg.train.class_balance import class_weights, logit_shift
from nlseg.train.distributed import Context
from nlseg.train.loop import evaluate, shifted


class Shifted(nn.Module):
    """``model`` with ``offset`` (C,) added to its logits."""

    def __init__(self, model: nn.Module, offset: torch.Tensor) -> None:
        super().__init__()
        self.model, self.offset = model, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shifted(self.model(x), self.offset)


def shifted_scores(checkpoint: Path, alphas: list[float], batch: int = 8) -> dict[float, dict]:
    """{a: scores with per-class IoU} of ``checkpoint`` on its validation split, logits - a·log w."""
    model, config, payload = load_model(checkpoint)
    run, meta = payload.get("run"), payload.get("meta", {})
    if run is None or run["dataset"] != "camvid" or not run["recipe"].get("class_weights"):
        raise InputError(f"{checkpoint}: not a class-weighted nlseg train camvid run")
    if run["synthetic_scenes"] or run["recipe"].get("logit_adjustment"):
        raise InputError(f"{checkpoint}: trained with generated scenes or already logit-adjusted")
    if not meta.get("val_split"):
        raise InputError(f"{checkpoint}: the run validated on nothing")
    size = tuple(run["size"])
    train = load_split(run["dataset"], Request(run["train_split"], Path(run["data_dir"]), size, 1))
    shift = logit_shift(class_weights(train.targets, train.num_classes, run["recipe"]["class_weighting"]))
    data = load_split(run["dataset"], Request(meta["val_split"], Path(run["data_dir"]), size, 1))
    groups, ctx = dataset_info(run["dataset"]).scored_as, Context(0, 1, torch.device("cpu"))
    out = {}
    for a in alphas:  # the trainer's own validation, one pass per a
        scores = evaluate(Shifted(model, -a * shift), data, payload["input_mean"], batch, ctx, per_class=True,
                          groups=groups)
        out[a] = {k: v for k, v in scores.items() if k not in ("loss", "soft_iou", "soft_iou_image")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--alphas", default="0,0.25,0.5,0.75,1", help="shares a of log w to take off the logits")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of every number")
    args = parser.parse_args()
    alphas = [float(a) for a in args.alphas.split(",")]
    torch.set_num_threads(min(2, torch.get_num_threads()))
    names = dataset_info("camvid").scored_as.names
    print("| run | a | mIoU | pixel acc. | " + " | ".join(names) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(names))
    everything = {}
    for checkpoint in args.checkpoints:
        try:
            result = shifted_scores(checkpoint, alphas)
        except InputError as exc:
            raise SystemExit(f"error: {exc}")
        everything[str(checkpoint)] = result
        for a, s in result.items():
            cells = " | ".join("" if v is None else f"{100 * v:.0f}" for v in s["per_class_iou"])
            print(f"| {checkpoint} | {a:g} | {100 * s['miou']:.1f}% | {100 * s['pixel_accuracy']:.1f}% | {cells} |")
    if args.json:
        print(json.dumps(everything))


if __name__ == "__main__":
    main()
