"""The real-time segmenter's training head: the fused C++ pass against the float64 reference.

``segmenter_loss(coarse, labels, weight)`` is the class-weighted cross-entropy of ``upsample_logits(coarse,
labels' size)`` summed over the labelled pixels, with the arg-max labels; the oracle here is
F.interpolate + F.cross_entropy in float64 on fresh random inputs, nasty ones included.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from nlseg.data.labels import IGNORE_INDEX
from nlseg.data.split import Split
from nlseg.nn.config import ModelConfig, build_model
from nlseg.nn.realtime import upsample_logits
from nlseg.ops.cpu import build
from nlseg.ops.cpu.build import KernelBuildWarning, KernelLibrary
from nlseg.ops.cpu.cross_entropy import separable_taps
from nlseg.train import loss as loss_module
from nlseg.train.distributed import Context
from nlseg.train.loop import RunSpec, train_epoch
from nlseg.train.loss import segmenter_loss
from nlseg.train.recipe import RECIPES

if build.HEAD_LIBRARY.load() is None:
    pytest.skip(f"the CPU training-head kernel could not be built here: {build.HEAD_LIBRARY.failure}",
                allow_module_level=True)


def oracle(coarse: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None):
    """Loss, gradient and upsampled logits in float64."""
    x = coarse.detach().double().requires_grad_()
    up = F.interpolate(x, size=tuple(target.shape[-2:]), mode="bilinear", align_corners=False)
    loss = F.cross_entropy(up, target.long(), weight=None if weight is None else weight.double(),
                           ignore_index=IGNORE_INDEX, reduction="sum")
    loss.backward()
    return loss.detach(), x.grad, up.detach()


def fused(coarse: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None):
    x = coarse.detach().clone().requires_grad_()
    loss, labels = segmenter_loss(x, target, weight)
    loss.backward()
    return loss.detach(), x.grad, labels


def check(coarse: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, rtol: float = 1e-5) -> None:
    loss, grad, labels = fused(coarse, target, weight)
    ref_loss, ref_grad, up = oracle(coarse, target, weight)
    assert loss.dtype == torch.float32 and labels.dtype == torch.uint8 and labels.shape == target.shape
    assert float(loss) == pytest.approx(float(ref_loss), rel=rtol, abs=1e-6)
    assert grad.shape == coarse.shape
    scale = float(ref_grad.abs().max()) or 1.0
    assert float((grad.double() - ref_grad).abs().max()) <= rtol * scale + 1e-7
    # labels: the first maximum; where the top two upsampled logits are closer than float32 can tell, either
    top2 = up.topk(2, dim=1).values if up.shape[1] > 1 else None
    clear = torch.ones_like(target, dtype=torch.bool) if top2 is None else (top2[:, 0] - top2[:, 1]) > 1e-4 * (
        1 + top2[:, 0].abs())
    assert torch.equal(labels.long()[clear], up.argmax(1)[clear])


@pytest.mark.parametrize("shape", [
    (4, 19, 14, 24, 56, 96),   # the trainer's 1/4 logits at 4x (a 56x96 crop)
    (3, 19, 14, 24, 28, 48),   # --loss-stride 2
    (2, 19, 14, 24, 19, 33),   # any label grid, even a non-integer scale
    (2, 5, 9, 7, 4, 3),        # smaller than the logits
    (1, 2, 1, 1, 5, 6),        # one coarse pixel
    (3, 1, 4, 4, 8, 8),        # one class: loss 0
])
@pytest.mark.parametrize("weighted", [False, True])
def test_fused_head_against_float64(shape, weighted):
    b, c, h, w, height, width = shape
    g = torch.Generator().manual_seed(hash(shape) % 2**31 + weighted)
    coarse = 3 * torch.randn(b, c, h, w, generator=g)
    target = torch.randint(0, c, (b, height, width), generator=g, dtype=torch.uint8)
    target[torch.rand(b, height, width, generator=g) < 0.2] = IGNORE_INDEX
    weight = torch.rand(c, generator=g) + 0.1 if weighted else None
    check(coarse, target, weight)


@pytest.mark.parametrize("case", ["huge", "tiny", "ties", "all ignored", "one sample ignored", "saturated"])
def test_nasty_inputs(case):
    g = torch.Generator().manual_seed(7)
    b, c, h, w, height, width = 3, 19, 6, 8, 24, 32
    coarse = torch.randn(b, c, h, w, generator=g)
    target = torch.randint(0, c, (b, height, width), generator=g, dtype=torch.uint8)
    weight = torch.rand(c, generator=g) + 0.1
    if case == "huge":
        coarse = coarse * 1e4  # softmax one-hot: exp underflows for all but the top class
    elif case == "tiny":
        coarse = coarse * 1e-6  # softmax uniform
    elif case == "ties":
        coarse = torch.zeros(b, c, h, w)
        coarse[:, 3] = coarse[:, 7] = 1.0  # two equal maxima everywhere: the first wins
    elif case == "all ignored":
        target.fill_(IGNORE_INDEX)
    elif case == "one sample ignored":
        target[1] = IGNORE_INDEX
    elif case == "saturated":
        coarse[:, 0] = 80.0  # exp(−80 − …) beyond float32's normal range for every other class
    check(coarse, target, weight)
    loss, grad, labels = fused(coarse, target, weight)
    if case == "ties":
        assert bool((labels == 3).all())
    if case == "all ignored":
        assert float(loss) == 0.0 and float(grad.abs().max()) == 0.0


def test_same_result_on_any_thread_count():
    g = torch.Generator().manual_seed(11)
    coarse = torch.randn(5, 19, 14, 24, generator=g)
    target = torch.randint(0, 19, (5, 56, 96), generator=g, dtype=torch.uint8)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fused(coarse, target, None)
        torch.set_num_threads(2)
        two = fused(coarse, target, None)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(one, two))


def test_a_label_outside_the_classes_is_refused():
    target = torch.zeros(1, 8, 8, dtype=torch.uint8)
    target[0, 3, 3] = 19
    with pytest.raises(ValueError, match="neither a class nor the ignore index"):
        segmenter_loss(torch.randn(1, 19, 2, 2), target)


def test_the_reference_path_is_the_models_upsampling_and_summed_loss():
    g = torch.Generator().manual_seed(5)
    coarse = torch.randn(2, 19, 6, 8, generator=g)
    target = torch.randint(0, 19, (2, 24, 32), generator=g, dtype=torch.uint8)
    loss, labels = segmenter_loss(coarse, target, fused=False)
    up = upsample_logits(coarse, (24, 32))
    assert torch.equal(loss, F.cross_entropy(up, target.long(), ignore_index=IGNORE_INDEX, reduction="sum"))
    assert torch.equal(labels, up.max(1).indices)
    # 16-bit logits (CUDA autocast): the reference, upsampled in float32 as autocast runs F.interpolate
    bf16_loss, bf16_labels = segmenter_loss(coarse.bfloat16(), target)
    up = upsample_logits(coarse.bfloat16().float(), (24, 32))
    assert torch.equal(bf16_loss, F.cross_entropy(up, target.long(), ignore_index=IGNORE_INDEX, reduction="sum"))
    assert torch.equal(bf16_labels, up.max(1).indices)


@pytest.mark.parametrize("coarse, target, weight, message", [
    ((3, 5, 2, 2), (1, 4, 4), None, "labels"),
    ((1, 5, 2, 2), (4, 4), None, "labels"),
    ((1, 5, 2, 2), (1, 4, 4), (3,), "class weights"),
])
def test_the_kernel_refuses_mismatched_shapes(coarse, target, weight, message):
    from nlseg.ops.cpu.cross_entropy import upsampled_cross_entropy_cpu

    with pytest.raises(ValueError, match=message):
        upsampled_cross_entropy_cpu(torch.zeros(coarse), torch.zeros(target, dtype=torch.uint8),
                                    None if weight is None else torch.ones(weight), upsample_logits, IGNORE_INDEX,
                                    build.HEAD_LIBRARY.load())


def test_a_nan_logit_is_the_label_as_in_torch_max():
    """A NaN logit (a diverged run): the loss is NaN and the label at the NaN is its class, as torch.max
    gives. PyTorch's upsampling also spreads NaN through taps of weight 0 (0·NaN), which the kernel does not
    read, so the labels are compared where PyTorch's upsampled logits are finite, and at the NaN itself."""
    coarse = torch.randn(1, 6, 3, 3)
    coarse[0, 4, 1, 1] = float("nan")
    target = torch.zeros(1, 9, 9, dtype=torch.uint8)
    loss, labels = segmenter_loss(coarse, target)
    values, expected = upsample_logits(coarse, (9, 9)).max(1)
    finite = ~values.isnan()
    assert loss.isnan() and bool(finite.any())
    assert torch.equal(labels.long()[finite], expected[finite])
    assert int(labels[0, 4, 4]) == int(expected[0, 4, 4]) == 4


def test_taps_are_read_off_the_upsampling():
    rows, taps = separable_taps(upsample_logits, 3, 12)
    x = torch.randn(1, 1, 3, 1)
    expected = upsample_logits(x, (12, 1))[0, 0, :, 0]
    assert torch.allclose(taps[0] * x[0, 0, rows[0], 0] + taps[1] * x[0, 0, rows[1], 0], expected, atol=1e-6)

    def bicubic(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(t, size=size, mode="bicubic", align_corners=False)

    with pytest.raises(ValueError, match="not a two-tap separable upsampling"):
        separable_taps(bicubic, 6, 24)


def _epoch(model_config: ModelConfig) -> tuple[dict, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (6, 3, 24, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 19, (6, 24, 32), generator=g, dtype=torch.uint8)
    labels[:, :4] = IGNORE_INDEX
    recipe = replace(RECIPES["camvid"], batch_size=3, crop=(16, 24), jitter=0.0)
    spec = RunSpec("camvid", None, (24, 32), model_config, recipe)
    torch.manual_seed(0)
    model = build_model(model_config)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    weight = torch.rand(19, generator=g) + 0.5
    scores = train_epoch(model, model, optimizer, Split(images, labels, 19), torch.full((3, 1, 1), 0.5), spec, 1,
                         Context(0, 1, torch.device("cpu")), weight)
    return scores, [p.detach().clone() for p in model.parameters()]


def test_an_epoch_trains_alike_with_the_fused_head_and_without(monkeypatch):
    config = ModelConfig.from_preset("bdd100k", layout="realtime", blocks=(1, 1, 1), channels=(8, 8, 8),
                                     nonlocal_kernel="dot", image_size=(24, 32))
    with_kernel, params = _epoch(config)
    failing = KernelLibrary(cxx="false", spec=build.HEAD)
    monkeypatch.setattr(loss_module, "HEAD_LIBRARY", failing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reference, ref_params = _epoch(config)
    assert failing.failed and [w.category for w in caught] == [KernelBuildWarning]
    assert "training-head kernel is unavailable" in str(caught[0].message)
    assert with_kernel["loss"] == pytest.approx(reference["loss"], rel=1e-5)
    assert with_kernel["pixel_accuracy"] == pytest.approx(reference["pixel_accuracy"], abs=1e-3)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(params, ref_params))
