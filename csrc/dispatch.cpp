// Run-time SIMD dispatch: the best level the CPU (and OS) supports, capped by the environment
// variable SPARSE_OPS_SIMD=scalar|avx2|avx512 read at first use; set_simd_level() switches it
// later (tests run every level this way).
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels.h"

namespace sparse_ops {

std::atomic<int> g_csr_spmv_loads{-1};
int64_t g_stream_ahead = [] {
  const char* e = std::getenv("SPARSE_OPS_PREFETCH_BYTES");
  const long v = e ? std::strtol(e, nullptr, 10) : 4096;
  return static_cast<int64_t>(v >= 0 && v <= (1 << 20) ? v : 4096);
}();

namespace {

const char* const kLevels[] = {"scalar", "avx2", "avx512"};

int cpu_max_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2"))
    return 1;
  return 0;
}

int level_index(const char* name) {
  for (int i = 0; i < 3; ++i)
    if (std::strcmp(name, kLevels[i]) == 0) return i;
  return -1;
}

const KernelTable& table_at(int level) {
  switch (level) {
    case 2:
      return avx512::table();
    case 1:
      return avx2::table();
    default:
      return scalar::table();
  }
}

int initial_level() {
  int level = cpu_max_level();
  if (const char* env = std::getenv("SPARSE_OPS_SIMD")) {
    const int want = level_index(env);
    if (want >= 0 && want < level) level = want;  // only ever lowers the level
  }
  return level;
}

std::atomic<const KernelTable*>& current() {
  static std::atomic<const KernelTable*> t{&table_at(initial_level())};
  return t;
}

}  // namespace

const KernelTable& active_table() { return *current().load(std::memory_order_acquire); }

const char* set_simd_level(const char* level) {
  const int want = level_index(level);
  if (want < 0)
    throw std::invalid_argument(std::string("level: unknown SIMD level '") + level +
                                "' (scalar, avx2, avx512)");
  if (want > cpu_max_level())
    throw std::invalid_argument(std::string("level: this CPU does not support '") + level + "'");
  current().store(&table_at(want), std::memory_order_release);
  return active_table().name;
}

const char* const* supported_levels(int* count) {
  *count = cpu_max_level() + 1;
  return kLevels;
}

}  // namespace sparse_ops
