// The drivers: every product of every layout, on pointers and sizes that the op boundary
// (torch_ops.cpp) has already checked once (dtypes, shapes, parameters, an output disjoint
// from the inputs). A driver checks the structure's data as it goes (row pointers and offsets
// in O(rows), indices, metadata and bitmap rows chunk by chunk just before the chunk is
// computed, or fused into the kernels), throws std::invalid_argument naming the tensor at
// fault (a ValueError in Python), and splits the work over torch's thread team (parallel.h).
// Torch-free: the op boundary turns tensors into these views.
#pragma once

#include <cstdint>

#include "value_types.h"

namespace sparse_ops {

// A dense 2-D operand in the compute type dt (float32 or float64): rows x cols, row stride
// ld (elements).
struct Dense {
  void* data = nullptr;
  DT dt = DT::f32;
  int64_t rows = 0, cols = 0, ld = 0;
  DT src = DT::f32;  // the dtype it was given in (bf16 / f16: widened to dt)
  template <class T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
};

// A row-pointer structure: CSR's entries or BSR's blocks. crow int32 (rows + 1), col (count,)
// of dtype col_dt (int16 or int32).
struct RowPointers {
  const int32_t* crow = nullptr;
  const void* col = nullptr;
  DT col_dt = DT::i32;
  int64_t rows = 0, count = 0;
};

// ------------------------------------------------------------------ conversions (convert.cpp)
// n bfloat16 values (bits at src) to float32 at dst, at the active SIMD level.
void widen_bf16(const void* src, float* dst, int64_t n);
// n float32 values to bfloat16 bits at dst, rounded to nearest even (NaN stays a NaN).
void narrow_bf16(const float* src, void* dst, int64_t n);

// ------------------------------------------------------------------ CSR (csr.cpp)
// out (M, N) = S @ x, x (K, N); values (nnz,) as stored.
void csr_spmm(const RowPointers& s, Values val, const Dense& x, const Dense& out, int threads);
// out (K, N) = S^T @ d by scatter (no transposed structure), d (M, N); values in the compute
// type.
void csr_spmm_t_scatter(const RowPointers& s, Values val, const Dense& d, const Dense& out,
                        int threads);
// out (K, N) = S^T @ d on S's transposed structure t (a row-pointer structure of K rows over
// S's M rows, int32 columns) reading S's values through perm (t.count int32: the position in
// S of each transposed entry), with no permuted copy; N > 1; values in the compute type. t's
// row pointers and perm's range are checked here, its columns by the kernel.
void csr_spmm_t_transposed(const RowPointers& t, const int32_t* perm, Values val,
                           const Dense& d, const Dense& out, int threads);
// out (nnz,) = <a[i], b[col[p]]> for every stored (i, col[p]); a (M, N), b (K, N).
void csr_sddmm(const RowPointers& s, const Dense& a, const Dense& b, const Dense& out,
               int threads);
// The transposed structure of s over `cols` columns into the caller's buffers (cols + 1,
// count, count int32): a stable counting sort (rows ascend within each transposed row).
void csr_transpose(const RowPointers& s, int64_t cols, int32_t* crow_t, int32_t* col_t,
                   int32_t* perm, int threads);

// ------------------------------------------------------------------ BSR (bsr.cpp)
// Blocks R x C; s holds block rows / block columns; values (count, R, C) as stored.
void bsr_spmm(const RowPointers& s, int64_t R, int64_t C, Values val, const Dense& x,
              const Dense& out, int threads);
// out (Kb*C, N) = S^T @ d on S's transposed block structure t (Kb block rows over Mb block
// columns), reading each stored block perm[p] transposed in place (N > 1); values (count, R,
// C) in the compute type.
void bsr_spmm_t_transposed(const RowPointers& t, const int32_t* perm, int64_t R, int64_t C,
                           Values val, const Dense& d, const Dense& out, int threads);
// out (count, R, C) = a_block @ b_block^T for each stored block; a (Mb*R, N), b (Kb*C, N).
void bsr_sddmm(const RowPointers& s, int64_t R, int64_t C, const Dense& a, const Dense& b,
               const Dense& out, int threads);

// ------------------------------------------------------------------ N:M (nm.cpp)
// metadata uint8 (M, stride) of packed positions, b bits a slot; G = ceil(K / m) groups.
struct NmStructure {
  const uint8_t* meta = nullptr;
  int64_t M = 0, K = 0, n = 0, m = 0, stride = 0;
};
// out (M, N) = S @ x; values (M, G*n) as stored.
void nm_spmm(const NmStructure& s, Values val, const Dense& x, const Dense& out, int threads);
// out (M, N) = S @ x, x (K, N) float32, for int8 values with group scales: the weight of
// slot t of row i is its value times scales[i * gs_ld + column / gsize] (float32), gsize a
// multiple of m (checked by the caller); N == 1 applies them in registers.
void nm_spmm_grouped(const NmStructure& s, Values val, const float* scales, int64_t gs_ld,
                     int64_t gsize, const Dense& x, const Dense& out, int threads);
// out (K, N) = S^T @ d, d (M, N); values in the compute type.
void nm_spmm_t(const NmStructure& s, Values val, const Dense& d, const Dense& out, int threads);
// out (M, G*n) = <a[i], b[column of slot]>; a (M, N), b (K, N).
void nm_sddmm(const NmStructure& s, const Dense& a, const Dense& b, const Dense& out,
              int threads);

// ------------------------------------------------------------ W8A8 (bitmap.cpp, nm.cpp, bsr.cpp)
// int8 weights times activations quantized per token (panel_i8_kernels.h). xq (N, K) int8
// row-major, every entry in [-127, 127] (checked while it is packed), xscale (N,) float32:
// token t is xq[t] * xscale[t]. The weight's scales: float32 rows of ws_ld, column k of row i
// scaled by wscale[i * ws_ld + k / wgroup] (wgroup 0 or >= K: one scale a row; else a
// multiple of 4, checked by the caller).
struct W8A8 {
  const int8_t* xq = nullptr;
  const float* xscale = nullptr;
  int64_t N = 0, K = 0;
  const float* wscale = nullptr;
  int64_t ws_ld = 1, wgroup = 0;
};

// ------------------------------------------------------------------ bitmap (bitmap.cpp)
// row_offsets int32 (M + 1), bitmap uint8 (M, rb) with rb = 8 ceil(K / 64), nnz values.
struct BitmapStructure {
  const int32_t* off = nullptr;
  const uint8_t* bits = nullptr;
  int64_t M = 0, K = 0, rb = 0, nnz = 0;
};
void bitmap_spmm(const BitmapStructure& s, Values val, const Dense& x, const Dense& out,
                 int threads);
// values in the compute type.
// out (M, N) = S @ x, x (K, N) float32, for int8 values with group scales: the weight of
// column j of row i is its value times scales[i * gs_ld + j / gsize] (float32), gsize >= 1.
void bitmap_spmm_grouped(const BitmapStructure& s, Values val, const float* scales,
                         int64_t gs_ld, int64_t gsize, const Dense& x, const Dense& out,
                         int threads);
void bitmap_spmm_t(const BitmapStructure& s, Values val, const Dense& d, const Dense& out,
                   int threads);
void bitmap_sddmm(const BitmapStructure& s, const Dense& a, const Dense& b, const Dense& out,
                  int threads);

// out (M, N) float32 row-major: out[i, t] = sum_k S[i, k] * wscale(i, k) * xq[t, k] *
// xscale[t], S's values int8 as stored (W8A8 above), integer dot products on dense panels.
void bitmap_spmm_w8a8(const BitmapStructure& s, const int8_t* val, const W8A8& q, float* out,
                      int threads);
void nm_spmm_w8a8(const NmStructure& s, const int8_t* val, const W8A8& q, float* out,
                  int threads);
// BSR blocks R x C (C a multiple of 4, checked by the caller) over q.K = Kb * C columns: the
// int8 micro-kernel on each stored block (values (count, R, C) int8).
void bsr_spmm_w8a8(const RowPointers& s, int64_t R, int64_t C, const int8_t* val,
                   const W8A8& q, float* out, int threads);

}  // namespace sparse_ops
