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
// w_t·(softmax(z) − onehot(t)) spread back over the four taps. exp and log are common.h's exp2
// and log2 polynomials; sums over pixels in float64. Threads take whole samples (each writes only
// its own gradient), on PyTorch's OpenMP team.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "common.h"

namespace {

using namespace nlseg_cpu;

constexpr float LOG2E = 1.44269504088896341f;

struct Head {
  const float* logits;   // (B, h, w, C), channels last
  const uint8_t* target;  // (B, H, W)
  const float* weight;   // (C,) class weights, or null for ones
  const long* rows;      // (2, H): r0, r1
  const float* row_taps;  // (2, H): a0, a1
  const long* cols;      // (2, W): c0, c1
  const float* col_taps;  // (2, W): b0, b1
  long batch, classes, h, w, height, width;
  int ignore_index;
};

// One sample: its summed loss, its labels and its gradient; false if a label is not a class.
bool one_sample(const Head& p, long b, std::vector<float>& z, double* loss, uint8_t* labels, float* grad) {
  const long C = p.classes, row = p.w * C;
  const float* logits = p.logits + b * p.h * row;
  const uint8_t* target = p.target + b * p.height * p.width;
  labels += b * p.height * p.width;
  grad += b * p.h * row;
  std::fill(grad, grad + p.h * row, 0.0f);
  double total = 0.0;
  for (long i = 0; i < p.height; ++i) {
    const float a0 = p.row_taps[i], a1 = p.row_taps[p.height + i];
    const float* top = logits + p.rows[i] * row;
    const float* bottom = logits + p.rows[p.height + i] * row;
    float* grad_top = grad + p.rows[i] * row;
    float* grad_bottom = grad + p.rows[p.height + i] * row;
    for (long j = 0; j < p.width; ++j) {
      const float b0 = p.col_taps[j], b1 = p.col_taps[p.width + j];
      const long left = p.cols[j] * C, right = p.cols[p.width + j] * C;
      float* zz = z.data();
      for (long c = 0; c < C; ++c) {
        zz[c] = a0 * (b0 * top[left + c] + b1 * top[right + c]) + a1 * (b0 * bottom[left + c] + b1 * bottom[right + c]);
      }
      long arg = 0;  // the first maximum, or the first NaN, as torch.max
      for (long c = 1; c < C; ++c) arg = zz[arg] == zz[arg] && !(zz[c] <= zz[arg]) ? c : arg;
      const long pixel = i * p.width + j;
      labels[pixel] = static_cast<uint8_t>(arg);
      const int t = target[pixel];
      if (t == p.ignore_index) continue;
      if (t >= C) return false;
      const float top_value = zz[arg];
      float sum = 0.0f;
      for (long c = 0; c < C; ++c) {
        zz[c + C] = exp2_of((zz[c] - top_value) * LOG2E);
        sum += zz[c + C];
      }
      const float w_t = p.weight != nullptr ? p.weight[t] : 1.0f;
      total += static_cast<double>(w_t) * (static_cast<double>(top_value) + log2_of(sum) / LOG2E - zz[t]);
      const float scale = w_t / sum;
      float* g = zz + C;
      for (long c = 0; c < C; ++c) g[c] *= scale;
      g[t] -= w_t;
      const float k00 = a0 * b0, k01 = a0 * b1, k10 = a1 * b0, k11 = a1 * b1;
      for (long c = 0; c < C; ++c) {
        grad_top[left + c] += k00 * g[c];
        grad_top[right + c] += k01 * g[c];
        grad_bottom[left + c] += k10 * g[c];
        grad_bottom[right + c] += k11 * g[c];
      }
    }
  }
  loss[b] = total;
  return true;
}

}  // namespace

extern "C" {

// Bumped whenever the entry point's signature changes; build.py refuses a library that differs.
int nlseg_upsampled_ce_abi(void) { return 1; }

// logits (B, h, w, C) float32 channels last; target (B, H, W) uint8; weight (C,) or null; rows and
// cols (2, H) and (2, W) int64 source indices, row_taps and col_taps their float32 weights.
// Writes loss (B,) float64, labels (B, H, W) uint8 and grad (B, h, w, C): the gradient of the sum
// of the losses. parallel, thread_num: GOMP_parallel and omp_get_thread_num of PyTorch's OpenMP
// runtime, or null (std::thread). Returns 0, 2 bad sizes, 3 out of memory, 4 a label that is
// neither a class nor ignore_index.
int nlseg_upsampled_ce_f32(const float* logits, const uint8_t* target, const float* weight, const long* rows,
                           const float* row_taps, const long* cols, const float* col_taps, long batch, long classes,
                           long h, long w, long height, long width, int ignore_index, int threads, void* parallel,
                           void* thread_num, double* loss, uint8_t* labels, float* grad) {
  const Head p{logits, target, weight, rows, row_taps, cols, col_taps, batch, classes, h, w, height, width,
               ignore_index};
  if (batch < 0 || classes < 1 || classes > 256 || h < 1 || w < 1 || height < 1 || width < 1) return 2;
  const Runtime runtime{reinterpret_cast<void (*)(void (*)(void*), void*, unsigned, unsigned)>(parallel),
                        reinterpret_cast<int (*)(void)>(thread_num)};
  std::atomic<long> next{0};
  std::atomic<bool> bad_label{false};
  const int workers = static_cast<int>(std::max<long>(1, std::min<long>(threads, batch)));
  const bool ran = run_workers(workers, runtime, [&](int) {
    std::vector<float> z(2 * classes);  // logits, then exponentials and gradient, of one pixel
    for (long b = next++; b < batch; b = next++) {
      if (!one_sample(p, b, z, loss, labels, grad)) bad_label = true;
    }
  });
  if (!ran) return 3;
  return bad_label ? 4 : 0;
}
}
