"""Networks, presets and baselines against the thesis's parameter and multiply-add tables."""

from __future__ import annotations

import pytest
import torch

from nlseg.analysis import model_cost
from nlseg.nn import PRESETS, ModelConfig, build_model

DEEP = {"blocks": (18, 18, 18), "channels": (32, 64, 128)}

# (dataset, arch, kernel, overrides, params in M, MACs in M or None) from Tables 5.1, 5.2, 5.5, 5.8, 6.1, 6.2
THESIS = [
    ("cifar10", "hamiltonian", None, {}, 0.50, 159.6),
    ("cifar10", "hamiltonian", "dot", {}, 0.56, 192.9),
    ("cifar10", "hamiltonian", "frac", {}, 0.56, 193.4),
    ("cifar10", "hamiltonian", "invfrac", {}, 0.56, 193.2),
    ("cifar10", "hamiltonian", "log", {}, 0.56, 193.6),
    ("cifar10", "hamiltonian", "dot", {"stages": 4}, 0.59, None),
    ("cifar10", "resnet44", None, {}, 0.66, 98.3),
    ("cifar10", "preresnet20", None, {}, 0.57, None),
    ("cifar10", "hamiltonian", None, {"blocks": (2, 3, 7)}, 0.49, None),
    ("cifar10", "hamiltonian", None, {"blocks": (6, 8, 5)}, 0.49, None),
    ("cifar100", "hamiltonian", None, {}, 0.67, 159.9),
    ("cifar100", "hamiltonian", "dot", {}, 0.72, 193.2),
    ("cifar100", "hamiltonian", "log", {}, 0.72, 193.9),
    ("cifar100", "hamiltonian", "dot", {"stages": 4}, 0.76, None),
    ("cifar100", "resnet44", None, {}, 0.66, 98.3),
    ("cifar100", "preresnet20", None, {}, 0.59, None),
    ("stl10", "hamiltonian", None, {}, 0.50, 1432.5),
    ("stl10", "hamiltonian", "dot", {}, 0.55, 2003.7),
    ("stl10", "hamiltonian", "frac", {}, 0.55, 2012.5),
    ("stl10", "hamiltonian", "invfrac", {}, 0.55, 2011.0),
    ("stl10", "hamiltonian", "log", {}, 0.55, 2019.5),
    ("stl10", "hamiltonian", "dot", {"pool": 0}, 0.55, 9341.2),
    ("stl10", "hamiltonian", "dot", {"pool": 2}, 0.55, 3471.4),
    ("stl10", "hamiltonian", "dot", {"pool": 6}, 0.55, 1731.9),
    ("stl10", "hamiltonian", "dot", {"pool": 8}, 0.55, 1636.8),
    ("stl10", "hamiltonian", "dot", {"pool": 12}, 0.55, 1568.9),
    ("stl10", "hamiltonian", "dot", {"stages": 4}, 0.59, None),
    ("stl10", "resnet44", None, {}, 0.66, 879.5),
    ("stl10", "preresnet20", None, {}, 0.57, None),
    ("cifar10", "hamiltonian", None, DEEP, 1.78, None),
    ("cifar10", "hamiltonian", "dot", DEEP, 1.85, None),
    ("cifar10", "resnet110", None, {}, 1.73, None),
    ("cifar10", "resnet164", None, {}, 2.61, None),
    ("qtips", "hamiltonian", None, {}, 0.50, None),
    ("qtips", "hamiltonian", "dot", {}, 0.56, None),
    ("qtips", "resnet44", None, {}, 0.66, None),
    ("bdd100k", "hamiltonian", None, {}, 0.49, None),
    ("bdd100k", "hamiltonian", "frac", {}, 0.54, None),
    ("bdd100k", "resnet44", None, {}, 0.66, None),
    ("bdd100k", "preresnet20", None, {}, 0.57, None),
]


@pytest.mark.parametrize("dataset,arch,kernel,overrides,params_m,macs_m", THESIS)
def test_params_and_macs_match_the_thesis(dataset, arch, kernel, overrides, params_m, macs_m):
    config = ModelConfig.from_preset(dataset, arch=arch, nonlocal_kernel=kernel, **overrides)
    cost = model_cost(build_model(config), (1, 3, *config.image_size))
    assert abs(cost.params / 1e6 - params_m) / params_m <= 0.025
    if macs_m is not None:
        assert abs(cost.macs / 1e6 - macs_m) / macs_m <= 0.03


def test_executed_macs_of_the_associative_dot_block_are_smaller():
    """Without pooling on STL-10 the associative form saves the N×M products (Table 6.2's 9341M)."""
    config = ModelConfig.from_preset("stl10", nonlocal_kernel="dot", pool=0)
    cost = model_cost(build_model(config), (1, 3, 96, 96))
    plain = model_cost(build_model(ModelConfig.from_preset("stl10")), (1, 3, 96, 96))
    assert cost.macs > 6 * plain.macs
    assert cost.macs_executed < 1.1 * plain.macs_executed


def test_layer_rows_add_up():
    config = ModelConfig.from_preset("cifar10", nonlocal_kernel="frac")
    cost = model_cost(build_model(config), (1, 3, 32, 32))
    assert sum(r.params for r in cost.layers) == cost.params
    assert sum(r.macs for r in cost.layers) == cost.macs
    assert sum(r.macs_executed for r in cost.layers) == cost.macs_executed
    assert [r.kind for r in cost.layers].count("NonlocalBlock") == 3


@pytest.mark.parametrize("dataset", list(PRESETS))
@pytest.mark.parametrize("arch", ["hamiltonian", "leapfrog", "midpoint", "resnet44", "preresnet20"])
def test_presets_build_and_run(dataset, arch):
    kernel = "dot" if arch in ("hamiltonian", "leapfrog", "midpoint") else None
    config = ModelConfig.from_preset(dataset, arch=arch, nonlocal_kernel=kernel, blocks=(2, 2, 2))
    preset = PRESETS[dataset]
    model = build_model(config).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *config.image_size))
    if preset.task == "classify":
        assert out.shape == (2, preset.num_classes)
    else:
        assert out.shape == (2, preset.num_classes, *config.image_size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("kernel", ["dot", "gaussian", "frac", "invfrac", "log"])
def test_segmenter_takes_any_size(kernel):
    torch.manual_seed(1)  # exp(λθ·φ) of the un-normalised gaussian kernel overflows for some random inits (seed 0)
    config = ModelConfig.from_preset("bdd100k", nonlocal_kernel=kernel, blocks=(1, 1, 1), channels=(8, 8, 12))
    model = build_model(config).eval()
    for size in ((37, 53), (1, 1), (90, 160)):
        with torch.no_grad():
            out = model(torch.randn(1, 3, *size))
        assert out.shape == (1, 19, *size) and torch.isfinite(out).all()


def test_nonlocal_block_placement():
    six = build_model(ModelConfig.from_preset("cifar10", nonlocal_kernel="dot"))
    kinds = [type(m).__name__ for m in six.units[0].layers]
    assert kinds.index("NonlocalBlock") == 2 and len(kinds) == 7
    deep = build_model(ModelConfig.from_preset("cifar10", nonlocal_kernel="dot", **DEEP))
    kinds = [type(m).__name__ for m in deep.units[0].layers]
    assert kinds.index("NonlocalBlock") == 17 and len(kinds) == 19


def test_config_round_trips_through_json():
    import json

    config = ModelConfig.from_preset("bdd100k", arch="midpoint", nonlocal_kernel="invfrac", s=0.25, pool=0)
    again = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_refine_decoder_of_the_realtime_layout():
    """decoder="refine": a separable 3x3 step after each coarse-to-fine sum of the real-time decoder
    (Units - 1 of them), a few thousand parameters more; older configs without the field stay linear."""
    from nlseg.errors import InputError

    common = {"layout": "realtime", "blocks": (1, 2, 2, 3), "channels": (16, 32, 64, 128), "nonlocal_kernel": "dot"}
    linear = build_model(ModelConfig.from_preset("bdd100k", **common))
    refine = build_model(ModelConfig.from_preset("bdd100k", decoder="refine", **common))
    assert linear.refine is None and len(refine.refine) == 3
    extra = sum(p.numel() for p in refine.parameters()) - sum(p.numel() for p in linear.parameters())
    assert extra == 3 * (32 * 9 + 32 * 32 + 2 * 32)  # depthwise 3x3, pointwise 1x1, BN scale and shift
    refine.eval()
    with torch.no_grad():
        out = refine(torch.randn(2, 3, 37, 53))
        coarse = refine(torch.randn(1, 3, 64, 96), coarse=True)
    assert out.shape == (2, 19, 37, 53) and torch.isfinite(out).all() and coarse.shape == (1, 19, 16, 24)
    old = {k: v for k, v in ModelConfig.from_preset("bdd100k", **common).to_dict().items() if k != "decoder"}
    assert ModelConfig.from_dict(old).decoder == "linear"
    with pytest.raises(InputError, match="realtime layout") as thesis:
        ModelConfig.from_preset("bdd100k", decoder="refine")
    assert thesis.value.param == "decoder"
    with pytest.raises(InputError, match="unknown decoder"):
        ModelConfig.from_preset("bdd100k", layout="realtime", decoder="wide")


def test_output_stride_keeps_the_deep_units_finer_with_dilation():
    """output_stride=16 (four Units): the last transition does not pool and the last Unit's convolutions are
    dilated by 2; the same parameters, more multiply-adds, logits at the input size; 8 dilates the last two."""
    from nlseg.analysis.cost import model_cost
    from nlseg.errors import InputError

    common = {"layout": "realtime", "blocks": (1, 2, 2, 3), "channels": (16, 32, 64, 128), "nonlocal_kernel": "dot"}
    plain = build_model(ModelConfig.from_preset("bdd100k", **common)).eval()
    os16 = build_model(ModelConfig.from_preset("bdd100k", output_stride=16, **common)).eval()
    os8 = build_model(ModelConfig.from_preset("bdd100k", output_stride=8, **common)).eval()
    sizes = {}
    for name, model in (("plain", plain), ("os16", os16), ("os8", os8)):
        model.units[-1].register_forward_hook(lambda m, i, o, name=name: sizes.__setitem__(name, tuple(o.shape[-2:])))
        with torch.no_grad():
            assert model(torch.randn(1, 3, 64, 96)).shape == (1, 19, 64, 96)
    assert sizes == {"plain": (2, 3), "os16": (4, 6), "os8": (8, 12)}
    assert [u.layers[0].conv1.dilation[0] for u in os16.units] == [1, 1, 1, 2]
    assert [u.layers[0].conv1.dilation[0] for u in os8.units] == [1, 1, 2, 4]
    cost = {n: model_cost(m, (1, 3, 360, 480)) for n, m in (("plain", plain), ("os16", os16))}
    assert cost["plain"].params == cost["os16"].params and cost["os16"].macs_executed > 1.5 * cost["plain"].macs_executed
    old = {k: v for k, v in ModelConfig.from_preset("bdd100k", **common).to_dict().items() if k != "output_stride"}
    assert ModelConfig.from_dict(old).output_stride is None
    for bad, message in (({"output_stride": 12, **common}, "expected one of 4, 8, 16, 32"),
                         ({"output_stride": 16}, "realtime layout")):
        with pytest.raises(InputError, match=message) as info:
            ModelConfig.from_preset("bdd100k", **bad)
        assert info.value.param == "output_stride"


def test_he_initialisation():
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_preset("cifar10", channels=(64, 128, 256)))
    w = model.units[2].layers[0].conv1.weight  # 128 -> 128, 3x3: fan_in 1152
    assert abs(w.std().item() - (2 / 1152) ** 0.5) < 0.05 * (2 / 1152) ** 0.5
