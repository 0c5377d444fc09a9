"""Pixel accuracy and IoU of a segmenter on real dashcam photos with coarse hand-drawn labels.

The six photos are ``../shared/fixtures/dashcam/*.jpg`` (real highway footage, never used
for training or in the tests); ``benchmarks/dashcam_labels/labels.json`` holds polygons drawn
by eye (see its "about"). This is how the bundled demo weights were checked against the
issue's "at least 50% pixel accuracy on real street photos". Prints a Markdown table.

    python benchmarks/demo_accuracy.py [WEIGHTS] [--imgsz HxW] [--fixtures DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from nlseg.assets import demo_weights
from nlseg.data.labels import BDD100K_CLASSES, IGNORE_INDEX
from nlseg.errors import InputError
from nlseg.runtime.frames import labels_to_frame, preprocess
from nlseg.runtime.load import open_backend
from nlseg.train.metrics import accuracy, confusion_matrix, iou_per_class

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "benchmarks" / "dashcam_labels" / "labels.json"
FIXTURES = ROOT.parent / "shared" / "fixtures" / "dashcam"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="?", type=Path, default=None)
    parser.add_argument("--imgsz", default=None, help="HxW to run at (default: the model's)")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    args = parser.parse_args()
    weights = args.weights or demo_weights()
    backend = open_backend(weights, None, torch.device("cpu"))
    size = tuple(int(v) for v in args.imgsz.split("x")) if args.imgsz else backend.info.input_size
    spec = json.loads(LABELS.read_text())["images"]
    total = torch.zeros(19, 19, dtype=torch.long)
    print(f"# {weights} at {size[0]}x{size[1]} on {len(spec)} hand-labelled dashcam photos\n")
    print("| photo | pixel accuracy | road IoU | sky IoU |")
    print("|---|---:|---:|---:|")
    for name, shapes in spec.items():
        frame = cv2.imread(str(args.fixtures / name))
        target = torch.from_numpy(rasterise(shapes, frame.shape[:2]).astype(np.int64))
        labels = backend.predict(preprocess([frame], size, backend.info))[0]
        pred = torch.from_numpy(labels_to_frame(labels, frame.shape).astype(np.int64))
        conf = confusion_matrix(pred, target, 19)
        total += conf
        iou = iou_per_class(conf)
        print(f"| {name} | {accuracy(conf):.3f} | {iou[0]:.3f} | {iou[10]:.3f} |")
    iou = iou_per_class(total)
    present = [i for i in range(19) if total[i].sum() > 0]
    print(f"| **all** | **{accuracy(total):.3f}** | {iou[0]:.3f} | {iou[10]:.3f} |\n")
    print("IoU per labelled class: " + ", ".join(f"{BDD100K_CLASSES[i]} {iou[i]:.3f}" for i in present))


if __name__ == "__main__":
    try:
        main()
    except InputError as exc:
        raise SystemExit(f"error: {exc}") from None
