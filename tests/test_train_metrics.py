"""Metrics against hand-computed confusion matrices; the schedule; seeding; synchronised batch norm."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from nlseg.train.distributed import Context, SyncBatchNorm2d
from nlseg.train.loop import epoch_generator, median_summary, training_subset
from nlseg.train.metrics import Scores, accuracy, confusion_matrix, iou_per_class, mean_iou, soft_iou, soft_iou_terms
from nlseg.train.recipe import RECIPES, Recipe


def test_confusion_matrix_and_iou_by_hand():
    target = torch.tensor([[0, 0, 1], [1, 2, 255]])
    pred = torch.tensor([[0, 1, 1], [1, 0, 2]])
    conf = confusion_matrix(pred, target, 4)
    assert conf.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert accuracy(conf) == pytest.approx(3 / 5)
    iou = iou_per_class(conf)
    assert iou[:3] == pytest.approx([1 / 3, 2 / 3, 0.0]) and math.isnan(iou[3])
    assert mean_iou(conf) == pytest.approx(1 / 3)


def test_soft_iou_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]]).T.reshape(1, 2, 1, 2)
    target = torch.tensor([[[0, 255]]])
    terms = soft_iou_terms(logits, target)
    assert terms.tolist() == pytest.approx([0.5, 2.0, 2.0])
    assert soft_iou(terms) == pytest.approx(1.5 / 4.5)


def test_scores_accumulate_batches():
    scores = Scores(3, True, torch.device("cpu"))
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 1] = 5.0  # predicts class 1 everywhere
    scores.update(logits, torch.tensor([[[1, 2]]]), torch.tensor(2.0), 2, soft=True)
    scores.update(logits, torch.tensor([[[1, 255]]]), torch.tensor(1.0), 1, soft=True)
    out = scores.summary(per_class=True)
    assert out["loss"] == pytest.approx(1.0)
    assert out["pixel_accuracy"] == pytest.approx(2 / 3)
    assert out["per_class_iou"] == [None, pytest.approx(2 / 3), 0.0]
    assert out["miou"] == pytest.approx(1 / 3)
    classify = Scores(2, False, torch.device("cpu"))
    classify.update(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]), torch.tensor(3.0), 2)
    assert classify.summary() == {"loss": 1.5, "accuracy": 0.5}


def test_folded_confusion_is_the_grouped_labels_confusion():
    from nlseg.data.labels import CAMVID_SCORING, IGNORE_INDEX
    from nlseg.train.metrics import fold_confusion, grouped_labels

    g = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 19, (3, 20, 30), generator=g)
    target = torch.randint(0, 19, (3, 20, 30), generator=g)
    target[:, :4] = IGNORE_INDEX
    folded = fold_confusion(confusion_matrix(pred, target, 19), CAMVID_SCORING)
    direct = confusion_matrix(grouped_labels(pred, CAMVID_SCORING), grouped_labels(target, CAMVID_SCORING), 11)
    assert torch.equal(folded, direct) and int(folded.sum()) == 3 * 16 * 30
    scores = Scores(19, True, torch.device("cpu"), CAMVID_SCORING)
    scores.update(None, target, torch.tensor(1.0), 1, labels=pred.to(torch.uint8))
    assert torch.equal(scores.conf, direct)


def test_thesis_schedule_and_scaling():
    r = Recipe()
    assert r.milestone_epochs() == (80, 120, 160, 180)
    rates = {e: r.learning_rate(e) for e in (1, 2, 80, 81, 120, 121, 161, 181, 200)}
    assert rates == pytest.approx({1: 0.01, 2: 0.1, 80: 0.1, 81: 0.01, 120: 0.01, 121: 1e-3, 161: 1e-4,
                                   181: 1e-5, 200: 1e-5})
    assert Recipe(epochs=20).milestone_epochs() == (8, 12, 16, 18)
    assert RECIPES["qtips"].learning_rate(1) == RECIPES["qtips"].learning_rate(30) == 0.01
    assert RECIPES["stl10"].pad == 12 and RECIPES["stl10"].weight_decay == 5e-4 and RECIPES["bdd100k"].pad == 0
    assert Recipe.from_dict(r.to_dict()) == r


def test_seeding_helpers():
    a = torch.randperm(50, generator=epoch_generator(3, 7))
    assert torch.equal(a, torch.randperm(50, generator=epoch_generator(3, 7)))
    assert not torch.equal(a, torch.randperm(50, generator=epoch_generator(3, 8)))
    assert not torch.equal(a, torch.randperm(50, generator=epoch_generator(4, 7)))
    sub = training_subset(1000, 0.05, seed=1)
    assert len(sub) == 50 and torch.equal(sub, training_subset(1000, 0.05, seed=1)) and sub.unique().numel() == 50
    ctx = [Context(r, 3, torch.device("cpu")) for r in range(3)]
    assert [c.shard(8) for c in ctx] == [slice(0, 3), slice(3, 6), slice(6, 8)]
    summary = median_summary({0: [{"epoch": 1, "val_accuracy": 0.5, "seconds": 1.0}],
                              1: [{"epoch": 1, "val_accuracy": 0.9, "seconds": 2.0}],
                              2: [{"epoch": 1, "val_accuracy": 0.7, "seconds": 3.0}]})
    assert summary["median"] == {"val_accuracy": 0.7} and summary["seeds"] == [0, 1, 2]


def _sync_bn_worker(rank: int, init: str, x: torch.Tensor, state: dict, queue) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    torch.set_num_threads(1)
    bn = SyncBatchNorm2d(3)
    bn.load_state_dict(state)
    part = x[rank * 3:(rank + 1) * 3].clone().requires_grad_(True)
    out = bn(part)
    (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
    queue.put((rank, *(t.detach().numpy() for t in (out, part.grad, bn.weight.grad, bn.running_var))))
    dist.barrier()
    dist.destroy_process_group()


def test_sync_batchnorm_matches_one_big_batch(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 5) * 3 + 1
    ref = nn.BatchNorm2d(3)
    nn.init.uniform_(ref.weight)
    nn.init.uniform_(ref.bias)
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    xr = x.clone().requires_grad_(True)
    out = ref(xr)
    (out * torch.cat([torch.arange(out[:3].numel()).reshape(out[:3].shape)] * 2)).sum().backward()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    init = f"file://{tmp_path / 'store'}"
    procs = [ctx.Process(target=_sync_bn_worker, args=(r, init, x, state, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = {r: [torch.from_numpy(a) for a in rest] for r, *rest in (queue.get(timeout=120) for _ in procs)}
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    got = torch.cat([results[0][0], results[1][0]])
    torch.testing.assert_close(got, out.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([results[0][1], results[1][1]]), xr.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(results[0][2] + results[1][2], ref.weight.grad, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(results[0][3], ref.running_var)
    assert os.environ.get("WORLD_SIZE") is None  # the test process itself stays single
