"""Accuracy of segmenters on real street frames: CamVid, and hand-labelled dashcam photos.

Scores any weights (``.pt`` checkpoints, ``.onnx`` exports; default: the bundled weights)
the way a user runs them, through ``nlseg.load(...).predict``: each frame is resized to the
model's input width keeping its aspect ratio (CamVid's 480x360 frames run at 480 wide for a
480-wide model; ``--imgsz`` overrides), the train ids come back at the frame's own size.

``--camvid DIR``: CamVid's 11 classes on a split (default ``val``) of a local copy in either
layout ``nlseg train camvid`` reads; a 19-class prediction scores through the one mapping of
``nlseg.data.labels`` (void pixels ignored). One Markdown row per weights file: parameters,
multiply-adds per frame at the size it runs at, pixel accuracy, mIoU, per-class IoU and
frames/s of the forward pass (batch 1, median of ``--repeats``, this CPU's threads), next to
the published CamVid *test* numbers of ENet and SegNet.

``--dashcam DIR``: the six real dashcam photos whose coarse labels (polygons drawn by eye)
are ``benchmarks/dashcam_labels/labels.json``; unlabelled pixels are ignored.

``--out DIR`` writes ``camvid_examples.png``: frame, ground truth, prediction for a few frames.

    python benchmarks/accuracy.py [WEIGHTS ...] --camvid DIR [--split val] [--imgsz HxW] [--out DIR]
    python benchmarks/accuracy.py [WEIGHTS ...] --dashcam DIR
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import nlseg
from nlseg.assets import default_weights
from nlseg.checkpoint import load_model
from nlseg.contract import preprocess
from nlseg.data.camvid import camvid_layout
from nlseg.data.labels import (BDD100K_CLASSES, BDD100K_PALETTE, CAMVID_CLASSES, CAMVID_TO_TRAIN_ID, CAMVID_VOID,
                               IGNORE_INDEX, TRAIN_ID_TO_CAMVID)
from nlseg.data.segfolder import pair_files
from nlseg.errors import InputError
from nlseg.runtime.device import describe_device
from nlseg.train.metrics import accuracy, confusion_matrix, iou_per_class, mean_iou

ROOT = Path(__file__).resolve().parents[1]
DASHCAM_LABELS = ROOT / "benchmarks" / "dashcam_labels" / "labels.json"
# Published CamVid test-split results (11 classes, 480x360): parameters, mIoU.
PUBLISHED = (
    ("ENet (Paszke et al., 2016)", "0.37M", "51.3"),
    ("SegNet (Badrinarayanan et al., 2017)", "29.5M", "46.4"),
)


def parse_hw(text: str | None, flag: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"{flag}: expected HxW such as 360x480, got {text!r}") from None
    return h, w


def run_size(seg: "nlseg.Segmenter", frame_hw: tuple[int, int], imgsz: tuple[int, int] | None) -> tuple[int, int]:
    """``imgsz``, else the frame resized to the model's input width, aspect ratio kept."""
    if imgsz is not None:
        return seg.input_size(imgsz)
    width = seg.info.input_size[1]
    return seg.input_size((max(1, round(frame_hw[0] * width / frame_hw[1])), width))


def cost(weights: Path, size: tuple[int, int]) -> tuple[str, str]:
    """Parameters and executed multiply-adds at ``size`` (checkpoints only)."""
    if weights.suffix != ".pt":
        return "n/a", "n/a"
    from nlseg.analysis.cost import model_cost

    model, _, _ = load_model(weights)
    c = model_cost(model, (1, 3, *size))
    return f"{c.params / 1e6:.3f}M", f"{c.macs_executed / 1e9:.2f}G"


def forward_fps(seg: "nlseg.Segmenter", frame: np.ndarray, size: tuple[int, int], repeats: int) -> float:
    """Frames/s of the backend's forward pass and arg-max at batch 1 (median of ``repeats`` after 3 warm-ups)."""
    batch = preprocess([frame], size, seg.info)
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        seg.backend.predict(batch)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times)


def camvid_frames(data_dir: Path, split: str) -> tuple[list[Path], list[np.ndarray]]:
    """The split's image paths and CamVid label masks (ids 0–10, void → IGNORE_INDEX)."""
    pairs, missing = pair_files(camvid_layout(data_dir, split))
    if missing:
        raise InputError(f"--camvid {data_dir}: {len(missing)} images without labels, e.g. {missing[0]}")
    labels = []
    for _, mask_path in pairs:
        mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
        if mask is None or mask.ndim != 2:
            raise InputError(f"{mask_path}: not a single-channel label image")
        labels.append(np.where(mask == CAMVID_VOID, IGNORE_INDEX, mask).astype(np.uint8))
    return [p for p, _ in pairs], labels


def score_camvid(seg: "nlseg.Segmenter", images: list[Path], labels: list[np.ndarray],
                 imgsz: tuple[int, int] | None) -> tuple[torch.Tensor, list[np.ndarray], tuple[int, int]]:
    """The 11x11 confusion matrix over the frames, the 19-class predictions, and the size run at."""
    to_camvid = np.asarray(TRAIN_ID_TO_CAMVID, np.int64)
    conf = torch.zeros(len(CAMVID_CLASSES), len(CAMVID_CLASSES), dtype=torch.long)
    predictions, size = [], None
    for start in range(0, len(images), 8):
        frames = [cv2.imread(str(p)) for p in images[start:start + 8]]
        size = run_size(seg, frames[0].shape[:2], imgsz)
        for frame, pred, target in zip(frames, seg.predict(frames, imgsz=size, batch=8), labels[start:start + 8]):
            if pred.shape != target.shape:
                raise InputError(f"a label mask of {target.shape[1]}x{target.shape[0]} for a "
                                 f"{frame.shape[1]}x{frame.shape[0]} frame")
            predictions.append(pred)
            conf += confusion_matrix(torch.from_numpy(to_camvid[pred]), torch.from_numpy(target.astype(np.int64)),
                                     len(CAMVID_CLASSES))
    return conf, predictions, size


def example_sheet(path: Path, images: list[Path], labels: list[np.ndarray], predictions: list[np.ndarray],
                  count: int = 4) -> None:
    """Frame | ground truth | prediction for ``count`` evenly spaced frames, in the train-id palette."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:19] = np.asarray(BDD100K_PALETTE, np.uint8)[:, ::-1]
    to_train = np.full(256, IGNORE_INDEX, np.uint8)
    to_train[: len(CAMVID_TO_TRAIN_ID)] = CAMVID_TO_TRAIN_ID
    rows = []
    for i in np.linspace(0, len(images) - 1, count).round().astype(int):
        frame = cv2.imread(str(images[i]))
        rows.append(np.concatenate([frame, lut[to_train[labels[i]]], lut[predictions[i]]], 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(rows, 0))


def camvid_report(weights: list[Path], args: argparse.Namespace) -> None:
    images, labels = camvid_frames(args.camvid, args.split)
    print(f"# CamVid {args.split}: {len(images)} frames, 11 classes, void ignored; "
          f"torch CPU ({describe_device('cpu')}, {torch.get_num_threads()} threads)\n")
    print("| weights | runs at | params | MACs per frame | pixel acc | mIoU | forward fps |")
    print("|---|---|---:|---:|---:|---:|---:|")
    per_class = {}
    for w in weights:
        seg = nlseg.load(w, device="cpu")
        conf, predictions, size = score_camvid(seg, images, labels, args.imgsz)
        params, macs = cost(w, size)
        fps = forward_fps(seg, cv2.imread(str(images[0])), size, args.repeats)
        per_class[w.name] = iou_per_class(conf)
        print(f"| {w.name} | {size[0]}x{size[1]} | {params} | {macs} | {100 * accuracy(conf):.1f} | "
              f"**{100 * mean_iou(conf):.1f}** | {fps:.1f} |", flush=True)
        if args.out:
            example_sheet(args.out / f"camvid_examples_{w.stem}.png", images, labels, predictions)
        if args.json:
            print("json: " + json.dumps({"weights": str(w), "split": args.split, "miou": mean_iou(conf),
                                         "pixel_accuracy": accuracy(conf), "forward_fps": fps,
                                         "per_class_iou": dict(zip(CAMVID_CLASSES, iou_per_class(conf)))}))
    for name, params, miou in PUBLISHED:
        print(f"| {name}, theirs, test split | 480x360 | {params} | | | {miou} | |")
    print("\n| weights | " + " | ".join(CAMVID_CLASSES) + " |")
    print("|---|" + "---:|" * len(CAMVID_CLASSES))
    for name, ious in per_class.items():
        print(f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in ious) + " |")


def rasterise(shapes: list, size: tuple[int, int]) -> np.ndarray:
    """Paint polygons ([[x, y], …]) and boxes ([x0, y0, x1, y1]) in order; the rest is IGNORE_INDEX."""
    ids = {name: i for i, name in enumerate(BDD100K_CLASSES)}
    mask = np.full(size, IGNORE_INDEX, np.uint8)
    for name, geometry in shapes:
        if isinstance(geometry[0], list):
            cv2.fillPoly(mask, [np.asarray(geometry, np.int32)], ids[name])
        else:
            x0, y0, x1, y1 = geometry
            mask[y0:y1, x0:x1] = ids[name]
    return mask


def dashcam_report(weights: list[Path], args: argparse.Namespace) -> None:
    spec = json.loads(DASHCAM_LABELS.read_text())["images"]
    for w in weights:
        seg = nlseg.load(w, device="cpu")
        total = torch.zeros(19, 19, dtype=torch.long)
        print(f"\n# {w.name} on {len(spec)} hand-labelled dashcam photos\n")
        print("| photo | pixel accuracy | road IoU | sky IoU |")
        print("|---|---:|---:|---:|")
        for name, shapes in spec.items():
            frame = cv2.imread(str(args.dashcam / name))
            if frame is None:
                raise InputError(f"--dashcam {args.dashcam}: {name} missing or unreadable")
            target = torch.from_numpy(rasterise(shapes, frame.shape[:2]).astype(np.int64))
            pred = seg.predict(frame, imgsz=run_size(seg, frame.shape[:2], args.imgsz))
            conf = confusion_matrix(torch.from_numpy(pred.astype(np.int64)), target, 19)
            total += conf
            iou = iou_per_class(conf)
            print(f"| {name} | {accuracy(conf):.3f} | {iou[0]:.3f} | {iou[10]:.3f} |")
        iou = iou_per_class(total)
        print(f"| **all** | **{accuracy(total):.3f}** | {iou[0]:.3f} | {iou[10]:.3f} |\n")
        present = [i for i in range(19) if total[i].sum() > 0]
        print("IoU per labelled class: " + ", ".join(f"{BDD100K_CLASSES[i]} {iou[i]:.3f}" for i in present))
        if args.json:
            print("json: " + json.dumps({"weights": str(w), "photos": len(spec), "pixel_accuracy": accuracy(total),
                                         "iou": {BDD100K_CLASSES[i]: iou[i] for i in present}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="*", type=Path, help=".pt or .onnx (default: the bundled weights)")
    parser.add_argument("--camvid", type=Path, help="a CamVid folder (SegNet's CamVid/ or images/ + labels/)")
    parser.add_argument("--split", default="val", help="CamVid split: train, val or test (default val)")
    parser.add_argument("--dashcam", type=Path, help="the folder holding the six dashcam photos of labels.json")
    parser.add_argument("--imgsz", help="HxW to run at (default: the frame at the model's input width)")
    parser.add_argument("--repeats", type=int, default=20, help="timed forward passes per model (default 20)")
    parser.add_argument("--out", type=Path, help="write example PNGs (frame, ground truth, prediction) here")
    parser.add_argument("--json", action="store_true", help="also print one 'json: {...}' line per model and report")
    args = parser.parse_args()
    if args.camvid is None and args.dashcam is None:
        raise InputError("pass --camvid DIR (a CamVid copy) and/or --dashcam DIR (the six dashcam photos)")
    if args.repeats < 1:
        raise InputError(f"--repeats: need at least 1, got {args.repeats}")
    args.imgsz = parse_hw(args.imgsz, "--imgsz")
    weights = args.weights or [default_weights()]
    for w in weights:
        if not w.is_file():
            raise InputError(f"{w}: weights file not found")
    if args.camvid is not None:
        camvid_report(weights, args)
    if args.dashcam is not None:
        dashcam_report(weights, args)


if __name__ == "__main__":
    try:
        main()
    except InputError as exc:
        raise SystemExit(f"error: {exc}") from None
