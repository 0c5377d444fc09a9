"""Q-tips against the spec of thesis §5.2 / DESIGN §2.6."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nlseg.data import qtips as qt


def test_split_shapes_determinism_and_class_balance():
    train = qt.qtips("train", seed=0)
    assert train.images.shape == (512, 3, 64, 64) and train.num_classes == 15 and len(qt.CLASSES) == 15
    again = qt.qtips("train", seed=0, count=20)
    assert torch.equal(again.images, train.images[:20]) and torch.equal(again.targets, train.targets[:20])
    assert not torch.equal(qt.qtips("val", seed=0, count=20).images, again.images)
    assert not torch.equal(qt.qtips("train", seed=1, count=20).images, again.images)
    counts = torch.bincount(train.targets, minlength=15)
    assert counts.min() >= 15 and counts.max() <= 55  # uniform over 15 classes: 34 ± noise


def test_noise_and_background_statistics():
    split = qt.qtips("val", seed=0, count=64)
    x = split.images.float() / 255
    corner = x[:, :, :4, :4]  # always background
    assert abs(float(corner.mean()) - (112 / 255 + 0.0046)) < 0.02  # clipping at 0 lifts the mean slightly
    assert abs(float(corner.std()) - 0.29) < 0.02  # σ = 0.3, a little less after clipping to [0, 1]


@pytest.mark.parametrize("label", [0, 4, 14])
def test_clean_stick_geometry(label):
    rng = np.random.default_rng(label)
    image, mask = qt.draw_qtip(label, length=40, width=6, angle=30.0, rng=rng, noise=0.0)
    colours = list(qt.COLOURS.values())
    a, b = qt.PAIRS[label]
    background = (image == qt.BACKGROUND).all(-1)
    assert (background | mask).all() and not (background & mask).any()
    assert abs(int(mask.sum()) - 40 * 6) <= 12  # nearest-neighbour rotation keeps the area
    marker_a = (image == colours[a]).all(-1).sum()
    marker_b = (image == colours[b]).all(-1).sum()
    if a == b:
        assert abs(int(marker_a) - 72) <= 8
    else:
        assert abs(int(marker_a) - 36) <= 5 and abs(int(marker_b) - 36) <= 5
    assert abs(int((image == qt.STICK).all(-1).sum()) - 28 * 6) <= 10


def test_spec_ranges_over_many_sticks():
    rng = np.random.default_rng(0)
    labels, lengths, widths, angles = zip(*(qt.sample_stick(rng) for _ in range(2000)))
    assert set(labels) == set(range(15)) and set(lengths) == set(range(32, 61)) and set(widths) == {4, 5, 6, 7, 8}
    assert min(angles) == -180 and max(angles) == 180 and all(a == int(a) for a in angles)
    big = qt.draw_qtip(0, 60, 8, 45.0, np.random.default_rng(0), noise=0.0)[1]
    assert not big[0].any() and not big[-1].any() and not big[:, 0].any() and not big[:, -1].any()


def test_segmentation_variant_labels():
    seg = qt.qtips("train", seed=0, count=16, segmentation=True)
    cls = qt.qtips("train", seed=0, count=16)
    assert seg.is_segmentation and seg.num_classes == 16 and torch.equal(seg.images, cls.images)
    for i in range(16):
        values = set(seg.targets[i].unique().tolist())
        assert values == {0, 1 + int(cls.targets[i])}
