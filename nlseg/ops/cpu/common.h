// What the CPU kernels of nlseg/ops/cpu share: 32-byte vectors, float32 log2 and exp2 as
// polynomials the compiler vectorises, and running workers on PyTorch's OpenMP team. Included by
// pairwise_cpu.cpp and upsampled_ce.cpp; nlseg/ops/cpu/build.py hashes it with each source.

#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace nlseg_cpu {

template <class T>
struct Simd {
  typedef T vec __attribute__((vector_size(32)));
  static constexpr int width = 32 / sizeof(T);
  static vec load(const T* p) {
    vec x;
    std::memcpy(&x, p, sizeof x);
    return x;
  }
  static void store(T* p, vec x) { std::memcpy(p, &x, sizeof x); }
  static vec splat(T x) { return x - vec{}; }  // x − 0 is x exactly (−0 too): one broadcast
};

// ---------------------------------------------------------------- log2 and exp2 ----------

inline float bits_to_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

inline int32_t float_to_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}

// log2 x for 0 < x < 2^104 (subnormals included; the kernel's d'² are below 16·C'); NaN stays
// NaN. x·2^23 makes subnormals normal; subtracting the bits of √½ splits it branch-free into
// 2^e·m with m in [√½, √2); Cephes logf's polynomial gives ln m to about 2 ulp.
inline float log2_of(float x) {
  const int32_t bits = float_to_bits(x * 8388608.0f) - 0x3f3504f3;  // 2^23; the bits of √½
  const float exponent = static_cast<float>((bits >> 23) - 23);
  const float f = bits_to_float((bits & 0x007fffff) + 0x3f3504f3) - 1.0f;
  const float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  const float ln = f + (f * z * y - 0.5f * z);
  return ln * 1.44269504088896341f + exponent + (x - x);
}

// 2^a: 0 below 2^-125.5 (no subnormal results), +inf from 2^128; NaN stays NaN. Cephes exp2f's
// polynomial on [−½, ½], about 2 ulp, times 2·2^(k−1) for the nearest integer k, the power of
// two built in the exponent bits (k − 1 >= −126 for a normal number, and 2^127·2 overflows).
inline float exp2_of(float a) {
  float c = a > -126.0f ? a : -126.0f;
  c = c < 128.0f ? c : 128.0f;
  const float whole = std::floor(c + 0.5f);
  const float f = c - whole;
  float p = 1.535336188319500e-4f;
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  const float half_scale = bits_to_float((static_cast<int32_t>(whole) + 126) << 23);  // 2^(k−1); 0 at k = −126
  return ((1.0f + f * p) * 2.0f) * half_scale + (a - a);
}

inline double log2_of(double x) { return std::log2(x); }
inline double exp2_of(double a) { return std::exp2(a); }

// The OpenMP runtime PyTorch runs its parallel loops on, found by the caller: its GOMP_parallel and
// omp_get_thread_num (the GNU OpenMP ABI, which LLVM's and Intel's runtimes provide too), or nulls.
struct Runtime {
  void (*parallel)(void (*)(void*), void*, unsigned, unsigned);
  int (*thread_num)(void);
};

// Runs worker(t) for t < threads: on the OpenMP runtime's team when there is one (PyTorch's own
// threads, which spin-wait for work after each of its parallel loops: no threads are added next
// to them), else on std::threads (t = 0 on the caller's; one that cannot
// start leaves its share to the others, which take work items from a shared counter). Returns
// false if a worker threw (out of memory): exceptions must not leave a thread.
template <class Fn>
bool run_workers(int threads, const Runtime& runtime, Fn&& worker) {
  std::atomic<bool> failed{false};
  auto guarded = [&](int t) {
    try {
      worker(t);
    } catch (...) {
      failed = true;
    }
  };
  if (threads > 1 && runtime.parallel != nullptr && runtime.thread_num != nullptr) {
    struct Team {
      decltype(guarded)* body;
      int (*thread_num)(void);
    } team{&guarded, runtime.thread_num};
    runtime.parallel([](void* raw) {
      auto* t = static_cast<Team*>(raw);
      (*t->body)(t->thread_num());
    }, &team, static_cast<unsigned>(threads), 0);
    return !failed;
  }
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(guarded, t);
    } catch (...) {
      break;
    }
  }
  guarded(0);
  for (auto& thread : pool) thread.join();
  return !failed;
}

}  // namespace nlseg_cpu
