"""The datasets ``nlseg train`` and ``nlseg eval`` know, by name, and how to load their splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nlseg.data import qtips as qt
from nlseg.data.bdd100k import bdd100k_layout
from nlseg.data.camvid import CAMVID_SIZE, SPLITS as CAMVID_SPLITS, CamVidSplit, load_camvid
from nlseg.data.cifar import load_cifar
from nlseg.data.labels import BDD100K_CLASSES, CAMVID_SCORING, ClassGroups
from nlseg.data.segfolder import folder_layout, load_pairs
from nlseg.data.split import Split
from nlseg.data.stl10 import load_stl10
from nlseg.data.synthetic import synthetic_split
from nlseg.errors import InputError

DATA_SEED = 0  # generated datasets are fixed; the training seed varies only the training


@dataclass(frozen=True)
class Request:
    """What to load: a split, the data folder (if any), the image size of segmentation sets, threads;
    ``param``: the parameter that named the split (for errors)."""

    split: str
    data_dir: Path | None
    size: tuple[int, int]
    workers: int = 4
    param: str = "split"


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset: its architecture preset, whether it reads files, class names (segmentation), loader.

    ``splits``: the splits it has; ``size``: its frames' (H, W) when that is the natural
    default of ``--size``; ``scored_as``: the label set its scores are reported in, when that
    is coarser than the network's classes (CamVid's 11 classes for 19-class networks);
    ``parse_split``: for sets whose splits are expressions (CamVid's drive splits), the function
    that reads one (text, parameter name) and returns it normalised, or raises InputError.
    """

    preset: str
    data_dir: str  # "required", "optional" or "none"
    load: Callable[[Request], Split]
    class_names: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("train", "val")
    size: tuple[int, int] | None = None
    scored_as: ClassGroups | None = None
    parse_split: Callable[[str, str], str] | None = None


def _synthetic(r: Request) -> Split:
    if r.data_dir is not None:
        return load_pairs(folder_layout(r.data_dir, r.split), r.size, 19, r.workers)
    return synthetic_split(r.split, size=r.size, seed=DATA_SEED, workers=r.workers)


DATASETS: dict[str, DatasetInfo] = {
    "qtips": DatasetInfo("qtips", "none", lambda r: qt.qtips(r.split, DATA_SEED)),
    "qtips-seg": DatasetInfo("qtips-seg", "none", lambda r: qt.qtips(r.split, DATA_SEED, segmentation=True),
                             ("background", *qt.CLASSES)),
    "cifar10": DatasetInfo("cifar10", "required", lambda r: load_cifar(r.data_dir, "cifar10", r.split)),
    "cifar100": DatasetInfo("cifar100", "required", lambda r: load_cifar(r.data_dir, "cifar100", r.split)),
    "stl10": DatasetInfo("stl10", "required", lambda r: load_stl10(r.data_dir, r.split)),
    "bdd100k": DatasetInfo("bdd100k", "required",
                           lambda r: load_pairs(bdd100k_layout(r.data_dir, r.split), r.size, 19, r.workers),
                           BDD100K_CLASSES),
    "folder": DatasetInfo("bdd100k", "required",
                          lambda r: load_pairs(folder_layout(r.data_dir, r.split), r.size, 19, r.workers),
                          BDD100K_CLASSES),
    "synthetic": DatasetInfo("bdd100k", "optional", _synthetic, BDD100K_CLASSES),
    "camvid": DatasetInfo("bdd100k", "required",
                          lambda r: load_camvid(r.data_dir, r.split, r.size, r.workers, r.param),
                          BDD100K_CLASSES, CAMVID_SPLITS, CAMVID_SIZE, CAMVID_SCORING,
                          lambda text, param: str(CamVidSplit.parse(text, param))),
}


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; InputError naming the ``dataset`` parameter if unknown."""
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}", param="dataset")
    return DATASETS[name]


def check_split(name: str, split: str, param: str = "split") -> str:
    """``split`` of dataset ``name`` as its loader reads it; InputError naming ``param`` if it has none such."""
    info = dataset_info(name)
    if info.parse_split is not None:
        return info.parse_split(split, param)
    if split not in info.splits:
        raise InputError(f"{name} has {' and '.join(info.splits)}, not {split!r}", param=param)
    return split


def load_split(name: str, request: Request) -> Split:
    """Load ``request.split`` of dataset ``name``; InputError if the data folder is missing or empty."""
    info = dataset_info(name)
    if request.data_dir is None and info.data_dir == "required":
        raise InputError(f"{name} reads a local copy of the dataset; name the folder that holds it", param="data_dir")
    if request.data_dir is not None:
        if info.data_dir == "none":
            raise InputError(f"{name} is generated in memory and reads no files", param="data_dir")
        if not request.data_dir.is_dir():
            raise InputError(f"{request.data_dir}: folder not found", param="data_dir")
    return info.load(request)
