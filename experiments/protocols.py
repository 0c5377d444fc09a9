"""Two readings of the thesis's experiments (docs/design.md §6): as its text states them
(``thesis-text``) and as its authors' published code ran them (``authors``).

A protocol changes the data (Q-tips sticks, BDD100K's unknown class), the recipe (mean
subtraction, flips, the weight-decay convention, the classifier's decay) and the network (h,
the Q-tips head, the log kernel's constant term). Q-tips noise is drawn afresh every epoch
under both: the text says nothing to the contrary and the code does so.

Every difference, with the equation and the code fact behind it, is :data:`DIFFERENCES`; the
reports print it. The default is ``authors``: Figure 5.2 came from the authors' scripts (see
docs/design.md §6 for the argument).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from nlseg.data import qtips as qt
from nlseg.nn.config import ModelConfig
from nlseg.ops.omega import EULER_GAMMA
from nlseg.train.recipe import Recipe

QTIPS_DATASETS = ("qtips", "qtips-seg")
RESNETS = ("resnet44", "resnet110", "resnet164", "preresnet20")


@dataclass(frozen=True)
class Protocol:
    """What a protocol sets; ``None`` keeps nlseg's default (the text's reading)."""

    name: str
    note: str
    qtips_style: qt.QtipsStyle
    qtips_h: float | None  # step size of the Hamiltonian networks on Q-tips
    qtips_head_pool: int | None  # average pool before the classifier on Q-tips (the CIFAR head: 2)
    qtips_mean_and_flip: bool  # Q-tips: subtract the training mean and flip horizontally
    decay_convention: str  # "eq4.9" ((α/2)‖K‖², torch weight_decay = α) or "keras" (α‖K‖², 2α)
    decay_classifier: bool  # decay the dense classifier's weights
    resnet_decay: float | None  # α of the ResNet baselines (the Keras example's l2(1e-4))
    log_gamma_times_lambda: bool  # log kernel: c(−2λ log d − λγ) instead of c(−2λ log d − γ)
    bdd100k_unknown_class: bool  # BDD100K: 255 trained as a 20th class "unknown"


THESIS_TEXT = Protocol(
    "thesis-text", "as the thesis's text states it (§4.3, §4.4, §5.2, (4.8), (4.9))",
    qtips_style=qt.THESIS_TEXT, qtips_h=None, qtips_head_pool=None, qtips_mean_and_flip=True,
    decay_convention="eq4.9", decay_classifier=True, resnet_decay=None, log_gamma_times_lambda=False,
    bdd100k_unknown_class=False)
AUTHORS = Protocol(
    "authors", "as the authors' published TensorFlow code (dkannan08/Nonlocal-CNN) runs it",
    qtips_style=qt.AUTHORS, qtips_h=0.05, qtips_head_pool=2, qtips_mean_and_flip=False,
    decay_convention="keras", decay_classifier=False, resnet_decay=1e-4, log_gamma_times_lambda=True,
    bdd100k_unknown_class=True)
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (AUTHORS, THESIS_TEXT)}
DEFAULT_PROTOCOL = AUTHORS.name


@dataclass(frozen=True)
class Difference:
    """One point on which the two protocols differ: what each does and where that comes from."""

    point: str
    thesis_text: str
    authors: str
    source: str


DIFFERENCES: tuple[Difference, ...] = (
    Difference("Q-tips noise", "σ = 0.3 after scaling to [0, 1] (§5.2)", "the same, clipped to [0, 1]",
               "both: drawn afresh every epoch for the training and the validation images "
               "(utils.py `qtips_noise_tf` is mapped after `cache()`)"),
    Difference("Q-tips stick width", "U{4..8} (§5.2)", "4–5", "qtips_gen.py: `np.random.randint(4, high=6)`"),
    Difference("Q-tips stick length", "U{32..60} (§5.2)", "32–59", "qtips_gen.py: `np.random.randint(32, high=60)`"),
    Difference("Q-tips angle", "U{−180..180} in whole degrees (§5.2)", "uniform in [−180°, 180°]",
               "qtips_gen.py: torchvision `RandomRotation(180)`"),
    Difference("Q-tips markers", "pure colours (red (255, 0, 0), …)", "channels set to 255 on the stick value 30: "
               "red (255, 30, 30), green (30, 255, 30), blue (30, 30, 255), yellow (255, 255, 30), "
               "pink (255, 30, 255)", "qtips_gen.py: `image[..., 0] = 255` on `objVal = 30`"),
    Difference("Q-tips mean and flip", "per-pixel training mean subtracted, horizontal flips "
               "(the CIFAR-10 setting, §4.4)", "neither", "utils.py `get_qtips_tf`: images / 255 and noise only"),
    Difference("Q-tips step size h", "0.06 (nlseg's default; §4.4 gives 0.04–0.08)", "0.05",
               "qtips_nonlocal_test.py: `--h` default 0.05"),
    Difference("Q-tips head", "average pool 8: a 2x2 grid before the dense layer (0.50M, the text's count)",
               "the CIFAR head, average pool 2: an 8x8 grid (0.60M)",
               "qtips_nonlocal_test.py builds `ODE_model(..., dataset='cifar10')` on 64x64 images; Nonlocal pool 2"),
    Difference("weight decay", "(α/2)‖K‖² (4.9): torch weight_decay = α", "α‖K‖²: torch weight_decay = 2α",
               "Keras `regularizers.l2(α)` adds α·Σ K² to the loss (gradient 2αK)"),
    Difference("classifier decay", "decayed like every weight", "not decayed",
               "Networks.py and ResNet.py: the `Dense` layers have no `kernel_regularizer`"),
    Difference("ResNet decay", "α = 2e-4 as the other networks (§5.2: 'the CIFAR-10 setting')", "α = 1e-4",
               "ResNet.py (the Keras CIFAR-10 example): `l2(1e-4)`"),
    Difference("log kernel (4.8)", "c(−2λ log‖θ−φ‖ − γ)", "λ·c(−2 log‖θ−φ‖ − γ) = c(−2λ log‖θ−φ‖ − λγ)",
               "Nonlocal_Blocks.py: `f_x = factor*(-2*log_dist - euler)`, then `f_x = lam*f_x`"),
    Difference("BDD100K classes", "19, 255 ignored (§5.5)", "20: 255 trained as 'unknown'",
               "utils.py: `y_train[y_train == 255] = 19`; `num_classes=20`"),
    Difference("BDD100K soft IoU", "(no formula in the text)", "per image, (Σp·y + 1)/(Σp + Σy − Σp·y + 1) over "
               "pixels and classes, mean over the batch, mean over batches",
               "utils.py `iou_fn` wrapped in `tfa.metrics.MeanMetricWrapper`"),
)


def protocol_detail(p: Protocol) -> dict[str, Any]:
    """Everything ``p`` sets, as plain JSON (the reports record it; finished runs are only reused under an equal one)."""
    return {**asdict(p), "qtips_style": {**asdict(p.qtips_style), "colours": [list(c) for c in p.qtips_style.colours],
                                         "lengths": list(p.qtips_style.lengths), "widths": list(p.qtips_style.widths)}}


def protocol(name: str) -> Protocol:
    """The protocol called ``name``; ValueError naming the choices otherwise."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def model_overrides(p: Protocol, dataset: str, config: ModelConfig) -> dict[str, object]:
    """The ModelConfig fields ``p`` changes for a network ``config`` trained on ``dataset``."""
    out: dict[str, object] = {}
    if config.arch not in RESNETS and dataset in QTIPS_DATASETS:
        if p.qtips_h is not None:
            out["h"] = p.qtips_h
        if p.qtips_head_pool is not None and config.task == "classify":
            out["head_pool"] = p.qtips_head_pool
    if p.log_gamma_times_lambda and config.nonlocal_kernel == "log":
        out["log_gamma"] = config.lam * EULER_GAMMA
    if p.bdd100k_unknown_class and dataset == "bdd100k":
        out["num_classes"] = config.num_classes + 1
    return out


def apply_to_config(p: Protocol, dataset: str, config: ModelConfig) -> ModelConfig:
    """``config`` under protocol ``p``."""
    return replace(config, **model_overrides(p, dataset, config))


def apply_to_recipe(p: Protocol, dataset: str, arch: str, recipe: Recipe) -> Recipe:
    """``recipe`` (the dataset's) under protocol ``p`` for a network of architecture ``arch``."""
    changes: dict[str, object] = {"decay_convention": p.decay_convention, "decay_classifier": p.decay_classifier}
    if dataset in QTIPS_DATASETS and not p.qtips_mean_and_flip:
        changes.update(subtract_mean=False, flip=False)
    if arch in RESNETS and p.resnet_decay is not None:
        changes["weight_decay"] = p.resnet_decay
    return replace(recipe, **changes)
