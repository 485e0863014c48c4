// The kernel table: argument structs and function pointers of every compute kernel, one table
// per SIMD level (isa_scalar.cpp, isa_avx2.cpp, isa_avx512.cpp), picked at run time by
// dispatch.cpp. The drivers (csr.cpp, bsr.cpp, nm.cpp, bitmap.cpp) check the structure before
// or while calling them; the CSR kernels and the bitmap SpMV check indices themselves.
// `stored`: the values as stored (value_types.h); the N == 1 paths read them in their own
// dtype (widened in registers), the wider paths read `val`, a row chunk widened to T.
// Kernels work on a range of rows and a range of output columns [n0, n1) so that the entry
// points can split the work among threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "value_types.h"

namespace sparse_ops {

// The dense operand x of an SpMM may be a packed copy of a column tile of the caller's x:
// element (k, c) of the caller's x, for c in the tile being computed, is x[k * ldx + c - xc0].
// Unpacked: ldx = N, xc0 = 0.
template <class T, class I>
struct CsrSpmmArgs {  // out (M, N) = S @ x, x (K, N)
  const int32_t* crow;
  const I* col;
  const T* val;
  const T* x;
  T* out;
  int64_t M, K, N;
  int64_t ldx, xc0;
  Values stored{};  // the values as stored (N == 1 paths)
  // If set (N > 1 only): value of nonzero p is val[vperm[p]], e.g. S^T's structure over S's
  // values in S's order, so a transposed product needs no permuted copy of the values.
  const int32_t* vperm = nullptr;
};

template <class T, class I>
struct CsrSddmmArgs {  // out[p] = <a[i], b[col[p]]>, a (M, N), b (K, N) (packable like x)
  const int32_t* crow;
  const I* col;
  const T* a;
  const T* b;
  T* out;
  int64_t M, K, N;
  int64_t ldb, bc0;
};

template <class T>
struct BsrSpmmArgs {  // out (Mb*R, N) = S @ x, x (Kb*C, N), val (nnzb, R, C)
  const int32_t* crow;
  const int32_t* col;
  const T* val;
  const T* x;
  T* out;
  int64_t Mb, Kb, R, C, N;
  int64_t ldx, xc0;
  Values stored{};
  // Non-null (N > 1, float values): block p is the transpose of stored block perm[p], which
  // is (C, R) row-major: the product of S^T on its cached transposed structure, no copy.
  const int32_t* perm = nullptr;
};

template <class T>
struct BsrSddmmArgs {  // out (nnzb, R, C), a (Mb*R, N), b (Kb*C, N)
  const int32_t* crow;
  const int32_t* col;
  const T* a;
  const T* b;
  T* out;
  int64_t Mb, Kb, R, C, N;
};

// N:M, one struct for the three products. S is (M, K) with G groups of m columns per row,
// n slots per group, b bits per position; gbase[t] = (t / n) * m for slot t in [0, G*n)
// (padded with zeros to G*n + 16 entries so vector loads never run past it).
//   nm_spmm:   x (K, N),  out (M, N)
//   nm_spmm_t: x = d (M, N), out (K, N) (accumulated into; the entry point zeroes it)
//   nm_sddmm:  x = a (M, N), y = b (K, N), out (M, G*n)
template <class T>
struct NmArgs {
  const T* val;
  const uint8_t* meta;
  const int32_t* gbase;
  const T* x;
  const T* y;
  T* out;
  int64_t M, K, N, G, n, m, bits, meta_stride;
  int64_t ldx, xc0;  // nm_spmm's x, nm_sddmm's y (b) may be packed tiles; nm_spmm_t's d
                     // is read in place with its row stride
  Values stored{};
  uint64_t call = 0;  // nonzero: one tag per call (per-thread operands built once a call)
  // nm_spmm_grouped at N == 1 (int8 values with group scales): the weight of slot t of row i is
  // its value times gscale[i * gs_ld + column / gsize], gsize a multiple of m; null: none.
  const float* gscale = nullptr;
  int64_t gs_ld = 0, gsize = 0;
  // x is a bfloat16 or float16 x widened (the integer kernel may take it), and the call's
  // scratch tag (next_call_tag: one x per call and thread)
  bool x_narrow = false;
  uint64_t call_tag = 0;
};

// Bitmap, one struct for the three products. S is (M, K): row i's stored positions are the
// set bits of its rb bytes at bits + i * rb (rb = 8 * ceil(K / 64): whole little-endian 64-bit
// words, bit j of the row is column j), its values val[row_off[i] .. row_off[i + 1]).
//   bitmap_spmv:   x (K,) unit stride, out (M,)
//   bitmap_spmm_t: x = d (M, N) with row stride ldx, out (K, N) (accumulated into)
template <class T>
struct BitmapArgs {
  const int32_t* row_off;
  const uint8_t* bits;
  const T* val;
  const T* x;
  T* out;
  int64_t M, K, N, nnz, rb;
  int64_t ldx;
  Values stored{};  // the values as stored (SpMV only)
  // bitmap_spmm_grouped at N == 1 (int8 values, group scales): the weight of column j of row
  // i is its value times gscale[i * gs_ld + j / gsize]; null: none.
  const float* gscale = nullptr;
  int64_t gs_ld = 0, gsize = 0;
  // x is a bfloat16 or float16 x widened (the integer kernel may take it), and the call's
  // scratch tag (next_call_tag: one x per call and thread)
  bool x_narrow = false;
  uint64_t call_tag = 0;
};

// The dense-panel SpMM (panel_kernels.h: "load sparse, compute dense") of a bitmap or N:M S,
// float compute: out (M, N) = S @ x, x (K, N) with row stride ldx, values as stored.
// bsr: W8A8 only (its blocks are dense already: no panel, the int8 micro-kernel runs on them).
enum class PanelLayout : int { bitmap = 0, nm = 1, bsr = 2 };
// Rows of S expanded together into one panel.
constexpr int64_t kPanelRows = 48;
// KC: a multiple of 64 (whole bitmap words) and of m (whole N:M groups), at least 256.
inline int64_t panel_kc(int64_t m) {
  int64_t a = 64, b = m > 0 ? m : 1;
  while (b) {
    const int64_t t = a % b;
    a = b;
    b = t;
  }
  int64_t kc = 64 / a * (m > 0 ? m : 1);
  while (kc < 256) kc *= 2;
  return kc;
}

struct PanelArgs {
  PanelLayout layout;
  const int32_t* off = nullptr;  // bitmap: row offsets (M + 1) and rows of rb bytes
  const uint8_t* bits = nullptr;
  int64_t rb = 0, nnz = 0;
  const uint8_t* meta = nullptr;  // N:M: metadata rows of mbytes, G groups, b bits a slot
  int64_t n = 0, m = 0, b = 0, G = 0, mbytes = 0;
  const int32_t* crow = nullptr;  // BSR (W8A8): block row pointers, block columns, R x C
  const int32_t* bcol = nullptr;  // blocks (values (count, R, C), C a multiple of 4)
  int64_t R = 0, C = 0;
  Values stored{};
  const float* x = nullptr;
  float* out = nullptr;
  int64_t M = 0, K = 0, N = 0, ldx = 0;
  // W8A8 (panel_i8_kernels.h) when xq4 is set: int8 values, x quantized per token and packed
  // in quads (xq4[q * ldq + 4 t + j] = x[t, 4 q + j]; zeros past K up to a multiple of 64
  // and past N up to ldq / 4, a multiple of 16),
  // xscale (N,) the tokens' scales, wscale the weight's (row i, column k: wscale[i * ws_ld +
  // k / wgroup], wgroup a multiple of 4 or >= K); out (M, N) float32, x unused.
  // Float panels with wscale set (int8 values with group scales: bitmap_spmm_grouped,
  // nm_spmm_grouped): each expanded value times wscale[i * ws_ld + k / wgroup].
  const int8_t* xq4 = nullptr;
  int64_t ldq = 0;
  const float* xscale = nullptr;
  const float* wscale = nullptr;
  int64_t ws_ld = 0, wgroup = 0;
};
// Rows [r0, r1) of out, every column; the chunk's structure checked before.
using PanelSpmmFn = void (*)(const PanelArgs&, int64_t r0, int64_t r1);

// The integer dot products of the W8A8 micro-kernel (panel_i8_kernels.h):
//   kDotOwn       the level's own: AVX2 vpmaddubsw + vpmaddwd (|w| times x with w's sign),
//                 the scalar level's plain loops;
//   kDotEmulated  the VNNI algorithm (x + 128 unsigned, minus 128 * the run's weight sum)
//                 with vpdpbusd emulated exactly by AVX2 instructions: a testing aid, so that
//                 the VNNI engine's every step but the one instruction runs on any AVX2 CPU;
//   kDotVnni      vpdpbusd: AVX-VNNI (VEX, isa_avxvnni.cpp) at the AVX2 level,
//                 AVX512-VNNI (EVEX, isa_avx512vnni.cpp) at the AVX-512 level;
//   kDotAmxEmulated  the AMX-INT8 engine (panel_amx_kernels.h) with its tile instructions
//                 performed by plain loops: a testing aid (AVX-512 level);
//   kDotAmx       tdpbssd on AMX tiles (isa_amx.cpp), AVX-512 level, where the CPU has
//                 AMX-INT8 and the OS grants the tile state (amx_runs).
constexpr int kDotOwn = 0, kDotEmulated = 1, kDotVnni = 2, kDotAmxEmulated = 3, kDotAmx = 4;
constexpr int kDotEngines = 5;

// The values array of `a` as storage type TV: `val` when TV is the compute type, else the
// stored values.
template <class TV, class A>
inline const TV* values_of(const A& a) {
  if constexpr (std::is_same_v<TV, std::remove_const_t<std::remove_pointer_t<decltype(a.val)>>>)
    return a.val;
  else
    return static_cast<const TV*>(a.stored.data);
}

// The CSR kernels check every column index against K as they go (never dereferencing a bad
// one) and return false if they met one.
template <class T, class I>
using CsrSpmmFn = bool (*)(const CsrSpmmArgs<T, I>&, int64_t r0, int64_t r1, int64_t n0,
                           int64_t n1);
// accumulate: add to out instead of overwriting (column tiles after the first).
template <class T, class I>
using CsrSddmmFn = bool (*)(const CsrSddmmArgs<T, I>&, int64_t r0, int64_t r1, int64_t n0,
                            int64_t n1, bool accumulate);
template <class T>
using BsrSpmmFn = void (*)(const BsrSpmmArgs<T>&, int64_t br0, int64_t br1, int64_t n0,
                           int64_t n1);
template <class T>
using BsrSddmmFn = void (*)(const BsrSddmmArgs<T>&, int64_t br0, int64_t br1, int64_t n0,
                            int64_t n1, bool accumulate);
template <class T>
using NmSpmmFn = void (*)(const NmArgs<T>&, int64_t r0, int64_t r1, int64_t n0, int64_t n1);
// Adds rows [r0, r1) of S^T @ d, columns [n0, n1), into out (K x N, row stride N).
template <class T>
using NmSpmmTFn = void (*)(const NmArgs<T>&, T* out, int64_t r0, int64_t r1, int64_t n0,
                           int64_t n1);
template <class T>
using NmSddmmFn = void (*)(const NmArgs<T>&, int64_t r0, int64_t r1, int64_t n0, int64_t n1,
                           bool accumulate);

// Bitmap SpMV of rows [r0, r1), guarded: whatever the bitmap and offsets hold (the entry
// point checked only that the offsets run from 0 to nnz without decreasing), it reads no value
// past nnz and no x past K. Returns the first row whose popcount is not its span of values or
// that sets a bit past K (its output is then unspecified), else -1.
template <class T>
using BitmapSpmvFn = int64_t (*)(const BitmapArgs<T>&, int64_t r0, int64_t r1);
// Adds the rows [64 w0, 64 w1) of S^T @ d (S's columns in 64-bit words [w0, w1), every row of
// S), output columns [n0, n1), into out (K x N, row stride N).
template <class T>
using BitmapSpmmTFn = void (*)(const BitmapArgs<T>&, T* out, int64_t w0, int64_t w1, int64_t n0,
                               int64_t n1);
// The column of each stored position of rows [r0, r1), in order, into cols (CSR column
// indices of those rows); may write up to 16 entries past the last one.
template <class I>
using BitmapDecodeFn = void (*)(const uint8_t* bits, int64_t rb, int64_t r0, int64_t r1, I* cols);
// The first row in [r0, r1) whose popcount differs from off[i + 1] - off[i] or that sets a
// bit past K, else -1: the check a chunk passes before it is decoded or computed.
using BitmapCheckFn = int64_t (*)(const uint8_t* bits, int64_t rb, int64_t K, const int32_t* off,
                                  int64_t r0, int64_t r1);

// Adds S^T @ d (rows [r0, r1) of S, columns [n0, n1)) into out (K x N, row stride N).
template <class T, class I>
using CsrSpmmTFn = bool (*)(const CsrSpmmArgs<T, I>&, T* out, int64_t r0, int64_t r1,
                            int64_t n0, int64_t n1);

template <class T, class I>
struct CsrFns {
  CsrSpmmFn<T, I> spmm;
  CsrSddmmFn<T, I> sddmm;
  CsrSpmmTFn<T, I> spmm_t;
};

template <class T>
struct TypedKernels {
  CsrFns<T, int16_t> csr16;
  CsrFns<T, int32_t> csr32;
  BsrSpmmFn<T> bsr_spmm;
  BsrSddmmFn<T> bsr_sddmm;
  NmSpmmFn<T> nm_spmm;
  NmSpmmTFn<T> nm_spmm_t;
  NmSddmmFn<T> nm_sddmm;
  BitmapSpmvFn<T> bitmap_spmv;
  BitmapSpmmTFn<T> bitmap_spmm_t;
};

struct KernelTable {
  const char* name;  // "scalar", "avx2", "avx512"
  TypedKernels<float> f32;
  TypedKernels<double> f64;
  // First position p in [0, n) with v[p] outside [0, hi), or -1.
  int64_t (*first_bad_i16)(const int16_t* v, int64_t n, int64_t hi);
  int64_t (*first_bad_i32)(const int32_t* v, int64_t n, int64_t hi);
  // dst[i] = float(src[offset + i]) for i in [0, n): reduced-precision values of a row chunk
  // widened into L2-resident scratch just before the chunk is computed.
  void (*widen)(Values src, int64_t offset, float* dst, int64_t n);
  // out[p] = q[p] * s[r] over the runs r in [r0, r1) (run r = [off[r], off[r + 1])), as
  // float32 or bfloat16 bits (dt): torch.ops.sparse_ops.dequant_runs (dequant.cpp).
  void (*dequant)(const int8_t* q, const float* s, const int32_t* off, int64_t r0, int64_t r1,
                  DT dt, void* out);
  BitmapDecodeFn<int16_t> bitmap_decode16;
  BitmapDecodeFn<int32_t> bitmap_decode32;
  BitmapCheckFn bitmap_check;
  PanelSpmmFn panel_spmm;  // float panels
  // W8A8 on int8 panels, one entry per kDot* engine (nullptr where the level has none; the
  // kDotVnni and kDotAmx ones run only where the CPU has the instructions: int8_dot_fn checks).
  PanelSpmmFn panel_i8[kDotEngines];
};

namespace scalar {
const KernelTable& table();
}
namespace avx2 {
const KernelTable& table();
}
namespace avx512 {
const KernelTable& table();
}
namespace avxvnni {
void panel_i8_vnni_rows(const PanelArgs& a, int64_t r0, int64_t r1);
}
namespace avx512vnni {
void panel_i8_vnni_rows(const PanelArgs& a, int64_t r0, int64_t r1);
}
namespace amx {
void panel_i8_amx_rows(const PanelArgs& a, int64_t r0, int64_t r1);
}
// Whether this CPU has AMX-TILE and AMX-INT8, the OS lets this process use the tile state
// (arch_prctl ARCH_REQ_XCOMP_PERM, asked once) and this build has the engine (amx_built:
// compiled by gcc >= 11 or clang >= 12).
bool amx_runs();
bool amx_built();
namespace avx512vbmi {
int64_t bitmap_spmv_vbmi_rows(const BitmapArgs<float>& a, int64_t r0, int64_t r1);
}
// Whether the AVX-512 bitmap SpMV takes the VBMI2 expand kernel (spmv_vbmi_kernels.h) for int8
// and bfloat16 values: 1 where the CPU reports avx512vbmi and avx512vbmi2 (unless
// SPARSE_OPS_BITMAP_VBMI=0), 0 otherwise; _C._set_bitmap_vbmi switches it (tests, A/B runs).
extern std::atomic<int> g_bitmap_vbmi;
// Whether the CPU reports avx512vbmi and avx512vbmi2 (the VBMI2 kernel's instructions).
bool cpu_has_vbmi2();
namespace avx512vbmi_vnni {
int64_t bitmap_spmv_vnni_rows(const BitmapArgs<float>& a, int64_t r0, int64_t r1);
}
// What a SpMV entry that declines a call returns (bitmap_spmv_vnni_rows: x not finite).
constexpr int64_t kSpmvNotTaken = -2;
// Whether the AVX-512 bitmap SpMV takes the integer kernel (spmv_vnni_kernels.h) for int8
// values and a bfloat16 / float16 x: 1 where the CPU reports avx512vbmi, avx512vbmi2 and
// avx512vnni (unless SPARSE_OPS_BITMAP_VNNI=0), 0 otherwise; _C._set_bitmap_vnni switches it.
extern std::atomic<int> g_bitmap_vnni;
// Whether the CPU reports avx512vbmi, avx512vbmi2 and avx512vnni.
bool cpu_has_vbmi2_vnni();
// Whether the AVX2 N:4 SpMV (2:4, 1:4; int8 and bfloat16 values) gathers x by in-lane
// permutes (nm4_spmv_perm, 1, the default) or takes the byte-shuffle kernels (int8) and the
// float path (bfloat16) (0: SPARSE_OPS_NM4_PERM=0); _C._set_nm4_perm switches it (tests, A/B).
extern std::atomic<int> g_nm4_perm;

// How the AVX2 CSR SpMV reads x[col]: a call whose rows hold fewer than g_csr_spmv_loads
// nonzeros on average takes scalar loads, others vector gathers (microcoded and slow on some
// CPUs, e.g. AMD Zen 2/3, on short rows); 0 = gathers always, kCsrLoadsAlways = loads always,
// -1 = not decided yet. Decided once per process by measuring both on short and long rows
// (csr.cpp, calibrate_csr_spmv); SPARSE_OPS_CSR_SPMV=gather|loads forces it.
constexpr int kCsrLoadsAlways = INT32_MAX, kCsrLoadsBelow = 128;
extern std::atomic<int> g_csr_spmv_loads;

// How far ahead (bytes) the kernels prefetch, into L2, the streams they read once (the
// values, column indices, metadata and bitmaps of the weight). In a model the weights come
// from DRAM (the previous layers evicted them); the hardware prefetchers alone left the SpMV
// kernels at 8-10 GB/s a core on an Intel Xeon (AMX generation) where a plain read stream
// gets 12 and torch's dense mv 14: 4 KiB ahead took the 2:4 SpMV from 18 to 23 GB/s on 2
// threads (dense: 27). SPARSE_OPS_PREFETCH_BYTES overrides it (0: off), for tuning.
extern int64_t g_stream_ahead;
// The AVX2 bitmap shuffle SpMV's prefetch distance: g_stream_ahead on Intel CPUs, 0 (none)
// elsewhere (measured worse on AMD Zen 3; spmv_shuffle_kernels.h);
// SPARSE_OPS_BITMAP_SHUFFLE_PREFETCH=0 / 1 forces it off / on.
extern int64_t g_shuffle_ahead;

// The table picked at first use (best supported level, capped by SPARSE_OPS_SIMD).
const KernelTable& active_table();
// Switch level at run time ("scalar", "avx2", "avx512"); throws std::invalid_argument if the
// name is unknown or the CPU lacks it. Returns the level now active.
const char* set_simd_level(const char* level);
// Levels this CPU supports, lowest first.
const char* const* supported_levels(int* count);

// The W8A8 engine (kDot*) for table t: the one set by set_int8_dot (or SPARSE_OPS_INT8_DOT
// at start) where t has it, else tdpbssd, else vpdpbusd where t and the CPU have it, else t's
// own.
PanelSpmmFn int8_dot_fn(const KernelTable& t);
// The name of the engine int8_dot_fn(active_table()) runs: "plain" (scalar), "madd",
// "vnni-emulated", "vnni", "amx-emulated", "amx".
const char* int8_dot_name();
// "auto" or one of the names above; throws std::invalid_argument naming `engine` if unknown
// or not available at the active level on this CPU. Returns the engine now active.
const char* set_int8_dot(const char* engine);
// The engine names available at the active level on this CPU.
std::vector<std::string> int8_dots();
// Testing aid: whether engines `one` and `other` (names of int8_dots()) agree on the
// self-check products of w8a8_engines_agree (panel.h); std::invalid_argument if unknown.
bool int8_dots_agree(const char* one, const char* other);

template <class T>
inline const TypedKernels<T>& typed(const KernelTable& t) {
  if constexpr (sizeof(T) == 4)
    return t.f32;
  else
    return t.f64;
}

template <class T, class I>
inline const CsrFns<T, I>& csr_fns(const KernelTable& t) {
  if constexpr (sizeof(I) == 2)
    return typed<T>(t).csr16;
  else
    return typed<T>(t).csr32;
}

inline void bitmap_decode(const KernelTable& t, const uint8_t* bits, int64_t rb, int64_t r0,
                          int64_t r1, int16_t* cols) {
  t.bitmap_decode16(bits, rb, r0, r1, cols);
}
inline void bitmap_decode(const KernelTable& t, const uint8_t* bits, int64_t rb, int64_t r0,
                          int64_t r1, int32_t* cols) {
  t.bitmap_decode32(bits, rb, r0, r1, cols);
}

inline int64_t first_bad(const KernelTable& t, const int16_t* v, int64_t n, int64_t hi) {
  return t.first_bad_i16(v, n, hi);
}
inline int64_t first_bad(const KernelTable& t, const int32_t* v, int64_t n, int64_t hi) {
  return t.first_bad_i32(v, n, hi);
}

}  // namespace sparse_ops
