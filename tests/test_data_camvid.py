"""CamVid: both folder layouts, void, the one 19 → 11 mapping, scoring through it, class weights, augmentation.

Everything runs on tiny generated CamVid-layout folders; the last test reads the real
validation split from ``../shared/data/camvid`` and skips without it.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from nlseg.data.camvid import load_camvid
from nlseg.data.labels import (BDD100K_CLASSES, CAMVID_CLASSES, CAMVID_SCORING, CAMVID_TO_TRAIN_ID,
                               IGNORE_INDEX, TRAIN_ID_TO_CAMVID)
from nlseg.data.registry import Request, dataset_info, load_split
from nlseg.data.split import DataWarning
from nlseg.data.transforms import augment_scenes, colour_cast_gains, colour_jitter, normalize
from nlseg.errors import InputError
from nlseg.train.class_balance import median_frequency_weights
from nlseg.train.metrics import Scores, mean_iou

REAL_CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
SIZE = (12, 16)

# The issue's mapping, written independently of nlseg.data.labels: train-id name -> CamVid name.
ISSUE_MAPPING = {
    "road": "road", "sidewalk": "pavement", "building": "building", "wall": "building", "vegetation": "tree",
    "terrain": "tree", "traffic sign": "sign/symbol", "traffic light": "sign/symbol", "car": "car", "truck": "car",
    "bus": "car", "train": "car", "person": "pedestrian", "rider": "bicyclist", "bicycle": "bicyclist",
    "motorcycle": "bicyclist", "sky": "sky", "pole": "pole", "fence": "fence",
}
SEGNET_ORDER = ("sky", "building", "pole", "road", "pavement", "tree", "sign/symbol", "fence", "car",
                "pedestrian", "bicyclist")


def camvid_masks(n: int, seed: int, size: tuple[int, int] = SIZE) -> list[np.ndarray]:
    """Random CamVid masks: ids 0-11 (11 = void) in 4x4 blocks, every id present overall."""
    rng = np.random.default_rng(seed)
    masks = [np.kron(rng.integers(0, 12, (size[0] // 4, size[1] // 4)), np.ones((4, 4), np.int64)).astype(np.uint8)
             for _ in range(n)]
    masks[0].flat[:12 * 16:16] = np.arange(12)
    return masks


def write_camvid(root: Path, segnet: bool, counts: dict[str, int], seed: int = 0,
                 size: tuple[int, int] = SIZE, drives: dict[str, list[str]] | None = None) -> dict[str, list[np.ndarray]]:
    """A tiny CamVid folder: SegNet's ``train/ trainannot/ …`` (PNG images) or ``images/ labels/`` (JPEG).

    ``drives``: the drive (file-name prefix) of each frame per split; default all 0001TP.
    """
    rng = np.random.default_rng(seed + 1)
    written = {}
    for split, n in counts.items():
        image_dir, mask_dir = ((root / split, root / f"{split}annot") if segnet
                               else (root / "images" / split, root / "labels" / split))
        image_dir.mkdir(parents=True)
        mask_dir.mkdir(parents=True)
        masks = camvid_masks(n, seed + len(split), size)
        for i, mask in enumerate(masks):
            name = f"{drives[split][i] if drives else '0001TP'}_{i:06d}"
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            cv2.imwrite(str(image_dir / f"{name}.{'png' if segnet else 'jpg'}"), image)
            cv2.imwrite(str(mask_dir / f"{name}.png"), mask)
        written[split] = masks
    return written


# Where each CamVid id trains in the train-id space (bicyclist: the rider, who fills most of its pixels).
TRAINS_AS = ("sky", "building", "pole", "road", "sidewalk", "vegetation", "traffic sign", "fence", "car", "person",
             "rider")


def expected_train_ids(mask: np.ndarray) -> np.ndarray:
    out = np.full_like(mask, IGNORE_INDEX)
    for camvid_id, name in enumerate(TRAINS_AS):
        out[mask == camvid_id] = BDD100K_CLASSES.index(name)
    return out


def test_the_mapping_is_the_issues_and_written_once():
    assert CAMVID_CLASSES == SEGNET_ORDER
    assert len(TRAIN_ID_TO_CAMVID) == len(BDD100K_CLASSES) == 19
    for train_id, name in enumerate(BDD100K_CLASSES):
        assert CAMVID_CLASSES[TRAIN_ID_TO_CAMVID[train_id]] == ISSUE_MAPPING[name], name
    # CamVid labels train as a train id that scores back as the same CamVid class.
    assert [TRAIN_ID_TO_CAMVID[t] for t in CAMVID_TO_TRAIN_ID] == list(range(11))
    assert dataset_info("camvid").scored_as == CAMVID_SCORING


@pytest.mark.parametrize("segnet", [True, False], ids=["segnet-layout", "images-labels-layout"])
def test_both_layouts_read_with_void_ignored(tmp_path, segnet):
    written = write_camvid(tmp_path / "CamVid", segnet, {"train": 3, "val": 2, "test": 1})
    for split in ("train", "val", "test"):
        # The folder itself, or its parent holding a CamVid/ child.
        data = load_split("camvid", Request(split, tmp_path if split == "val" else tmp_path / "CamVid", SIZE, 1))
        assert data.num_classes == 19 and len(data) == len(written[split]) and data.image_size == SIZE
        for got, mask in zip(data.targets, written[split]):
            assert np.array_equal(got.numpy(), expected_train_ids(mask))
    first = load_camvid(tmp_path / "CamVid", "train", SIZE, 1).targets
    assert int((first == IGNORE_INDEX).sum()) == sum(int((m == 11).sum()) for m in written["train"])


def test_layout_errors_and_bad_labels(tmp_path):
    with pytest.raises(InputError, match="trainannot"):
        load_split("camvid", Request("train", tmp_path, SIZE, 1))
    with pytest.raises(InputError, match="^data_dir: "):
        load_split("camvid", Request("train", None, SIZE, 1))
    with pytest.raises(InputError, match="^split: "):
        load_camvid(tmp_path, "trainval")
    write_camvid(tmp_path, True, {"train": 4})
    bad = np.full(SIZE, 12, np.uint8)  # 12 is neither a CamVid class nor void
    cv2.imwrite(str(tmp_path / "trainannot" / "0001TP_000003.png"), bad)
    with pytest.warns(DataWarning, match=r"0001TP_000003.png \(labels \[12\]"):
        data = load_split("camvid", Request("train", tmp_path, SIZE, 1))
    assert len(data) == 3


def test_scores_of_a_19_class_network_through_the_mapping():
    car, truck, bus, road, sky = (BDD100K_CLASSES.index(n) for n in ("car", "truck", "bus", "road", "sky"))
    target = torch.tensor([[[car, car, road, IGNORE_INDEX]]], dtype=torch.uint8)
    predicted = torch.tensor([[[truck, bus, sky, road]]])
    logits = torch.nn.functional.one_hot(predicted, 19).permute(0, 3, 1, 2).float() * 30.0
    scores = Scores(19, True, torch.device("cpu"), CAMVID_SCORING)
    scores.update(logits, target, torch.tensor(0.0), 3, soft=True)
    summary = scores.summary(per_class=True)
    c_car, c_road, c_sky = (CAMVID_CLASSES.index(n) for n in ("car", "road", "sky"))
    iou = summary["per_class_iou"]
    assert len(iou) == 11 and iou[c_car] == 1.0 and iou[c_road] == 0.0 and iou[c_sky] == 0.0
    assert summary["pixel_accuracy"] == pytest.approx(2 / 3)
    assert summary["miou"] == pytest.approx(1 / 3)
    # Soft IoU of the groups: the two car pixels put all their probability on car (truck, bus), the
    # road pixel on sky; the void pixel is an extra class nobody predicts. (Σp·y + 1)/(Σp + Σy − Σp·y + 1).
    assert summary["soft_iou"] == pytest.approx((2 + 1) / (4 + 4 - 2 + 1), abs=1e-6)
    # In the network's own 19 classes the same batch scores nothing.
    plain = Scores(19, True, torch.device("cpu"))
    plain.update(logits, target, torch.tensor(0.0), 3)
    assert plain.summary()["pixel_accuracy"] == 0.0 and math.isclose(mean_iou(plain.conf), 0.0)


def test_median_frequency_weights_by_hand():
    masks = torch.tensor([[[0, 0, 0, 1]], [[0, 2, 2, IGNORE_INDEX]]], dtype=torch.uint8)
    # freq = pixels of c / labelled pixels of the images holding c: 0 → 4/7, 1 → 1/4, 2 → 2/3; median 4/7.
    w = median_frequency_weights(masks, 4)
    assert w.tolist() == pytest.approx([1.0, (4 / 7) / (1 / 4), (4 / 7) / (2 / 3), 0.0])
    with pytest.raises(ValueError, match="no pixel"):
        median_frequency_weights(torch.full((1, 2, 2), IGNORE_INDEX, dtype=torch.uint8), 3)


def test_weighted_loss_is_the_weighted_mean():
    from nlseg.train.loss import labelled_count, summed_loss

    logits, target = torch.randn(2, 3, 4, 5), torch.randint(0, 3, (2, 4, 5))
    target[0, 0, 0] = IGNORE_INDEX
    weight = torch.tensor([0.5, 2.0, 1.0])
    mean = torch.nn.functional.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX)
    assert float(summed_loss(logits, target, weight) / labelled_count(target, weight)) == pytest.approx(float(mean))


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = torch.from_numpy(np.kron(rng.integers(0, 12, (3, 6, 8)), np.ones((1, 8, 8), np.int64))).to(torch.uint8)
    images = (labels[:, None].expand(3, 3, 48, 64) * 20).contiguous()  # every channel = 20 × label
    return images, labels, torch.zeros(3, 1, 1)


def test_scene_augmentation_is_a_function_of_the_generator():
    images, labels, mean = _batch()
    args = (images, labels, mean, (40, 56), (0.5, 2.0), True, 0.3)
    a = augment_scenes(*args, torch.Generator().manual_seed(7))
    b = augment_scenes(*args, torch.Generator().manual_seed(7))
    c = augment_scenes(*args, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert a[0].shape == (3, 3, 40, 56) and a[1].shape == (3, 40, 56) and a[1].dtype == torch.uint8


def test_scene_augmentation_identity_and_alignment():
    images, labels, mean = _batch(1)
    g = torch.Generator().manual_seed(0)
    x, y = augment_scenes(images, labels, mean, (48, 64), (1.0, 1.0), False, 0.0, g)
    assert torch.equal(y, labels) and torch.allclose(x, normalize(images, mean), atol=1e-6)
    # Scaled, cropped (partly outside the frame) and flipped: image and mask must move together.
    for seed in range(4):
        x, y = augment_scenes(images, labels, mean, (64, 80), (0.6, 2.5), True, 0.0, torch.Generator().manual_seed(seed))
        from_image = torch.round(x[:, 0] * 255 / 20).to(torch.int64)
        inside = y != IGNORE_INDEX
        agree = (from_image[inside] == y[inside].long()).float().mean()
        assert agree > 0.7, (seed, float(agree))  # bilinear blurs the 8x8 blocks' edges; misaligned: ~1/12
        if (~inside).any():  # outside the frame: the mean colour (bilinear blends it in at the border)
            assert (x[:, 0][~inside].abs() < 1e-6).float().mean() > 0.7


def test_colour_jitter_keeps_the_range_and_moves_colours():
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    labels = torch.zeros(4, 16, 16, dtype=torch.uint8)
    x, _ = augment_scenes(images, labels, torch.zeros(3, 1, 1), (16, 16), (1.0, 1.0), False, 0.4,
                          torch.Generator().manual_seed(0))
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert (x - images.float() / 255).abs().mean() > 0.01


def test_colour_jitter_is_its_three_stages():
    """The affine one-pass form against the stages in float64: brightness, contrast around the frame's mean
    luma, saturation around each pixel's luma (BT.601), then the clamp."""
    g = torch.Generator().manual_seed(4)
    x = torch.rand(5, 3, 12, 20, generator=g, dtype=torch.float64)
    x[0] = 1.0  # a white frame: saturation has nothing to move, brightness saturates
    factors = 0.4 + 1.2 * torch.rand(3, 5, 1, 1, 1, generator=g, dtype=torch.float64)
    bright, contrast, saturation = factors
    luma = lambda t: 0.299 * t[:, :1] + 0.587 * t[:, 1:2] + 0.114 * t[:, 2:]  # noqa: E731
    staged = x * bright
    level = luma(staged).mean((2, 3), keepdim=True)
    staged = (staged - level) * contrast + level
    gray = luma(staged)
    staged = ((staged - gray) * saturation + gray).clamp(0.0, 1.0)
    fast = colour_jitter(x.float(), bright.float(), contrast.float(), saturation.float())
    assert fast.dtype == torch.float32 and torch.allclose(fast.double(), staged, atol=2e-6)


def test_colour_cast_is_a_stage_before_the_three():
    """Per-channel gains first, then the three stages, against float64 stages; a grey pixel keeps its luma."""
    g = torch.Generator().manual_seed(5)
    x = torch.rand(4, 3, 10, 14, generator=g, dtype=torch.float64)
    x[1] = 0.0  # a black frame stays black
    x[2, :, :5] = 0.5  # grey pixels
    bright, contrast, saturation = 0.4 + 1.2 * torch.rand(3, 4, 1, 1, 1, generator=g, dtype=torch.float64)
    gains = colour_cast_gains(torch.rand(3, 4, generator=g, dtype=torch.float64), 0.3)
    luma = lambda t: 0.299 * t[:, :1] + 0.587 * t[:, 1:2] + 0.114 * t[:, 2:]  # noqa: E731
    assert torch.allclose(luma(gains), torch.ones(4, 1, 1, 1, dtype=torch.float64))  # grey keeps its luma
    assert ((gains - 1).abs() <= 2 * 0.3 / (1 - 0.3)).all() and (gains - 1).abs().max() > 0.05  # (1 ± c) / (1 ∓ c) at most
    staged = x * gains * bright
    level = luma(staged).mean((2, 3), keepdim=True)
    staged = (staged - level) * contrast + level
    gray = luma(staged)
    staged = ((staged - gray) * saturation + gray).clamp(0.0, 1.0)
    fast = colour_jitter(x.float(), bright.float(), contrast.float(), saturation.float(), cast=gains.float())
    assert torch.allclose(fast.double(), staged, atol=2e-6)
    assert float(fast[1].abs().max()) == 0.0
    ones = torch.ones(4, 1, 1, 1)  # a cast alone: the grey pixels keep their luma, and tint
    tinted = colour_jitter(x.float(), ones, ones, ones, cast=gains.float())[2, :, :5]
    assert torch.allclose(luma(tinted[None]), torch.full((1, 1, 5, 14), 0.5), atol=1e-6)
    assert (tinted[0] - tinted[1]).abs().max() > 0.01


def test_augmentation_without_a_cast_draws_as_before_and_with_one_tints():
    images, labels, mean = _batch(2)
    args = (images, labels, mean, (40, 56), (0.5, 2.0), True, 0.3)
    plain = augment_scenes(*args, torch.Generator().manual_seed(3))
    no_cast = augment_scenes(*args, torch.Generator().manual_seed(3), cast=0.0)
    cast = augment_scenes(*args, torch.Generator().manual_seed(3), cast=0.2)
    assert torch.equal(plain[0], no_cast[0]) and torch.equal(plain[1], cast[1])  # geometry unchanged by the cast
    # _batch's frames are grey (every channel equal): a cast makes the channels differ
    assert (plain[0][:, 0] - plain[0][:, 1]).abs().max() < 1e-6 and (cast[0][:, 0] - cast[0][:, 1]).abs().max() > 1e-3


@pytest.mark.skipif(not REAL_CAMVID.is_dir(), reason="the CamVid copy (../shared/data/camvid) is not on this machine")
def test_real_camvid_validation_split():
    data = load_split("camvid", Request("val", REAL_CAMVID, (360, 480), 2))
    assert len(data) == 101 and data.image_size == (360, 480)
    values = set(data.targets.unique().tolist())
    assert values <= set(CAMVID_TO_TRAIN_ID) | {IGNORE_INDEX}
    assert IGNORE_INDEX in values and len(values) == 12  # all 11 classes and some void
