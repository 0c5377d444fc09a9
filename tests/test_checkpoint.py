"""Checkpoints carry their config, load with weights_only=True, and fail with one clear line."""

from __future__ import annotations

import pytest
import torch

from nlseg.checkpoint import load_model, read_checkpoint, save_checkpoint
from nlseg.errors import InputError
from nlseg.io import atomic_path
from nlseg.nn import ModelConfig, build_model


def test_round_trip(tmp_path):
    config = ModelConfig.from_preset("bdd100k", nonlocal_kernel="log", blocks=(1, 1, 1), channels=(8, 8, 8))
    model = build_model(config).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, config, meta={"epoch": 3}, optimizer={"lr": torch.tensor(0.1)})
    payload = torch.load(path, weights_only=True)
    assert payload["meta"] == {"epoch": 3}
    loaded, loaded_config, _ = load_model(path)
    assert loaded_config == config
    x = torch.randn(1, 3, 9, 10)
    torch.testing.assert_close(loaded.eval()(x), model(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.pt: checkpoint not found"):
        read_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pt: not a readable PyTorch checkpoint"):
        read_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(InputError, match="foreign.pt: not an nlseg checkpoint"):
        read_checkpoint(foreign)


def test_wrong_shapes_are_reported(tmp_path):
    config = ModelConfig.from_preset("cifar10", blocks=(1, 1, 1), channels=(8, 8, 8))
    path = save_checkpoint(tmp_path / "m.pt", build_model(config), config)
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["channels"] = [8, 8, 16]
    torch.save(payload, path)
    with pytest.raises(InputError, match="weights do not fit the model config"):
        load_model(path)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_gives_normal_permissions(tmp_path):
    import os

    with atomic_path(tmp_path / "f.txt") as tmp:
        tmp.write_text("x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~umask
