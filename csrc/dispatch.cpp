// Run-time SIMD dispatch: the best level the CPU (and OS) supports, capped by the environment
// variable SPARSE_OPS_SIMD=scalar|avx2|avx512 read at first use; set_simd_level() switches it
// later (tests run every level this way). The W8A8 engine (kDot*) is picked per level the
// same way: SPARSE_OPS_INT8_DOT=auto|plain|madd|vnni-emulated|vnni|amx-emulated|amx,
// set_int8_dot().
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels.h"
#include "panel.h"

namespace sparse_ops {

std::atomic<int> g_csr_spmv_loads{-1};
bool cpu_has_vbmi2() {
  __builtin_cpu_init();  // a static initializer may run before libgcc's own CPU detection
  return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2");
}
std::atomic<int> g_bitmap_vbmi{[] {
  const char* env = std::getenv("SPARSE_OPS_BITMAP_VBMI");
  if (env && std::strcmp(env, "0") == 0) return 0;
  return cpu_has_vbmi2() ? 1 : 0;
}()};
bool cpu_has_vbmi2_vnni() {
  return cpu_has_vbmi2() && __builtin_cpu_supports("avx512vnni");
}
std::atomic<int> g_bitmap_vnni{[] {
  const char* env = std::getenv("SPARSE_OPS_BITMAP_VNNI");
  if (env && std::strcmp(env, "0") == 0) return 0;
  return cpu_has_vbmi2_vnni() ? 1 : 0;
}()};
std::atomic<int> g_nm4_perm{[] {
  const char* env = std::getenv("SPARSE_OPS_NM4_PERM");
  return env && std::strcmp(env, "0") == 0 ? 0 : 1;
}()};
bool amx_runs() {
  static const bool ok = [] {
    if (!amx_built()) return false;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!((d >> 24) & 1u) || !((d >> 25) & 1u)) return false;  // AMX-TILE, AMX-INT8
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1u)) return false;  // OSXSAVE
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return false;  // XTILECFG, XTILEDATA enabled
    // Linux hands the tile data state to a process that asks (ARCH_REQ_XCOMP_PERM, feature 18)
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) return false;
    // the tiles' results against vpdpbusd's on small exact products (panel.cpp), once
    if (!__builtin_cpu_supports("avx512vnni")) return false;
    if (!w8a8_engines_agree(&amx::panel_i8_amx_rows, &avx512vnni::panel_i8_vnni_rows)) {
      std::fprintf(stderr,
                   "sparse_ops: the AMX-INT8 engine disagreed with vpdpbusd on its self-check; "
                   "W8A8 runs on vpdpbusd\n");
      return false;
    }
    return true;
  }();
  return ok;
}
int64_t g_stream_ahead = [] {
  const char* e = std::getenv("SPARSE_OPS_PREFETCH_BYTES");
  const long v = e ? std::strtol(e, nullptr, 10) : 4096;
  return static_cast<int64_t>(v >= 0 && v <= (1 << 20) ? v : 4096);
}();
int64_t g_shuffle_ahead = [] {
  const char* e = std::getenv("SPARSE_OPS_BITMAP_SHUFFLE_PREFETCH");
  __builtin_cpu_init();
  const bool on = e ? std::strcmp(e, "0") != 0 : __builtin_cpu_is("intel");
  return on ? g_stream_ahead : int64_t{0};
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

namespace {

// (by name: building another level's table would run its instructions)
bool is_level(const KernelTable& t, int level) { return std::strcmp(t.name, kLevels[level]) == 0; }

// -1 auto, else the kDot* engine asked for
int dot_index(const char* name, const KernelTable& t) {
  if (std::strcmp(name, "auto") == 0) return -1;
  const bool scalar = is_level(t, 0);
  if (std::strcmp(name, scalar ? "plain" : "madd") == 0) return kDotOwn;
  if (std::strcmp(name, "vnni-emulated") == 0) return kDotEmulated;
  if (std::strcmp(name, "vnni") == 0) return kDotVnni;
  if (std::strcmp(name, "amx-emulated") == 0) return kDotAmxEmulated;
  if (std::strcmp(name, "amx") == 0) return kDotAmx;
  return -2;
}

// Whether t's vpdpbusd engine can run on this CPU: VEX (avxvnni) at the AVX2 level, EVEX
// (avx512vnni on 256-bit vectors) at the AVX-512 level.
bool vnni_runs(const KernelTable& t) {
  if (!t.panel_i8[kDotVnni]) return false;
  __builtin_cpu_init();
  if (is_level(t, 2)) return __builtin_cpu_supports("avx512vnni");
  return __builtin_cpu_supports("avxvnni");
}

bool dot_available(const KernelTable& t, int d) {
  if (d == kDotVnni) return vnni_runs(t);
  // tdpbssd's BSR fallback (block heights not a multiple of 16) is vpdpbusd: AMX CPUs have it
  if (d == kDotAmx) return t.panel_i8[kDotAmx] && amx_runs() && vnni_runs(t);
  return t.panel_i8[d] != nullptr;
}

std::atomic<int>& dot_mode() {
  static std::atomic<int> m{[] {
    const char* e = std::getenv("SPARSE_OPS_INT8_DOT");
    if (!e) return -1;
    // names are those of the best level; an engine a level lacks falls back to its own
    const int d = dot_index(e, table_at(cpu_max_level()));
    return d >= -1 ? d : (std::strcmp(e, "plain") == 0 ? kDotOwn : -1);
  }()};
  return m;
}

// The name of engine d at t's level (the names dot_index reads).
const char* dot_name(const KernelTable& t, int d) {
  switch (d) {
    case kDotAmx:
      return "amx";
    case kDotAmxEmulated:
      return "amx-emulated";
    case kDotVnni:
      return "vnni";
    case kDotEmulated:
      return "vnni-emulated";
    default:
      return is_level(t, 0) ? "plain" : "madd";
  }
}

int dot_for(const KernelTable& t) {
  const int d = dot_mode().load(std::memory_order_relaxed);
  if (d >= 0 && dot_available(t, d)) return d;
  if (d < 0 && dot_available(t, kDotAmx)) return kDotAmx;
  if (d < 0 && vnni_runs(t)) return kDotVnni;
  return kDotOwn;
}

}  // namespace

PanelSpmmFn int8_dot_fn(const KernelTable& t) { return t.panel_i8[dot_for(t)]; }

const char* int8_dot_name() {
  const KernelTable& t = active_table();
  return dot_name(t, dot_for(t));
}

const char* set_int8_dot(const char* engine) {
  const KernelTable& t = active_table();
  const int d = dot_index(engine, t);
  if (d < -1 || (d >= 0 && !dot_available(t, d)))
    throw std::invalid_argument(std::string("engine: '") + engine +
                                "' is not an int8 dot engine of this CPU at the '" + t.name +
                                "' level (auto, or one of int8_dots())");
  dot_mode().store(d, std::memory_order_relaxed);
  return int8_dot_name();
}

bool int8_dots_agree(const char* one, const char* other) {
  const KernelTable& t = active_table();
  PanelSpmmFn f[2] = {nullptr, nullptr};
  const char* names[2] = {one, other};
  for (int j = 0; j < 2; ++j) {
    const int d = dot_index(names[j], t);
    if (d < 0 || !dot_available(t, d))
      throw std::invalid_argument(std::string("engine: '") + names[j] +
                                  "' is not an int8 dot engine of this CPU at the '" + t.name +
                                  "' level (one of int8_dots())");
    f[j] = t.panel_i8[d];
  }
  return w8a8_engines_agree(f[0], f[1]);
}

std::vector<std::string> int8_dots() {
  const KernelTable& t = active_table();
  std::vector<std::string> v;
  for (int d : {kDotOwn, kDotEmulated, kDotVnni, kDotAmxEmulated, kDotAmx})
    if (dot_available(t, d)) v.emplace_back(dot_name(t, d));
  return v;
}

}  // namespace sparse_ops
