"""The thesis's experiments as data: networks, columns, settings and the thesis's numbers.

One :class:`Experiment` per figure or table (Figure 5.2, Tables 5.1–5.8, 6.1, 6.2). The
thesis's numbers are copied from its text (docs/design.md §2.5); nothing here is a result of nlseg.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# --- networks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    """A row: block type or baseline and the Nonlocal Block settings (CLI names of ``nlseg train``)."""

    label: str
    model: str = "hamiltonian"
    nonlocal_op: str | None = None  # "diffusion" (𝓛, dot kernel), "frac", "invfrac", "log"
    s: float | None = None
    stages: int | None = None
    pool: int | None = None
    blocks: tuple[int, ...] | None = None
    channels: tuple[int, ...] | None = None

    @property
    def is_baseline(self) -> bool:
        return self.model not in ("hamiltonian", "leapfrog", "midpoint")


def _nl(label: str, op: str, **kw: object) -> Network:
    return Network(label, nonlocal_op=op, **kw)  # type: ignore[arg-type]


DEEP = {"blocks": (18, 18, 18), "channels": (32, 64, 128)}
NETWORKS: dict[str, Network] = {
    "resnet44": Network("ResNet-44", "resnet44"),
    "resnet110": Network("ResNet-110", "resnet110"),
    "resnet164": Network("ResNet-164", "resnet164"),
    "preresnet20": Network("PreResNet-20", "preresnet20"),
    "hamiltonian": Network("Hamiltonian"),
    "hamiltonian-237": Network("Hamiltonian (2-3-7)", blocks=(2, 3, 7)),
    "hamiltonian-685": Network("Hamiltonian (6-8-5)", blocks=(6, 8, 5)),
    "diffusion": _nl("Nonlocal diffusion 𝓛", "diffusion"),
    "frac": _nl("Pseudo-differential (−Δ)^1/2", "frac", s=0.5),
    "invfrac": _nl("Pseudo-differential (−Δ)^−1/2", "invfrac", s=0.5),
    "log": _nl("Pseudo-differential (−Δ)^−1", "log"),
    "frac-s0.25": _nl("(−Δ)^s, s = 1/4", "frac", s=0.25),
    "frac-s0.75": _nl("(−Δ)^s, s = 3/4", "frac", s=0.75),
    "invfrac-s0.25": _nl("(−Δ)^−s, s = 1/4", "invfrac", s=0.25),
    "invfrac-s0.75": _nl("(−Δ)^−s, s = 3/4", "invfrac", s=0.75),
    "diffusion-4stages": _nl("Nonlocal diffusion 𝓛, 4 stages", "diffusion", stages=4),
    "hamiltonian-218": Network("Hamiltonian-218", **DEEP),  # type: ignore[arg-type]
    "diffusion-218": _nl("Nonlocal diffusion 𝓛 (18-18-18)", "diffusion", **DEEP),
    "frac-218": _nl("Pseudo-differential (−Δ)^1/2 (18-18-18)", "frac", s=0.5, **DEEP),
    "invfrac-218": _nl("Pseudo-differential (−Δ)^−1/2 (18-18-18)", "invfrac", s=0.5, **DEEP),
    "log-218": _nl("Pseudo-differential (−Δ)^−1 (18-18-18)", "log", **DEEP),
    **{f"diffusion-pool{p}": _nl(f"Nonlocal diffusion 𝓛, pool {p}", "diffusion", pool=p) for p in (0, 2, 4, 6, 8, 12)},
}
MAIN_ROWS = ("resnet44", "preresnet20", "hamiltonian", "diffusion", "frac", "invfrac", "log")
NONLOCAL_ROWS = ("diffusion", "frac", "invfrac", "log")

# --- columns and settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A column: the dataset trained on, the fraction of its training set, the test noise σ."""

    dataset: str
    label: str
    train_fraction: float = 1.0
    noise_sigma: float = 0.0

    @property
    def key(self) -> str:
        return self.dataset if self.train_fraction == 1.0 else f"{self.dataset}-frac{self.train_fraction:g}"


@dataclass(frozen=True)
class Setting:
    """How much of an experiment to run.

    ``epochs``/``batch_size`` None keep the dataset's thesis recipe; ``train_limit``/``val_limit``
    keep the first images of a split (after which ``train_fraction`` applies); ``shrink`` =
    (block divisor, channel divisor) scales the Hamiltonian family down (baselines stay);
    ``pool`` overrides the Nonlocal Blocks' subsampling; ``lr`` overrides the recipe's rate.
    """

    seeds: tuple[int, ...]
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    train_limit: int | None = None
    val_limit: int | None = None
    shrink: tuple[int, int] | None = None
    pool: int | None = None
    note: str = ""


THESIS_SEEDS = (0, 1, 2, 3, 4)  # every experiment: 5 seeds, median (thesis ch. 5 intro)
FULL = Setting(THESIS_SEEDS, note="the thesis's setting: its networks and recipe, 5 seeds, median")
REDUCED_TABLES = Setting((0,), epochs=1, train_limit=200, val_limit=200, shrink=(3, 4),
                         note="pipeline check on a CPU: 1 epoch on 200 training and 200 test images, Hamiltonian "
                              "networks with a third of the blocks and a quarter of the channels, 1 seed")

# --- experiments ------------------------------------------------------------------------------

Thesis = dict[str, dict[str, dict[str, float]]]  # row -> column key -> {"params": M, metric: %}


@dataclass(frozen=True)
class Experiment:
    """One figure or table of the thesis.

    ``kind``: ``curves`` (per-epoch training and validation curves, Figure 5.2), ``table``
    (median final metric over seeds) or ``cost`` (multiply-adds, Tables 6.1, 6.2).
    ``metrics``: the validation metrics compared with the thesis (keys of nlseg's metrics).
    """

    name: str
    reference: str
    title: str
    kind: str
    rows: tuple[str, ...]
    columns: tuple[Column, ...]
    metrics: tuple[str, ...]
    settings: dict[str, Setting]
    thesis: Thesis = field(default_factory=dict)
    claim: str = ""

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.dataset for c in self.columns))


def _grid(rows: tuple[str, ...], columns: tuple[Column, ...], metric: str, values: list[list[float | None]],
          params: list[list[float | None]] | None = None) -> Thesis:
    """Thesis numbers from a row-major grid (None: the thesis prints nothing there)."""
    out: Thesis = {}
    for r, row in enumerate(rows):
        for c, column in enumerate(columns):
            cell: dict[str, float] = {}
            if values[r][c] is not None:
                cell[metric] = values[r][c]  # type: ignore[assignment]
            if params is not None and params[r][c] is not None:
                cell["params"] = params[r][c]  # type: ignore[assignment]
            out.setdefault(row, {})[column.key] = cell
    return out


C10, C100, STL = Column("cifar10", "CIFAR-10"), Column("cifar100", "CIFAR-100"), Column("stl10", "STL-10")
BENCH = (C10, C100, STL)
NL_PARAMS = [0.56, 0.72, 0.55]  # the four Nonlocal networks share one params cell per dataset (Table 5.2)
FRACTIONS = (Column("cifar10", "CIFAR-10 5%", 0.05), Column("cifar10", "CIFAR-10 10%", 0.10),
             Column("cifar10", "CIFAR-10 15%", 0.15), Column("stl10", "STL-10 10%", 0.10),
             Column("stl10", "STL-10 20%", 0.20), Column("stl10", "STL-10 40%", 0.40))
NOISY = (Column("cifar10", "CIFAR-10, σ = 0.02", noise_sigma=0.02), Column("stl10", "STL-10, σ = 0.02", noise_sigma=0.02))
QTIPS_ROWS = ("hamiltonian", "diffusion", "frac", "invfrac", "log", "resnet44")

EXPERIMENTS: dict[str, Experiment] = {}


def _add(e: Experiment) -> None:
    EXPERIMENTS[e.name] = e


_add(Experiment(
    "qtips", "Figure 5.2", "Q-tips classification: training (and validation) accuracy per epoch",
    "curves", QTIPS_ROWS, (Column("qtips", "Q-tips (σ = 0.3)"),), ("accuracy",),
    {"full": Setting(THESIS_SEEDS, note="the thesis's setting (§5.2): 6-6-6 / 32-64-112 networks and ResNet-44, "
                                        "30 epochs at lr 0.01, batch 50, 512 + 512 images, 5 seeds, median"),
     "cpu": Setting((0,), shrink=(3, 2), pool=8,
                    note="what fits a 2-core CPU in an hour: the thesis's data and schedule (512 + 512 images, "
                         "30 epochs at lr 0.01, batch 50), 2-2-2 / 16-32-56 Hamiltonian networks with Nonlocal "
                         "pool 8, ResNet-44 unchanged, 1 seed"),
     "reduced": Setting((0,), epochs=3, train_limit=100, val_limit=100, shrink=(3, 4), pool=4,
                        note="pipeline check on a CPU: 3 epochs on 100 + 100 images, 2-2-2 / 8-16-28 Hamiltonian "
                             "networks with Nonlocal pool 4, ResNet-44 unchanged, 1 seed")},
    thesis=_grid(QTIPS_ROWS, (Column("qtips", ""),), "accuracy", [[None]] * 6,
                 [[0.50], [0.56], [0.56], [0.56], [0.56], [0.66]]),
    claim="After first epochs in which ResNet-44 is at times ahead, the Nonlocal Hamiltonian networks' training "
          "accuracy climbs faster, which §5.2 credits to the Nonlocal Blocks' wider field of view (so faster also "
          "than the Hamiltonian network without them); ResNet-44's training curve stagnates (Figure 5.2; no "
          "numbers printed, test curves not reported because they fluctuate).",
))
_add(Experiment(
    "qtips-seg", "§5.2, docs/design.md §2.6", "Q-tips segmentation (per-pixel class of the stick): mIoU per epoch",
    "curves", ("hamiltonian", "diffusion", "frac", "invfrac", "log"), (Column("qtips-seg", "Q-tips-seg (σ = 0.3)"),),
    ("miou", "pixel_accuracy"),
    {"full": Setting(THESIS_SEEDS, note="the Q-tips recipe for segmenters: 6-6-6 / 32-64-112 without pooling, "
                                        "30 epochs at lr 0.01, batch 50, 5 seeds, median"),
     "cpu": Setting((0,), shrink=(3, 4), pool=8,
                    note="what fits a 2-core CPU: the Q-tips data and schedule (512 + 512 images, 30 epochs at "
                         "lr 0.01, batch 50), 2-2-2 / 8-16-28 segmenters (every Unit at 64x64) with Nonlocal "
                         "pool 8, 1 seed"),
     "reduced": Setting((0,), epochs=2, train_limit=50, val_limit=50, shrink=(3, 4), pool=8,
                        note="pipeline check on a CPU: 2 epochs on 50 + 50 images, 2-2-2 / 8-16-28 segmenters "
                             "with Nonlocal pool 8, 1 seed")},
    claim="Not in the thesis: the segmentation variant needs both marker colours at every stick pixel, so a "
          "Nonlocal network should reach a higher mIoU than the local Hamiltonian network (docs/design.md §2.6).",
))
_add(Experiment(
    "table5.1", "Table 5.1", "Blocks per Unit of the Hamiltonian network", "table",
    ("hamiltonian", "hamiltonian-237", "hamiltonian-685"), BENCH, ("accuracy",),
    {"full": FULL, "reduced": REDUCED_TABLES},
    thesis=_grid(("hamiltonian", "hamiltonian-237", "hamiltonian-685"), BENCH, "accuracy",
                 [[92.75, 70.38, 79.95], [92.02, 69.53, 79.25], [92.78, 70.31, 79.90]],
                 [[0.50, 0.67, 0.50], [0.49, 0.65, 0.48], [0.49, 0.65, 0.48]]),
))
_add(Experiment(
    "table5.2", "Table 5.2", "Nonlocal Hamiltonian networks on the benchmarks", "table", MAIN_ROWS, BENCH,
    ("accuracy",), {"full": FULL, "reduced": REDUCED_TABLES},
    thesis=_grid(MAIN_ROWS, BENCH, "accuracy",
                 [[92.64, 69.51, 75.79], [92.35, 71.07, 77.39], [92.75, 70.38, 79.95], [93.27, 71.81, 82.62],
                  [93.21, 71.84, 81.88], [93.08, 71.24, 81.56], [92.88, 71.25, 80.73]],
                 [[0.66, 0.66, 0.66], [0.57, 0.59, 0.57], [0.50, 0.67, 0.50], NL_PARAMS, NL_PARAMS, NL_PARAMS,
                  NL_PARAMS]),
))
S_ROWS = ("frac", "frac-s0.25", "frac-s0.75", "invfrac", "invfrac-s0.25", "invfrac-s0.75")
_add(Experiment(
    "table5.3", "Table 5.3", "The exponent s of the pseudo-differential operators", "table", S_ROWS, BENCH,
    ("accuracy",), {"full": FULL, "reduced": REDUCED_TABLES},
    thesis=_grid(S_ROWS, BENCH, "accuracy",
                 [[93.21, 71.84, 81.88], [93.17, 71.56, 81.70], [93.24, 71.73, 81.72], [93.08, 71.24, 81.56],
                  [93.11, 71.29, 81.43], [93.02, 71.32, 81.54]], [NL_PARAMS] * 6),
))
_add(Experiment(
    "table5.4", "Table 5.4", "Stages of the Nonlocal Block (𝓛)", "table", ("diffusion", "diffusion-4stages"), BENCH,
    ("accuracy",), {"full": FULL, "reduced": REDUCED_TABLES},
    thesis=_grid(("diffusion", "diffusion-4stages"), BENCH, "accuracy",
                 [[93.27, 71.81, 82.62], [93.09, 71.25, 81.36]], [NL_PARAMS, [0.59, 0.76, 0.59]]),
))
DEEP_ROWS = ("resnet110", "resnet164", "hamiltonian-218", "diffusion-218", "frac-218", "invfrac-218", "log-218")
_add(Experiment(
    "table5.5", "Table 5.5", "Deeper networks (18-18-18, 32-64-128) on CIFAR-10", "table", DEEP_ROWS, (C10,),
    ("accuracy",), {"full": FULL, "reduced": REDUCED_TABLES},
    thesis=_grid(DEEP_ROWS, (C10,), "accuracy", [[93.65], [93.79], [93.64], [93.96], [94.04], [93.86], [93.77]],
                 [[1.73], [2.61], [1.78], [1.85], [1.85], [1.85], [1.85]]),
))
_add(Experiment(
    "table5.6", "Table 5.6", "Test accuracy under Gaussian noise σ = 0.02 (models of Table 5.2)", "table",
    MAIN_ROWS, NOISY, ("accuracy",), {"full": FULL, "reduced": REDUCED_TABLES},
    thesis=_grid(MAIN_ROWS, NOISY, "accuracy",
                 [[89.48, 75.23], [88.12, 74.04], [89.50, 79.75], [89.81, 80.52], [90.25, 79.94], [89.62, 80.10],
                  [89.55, 79.43]]),
))
_add(Experiment(
    "table5.7", "Table 5.7", "Training on 5–40% of the training data", "table", MAIN_ROWS, FRACTIONS, ("accuracy",),
    {"full": FULL, "reduced": REDUCED_TABLES},
    thesis=_grid(MAIN_ROWS, FRACTIONS, "accuracy",
                 [[59.23, 74.60, 81.52, 42.71, 55.27, 67.23], [67.04, 76.58, 81.20, 46.06, 58.96, 68.44],
                  [68.28, 77.07, 81.31, 44.80, 59.07, 68.61], [68.94, 77.20, 81.66, 46.26, 58.76, 69.95],
                  [68.61, 77.19, 81.76, 47.28, 58.49, 69.58], [69.12, 77.53, 81.34, 46.65, 59.47, 68.88],
                  [68.47, 77.33, 81.68, 45.58, 59.07, 68.96]]),
))
BDD = (Column("bdd100k", "BDD100K (90x160)"),)
_add(Experiment(
    "table5.8", "Table 5.8", "Semantic segmentation on BDD100K", "table", MAIN_ROWS, BDD,
    ("pixel_accuracy", "soft_iou_image", "miou", "soft_iou"),
    {"full": FULL,
     "reduced": Setting((0,), epochs=1, train_limit=40, val_limit=40, shrink=(3, 4),
                        note="pipeline check on a CPU: 1 epoch on 40 training and 40 validation images, "
                             "Hamiltonian networks with a third of the blocks and a quarter of the channels, 1 seed")},
    # The thesis's "mIoU" is the published code's soft IoU, per image, averaged per batch (docs/design.md §6):
    # compared with soft_iou_image. Under the authors' protocol the networks have the 20th class "unknown".
    thesis={row: {"bdd100k": {"params": p, "pixel_accuracy": a, "soft_iou_image": m}} for row, p, a, m in zip(
        MAIN_ROWS, (0.66, 0.57, 0.49, 0.54, 0.54, 0.54, 0.54), (83.50, 77.86, 84.47, 84.80, 85.24, 85.21, 84.95),
        (63.42, 52.12, 64.40, 67.01, 66.71, 66.52, 66.26))},
))
COST_ROWS = ("resnet44", "hamiltonian", "diffusion", "frac", "invfrac", "log")
_COST_SETTING = {k: Setting((0,), note="exact count; no training, the same in both settings")
                 for k in ("full", "reduced")}
_add(Experiment(
    "table6.1", "Table 6.1", "Multiply-adds (M) of the networks on the classification benchmarks", "cost",
    COST_ROWS, BENCH, ("macs",), _COST_SETTING,
    thesis=_grid(COST_ROWS, BENCH, "macs",
                 [[98.3, 98.3, 879.5], [159.6, 159.9, 1432.5], [192.9, 193.2, 2003.7], [193.4, 193.7, 2012.5],
                  [193.2, 193.5, 2011.0], [193.6, 193.9, 2019.5]]),
))
POOL_ROWS = tuple(f"diffusion-pool{p}" for p in (0, 2, 4, 6, 8, 12)) + ("hamiltonian",)
_add(Experiment(
    "table6.2", "Table 6.2", "Multiply-adds (M) of 𝓛 on STL-10 against the Nonlocal subsampling pool", "cost",
    POOL_ROWS, (STL,), ("macs",), _COST_SETTING,
    thesis=_grid(POOL_ROWS, (STL,), "macs",
                 [[9341.2], [3471.4], [2003.7], [1731.9], [1636.8], [1568.9], [1432.5]]),
))
