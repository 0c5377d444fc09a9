"""The confusion matrix `nlseg eval` reports and draws (nlseg/analysis/confusion.py)."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from nlseg.analysis.confusion import plot_confusion, row_percentages
from nlseg.train.metrics import Scores


def test_rows_are_percentages_of_each_label_and_absent_labels_are_nan():
    share = row_percentages([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    np.testing.assert_allclose(share[0], [75.0, 25.0, 0.0])
    assert np.isnan(share[1]).all()
    np.testing.assert_allclose(share[2], [25.0, 25.0, 50.0])


def test_summary_counts_label_rows_against_prediction_columns():
    for segmentation in (False, True):
        scores = Scores(3, segmentation, torch.device("cpu"))
        target = torch.tensor([0, 0, 1, 2, 2, 2])
        logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 2, 0, 2]), 3).float()
        if segmentation:  # (N, C, H, W) logits and (N, H, W) labels, one void pixel left out
            logits, target = logits.T[None, :, :, None], target[None, :, None]
            target = torch.cat([target, torch.full((1, 1, 1), 255)], 1)
            logits = torch.cat([logits, torch.zeros(1, 3, 1, 1)], 2)
        scores.update(logits, target, torch.zeros(()), 6)
        summary = scores.summary(confusion=True)
        assert summary["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
        key = "pixel_accuracy" if segmentation else "accuracy"
        assert math.isclose(summary[key], 4 / 6)
        assert "confusion" not in scores.summary()


def test_the_figure_is_a_png_with_every_class(tmp_path):
    path = plot_confusion([[5, 1], [0, 0]], ["road", "sky"], tmp_path / "sub" / "c.png", "title")
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 200
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["c.png"]  # no temporary file left
