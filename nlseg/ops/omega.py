"""ω, the pairwise kernel of the Nonlocal Block: one definition of each formula, and its parameters.

Every implementation of the pairwise update (reference, associative, fused, exported graphs)
computes the same two reductions over the key positions j,

    S_i = Σ_j ω_ij v_j        R_i = Σ_j ω_ij,

and combines them as ``u_i = (sign / M) · (S_i − x_i R_i)`` for the difference kernels, or
``u_i = (sign / M) · S_i`` for the weighted-sum kernels (docs/design.md §2.3). This module holds
the kernel table: the weight ω as a function of the embeddings, the constants c_{n,s}, c_{n,−s},
c_n, the rule that decides when a distance is zero, and :class:`KernelParams`, the kernel with
its parameters as every implementation takes them.

| kernel     | ω_ij                                   | u_i                        | thesis |
|------------|----------------------------------------|----------------------------|--------|
| `dot`      | λ θ_i·φ_j                              | (1/M) Σ ω (v_j − x_i)      | (4.1)  |
| `gaussian` | exp(λ θ_i·φ_j)                         | (1/M) Σ ω (v_j − x_i)      | §4.2.1 |
| `frac`     | c_{n,s} λ ‖θ_i−φ_j‖^{−(n+2s)}          | (1/M) Σ ω (x_i − v_j)      | (4.6)  |
| `invfrac`  | c_{n,−s} λ ‖θ_i−φ_j‖^{−(n−2s)}         | (1/M) Σ ω v_j              | (4.7)  |
| `log`      | c_n (−2λ log‖θ_i−φ_j‖ − γ)             | (1/M) Σ ω v_j              | (4.8)  |

The constant γ of the log kernel is a parameter (``log_gamma``): Euler's γ as (4.8) reads, or
λγ, which is what the thesis authors' code computes, λ·c_n(−2 log‖·‖ − γ) (docs/design.md §6).

Zero distances give ω = 0 ("safe divide"). Distances are computed from the norm expansion
‖a−b‖² = ‖a‖² − 2a·b + ‖b‖² (§4.2.2) on embeddings centred and rescaled by a power of two
(:func:`condition_embeddings`), so clustered embeddings lose little to cancellation and huge
or tiny ones neither overflow nor underflow; a squared distance is taken as zero when it is
below the rounding noise of that expansion (:func:`zero_distance_mask`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

EULER_GAMMA = 0.5772156649015329  # the constant term of the log kernel (4.8) as the thesis text reads

KERNELS: tuple[str, ...] = ("dot", "gaussian", "frac", "invfrac", "log")
DISTANCE_KERNELS: tuple[str, ...] = ("frac", "invfrac", "log")

# A squared distance d² is "zero" when d² <= ZERO_RTOL_EPS · eps(dtype) · (‖a‖² + ‖b‖²).
# The norm expansion's rounding error was measured at ≤ 6 eps · (‖a‖² + ‖b‖²) for
# coincident float32 embeddings with C' ≤ 64 (CPU BLAS); 64 leaves a wide margin while
# only merging points closer than ~1e-3 of their norm in float32 (~1e-7 in float64).
ZERO_RTOL_EPS = 64.0


@dataclass(frozen=True)
class KernelForm:
    """How S = Σ ω v and R = Σ ω combine into u = (sign / M)·(S − x R) or (sign / M)·S."""

    sign: float
    subtracts_x: bool


KERNEL_FORMS: dict[str, KernelForm] = {
    "dot": KernelForm(sign=1.0, subtracts_x=True),
    "gaussian": KernelForm(sign=1.0, subtracts_x=True),
    "frac": KernelForm(sign=-1.0, subtracts_x=True),
    "invfrac": KernelForm(sign=1.0, subtracts_x=False),
    "log": KernelForm(sign=1.0, subtracts_x=False),
}


def check_kernel(kernel: str, s: float, n: int) -> None:
    """Raise ValueError for an unknown kernel or an exponent outside its domain."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown pairwise kernel {kernel!r}; expected one of {', '.join(KERNELS)}")
    if n < 1:
        raise ValueError(f"dimension constant n must be >= 1, got {n}")
    if kernel in ("frac", "invfrac") and not 0.0 < s < 1.0:
        raise ValueError(f"kernel {kernel!r} needs 0 < s < 1, got s={s}")
    if kernel == "invfrac" and not s < n / 2:
        raise ValueError(f"kernel 'invfrac' needs s < n/2, got s={s}, n={n}")


def check_log_gamma(log_gamma: float) -> None:
    """Raise ValueError unless the log kernel's constant term is a finite number."""
    if not isinstance(log_gamma, (int, float)) or not math.isfinite(log_gamma):
        raise ValueError(f"the log kernel's constant term must be a finite number, got {log_gamma!r}")


def kernel_constant(kernel: str, s: float, n: int) -> float:
    """Normalising constant of the kernel: c_{n,s} (frac), c_{n,−s} (invfrac), c_n (log), else 1."""
    if kernel == "frac":
        return 4.0**s * math.gamma(n / 2 + s) / (math.pi ** (n / 2) * abs(math.gamma(-s)))
    if kernel == "invfrac":
        return math.gamma(n / 2 - s) / (4.0**s * math.pi ** (n / 2) * math.gamma(s))
    if kernel == "log":
        return 1.0 / ((4.0 * math.pi) ** (n / 2) * math.gamma(n / 2))
    return 1.0


def distance_exponent(kernel: str, s: float, n: int) -> float:
    """p in ω ∝ ‖θ−φ‖^{−p}: n + 2s for frac, n − 2s for invfrac."""
    if kernel == "frac":
        return n + 2.0 * s
    if kernel == "invfrac":
        return n - 2.0 * s
    raise ValueError(f"kernel {kernel!r} has no power-law exponent")


@dataclass(frozen=True)
class KernelParams:
    """The pairwise kernel ω and its parameters, checked once (ValueError outside their domain).

    ``s``: exponent of the fractional kernels, 0 < s < 1 (and s < n/2 for ``invfrac``);
    ``lam``: the scaling λ; ``n``: the dimension constant; ``log_gamma``: the constant term γ of
    the log kernel, c_n(−2λ log‖θ−φ‖ − γ): Euler's γ as (4.8) reads, λγ as the thesis authors'
    code computes (docs/design.md §6). Parameters a kernel does not use are carried as given.
    """

    kernel: str
    s: float = 0.5
    lam: float = 0.1
    n: int = 2
    log_gamma: float = EULER_GAMMA

    def __post_init__(self) -> None:
        check_kernel(self.kernel, self.s, self.n)
        check_log_gamma(self.log_gamma)

    @property
    def constant(self) -> float:
        """c_{n,s} (frac), c_{n,−s} (invfrac), c_n (log), else 1: :func:`kernel_constant`."""
        return kernel_constant(self.kernel, self.s, self.n)

    @property
    def exponent(self) -> float:
        """p in ω ∝ ‖θ−φ‖^{−p} (frac, invfrac): :func:`distance_exponent`."""
        return distance_exponent(self.kernel, self.s, self.n)

    @property
    def custom_log_gamma(self) -> bool:
        """True for a log kernel whose constant term is not Euler's γ (the authors' λγ, docs/design.md §6)."""
        return self.kernel == "log" and self.log_gamma != EULER_GAMMA


def zero_rtol(dtype: torch.dtype) -> float:
    """Relative threshold under which a squared distance computed in ``dtype`` counts as zero."""
    return ZERO_RTOL_EPS * torch.finfo(dtype).eps


def condition_embeddings(
    theta: torch.Tensor, phi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre θ, φ on the keys' mean and divide by a power of two: distances change only by that scale.

    Centring shrinks ‖θ‖² + ‖φ‖² towards the distances themselves, so the cancellation in the
    norm expansion stays small for clustered embeddings (ReLU features share a large common
    part); dividing by a per-batch power of two near max|·| is exact and brings the squared
    norms to O(C'), so huge embeddings do not overflow nor tiny ones underflow. Returns the
    conditioned θ, φ and log(scale), shape (B, 1, 1): ‖θ_i − φ_j‖ = scale · ‖θ'_i − φ'_j‖.
    """
    centre = phi.mean(dim=1, keepdim=True)
    theta, phi = theta - centre, phi - centre
    amax = torch.maximum(theta.abs().amax(dim=(1, 2)), phi.abs().amax(dim=(1, 2)))
    amax = torch.where(amax > 0, amax, torch.ones_like(amax))
    scale = torch.exp2(torch.floor(torch.log2(amax))).reshape(-1, 1, 1)
    return theta / scale, phi / scale, torch.log(scale)


def squared_distance(
    dot: torch.Tensor, theta_sq: torch.Tensor, phi_sq: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """‖a−b‖² = ‖a‖² − 2a·b + ‖b‖² (§4.2.2), clamped at 0, and the mask of zero distances.

    ``dot`` is (…, n, m), ``theta_sq`` (…, n, 1), ``phi_sq`` (…, 1, m), all in one dtype.
    """
    norms = theta_sq + phi_sq
    d2 = (norms - 2.0 * dot).clamp_min(0.0)
    return d2, zero_distance_mask(d2, norms)


def zero_distance_mask(d2: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """True where d² is indistinguishable from zero given the rounding of the norm expansion."""
    return d2 <= zero_rtol(d2.dtype) * norms


def distance_weight(params: KernelParams, log_d2: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """ω for the distance kernels from log‖θ_i−φ_j‖² (finite where ``zero`` is False).

    frac / invfrac: c λ ‖·‖^{−p} = c λ exp(−p/2 · log d²); log: c (−2λ log‖·‖ − γ) =
    c (−λ log d² − γ) with γ = ``params.log_gamma``. Entries at zero distance are 0 (safe
    divide, §4.2.2 and §4.2.3).
    """
    c = params.constant
    if params.kernel == "log":
        w = c * (-params.lam * log_d2 - params.log_gamma)
    else:
        w = (c * params.lam) * torch.exp(-0.5 * params.exponent * log_d2)
    return torch.where(zero, torch.zeros_like(w), w)


def similarity_weight(params: KernelParams, dot: torch.Tensor) -> torch.Tensor:
    """ω for the similarity kernels from θ_i·φ_j: λ θ·φ (dot) or exp(λ θ·φ) (gaussian).

    The gaussian kernel is not normalised by its row sums (docs/design.md §2.3), so it overflows
    float32 once λ θ·φ exceeds about 88: the exact update is then not representable either.
    """
    if params.kernel == "dot":
        return params.lam * dot
    if params.kernel == "gaussian":
        return torch.exp(params.lam * dot)
    raise ValueError(f"kernel {params.kernel!r} is not a similarity kernel")


def combine(kernel: str, weighted_values: torch.Tensor, row_sums: torch.Tensor, x: torch.Tensor, m: int) -> torch.Tensor:
    """u = (sign / M)·(S − x R) or (sign / M)·S, the last step shared by every implementation."""
    form = KERNEL_FORMS[kernel]
    u = weighted_values - x * row_sums if form.subtracts_x else weighted_values
    return (form.sign / m) * u


def pair_weights(
    params: KernelParams, theta: torch.Tensor, phi: torch.Tensor, log_scale: torch.Tensor | None = None
) -> torch.Tensor:
    """The kernel matrix ω (B, n, m) between query embeddings θ (B, n, C') and keys φ (B, m, C').

    For the distance kernels θ and φ come from :func:`condition_embeddings`, and the scale
    ``exp(log_scale)`` is restored inside log d².
    """
    dot = theta @ phi.transpose(-1, -2)
    if params.kernel not in DISTANCE_KERNELS:
        return similarity_weight(params, dot)
    theta_sq = (theta * theta).sum(-1, keepdim=True)
    phi_sq = (phi * phi).sum(-1).unsqueeze(-2)
    d2, zero = squared_distance(dot, theta_sq, phi_sq)
    log_d2 = torch.log(torch.where(zero, torch.ones_like(d2), d2))
    if log_scale is not None:
        log_d2 = log_d2 + 2.0 * log_scale
    return distance_weight(params, log_d2, zero)
