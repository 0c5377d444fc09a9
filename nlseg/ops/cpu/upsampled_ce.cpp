// The training head of the real-time segmenter in one pass over the label grid: the bilinear
// upsampling of the coarse class logits to the labels' size, the class-weighted softmax
// cross-entropy summed over the labelled pixels (ignore_index skipped), the arg-max label of every
// pixel (the first maximum, for the running metrics) and the gradient of the summed loss with
// respect to the coarse logits. The full-resolution logits, their softmax and its gradient are
// never stored: that upsampling, its backward and the log-softmax over the full grid were about
// half of a CPU training step (benchmarks/RESULTS.md). nlseg/ops/cpu/cross_entropy.py prepares the
// inputs, owns the autograd and is tested against F.interpolate + F.cross_entropy in float64.
//
// Upsampling, with the two taps of every output row i and column j given by the caller (read off
// F.interpolate itself, so they are PyTorch's bilinear weights, align_corners=False):
//
//     z[i, j] = a0[i]·(b0[j]·L[r0[i], c0[j]] + b1[j]·L[r0[i], c1[j]])
//             + a1[i]·(b0[j]·L[r1[i], c0[j]] + b1[j]·L[r1[i], c1[j]])
//
// Per labelled pixel with label t and class weight w_t: loss w_t·(logsumexp(z) − z_t), gradient
// w_t·(softmax(z) − onehot(t)) spread back over the four taps. The classes are padded to whole
// 32-byte vectors; exp is common.h's exp2 polynomial on vectors, log its log2; sums over pixels in
// float64. A pixel with a NaN logit takes a scalar path whose arg-max is the first NaN, as torch.max.
// Threads take whole samples (each writes only its own gradient), on PyTorch's OpenMP team.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "common.h"

namespace {

using namespace nlseg_cpu;
using V = Simd<float>;
using vec = V::vec;
using ivec = int32_t __attribute__((vector_size(32)));

constexpr float LOG2E = 1.44269504088896341f;
constexpr long LANES = V::width;  // channels arrive padded to a multiple of this
constexpr long MAX_VECTORS = 256 / LANES;

struct Head {
  const float* logits;   // (B, h, w, CP), channels last, CP = C padded to a multiple of LANES
  const uint8_t* target;  // (B, H, W)
  const float* weight;   // (C,) class weights, or null for ones
  const long* rows;      // (2, H): r0, r1
  const float* row_taps;  // (2, H): a0, a1
  const long* cols;      // (2, W): c0, c1
  const float* col_taps;  // (2, W): b0, b1
  long batch, classes, padded, h, w, height, width;
  int ignore_index;
};

// 2^a for a vector with no NaN, as common.h's exp2_of: 0 below 2^-125.5, +inf from 2^128.
inline vec exp2_vec(vec a) {
  vec c = a > -126.0f ? a : V::splat(-126.0f);
  c = c < 128.0f ? c : V::splat(128.0f);
  const vec shifted = c + 0.5f;
  const vec truncated = __builtin_convertvector(__builtin_convertvector(shifted, ivec), vec);
  const vec whole = truncated > shifted ? truncated - 1.0f : truncated;  // floor
  const vec f = c - whole;
  vec p = V::splat(1.535336188319500e-4f);
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  const ivec bits = (__builtin_convertvector(whole, ivec) + 126) << 23;  // 2^(k−1); 0 at k = −126
  vec half_scale;
  std::memcpy(&half_scale, &bits, sizeof half_scale);
  return ((1.0f + f * p) * 2.0f) * half_scale;
}

// One pixel's loss and gradient (g, padded) in plain scalar code: the path of pixels with a NaN logit,
// whose arg-max is the first NaN (as torch.max) and whose loss is NaN.
double scalar_pixel(const float* z, long classes, long padded, int t, float w_t, float* g, long* arg) {
  std::fill(g + classes, g + padded, 0.0f);
  long best = 0;
  for (long c = 1; c < classes; ++c) best = z[best] == z[best] && !(z[c] <= z[best]) ? c : best;
  *arg = best;
  if (t < 0) return 0.0;
  const float top = z[best];
  float sum = 0.0f;
  for (long c = 0; c < classes; ++c) sum += (g[c] = exp2_of((z[c] - top) * LOG2E));
  for (long c = 0; c < classes; ++c) g[c] *= w_t / sum;
  g[t] -= w_t;
  return static_cast<double>(w_t) * (static_cast<double>(top) + log2_of(sum) / LOG2E - z[t]);
}

// One sample: its summed loss, its labels and its gradient; false if a label is not a class.
bool one_sample(const Head& p, long b, double* loss, uint8_t* labels, float* grad) {
  const long C = p.classes, CP = p.padded, NV = CP / LANES, row = p.w * CP;
  const float* logits = p.logits + b * p.h * row;
  const uint8_t* target = p.target + b * p.height * p.width;
  labels += b * p.height * p.width;
  grad += b * p.h * row;
  std::fill(grad, grad + p.h * row, 0.0f);
  vec lane_index;
  for (int k = 0; k < LANES; ++k) lane_index[k] = static_cast<float>(k);
  alignas(32) float z[MAX_VECTORS * LANES];
  alignas(32) float g[MAX_VECTORS * LANES];
  double total = 0.0;
  for (long i = 0; i < p.height; ++i) {
    const float a0 = p.row_taps[i], a1 = p.row_taps[p.height + i];
    const float* top = logits + p.rows[i] * row;
    const float* bottom = logits + p.rows[p.height + i] * row;
    float* grad_top = grad + p.rows[i] * row;
    float* grad_bottom = grad + p.rows[p.height + i] * row;
    for (long j = 0; j < p.width; ++j) {
      const float b0 = p.col_taps[j], b1 = p.col_taps[p.width + j];
      const long left = p.cols[j] * CP, right = p.cols[p.width + j] * CP;
      vec top_value = V::splat(-INFINITY), nan = V::splat(0.0f);
      for (long v = 0; v < NV; ++v) {
        const long o = v * LANES;
        vec zv = a0 * (b0 * V::load(top + left + o) + b1 * V::load(top + right + o)) +
                 a1 * (b0 * V::load(bottom + left + o) + b1 * V::load(bottom + right + o));
        zv = lane_index + static_cast<float>(o) < static_cast<float>(C) ? zv : V::splat(-INFINITY);  // padding
        V::store(z + o, zv);
        nan = zv != zv ? V::splat(1.0f) : nan;
        top_value = top_value > zv ? top_value : zv;
      }
      const long pixel = i * p.width + j;
      const int label = target[pixel];
      if (label != p.ignore_index && label >= C) return false;
      const int t = label == p.ignore_index ? -1 : label;
      const float w_t = t < 0 ? 0.0f : (p.weight != nullptr ? p.weight[t] : 1.0f);
      float any_nan = 0.0f, m = top_value[0];
      for (int k = 0; k < LANES; ++k) {
        any_nan += nan[k];
        m = m > top_value[k] ? m : top_value[k];
      }
      long arg = 0;
      if (any_nan != 0.0f) {
        total += scalar_pixel(z, C, CP, t, w_t, g, &arg);
      } else {
        while (z[arg] != m) ++arg;  // the first maximum
        if (t >= 0) {
          vec sum = V::splat(0.0f);
          const vec top_splat = V::splat(m);
          for (long v = 0; v < NV; ++v) {
            const vec e = exp2_vec((V::load(z + v * LANES) - top_splat) * LOG2E);  // exactly 0 at the maximum
            V::store(g + v * LANES, e);
            sum += e;
          }
          float s = 0.0f;
          for (int k = 0; k < LANES; ++k) s += sum[k];
          const vec scale = V::splat(w_t / s);
          for (long v = 0; v < NV; ++v) V::store(g + v * LANES, V::load(g + v * LANES) * scale);
          g[t] -= w_t;
          total += static_cast<double>(w_t) * (static_cast<double>(m) + log2_of(s) / LOG2E - z[t]);
        }
      }
      labels[pixel] = static_cast<uint8_t>(arg);
      if (t < 0) continue;
      const vec k00 = V::splat(a0 * b0), k01 = V::splat(a0 * b1), k10 = V::splat(a1 * b0), k11 = V::splat(a1 * b1);
      for (long v = 0; v < NV; ++v) {
        const long o = v * LANES;
        const vec gv = V::load(g + o);
        V::store(grad_top + left + o, V::load(grad_top + left + o) + k00 * gv);
        V::store(grad_top + right + o, V::load(grad_top + right + o) + k01 * gv);
        V::store(grad_bottom + left + o, V::load(grad_bottom + left + o) + k10 * gv);
        V::store(grad_bottom + right + o, V::load(grad_bottom + right + o) + k11 * gv);
      }
    }
  }
  loss[b] = total;
  return true;
}

}  // namespace

extern "C" {

// Bumped whenever the entry point's signature changes; build.py refuses a library that differs.
int nlseg_upsampled_ce_abi(void) { return 2; }

// Channels of the logits and the gradient are padded to a multiple of this (the lanes of a vector).
long nlseg_upsampled_ce_lanes(void) { return LANES; }

// logits (B, h, w, CP) float32 channels last, CP = C padded to a multiple of nlseg_upsampled_ce_lanes()
// (the padding's values are not read); target (B, H, W) uint8; weight (C,) or null; rows and cols
// (2, H) and (2, W) int64 source indices, row_taps and col_taps their float32 weights. Writes loss
// (B,) float64, labels (B, H, W) uint8 and grad (B, h, w, CP): the gradient of the sum of the losses
// (0 in the padding). parallel, thread_num: GOMP_parallel and omp_get_thread_num of PyTorch's OpenMP
// runtime, or null (std::thread). Returns 0, 2 bad sizes, 3 out of memory, 4 a label that is
// neither a class nor ignore_index.
int nlseg_upsampled_ce_f32(const float* logits, const uint8_t* target, const float* weight, const long* rows,
                           const float* row_taps, const long* cols, const float* col_taps, long batch, long classes,
                           long padded, long h, long w, long height, long width, int ignore_index, int threads,
                           void* parallel, void* thread_num, double* loss, uint8_t* labels, float* grad) {
  const Head p{logits, target, weight, rows, row_taps, cols, col_taps, batch, classes, padded, h, w, height, width,
               ignore_index};
  if (batch < 0 || classes < 1 || classes > 256 || padded < classes || padded % LANES != 0 ||
      padded > MAX_VECTORS * LANES || h < 1 || w < 1 || height < 1 || width < 1) {
    return 2;
  }
  const Runtime runtime{reinterpret_cast<void (*)(void (*)(void*), void*, unsigned, unsigned)>(parallel),
                        reinterpret_cast<int (*)(void)>(thread_num)};
  std::atomic<long> next{0};
  std::atomic<bool> bad_label{false};
  const int workers = static_cast<int>(std::max<long>(1, std::min<long>(threads, batch)));
  const bool ran = run_workers(workers, runtime, [&](int) {
    for (long b = next++; b < batch; b = next++) {
      if (!one_sample(p, b, loss, labels, grad)) bad_label = true;
    }
  });
  if (!ran) return 3;
  return bad_label ? 4 : 0;
}
}
