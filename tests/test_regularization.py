"""Weight-decay groups and weight smoothness decay (4.10)."""

from __future__ import annotations

import torch

from nlseg.nn import ModelConfig, build_model, weight_decay_groups, weight_smoothness_decay
from nlseg.nn.nonlocal_block import NonlocalBlock


def small_model(kernel="dot"):
    return build_model(ModelConfig.from_preset("cifar10", nonlocal_kernel=kernel, blocks=(3, 2, 2), channels=(8, 12, 16)))


def test_groups_cover_every_parameter_once():
    model = small_model()
    groups = weight_decay_groups(model, 5e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    by_name = {g["name"]: g for g in groups}
    assert by_name["weights"]["weight_decay"] == 5e-4
    assert by_name["nonlocal_weights"]["weight_decay"] == 2e-4
    assert by_name["no_decay"]["weight_decay"] == 0.0
    nonlocal_ids = {id(p) for m in model.modules() if isinstance(m, NonlocalBlock) for p in m.parameters()}
    assert {id(p) for p in by_name["nonlocal_weights"]["params"]} <= nonlocal_ids
    assert all(p.dim() == 1 for p in by_name["no_decay"]["params"])
    torch.optim.SGD(groups, lr=0.1, momentum=0.9)  # usable as-is


def test_smoothness_decay_matches_4_10():
    model = small_model()
    h, alpha = 0.06, 1e-3
    expected = torch.zeros(())
    for unit in model.units:
        blocks = [b for b in unit.layers if not isinstance(b, NonlocalBlock)]
        for a, b in zip(blocks[:-1], blocks[1:]):
            for k in ("conv1", "conv2"):
                diff = getattr(a, k).weight - getattr(b, k).weight
                expected = expected + alpha * h * (diff / h).pow(2).sum()
    got = weight_smoothness_decay(model, alpha)
    torch.testing.assert_close(got, expected)
    got.backward()
    assert model.units[0].layers[0].conv1.weight.grad is not None
    nl = model.units[0].layers[2]
    assert isinstance(nl, NonlocalBlock) and nl.theta.weight.grad is None


def test_smoothness_decay_vanishes_for_equal_weights():
    model = small_model(None)
    with torch.no_grad():
        for unit in model.units:
            for block in unit.layers[1:]:
                block.conv1.weight.copy_(unit.layers[0].conv1.weight)
                block.conv2.weight.copy_(unit.layers[0].conv2.weight)
    assert weight_smoothness_decay(model).item() == 0.0


def test_smoothness_decay_is_zero_for_baselines():
    model = build_model(ModelConfig.from_preset("cifar10", arch="resnet44"))
    assert weight_smoothness_decay(model).item() == 0.0


def test_keras_convention_doubles_torch_decay_and_spares_the_classifier():
    """Keras l2(α) adds α‖K‖² (gradient 2αK); eq. (4.9)'s (α/2)‖K‖² has gradient αK (docs/design.md §6)."""
    model = small_model()
    text = {g["name"]: g for g in weight_decay_groups(model, 2e-4)}
    keras = {g["name"]: g for g in weight_decay_groups(model, 2e-4, convention="keras", decay_classifier=False)}
    assert keras["weights"]["weight_decay"] == 2 * text["weights"]["weight_decay"] == 4e-4
    assert keras["nonlocal_weights"]["weight_decay"] == 4e-4
    dense = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    assert dense and dense <= {id(p) for p in text["weights"]["params"]}
    assert dense <= {id(p) for p in keras["no_decay"]["params"]}
    # The gradient SGD applies for torch's weight_decay equals that of the Keras penalty α‖K‖².
    w = torch.randn(5, 3, requires_grad=True)
    (2e-4 * w.pow(2).sum()).backward()
    torch.testing.assert_close(w.grad, keras["weights"]["weight_decay"] * w.detach())
