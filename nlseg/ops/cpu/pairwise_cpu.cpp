// The CPU kernel of the pairwise update's two reductions (docs/design.md §2.3, thesis (4.6)-(4.8)):
//
//     S_i = Σ_j ω_ij v_j        R_i = Σ_j ω_ij
//
// and their gradients, fused per tile: a block of query rows meets the keys KEY_TILE at a time,
// so no N×M buffer exists in the forward or the backward (ω is recomputed there). Plain C
// ABI, no PyTorch headers: nlseg/ops/cpu/build.py compiles it with the system C++ compiler and
// loads it with ctypes; nlseg/ops/cpu/function.py prepares the inputs and owns the autograd.
//
// Inputs are the conditioned embeddings q = θ', k = φ' (nlseg.ops.kernels.condition_embeddings),
// their squared norms, and v. Per pair, d'² = ‖q_i‖² + ‖k_j‖² − 2 q_i·k_j (§4.2.2); the pair is a
// zero distance when d'² <= zero_rtol·(‖q_i‖² + ‖k_j‖²) (nlseg.ops.kernels.zero_distance_mask)
// and then ω_ij = 0; otherwise ω_ij = gain_b·ω'_ij with, for batch element b,
//
//     power kernels (frac, invfrac): ω'_ij = d'^(−p),                   offset_b = 0
//     log:                           ω'_ij = log_coef·log2 d'² + offset_b, gain_b = 1
//
// The tiles carry ω'; gain_b (the power kernels' c·λ·scale_b^(−p)) multiplies the sums and
// gradients once, in float64, when they are written, so it cannot overflow float32 where the
// result does not. Every constant (p, log_coef, zero_rtol, gain_b, offset_b) is a runtime
// argument computed in Python from the kernel table nlseg/ops/kernels.py; this file holds no
// formula constant. Padding keys (beyond M, up to a multiple of KEY_MULTIPLE) carry ‖k‖² = +inf,
// which the zero rule drops; padding query rows are handled here the same way.
//
// Vectorised with GCC/Clang vector extensions (32-byte vectors: AVX2 ymm, or two SSE/NEON
// registers); log2 and exp2 of float32 are polynomials (Cephes logf, exp2f) that the compiler
// vectorises; float64 uses the C library. Threads: PyTorch's OpenMP team (std::thread where
// there is none) over blocks of query rows. The vectors, log2, exp2 and threads: common.h.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"

namespace {

using namespace nlseg_cpu;

constexpr int ROWS = 6;           // rows per register block: 12 vector accumulators + operands in 16 registers
constexpr long LANES = 16;        // C' and C arrive padded to a multiple of this (two float32 vectors)
constexpr long KEY_MULTIPLE = 48;  // M arrives padded to a multiple of this (of LANES and of ROWS)
constexpr long KEY_TILE = 96;      // keys per tile (a multiple of KEY_MULTIPLE)
constexpr int PANEL = 8 * ROWS;    // query rows per backward panel, over which key-side sums accumulate

// ω' by mode: d'^(−p) for p a multiple of ½ (2p = Q <= MAX_QUARTERS, the thesis's s ∈ {¼, ½, ¾}:
// (1/d'²)^(Q/4) from one division and at most two square roots), d'^(−p) for any other p
// (exp2 and log2), or log_coef·log2 d'² + offset_b.
enum Mode { POWER_QUARTERS = 0, POWER_REAL = 1, LOG = 2 };
constexpr int MAX_QUARTERS = 12;

// ---------------------------------------------------------------- ω per pair -------------

template <class T>
struct Weights {
  T zero_rtol;
  T half_p;    // p/2 of the power kernels
  T log_coef;  // ω' = log_coef·log2 d'² for log
};

// ω' − offset_b from d'² > 0 and r2 = 1/d'² (a division the compiler drops where unused).
template <class T, int MODE, int P>
inline T omega(T d2, T r2, const Weights<T>& k) {
  if constexpr (MODE == POWER_QUARTERS) {  // (1/d'²)^(Q/4), Q = P
    T w = T(1);
    for (int i = 0; i < P / 4; ++i) w *= r2;
    if constexpr (P % 4 != 0) {
      const T root = std::sqrt(r2);
      if constexpr (P % 4 >= 2) w *= root;
      if constexpr (P % 2 == 1) w *= std::sqrt(root);
    }
    return w;
  } else if constexpr (MODE == POWER_REAL) {
    return exp2_of(-k.half_p * log2_of(d2));
  } else {
    return k.log_coef * log2_of(d2);
  }
}

// dω'/dd'², given w = ω' − offset_b and r2 = 1/d'².
template <class T, int MODE>
inline T omega_slope(T w, T r2, const Weights<T>& k) {
  if constexpr (MODE == LOG) {
    return k.log_coef * T(1.44269504088896340735992468100189214) * r2;  // log_coef / (ln 2 · d'²)
  } else {
    return -k.half_p * w * r2;  // d(d'^−p)/dd'² = −(p/2)·d'^(−p−2)
  }
}

// One row of a tile, forward: w_j = ω'_ij from the dots q_i·k_j.
template <class T, int MODE, int P>
void row_weights(const T* dots, T q_sq, const T* k_sq, long n, const Weights<T>& k, T offset, T* w) {
  for (long j = 0; j < n; ++j) {
    const T norms = q_sq + k_sq[j];
    const T d2 = norms - T(2) * dots[j];
    const bool zero = d2 <= k.zero_rtol * norms;
    const T value = omega<T, MODE, P>(d2, T(1) / d2, k) + offset;
    w[j] = zero ? T(0) : value;
  }
}

// One row of a tile, backward: w_j = ω'_ij and, in place of gv_j = ∂L/∂S_i·v_j, the weight of
// the pair in the embeddings' gradients, t_j = (gv_j + ∂L/∂R_i)·dω'_ij/dd'².
template <class T, int MODE, int P>
void row_weights_grad(const T* dots, T q_sq, const T* k_sq, long n, const Weights<T>& k, T offset,
                      T grad_row_sum, T* w, T* gv) {
  for (long j = 0; j < n; ++j) {
    const T norms = q_sq + k_sq[j];
    const T d2 = norms - T(2) * dots[j];
    const bool zero = d2 <= k.zero_rtol * norms;
    const T r2 = T(1) / d2;
    const T wp = omega<T, MODE, P>(d2, r2, k);
    const T t = (gv[j] + grad_row_sum) * omega_slope<T, MODE>(wp, r2, k);
    w[j] = zero ? T(0) : wp + offset;
    gv[j] = zero ? T(0) : t;
  }
}

template <class T>
using RowWeightsFn = void (*)(const T*, T, const T*, long, const Weights<T>&, T, T*);
template <class T>
using RowWeightsGradFn = void (*)(const T*, T, const T*, long, const Weights<T>&, T, T, T*, T*);

template <class T, int P>
RowWeightsFn<T> power_quarters_fn(int quarters) {
  if constexpr (P > MAX_QUARTERS) {
    return nullptr;
  } else {
    return quarters == P ? &row_weights<T, POWER_QUARTERS, P> : power_quarters_fn<T, P + 1>(quarters);
  }
}

template <class T, int P>
RowWeightsGradFn<T> power_quarters_grad_fn(int quarters) {
  if constexpr (P > MAX_QUARTERS) {
    return nullptr;
  } else {
    return quarters == P ? &row_weights_grad<T, POWER_QUARTERS, P> : power_quarters_grad_fn<T, P + 1>(quarters);
  }
}

template <class T>
RowWeightsFn<T> select_row_weights(int mode, int quarters) {
  if (mode == POWER_QUARTERS) return power_quarters_fn<T, 1>(quarters);
  if (mode == POWER_REAL) return &row_weights<T, POWER_REAL, 0>;
  if (mode == LOG) return &row_weights<T, LOG, 0>;
  return nullptr;
}

template <class T>
RowWeightsGradFn<T> select_row_weights_grad(int mode, int quarters) {
  if (mode == POWER_QUARTERS) return power_quarters_grad_fn<T, 1>(quarters);
  if (mode == POWER_REAL) return &row_weights_grad<T, POWER_REAL, 0>;
  if (mode == LOG) return &row_weights_grad<T, LOG, 0>;
  return nullptr;
}

// ---------------------------------------------------------------- tile products ---------
// Register-blocked: ROWS rows × two vectors of columns per step (12 accumulators).

// out[r][j] = Σ_d a[r][d]·bt[d][j] for j < n (n a multiple of two vectors).
template <class T>
void tile_dots(const T* a, long lda, const T* bt, long ldb, long depth, long n, T* out, long ldo) {
  using S = Simd<T>;
  using vec = typename S::vec;
  constexpr int L = S::width;
  for (long j = 0; j < n; j += 2 * L) {
    vec acc[ROWS][2] = {};
    for (long d = 0; d < depth; ++d) {
      const vec b0 = S::load(bt + d * ldb + j);
      const vec b1 = S::load(bt + d * ldb + j + L);
      for (int r = 0; r < ROWS; ++r) {
        const vec ar = S::splat(a[r * lda + d]);
        acc[r][0] += ar * b0;
        acc[r][1] += ar * b1;
      }
    }
    for (int r = 0; r < ROWS; ++r) {
      S::store(out + r * ldo + j, acc[r][0]);
      S::store(out + r * ldo + j + L, acc[r][1]);
    }
  }
}

// acc[r][c] += Σ_{t<n} w[r·w_row + t·w_step]·b[t][c] for r < ROWS, c < width: the ω·v product
// (w_row = tile stride, w_step = 1) and, with the tile read transposed (w_row = 1, w_step =
// tile stride), the key-side sums Σ_i ω_ij g_i of six keys over a panel of query rows.
template <class T>
void tile_weighted_sum(const T* w, long w_row, long w_step, const T* b, long ldb, long n, long width, T* acc,
                       long ldc) {
  using S = Simd<T>;
  using vec = typename S::vec;
  constexpr int L = S::width;
  for (long c = 0; c < width; c += 2 * L) {
    vec s[ROWS][2];
    for (int r = 0; r < ROWS; ++r) {
      s[r][0] = S::load(acc + r * ldc + c);
      s[r][1] = S::load(acc + r * ldc + c + L);
    }
    for (long t = 0; t < n; ++t) {
      const vec b0 = S::load(b + t * ldb + c);
      const vec b1 = S::load(b + t * ldb + c + L);
      for (int r = 0; r < ROWS; ++r) {
        const vec wr = S::splat(w[r * w_row + t * w_step]);
        s[r][0] += wr * b0;
        s[r][1] += wr * b1;
      }
    }
    for (int r = 0; r < ROWS; ++r) {
      S::store(acc + r * ldc + c, s[r][0]);
      S::store(acc + r * ldc + c + L, s[r][1]);
    }
  }
}

template <class T>
T row_sum(const T* w, long n) {
  using S = Simd<T>;
  using vec = typename S::vec;
  constexpr int L = S::width;
  vec s0 = {}, s1 = {};
  for (long j = 0; j < n; j += 2 * L) {
    s0 += S::load(w + j);
    s1 += S::load(w + j + L);
  }
  s0 += s1;
  T total = 0;
  for (int i = 0; i < L; ++i) total += s0[i];
  return total;
}

// ---------------------------------------------------------------- problem and threads ----

template <class T>
struct Problem {
  const T* q;         // (B, N, E)  conditioned queries θ'
  const T* q_sq;      // (B, N)
  const T* k;         // (B, M, E)  conditioned keys φ' (backward only)
  const T* kt;        // (B, E, M)  the keys transposed
  const T* k_sq;      // (B, M), +inf on padding keys
  const T* v;         // (B, M, C)
  const T* vt;        // (B, C, M)  (backward only)
  const double* gain;    // (B,) gain_b of the power kernels, else ones
  const double* offset;  // (B,) offset_b of the log kernel, else zeros
  long batch, n, m, e, c;
  Weights<T> weights;
  Runtime runtime;
};

// Copies `count` query rows from `first` (zero rows beyond n): the block's operands.
template <class T>
void load_rows(const T* src, long first, long n, long width, int count, T* dst) {
  for (int r = 0; r < count; ++r) {
    if (first + r < n) {
      std::memcpy(dst + r * width, src + (first + r) * width, sizeof(T) * width);
    } else {
      std::fill(dst + r * width, dst + (r + 1) * width, T(0));
    }
  }
}

// Copies `count` per-row values from `first`, `padding` beyond n (+inf norms drop padding rows).
template <class T>
void load_row_values(const T* src, long first, long n, T padding, int count, T* dst) {
  for (int r = 0; r < count; ++r) dst[r] = first + r < n ? src[first + r] : padding;
}

int worker_count(int requested, long blocks, long pairs) {
  constexpr long PAIRS_PER_THREAD = 1L << 18;  // below this a thread costs more than it saves
  long useful = std::min<long>(blocks, std::max<long>(1, pairs / PAIRS_PER_THREAD));
  return static_cast<int>(std::max<long>(1, std::min<long>(requested, useful)));
}

template <class T>
int forward(const Problem<T>& p, int mode, int quarters, int threads, T* sums, T* row_sums) {
  const RowWeightsFn<T> weights = select_row_weights<T>(mode, quarters);
  if (weights == nullptr) return 1;
  const long blocks = (p.n + ROWS - 1) / ROWS;
  const long total = p.batch * blocks;
  std::atomic<long> next{0};
  auto worker = [&](int) {
    std::vector<T> q(ROWS * p.e), tile(ROWS * KEY_TILE), acc(ROWS * p.c);
    T q_sq[ROWS], r_sum[ROWS];
    for (long item = next.fetch_add(1); item < total; item = next.fetch_add(1)) {
      const long b = item / blocks, first = (item % blocks) * ROWS;
      const T offset = static_cast<T>(p.offset[b]);
      const T* kt = p.kt + b * p.e * p.m;
      const T* k_sq = p.k_sq + b * p.m;
      const T* v = p.v + b * p.m * p.c;
      load_rows(p.q + b * p.n * p.e, first, p.n, p.e, ROWS, q.data());
      load_row_values(p.q_sq + b * p.n, first, p.n, T(INFINITY), ROWS, q_sq);
      std::fill(acc.begin(), acc.end(), T(0));
      std::fill(r_sum, r_sum + ROWS, T(0));
      for (long j0 = 0; j0 < p.m; j0 += KEY_TILE) {
        const long nt = std::min(KEY_TILE, p.m - j0);
        tile_dots(q.data(), p.e, kt + j0, p.m, p.e, nt, tile.data(), KEY_TILE);
        for (int r = 0; r < ROWS; ++r) {
          T* row = tile.data() + r * KEY_TILE;
          weights(row, q_sq[r], k_sq + j0, nt, p.weights, offset, row);
          r_sum[r] += row_sum(row, nt);
        }
        tile_weighted_sum(tile.data(), KEY_TILE, 1, v + j0 * p.c, p.c, nt, p.c, acc.data(), p.c);
      }
      const double gain = p.gain[b];
      for (int r = 0; r < ROWS && first + r < p.n; ++r) {
        T* out = sums + (b * p.n + first + r) * p.c;
        for (long d = 0; d < p.c; ++d) out[d] = static_cast<T>(gain * acc[r * p.c + d]);
        row_sums[b * p.n + first + r] = static_cast<T>(gain * r_sum[r]);
      }
    }
  };
  return run_workers(worker_count(threads, total, p.batch * p.n * p.m), p.runtime, worker) ? 0 : 3;
}

// Gradients of S and R with respect to θ', φ', v. With T_ij = (∂L/∂S_i·v_j + ∂L/∂R_i)·dω'_ij/dd'²:
//   ∂L/∂θ'_i = 2 gain_b (θ'_i Σ_j T_ij − Σ_j T_ij φ'_j),
//   ∂L/∂φ'_j = 2 gain_b (φ'_j Σ_i T_ij − Σ_i T_ij θ'_i),
//   ∂L/∂v_j = gain_b Σ_i ω'_ij ∂L/∂S_i.
// One pass over panels of PANEL query rows: per key tile, the ω' and T tiles of the whole panel
// are formed block by block (the query-side sums accumulate per block), then the key-side sums
// take them over the panel at once. Each thread accumulates its own key-side sums; they are
// reduced at the end.
template <class T>
int backward(const Problem<T>& p, const T* grad_sums, const T* grad_row_sums, int mode, int quarters, int threads,
             T* grad_q, T* grad_k, T* grad_v) {
  const RowWeightsGradFn<T> weights = select_row_weights_grad<T>(mode, quarters);
  if (weights == nullptr) return 1;
  const long panels = (p.n + PANEL - 1) / PANEL;
  const long total = p.batch * panels;
  const int workers = worker_count(threads, total, p.batch * p.n * p.m);
  // Per worker and batch element: Σ_i T_ij θ'_i (M×E), Σ_i ω'_ij g_i (M×C), Σ_i T_ij (M).
  const long key_part = p.m * (p.e + p.c + 1);
  std::vector<T> key_sums(static_cast<size_t>(workers) * p.batch * key_part, T(0));
  std::atomic<long> next{0};
  auto worker = [&](int t) {
    std::vector<T> q(PANEL * p.e), g(PANEL * p.c), dots(ROWS * KEY_TILE), w(PANEL * KEY_TILE),
        gv(PANEL * KEY_TILE), acc(PANEL * p.e);
    T q_sq[PANEL], g_row[PANEL], t_sum[PANEL];
    T* mine = key_sums.data() + static_cast<size_t>(t) * p.batch * key_part;
    for (long item = next.fetch_add(1); item < total; item = next.fetch_add(1)) {
      const long b = item / panels, first = (item % panels) * PANEL;
      const T offset = static_cast<T>(p.offset[b]);
      const T* k = p.k + b * p.m * p.e;
      const T* kt = p.kt + b * p.e * p.m;
      const T* k_sq = p.k_sq + b * p.m;
      const T* vt = p.vt + b * p.c * p.m;
      T* tq = mine + b * key_part;
      T* wg = tq + p.m * p.e;
      T* t_col = wg + p.m * p.c;
      load_rows(p.q + b * p.n * p.e, first, p.n, p.e, PANEL, q.data());
      load_rows(grad_sums + b * p.n * p.c, first, p.n, p.c, PANEL, g.data());
      load_row_values(p.q_sq + b * p.n, first, p.n, T(INFINITY), PANEL, q_sq);
      load_row_values(grad_row_sums + b * p.n, first, p.n, T(0), PANEL, g_row);
      std::fill(acc.begin(), acc.end(), T(0));
      std::fill(t_sum, t_sum + PANEL, T(0));
      for (long j0 = 0; j0 < p.m; j0 += KEY_TILE) {
        const long nt = std::min(KEY_TILE, p.m - j0);
        for (int r0 = 0; r0 < PANEL; r0 += ROWS) {
          T* w_block = w.data() + r0 * KEY_TILE;
          T* t_block = gv.data() + r0 * KEY_TILE;
          tile_dots(q.data() + r0 * p.e, p.e, kt + j0, p.m, p.e, nt, dots.data(), KEY_TILE);
          tile_dots(g.data() + r0 * p.c, p.c, vt + j0, p.m, p.c, nt, t_block, KEY_TILE);
          for (int r = 0; r < ROWS; ++r) {
            weights(dots.data() + r * KEY_TILE, q_sq[r0 + r], k_sq + j0, nt, p.weights, offset, g_row[r0 + r],
                    w_block + r * KEY_TILE, t_block + r * KEY_TILE);
            t_sum[r0 + r] += row_sum(t_block + r * KEY_TILE, nt);
          }
          tile_weighted_sum(t_block, KEY_TILE, 1, k + j0 * p.e, p.e, nt, p.e, acc.data() + r0 * p.e, p.e);
        }
        for (int r = 0; r < PANEL; ++r) {
          for (long j = 0; j < nt; ++j) t_col[j0 + j] += gv[r * KEY_TILE + j];
        }
        for (long j = 0; j < nt; j += ROWS) {
          tile_weighted_sum(gv.data() + j, 1, KEY_TILE, q.data(), p.e, PANEL, p.e, tq + (j0 + j) * p.e, p.e);
          tile_weighted_sum(w.data() + j, 1, KEY_TILE, g.data(), p.c, PANEL, p.c, wg + (j0 + j) * p.c, p.c);
        }
      }
      const double gain2 = 2.0 * p.gain[b];
      for (int r = 0; r < PANEL && first + r < p.n; ++r) {
        T* out = grad_q + (b * p.n + first + r) * p.e;
        for (long d = 0; d < p.e; ++d) {
          out[d] = static_cast<T>(gain2 * (q[r * p.e + d] * t_sum[r] - acc[r * p.e + d]));
        }
      }
    }
  };
  if (!run_workers(workers, p.runtime, worker)) return 3;
  for (long b = 0; b < p.batch; ++b) {
    const T* k = p.k + b * p.m * p.e;
    for (long j = 0; j < p.m; ++j) {
      T t_col = 0;
      for (int t = 0; t < workers; ++t) t_col += key_sums[(t * p.batch + b) * key_part + p.m * (p.e + p.c) + j];
      T* out_k = grad_k + (b * p.m + j) * p.e;
      T* out_v = grad_v + (b * p.m + j) * p.c;
      for (long d = 0; d < p.e; ++d) out_k[d] = k[j * p.e + d] * t_col;
      std::fill(out_v, out_v + p.c, T(0));
      for (int t = 0; t < workers; ++t) {
        const T* part = key_sums.data() + (t * p.batch + b) * key_part;
        for (long d = 0; d < p.e; ++d) out_k[d] -= part[j * p.e + d];
        for (long d = 0; d < p.c; ++d) out_v[d] += part[p.m * p.e + j * p.c + d];
      }
      for (long d = 0; d < p.e; ++d) out_k[d] = static_cast<T>(2.0 * p.gain[b] * out_k[d]);
      for (long d = 0; d < p.c; ++d) out_v[d] = static_cast<T>(p.gain[b] * out_v[d]);
    }
  }
  return 0;
}

template <class T>
bool valid(const Problem<T>& p) {
  return p.batch >= 0 && p.n >= 0 && p.m > 0 && p.m % KEY_MULTIPLE == 0 && p.e > 0 && p.e % LANES == 0 &&
         p.c > 0 && p.c % LANES == 0;
}

template <class T>
Problem<T> make_problem(const T* q, const T* q_sq, const T* k, const T* kt, const T* k_sq, const T* v, const T* vt,
                        long batch, long n, long m, long e, long c, double half_p, double log_coef,
                        double zero_rtol, const double* gain, const double* offset, void* parallel,
                        void* thread_num) {
  Weights<T> w{static_cast<T>(zero_rtol), static_cast<T>(half_p), static_cast<T>(log_coef)};
  Runtime runtime{reinterpret_cast<void (*)(void (*)(void*), void*, unsigned, unsigned)>(parallel),
                  reinterpret_cast<int (*)(void)>(thread_num)};
  return Problem<T>{q, q_sq, k, kt, k_sq, v, vt, gain, offset, batch, n, m, e, c, w, runtime};
}

}  // namespace

// Entry points. Layouts (all contiguous; C', C padded to multiples of nlseg_pairwise_lanes(), M of
// nlseg_pairwise_key_multiple()): q (B,N,C'), q_sq (B,N), k (B,M,C'), kt (B,C',M), k_sq (B,M),
// v (B,M,C), vt (B,C,M); gain and offset (B,) float64. Forward writes sums (B,N,C) and row_sums
// (B,N); backward reads ∂L/∂S (B,N,C) and ∂L/∂R (B,N) and writes the gradients of q, k, v.
// mode (see Mode): 0 with quarters = 2p, 1, 2. parallel, thread_num: GOMP_parallel and
// omp_get_thread_num of PyTorch's OpenMP runtime, or null (std::thread). Returns 0, or 1 bad
// mode, 2 bad sizes, 3 out of memory.
extern "C" {

// Bumped whenever an entry point's signature changes; build.py refuses a library that differs.
int nlseg_pairwise_abi(void) { return 2; }

// Padding granularity of C' and C, and of M; the largest 2p of mode 0.
long nlseg_pairwise_lanes(void) { return LANES; }
long nlseg_pairwise_key_multiple(void) { return KEY_MULTIPLE; }
int nlseg_pairwise_max_quarters(void) { return MAX_QUARTERS; }

#define NLSEG_ENTRY_POINTS(T, SUFFIX)                                                                          \
  int nlseg_pairwise_forward_##SUFFIX(const T* q, const T* q_sq, const T* kt, const T* k_sq, const T* v,       \
                                      long batch, long n, long m, long e, long c, int mode, int quarters,      \
                                      double half_p, double log_coef, double zero_rtol, const double* gain,    \
                                      const double* offset, int threads, void* parallel, void* thread_num,     \
                                      T* sums, T* row_sums) {                                                  \
    const Problem<T> p = make_problem<T>(q, q_sq, nullptr, kt, k_sq, v, nullptr, batch, n, m, e, c, half_p,    \
                                         log_coef, zero_rtol, gain, offset, parallel, thread_num);            \
    if (!valid(p)) return 2;                                                                                   \
    try {                                                                                                      \
      return forward(p, mode, quarters, threads, sums, row_sums);                                              \
    } catch (...) { /* std::bad_alloc: no exception crosses the C ABI */                                       \
      return 3;                                                                                                \
    }                                                                                                          \
  }                                                                                                            \
  int nlseg_pairwise_backward_##SUFFIX(const T* q, const T* q_sq, const T* k, const T* kt, const T* k_sq,      \
                                       const T* v, const T* vt, const T* grad_sums, const T* grad_row_sums,    \
                                       long batch, long n, long m, long e, long c, int mode, int quarters,     \
                                       double half_p, double log_coef, double zero_rtol, const double* gain,   \
                                       const double* offset, int threads, void* parallel, void* thread_num,    \
                                       T* grad_q, T* grad_k, T* grad_v) {                                      \
    const Problem<T> p = make_problem<T>(q, q_sq, k, kt, k_sq, v, vt, batch, n, m, e, c, half_p, log_coef,     \
                                         zero_rtol, gain, offset, parallel, thread_num);                      \
    if (!valid(p)) return 2;                                                                                   \
    try {                                                                                                      \
      return backward(p, grad_sums, grad_row_sums, mode, quarters, threads, grad_q, grad_k, grad_v);           \
    } catch (...) {                                                                                            \
      return 3;                                                                                                \
    }                                                                                                          \
  }

NLSEG_ENTRY_POINTS(float, f32)
NLSEG_ENTRY_POINTS(double, f64)

#undef NLSEG_ENTRY_POINTS
}
