"""Q-tips against the spec of thesis §5.2 / docs/design.md §2.6, both styles of docs/design.md §6, and
the noise drawn afresh every epoch by the trainer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from nlseg.data import qtips as qt
from nlseg.data.noise import add_input_noise
from nlseg.nn.config import ModelConfig
from nlseg.train.distributed import Context
from nlseg.train.loop import RunSpec, epoch_generator, fit
from nlseg.train.recipe import RECIPES


def test_split_shapes_determinism_and_class_balance():
    train = qt.qtips("train", seed=0)
    assert train.images.shape == (512, 3, 64, 64) and train.num_classes == 15 and len(qt.CLASSES) == 15
    again = qt.qtips("train", seed=0, count=20)
    assert torch.equal(again.images, train.images[:20]) and torch.equal(again.targets, train.targets[:20])
    assert not torch.equal(qt.qtips("val", seed=0, count=20).images, again.images)
    assert not torch.equal(qt.qtips("train", seed=1, count=20).images, again.images)
    counts = torch.bincount(train.targets, minlength=15)
    assert counts.min() >= 15 and counts.max() <= 55  # uniform over 15 classes: 34 ± noise


def test_stored_images_are_clean_and_noise_is_added_per_batch():
    split = qt.qtips("val", seed=0, count=64)
    assert (split.images[:, :, :4, :4] == qt.BACKGROUND).all()  # the corners are always background
    x = add_input_noise(split.images, qt.NOISE_SIGMA, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    corner = x[:, :, :4, :4]
    assert abs(float(corner.mean()) - (112 / 255 + 0.0046)) < 0.02  # clipping at 0 lifts the mean slightly
    assert abs(float(corner.std()) - 0.273) < 0.015  # σ = 0.3 clipped to [0, 1] at mean 0.44: 0.273
    clean = add_input_noise(split.images, 0.0, torch.Generator())
    assert torch.equal(clean, split.images.float() / 255)
    fixed = qt.qtips("val", seed=0, count=8, noise=0.3)  # the first runs' protocol: noise baked in once
    assert not torch.equal(fixed.images, split.images[:8]) and torch.equal(fixed.targets, split.targets[:8])


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
    labels, lengths, widths, angles = zip(*(qt.sample_stick(rng, qt.AUTHORS) for _ in range(2000)))
    assert set(labels) == set(range(15)) and set(lengths) == set(range(32, 60)) and set(widths) == {4, 5}
    assert -180 <= min(angles) < -170 and 170 < max(angles) <= 180 and any(a != int(a) for a in angles)
    big = qt.draw_qtip(0, 60, 8, 45.0, np.random.default_rng(0), noise=0.0)[1]
    assert not big[0].any() and not big[-1].any() and not big[:, 0].any() and not big[:, -1].any()


def test_segmentation_variant_labels():
    seg = qt.qtips("train", seed=0, count=16, segmentation=True)
    cls = qt.qtips("train", seed=0, count=16)
    assert seg.is_segmentation and seg.num_classes == 16 and torch.equal(seg.images, cls.images)
    for i in range(16):
        values = set(seg.targets[i].unique().tolist())
        assert values == {0, 1 + int(cls.targets[i])}


def test_authors_style_draws_markers_on_the_stick_value():
    """qtips_gen.py sets colour channels to 255 on the stick value 30: pink is (255, 30, 255)."""
    assert qt.AUTHORS.colours[qt.COLOUR_NAMES.index("pink")] == (255, 30, 255)
    assert qt.AUTHORS.colours[qt.COLOUR_NAMES.index("red")] == (255, 30, 30)
    label = qt.PAIRS.index((0, 4))  # red-pink
    image, mask = qt.draw_qtip(label, 40, 5, 0.0, np.random.default_rng(0), style=qt.AUTHORS)
    assert (image == (255, 30, 30)).all(-1).sum() == 25 and (image == (255, 30, 255)).all(-1).sum() == 25
    assert (image == qt.STICK).all(-1).sum() == 30 * 5 and int(mask.sum()) == 40 * 5
    split = qt.qtips("train", seed=0, count=6, style=qt.AUTHORS)
    assert torch.equal(split.targets, qt.qtips("train", seed=0, count=6).targets)  # same labels, other sticks


def _record_inputs(model: torch.nn.Module, seen: list[torch.Tensor]) -> None:
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()) if module.training
                                    else None)


def test_two_epochs_see_the_same_clean_images_with_different_noise(tmp_path, monkeypatch):
    """The trainer adds σ = 0.3 noise drawn afresh every epoch (from (seed, epoch)); the clean images stay."""
    data = qt.qtips("train", seed=0, count=6)
    recipe = replace(RECIPES["qtips"], epochs=2, batch_size=6, subtract_mean=False, flip=False)
    assert RECIPES["qtips"].input_noise == qt.NOISE_SIGMA
    config = ModelConfig.from_preset("qtips", blocks=(1, 1, 1), channels=(4, 4, 4))
    spec = RunSpec("qtips", None, (64, 64), config, recipe, seed=0)
    seen: list[torch.Tensor] = []
    import nlseg.train.loop as loop

    build = loop.build_model
    monkeypatch.setattr(loop, "build_model", lambda c: (m := build(c), _record_inputs(m, seen))[0])
    fit(spec, data, data, tmp_path, Context(0, 1, torch.device("cpu")), resume=False, log=lambda _: None)
    assert len(seen) == 2
    order = [torch.randperm(6, generator=epoch_generator(0, e)) for e in (1, 2)]
    first, second = (x[torch.argsort(o)] for x, o in zip(seen, order))  # back to the split's order
    clean = data.images.float() / 255
    assert not torch.allclose(first, second)
    for x in (first, second):  # clean + noise of σ = 0.3, clipped to [0, 1]: the corners are background
        assert float(x.min()) == 0 and float(x.max()) == 1
        corner = x[:, :, :8, :8]
        assert abs(float(corner.mean()) - (112 / 255 + 0.0046)) < 0.02 and abs(float(corner.std()) - 0.273) < 0.015
    # the noise of the two epochs is independent: their correlation is near zero
    a, b = (first - clean).flatten(), (second - clean).flatten()
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.05


def test_resuming_repeats_the_same_noise(tmp_path):
    """A run killed after epoch 1 and resumed sees the noise the uninterrupted run saw."""
    data = qt.qtips("train", seed=1, count=8)
    recipe = replace(RECIPES["qtips"], epochs=3, batch_size=4)
    spec = RunSpec("qtips", None, (64, 64), ModelConfig.from_preset("qtips", blocks=(1, 1, 1), channels=(4, 4, 4)),
                   recipe, seed=2)
    ctx = Context(0, 1, torch.device("cpu"))
    whole = fit(spec, data, data, tmp_path / "whole", ctx, resume=False, log=lambda _: None)

    class Killed(Exception):
        pass

    def kill_after_first_epoch(line: str) -> None:
        if line.startswith("epoch 1/"):
            raise Killed

    with pytest.raises(Killed):
        fit(spec, data, data, tmp_path / "killed", ctx, resume=False, log=kill_after_first_epoch)
    resumed = fit(spec, data, data, tmp_path / "killed", ctx, resume=True, log=lambda _: None)
    for a, b in zip(whole, resumed):
        for key in a:
            if key != "seconds":
                assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-7), key
