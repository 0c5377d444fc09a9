"""Dataset readers on tiny files written in the exact on-disk formats, and on the shared fixtures."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from nlseg.data.bdd100k import bdd100k_layout
from nlseg.data.cifar import load_cifar
from nlseg.data.registry import Request, load_split
from nlseg.data.segfolder import folder_layout, load_pairs
from nlseg.data.split import DataWarning
from nlseg.data.stl10 import load_stl10
from nlseg.data.transforms import augment, normalize, resize_pair
from nlseg.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def _cifar_batch(path: Path, images: np.ndarray, labels: list[int], key: str) -> None:
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # R, G, B planes, row-major
    with path.open("wb") as f:
        pickle.dump({"data": data, key: labels, "batch_label": "x"}, f)


def test_cifar10_planes_and_splits(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8) for _ in range(6)]
    for i, images in enumerate(batches[:5], 1):
        _cifar_batch(root / f"data_batch_{i}", images, [i, i + 1, 0], "labels")
    _cifar_batch(root / "test_batch", batches[5], [9, 8, 7], "labels")
    train = load_cifar(tmp_path, "cifar10", "train")
    val = load_cifar(root, "cifar10", "val")  # the folder itself works too
    assert train.images.shape == (15, 3, 32, 32) and train.num_classes == 10 and not train.is_segmentation
    assert train.targets[:3].tolist() == [1, 2, 0] and val.targets.tolist() == [9, 8, 7]
    # pixel (row 3, column 5) of image 1 of batch 2, channel G
    assert int(train.images[4, 1, 3, 5]) == int(batches[1][1, 3, 5, 1])
    assert int(val.images[2, 2, 31, 0]) == int(batches[5][2, 31, 0, 2])


def test_cifar100_fine_labels_and_errors(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    images = np.zeros((2, 32, 32, 3), np.uint8)
    _cifar_batch(root / "train", images, [99, 3], "fine_labels")
    _cifar_batch(root / "test", images, [5, 6], "fine_labels")
    assert load_cifar(tmp_path, "cifar100", "train").targets.tolist() == [99, 3]
    with pytest.raises(InputError, match="cifar-10-batches-py"):
        load_cifar(tmp_path, "cifar10", "train")
    (root / "test").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a CIFAR pickle"):
        load_cifar(tmp_path, "cifar100", "val")


def test_stl10_column_major_and_labels(tmp_path):
    root = tmp_path / "stl10_binary"
    root.mkdir()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, 3, 96, 96), dtype=np.uint8)
    for name in ("train", "test"):
        (root / f"{name}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
        (root / f"{name}_y.bin").write_bytes(bytes([1, 10, 3, 4]))
    split = load_stl10(tmp_path, "val")
    assert torch.equal(split.images, torch.from_numpy(images))
    assert split.targets.tolist() == [0, 9, 2, 3]
    (root / "train_y.bin").write_bytes(bytes([1, 11, 3, 4]))
    with pytest.raises(InputError, match="train_y.bin"):
        load_stl10(tmp_path, "train")
    (root / "train_X.bin").write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match="not a whole number"):
        load_stl10(tmp_path, "train")


def _pair(images: Path, masks: Path, name: str, mask: np.ndarray, mask_name: str | None = None,
          shape: tuple[int, int] | None = None) -> None:
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    h, w = shape or mask.shape
    image = np.dstack([np.full((h, w), 10 * i, np.uint8) for i in (1, 2, 3)])  # BGR planes 10, 20, 30
    cv2.imwrite(str(images / f"{name}.png"), image)
    cv2.imwrite(str(masks / f"{mask_name or name}.png"), mask)


def test_bdd100k_fixture_layout():
    if not (FIXTURES / "bdd100k_layout").is_dir():
        pytest.skip(f"{FIXTURES} not present")
    root = FIXTURES / "bdd100k_layout"
    val = load_pairs(bdd100k_layout(root, "val"), (8, 8))
    train = load_split("bdd100k", Request("train", root, (90, 160), workers=2))
    assert len(val) == 3 and len(train) == 3  # colormaps/val names differ, masks/ are what counts
    assert set(val.targets.unique().tolist()) <= {2, 8} and val.images.shape == (3, 3, 8, 8)
    assert train.images.shape == (3, 3, 90, 160) and set(train.targets.unique().tolist()) <= {2, 8}


def test_bdd100k_old_seg_layout_and_subsampling(tmp_path):
    root = tmp_path / "bdd100k" / "seg"
    mask = np.zeros((720, 1280), np.uint8)
    mask[::8, ::8] = 13  # survives the every-8th-pixel subsampling
    mask[400:, :] = 255
    _pair(root / "images" / "val", root / "labels" / "val", "a", mask, "a_train_id")
    split = load_pairs(bdd100k_layout(tmp_path, "val"), (90, 160))
    assert split.images.shape == (1, 3, 90, 160)
    assert split.targets[0, :50].unique().tolist() == [13]
    assert split.targets[0, 50:].unique().tolist() == [255]
    assert split.images[0, :, 0, 0].tolist() == [30, 20, 10]  # RGB


def test_folder_and_cityscapes_names(tmp_path):
    city = tmp_path / "cs"
    mask = np.full((16, 32), 7, np.uint8)
    _pair(city / "leftImg8bit" / "val" / "aachen", city / "gtFine" / "val" / "aachen", "aachen_0_leftImg8bit",
          mask, "aachen_0_gtFine_labelTrainIds")
    assert load_split("folder", Request("val", city, (8, 16))).targets.unique().tolist() == [7]
    plain = tmp_path / "plain"
    _pair(plain / "images" / "train", plain / "masks" / "train", "x", mask)
    assert len(load_pairs(folder_layout(plain, "train"), (16, 32))) == 1


def test_bad_pairs_are_listed_and_skipped(tmp_path):
    images, masks = tmp_path / "images" / "train", tmp_path / "masks" / "train"
    good = np.zeros((16, 32), np.uint8)
    for i in range(6):
        _pair(images, masks, f"ok{i}", good)
    _pair(images, masks, "small", np.zeros((8, 8), np.uint8), shape=(16, 32))
    _pair(images, masks, "labels", np.full((16, 32), 19, np.uint8))
    cv2.imwrite(str(images / "nomask.png"), np.zeros((16, 32, 3), np.uint8))
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    (masks / "broken.png").write_bytes(b"")
    with pytest.warns(DataWarning) as record:
        split = load_pairs(folder_layout(tmp_path, "train"), (16, 32))
    assert len(split) == 6
    message = str(record[0].message)
    for name in ("small.png (mask 8x8 but image 16x32)", "labels.png (labels [19]", "nomask.png (no mask)",
                 "broken.jpg (unreadable image)"):
        assert name in message
    assert "skipping 4 of 10" in message


def test_mostly_bad_or_missing_data_is_an_error(tmp_path):
    with pytest.raises(InputError, match=r"images/10k/\{train,val\}"):
        bdd100k_layout(tmp_path, "train")
    images, masks = tmp_path / "images" / "val", tmp_path / "masks" / "val"
    images.mkdir(parents=True)
    with pytest.raises(InputError, match="folder not found"):
        load_pairs(folder_layout(tmp_path, "val"), (8, 8))
    masks.mkdir(parents=True)
    with pytest.raises(InputError, match="no .jpg/.png images"):
        load_pairs(folder_layout(tmp_path, "val"), (8, 8))
    _pair(images, masks, "a", np.zeros((8, 8), np.uint8))
    _pair(images, masks, "b", np.full((8, 8), 40, np.uint8))
    _pair(images, masks, "c", np.full((8, 8), 41, np.uint8))
    with pytest.raises(InputError, match="2 of 3 images have no usable mask"):
        load_pairs(folder_layout(tmp_path, "val"), (8, 8))
    with pytest.raises(InputError, match="^data_dir: "):
        load_split("bdd100k", Request("val", None, (8, 8)))


def test_resize_normalize_and_augment():
    image = np.arange(720 * 1280 * 3, dtype=np.uint32).reshape(720, 1280, 3).astype(np.uint8)
    mask = (np.arange(720 * 1280).reshape(720, 1280) % 19).astype(np.uint8)
    small, small_mask = resize_pair(image, mask, (90, 160))
    assert np.array_equal(small, image[::8, ::8]) and np.array_equal(small_mask, mask[::8, ::8])
    other, other_mask = resize_pair(image, mask, (100, 100))
    assert other.shape == (100, 100, 3) and set(np.unique(other_mask)) <= set(range(19))

    mean = torch.rand(3, 4, 6)
    x = torch.randint(0, 256, (2, 3, 8, 12), dtype=torch.uint8)
    assert torch.allclose(normalize(x[:, :, :4, :6], mean), x[:, :, :4, :6] / 255.0 - mean)
    assert normalize(x, mean).shape == x.shape  # per-pixel mean resized to a new resolution
    flat = torch.zeros(3, 1, 1)
    assert torch.equal(normalize(x, flat), x / 255.0)

    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    target = torch.randint(0, 19, (2, 8, 12), dtype=torch.uint8)
    a, ta = augment(x.float(), target, 2, True, g1)
    b, tb = augment(x.float(), target, 2, True, g2)
    assert torch.equal(a, b) and torch.equal(ta, tb) and a.shape == x.shape
    # the pixels that moved keep their labels: every labelled output pixel equals an input pixel/label pair
    keep = ta != 255
    assert keep.any() and ((a == 0).all(1) | keep).all()
    flipped, tf = augment(x.float(), target, 0, True, torch.Generator().manual_seed(0))
    for i in range(2):
        assert torch.equal(flipped[i], x[i].float()) or torch.equal(flipped[i], x[i].float().flip(-1))
        assert torch.equal(tf[i], target[i]) == torch.equal(flipped[i], x[i].float())
