"""Triton kernels of the fused pairwise update: no N×M buffer, forward and backward.

Flash-attention-style tiling without the softmax bookkeeping (docs/design.md §2.3): a program holds
a tile of rows (queries in the forward and query pass, keys in the key pass) in registers and
streams the other side through in tiles. Per tile, d'² = ‖a‖² + ‖b‖² − 2 a·b comes from one
tensor-core ``tl.dot`` plus the precomputed squared norms (§4.2.2), ω in float32 (float64 for
float64 inputs), and the sums are accumulated in float32.

The zero-distance rule is :func:`nlseg.ops.omega.zero_distance_mask`: d'² <= rtol·(‖a‖² +
‖b‖²). Padding rows and columns (beyond N or M) load their squared norm as +inf, so the same
rule drops them and no per-pair mask is needed. A dropped pair gets d'² = +inf, whose rsqrt
and exp2(−h·log2) are exactly 0.

All kernel constants arrive as ``tl.constexpr`` scalars computed by ``spec.fused_spec``
from the Python kernel table; :func:`_weight` is the only re-expression of ω in tl ops.
"""

from __future__ import annotations

import triton
import triton.language as tl

INF = tl.constexpr(float("inf"))
INV_LN2 = tl.constexpr(1.4426950408889634)
MODE_POWER = tl.constexpr(0)
MODE_EXP2 = tl.constexpr(1)
MODE_LOG = tl.constexpr(2)


@triton.jit
def _mma(a, b, acc, PRECISION: tl.constexpr, INTERPRET: tl.constexpr):
    """acc + a @ b on tensor cores with ``PRECISION`` for float32 operands.

    Triton's CPU interpreter multiplies bfloat16 blocks as their raw uint16 bits, so there
    they are multiplied as float32: exact products, like the bf16 MMA's.
    """
    if INTERPRET and a.dtype == tl.bfloat16:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        return tl.dot(a, b, acc, input_precision=PRECISION)


@triton.jit
def _log2(x, ACC: tl.constexpr, INTERPRET: tl.constexpr):
    """log2 with one special-function op (lg2.approx.f32) on the GPU; tl.log2 lowers to libdevice's
    polynomial (about 25 instructions) there."""
    if INTERPRET or ACC == tl.float64:
        return tl.log2(x)
    else:
        return tl.inline_asm_elementwise("lg2.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                         pack=1)


@triton.jit
def _masked_sq_distance(ab, a_sq, b_sq, ZERO_RTOL: tl.constexpr):
    """(d'² with +inf where the pair is a zero distance or padding, the non-zero mask)."""
    norms = a_sq[:, None] + b_sq[None, :]
    d2 = norms - 2.0 * ab
    nonzero = d2 > ZERO_RTOL * norms
    return tl.where(nonzero, d2, INF), nonzero


@triton.jit
def _const(value: tl.constexpr, ACC: tl.constexpr):
    """A compile-time float in the compute dtype (a bare Python float would be rounded to fp32)."""
    return tl.full([], value, ACC)


@triton.jit
def _rsqrt(x, ACC: tl.constexpr):
    if ACC == tl.float64:
        return 1.0 / tl.sqrt(x)
    else:
        return tl.math.rsqrt(x)


@triton.jit
def _weight(d2, nonzero, offset, MODE: tl.constexpr, POWER: tl.constexpr, HALF_P: tl.constexpr,
            COEF: tl.constexpr, ACC: tl.constexpr, INTERPRET: tl.constexpr, GRAD: tl.constexpr):
    """ω' on the pairs (0 where ``nonzero`` is False, d2 = +inf there), and dω'/dd'² if GRAD.

    MODE_POWER: ω' = r^p with r = rsqrt(d'²), dω'/dd'² = −(p/2) r^{p+2};
    MODE_EXP2: ω' = exp2(−(p/2) log2 d'²), dω'/dd'² = −(p/2) exp2(−(p/2+1) log2 d'²);
    MODE_LOG: ω = COEF log2 d'² + offset, dω/dd'² = COEF / (ln 2 · d'²).
    """
    if MODE == MODE_POWER:
        r = _rsqrt(d2, ACC)
        w = r
        for _ in tl.static_range(POWER - 1):
            w = w * r
        if GRAD:
            dw = _const(-HALF_P, ACC) * (w * r * r)
    elif MODE == MODE_EXP2:
        log2_d2 = _log2(d2, ACC, INTERPRET)
        w = tl.exp2(_const(-HALF_P, ACC) * log2_d2)
        if GRAD:
            dw = _const(-HALF_P, ACC) * tl.exp2(_const(-HALF_P - 1.0, ACC) * log2_d2)
    else:
        w = tl.where(nonzero, _const(COEF, ACC) * _log2(d2, ACC, INTERPRET) + offset, 0.0)
        if GRAD:
            r = _rsqrt(d2, ACC)
            dw = _const(COEF * INV_LN2, ACC) * (r * r)
    if GRAD:
        return w, dw
    else:
        return w, w


@triton.jit
def _batch_gain_offset(LOG2_SCALE, b, MODE: tl.constexpr, HALF_P: tl.constexpr, COEF: tl.constexpr,
                       LOG_OFFSET: tl.constexpr, ACC: tl.constexpr):
    """(gain_b, offset_b) of batch element b from its scale 2^{l_b}: ω = gain·ω' + offset."""
    l2s = tl.load(LOG2_SCALE + b)
    if MODE == MODE_LOG:
        gain = _const(1.0, ACC)
        offset = _const(2.0 * COEF, ACC) * l2s + _const(LOG_OFFSET, ACC)
    else:
        gain = _const(COEF, ACC) * tl.exp2(_const(-2.0 * HALF_P, ACC) * l2s)
        offset = _const(0.0, ACC)
    return gain, offset


@triton.jit
def _load_rows(PTR, rows, n_rows, cols, C: tl.constexpr, BLOCK_C: tl.constexpr, MASK_ROWS: tl.constexpr = True):
    """A (rows × BLOCK_C) tile of a contiguous (n_rows, C) matrix, zero-padded."""
    offsets = rows[:, None] * C + cols[None, :]
    if MASK_ROWS:
        mask = rows[:, None] < n_rows
        if BLOCK_C != C:
            mask = mask & (cols[None, :] < C)
        return tl.load(PTR + offsets, mask=mask, other=0.0)
    elif BLOCK_C != C:
        return tl.load(PTR + offsets, mask=cols[None, :] < C, other=0.0)
    else:
        return tl.load(PTR + offsets)


@triton.jit
def _load_sq_norms(PTR, idx, n, MASK: tl.constexpr):
    """Squared norms; +inf beyond n, so the zero rule drops padding pairs."""
    if MASK:
        return tl.load(PTR + idx, mask=idx < n, other=INF)
    else:
        return tl.load(PTR + idx)


@triton.jit
def _forward_step(acc, row_sums, q, q_sq, offset, K, K_SQ, V, start, M,
                  C_E: tl.constexpr, C_V: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr,
                  BLOCK_V: tl.constexpr, MODE: tl.constexpr, POWER: tl.constexpr, HALF_P: tl.constexpr,
                  COEF: tl.constexpr, ZERO_RTOL: tl.constexpr, ACC: tl.constexpr, W_DTYPE: tl.constexpr,
                  QK_PRECISION: tl.constexpr, WV_PRECISION: tl.constexpr, INTERPRET: tl.constexpr,
                  MASKED: tl.constexpr):
    """One key tile of the forward pass: acc += ω' v, row_sums += ω' (masks only on the last tile)."""
    cols = start + tl.arange(0, BLOCK_M)
    k = _load_rows(K, cols, M, tl.arange(0, BLOCK_E), C_E, BLOCK_E, MASKED)
    k_sq = _load_sq_norms(K_SQ, cols, M, MASKED)
    v = _load_rows(V, cols, M, tl.arange(0, BLOCK_V), C_V, BLOCK_V, MASKED)
    qk = _mma(q, tl.trans(k), tl.zeros([q.shape[0], BLOCK_M], dtype=ACC), QK_PRECISION, INTERPRET)
    d2, nonzero = _masked_sq_distance(qk, q_sq, k_sq, ZERO_RTOL)
    w, _ = _weight(d2, nonzero, offset, MODE, POWER, HALF_P, COEF, ACC, INTERPRET, False)
    acc = _mma(w.to(W_DTYPE), v.to(W_DTYPE), acc, WV_PRECISION, INTERPRET)
    return acc, row_sums + tl.sum(w, 1)


@triton.jit
def pairwise_forward_kernel(
    Q, K, Q_SQ, K_SQ, V, X, LOG2_SCALE,  # inputs
    N, M,  # sizes
    OUT, ROW_SUMS,  # outputs (ROW_SUMS may be None)
    C_E: tl.constexpr, C_V: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_V: tl.constexpr,
    MODE: tl.constexpr, POWER: tl.constexpr, HALF_P: tl.constexpr, COEF: tl.constexpr,
    LOG_OFFSET: tl.constexpr, SIGN: tl.constexpr, SUBTRACT_X: tl.constexpr, ZERO_RTOL: tl.constexpr,
    ACC: tl.constexpr, W_DTYPE: tl.constexpr, QK_PRECISION: tl.constexpr, WV_PRECISION: tl.constexpr,
    INTERPRET: tl.constexpr,
):
    """u_i = (σ/M)(S_i − x_i R_i) or (σ/M) S_i with S_i = Σ_j ω_ij v_j, R_i = Σ_j ω_ij.

    Grid (⌈N/BLOCK_N⌉, B). Q (B,N,C_E) and K (B,M,C_E) are the conditioned embeddings,
    Q_SQ (B,N), K_SQ (B,M) their squared norms in ACC, V (B,M,C_V), X and OUT (B,N,C_V),
    LOG2_SCALE (B,) the power-of-two scale exponents; ROW_SUMS (B,N) receives R in ACC.
    """
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    e = tl.arange(0, BLOCK_E)
    c = tl.arange(0, BLOCK_V)
    q = _load_rows(Q + b * N * C_E, rows, N, e, C_E, BLOCK_E)
    q_sq = tl.load(Q_SQ + b * N + rows, mask=rows < N, other=INF)
    gain, offset = _batch_gain_offset(LOG2_SCALE, b, MODE, HALF_P, COEF, LOG_OFFSET, ACC)

    K, K_SQ, V = K + b * M * C_E, K_SQ + b * M, V + b * M * C_V
    acc = tl.zeros([BLOCK_N, BLOCK_V], dtype=ACC)
    row_sums = tl.zeros([BLOCK_N], dtype=ACC)
    full = (M // BLOCK_M) * BLOCK_M
    for start in range(0, full, BLOCK_M):
        acc, row_sums = _forward_step(acc, row_sums, q, q_sq, offset, K, K_SQ, V, start, M, C_E, C_V, BLOCK_M,
                                      BLOCK_E, BLOCK_V, MODE, POWER, HALF_P, COEF, ZERO_RTOL, ACC, W_DTYPE,
                                      QK_PRECISION, WV_PRECISION, INTERPRET, False)
    if full < M:
        acc, row_sums = _forward_step(acc, row_sums, q, q_sq, offset, K, K_SQ, V, full, M, C_E, C_V, BLOCK_M,
                                      BLOCK_E, BLOCK_V, MODE, POWER, HALF_P, COEF, ZERO_RTOL, ACC, W_DTYPE,
                                      QK_PRECISION, WV_PRECISION, INTERPRET, True)

    r = row_sums * gain
    s = acc * gain
    if SUBTRACT_X:
        x = _load_rows(X + b * N * C_V, rows, N, c, C_V, BLOCK_V).to(ACC)
        s = s - x * r[:, None]
    u = s * (_const(SIGN, ACC) / M)
    out_mask = (rows[:, None] < N) & (c[None, :] < C_V)
    tl.store(OUT + b * N * C_V + rows[:, None] * C_V + c[None, :], u.to(OUT.dtype.element_ty), mask=out_mask)
    if ROW_SUMS is not None:
        tl.store(ROW_SUMS + b * N + rows, r, mask=rows < N)


@triton.jit
def pairwise_backward_rows_kernel(
    Q, K, Q_SQ, K_SQ, V, G, D, LOG2_SCALE, N, M, DQ,
    C_E: tl.constexpr, C_V: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_V: tl.constexpr,
    MODE: tl.constexpr, POWER: tl.constexpr, HALF_P: tl.constexpr, COEF: tl.constexpr,
    LOG_OFFSET: tl.constexpr, SIGN: tl.constexpr, SUBTRACT_X: tl.constexpr, ZERO_RTOL: tl.constexpr,
    ACC: tl.constexpr, W_DTYPE: tl.constexpr, QK_PRECISION: tl.constexpr, WV_PRECISION: tl.constexpr,
    INTERPRET: tl.constexpr,
):
    """∂L/∂θ'_i = 2 (σ·gain/M) (θ'_i Σ_j T_ij − Σ_j T_ij φ'_j), T_ij = (g_i·v_j − D_i) dω'/dd'²_ij.

    G (B,N,C_V) is ∂L/∂u, D (B,N) = g_i·x_i for the kernels that subtract x (else None);
    DQ (B,N,C_E) in ACC. Grid (⌈N/BLOCK_N⌉, B); ω is recomputed tile by tile.
    """
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    e = tl.arange(0, BLOCK_E)
    c = tl.arange(0, BLOCK_V)
    q = _load_rows(Q + b * N * C_E, rows, N, e, C_E, BLOCK_E)
    q_sq = tl.load(Q_SQ + b * N + rows, mask=rows < N, other=INF)
    g = _load_rows(G + b * N * C_V, rows, N, c, C_V, BLOCK_V)
    if SUBTRACT_X:
        d = tl.load(D + b * N + rows, mask=rows < N, other=0.0)
    gain, offset = _batch_gain_offset(LOG2_SCALE, b, MODE, HALF_P, COEF, LOG_OFFSET, ACC)

    acc = tl.zeros([BLOCK_N, BLOCK_E], dtype=ACC)
    t_sums = tl.zeros([BLOCK_N], dtype=ACC)
    for start in range(0, M, BLOCK_M):
        cols = start + tl.arange(0, BLOCK_M)
        k = _load_rows(K + b * M * C_E, cols, M, e, C_E, BLOCK_E)
        k_sq = tl.load(K_SQ + b * M + cols, mask=cols < M, other=INF)
        v = _load_rows(V + b * M * C_V, cols, M, c, C_V, BLOCK_V)
        qk = _mma(q, tl.trans(k), tl.zeros([BLOCK_N, BLOCK_M], dtype=ACC), QK_PRECISION, INTERPRET)
        d2, nonzero = _masked_sq_distance(qk, q_sq, k_sq, ZERO_RTOL)
        _, dw = _weight(d2, nonzero, offset, MODE, POWER, HALF_P, COEF, ACC, INTERPRET, True)
        gv = _mma(g, tl.trans(v), tl.zeros([BLOCK_N, BLOCK_M], dtype=ACC), QK_PRECISION, INTERPRET)
        if SUBTRACT_X:
            gv = gv - d[:, None]
        t = gv * dw  # dω'/dd'² is exactly 0 on dropped pairs (d'² = +inf)
        t_sums += tl.sum(t, 1)
        acc = _mma(t.to(W_DTYPE), k.to(W_DTYPE), acc, WV_PRECISION, INTERPRET)

    scale = (_const(2.0 * SIGN, ACC) / M) * gain
    dq = (q.to(ACC) * t_sums[:, None] - acc) * scale
    mask = (rows[:, None] < N) & (e[None, :] < C_E)
    tl.store(DQ + b * N * C_E + rows[:, None] * C_E + e[None, :], dq, mask=mask)


@triton.jit
def pairwise_backward_cols_kernel(
    Q, K, Q_SQ, K_SQ, V, G, D, LOG2_SCALE, N, M, DK, DV,
    C_E: tl.constexpr, C_V: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_V: tl.constexpr,
    MODE: tl.constexpr, POWER: tl.constexpr, HALF_P: tl.constexpr, COEF: tl.constexpr,
    LOG_OFFSET: tl.constexpr, SIGN: tl.constexpr, SUBTRACT_X: tl.constexpr, ZERO_RTOL: tl.constexpr,
    ACC: tl.constexpr, W_DTYPE: tl.constexpr, QK_PRECISION: tl.constexpr, WV_PRECISION: tl.constexpr,
    INTERPRET: tl.constexpr,
):
    """∂L/∂φ'_j = 2 (σ·gain/M) (φ'_j Σ_i T_ij − Σ_i T_ij θ'_i) and ∂L/∂v_j = (σ/M) Σ_i ω_ij g_i.

    The transposed pass of :func:`pairwise_backward_rows_kernel`: a key tile stays in
    registers and the query tiles stream. BLOCK_M is the key tile, BLOCK_N the query tile;
    DK (B,M,C_E) and DV (B,M,C_V) in ACC. Grid (⌈M/BLOCK_M⌉, B).
    """
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    cols = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    e = tl.arange(0, BLOCK_E)
    c = tl.arange(0, BLOCK_V)
    k = _load_rows(K + b * M * C_E, cols, M, e, C_E, BLOCK_E)
    k_sq = tl.load(K_SQ + b * M + cols, mask=cols < M, other=INF)
    v = _load_rows(V + b * M * C_V, cols, M, c, C_V, BLOCK_V)
    gain, offset = _batch_gain_offset(LOG2_SCALE, b, MODE, HALF_P, COEF, LOG_OFFSET, ACC)

    acc_k = tl.zeros([BLOCK_M, BLOCK_E], dtype=ACC)
    acc_v = tl.zeros([BLOCK_M, BLOCK_V], dtype=ACC)
    t_sums = tl.zeros([BLOCK_M], dtype=ACC)
    for start in range(0, N, BLOCK_N):
        rows = start + tl.arange(0, BLOCK_N)
        q = _load_rows(Q + b * N * C_E, rows, N, e, C_E, BLOCK_E)
        q_sq = tl.load(Q_SQ + b * N + rows, mask=rows < N, other=INF)
        g = _load_rows(G + b * N * C_V, rows, N, c, C_V, BLOCK_V)
        kq = _mma(k, tl.trans(q), tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC), QK_PRECISION, INTERPRET)
        d2, nonzero = _masked_sq_distance(kq, k_sq, q_sq, ZERO_RTOL)
        w, dw = _weight(d2, nonzero, offset, MODE, POWER, HALF_P, COEF, ACC, INTERPRET, True)
        vg = _mma(v, tl.trans(g), tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC), QK_PRECISION, INTERPRET)
        if SUBTRACT_X:
            vg = vg - tl.load(D + b * N + rows, mask=rows < N, other=0.0)[None, :]
        t = vg * dw
        t_sums += tl.sum(t, 1)
        acc_k = _mma(t.to(W_DTYPE), q.to(W_DTYPE), acc_k, WV_PRECISION, INTERPRET)
        acc_v = _mma(w.to(W_DTYPE), g.to(W_DTYPE), acc_v, WV_PRECISION, INTERPRET)

    scale = (_const(SIGN, ACC) / M) * gain
    dk = (k.to(ACC) * t_sums[:, None] - acc_k) * (2.0 * scale)
    dv = acc_v * scale
    tl.store(DK + b * M * C_E + cols[:, None] * C_E + e[None, :], dk,
             mask=(cols[:, None] < M) & (e[None, :] < C_E))
    tl.store(DV + b * M * C_V + cols[:, None] * C_V + c[None, :], dv,
             mask=(cols[:, None] < M) & (c[None, :] < C_V))
