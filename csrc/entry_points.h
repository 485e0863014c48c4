// The Python-facing functions of sparse_ops._C (bound in bindings.cpp). Each validates every
// argument before touching memory, then releases the GIL and runs the kernels of the active
// SIMD level on num_threads OpenMP threads. Outputs are preallocated by the caller and fully
// overwritten.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>

#include "validate.h"

namespace sparse_ops {

namespace py = pybind11;

// csr.cpp
void csr_spmm(py::handle crow, py::handle col, py::handle values, py::handle x, py::handle out,
              int64_t num_threads);
void csr_sddmm(py::handle crow, py::handle col, py::handle a, py::handle b, py::handle out,
               int64_t num_threads);
py::tuple csr_transpose(py::handle crow, py::handle col, int64_t num_cols);

// bsr.cpp
void bsr_spmm(py::handle crow, py::handle col, py::handle values, py::handle x, py::handle out,
              int64_t num_threads);
void bsr_sddmm(py::handle crow, py::handle col, py::handle a, py::handle b, py::handle out,
               int64_t num_threads);

// nm.cpp
void nm_spmm(py::handle values, py::handle metadata, py::handle x, py::handle out, int64_t n,
             int64_t m, int64_t num_threads);
void nm_spmm_t(py::handle values, py::handle metadata, py::handle d, py::handle out, int64_t n,
               int64_t m, int64_t num_threads);
void nm_sddmm(py::handle metadata, py::handle a, py::handle b, py::handle out, int64_t n,
              int64_t m, int64_t num_threads);

// The same entry points on validated-view arguments (Arr: numpy arrays or torch tensors).
// Every check runs here, on every call, whatever was validated before: a structure can be
// edited in place without torch seeing it (`.data`, numpy, a raw pointer). Row pointers and
// offsets are checked in O(rows); indices, block columns, N:M metadata and bitmap rows chunk
// by chunk just before the chunk is computed (in cache, fused into the kernels where they
// read them anyway). None touches Python, so the torch ops call them without the GIL.
void csr_spmm_arrs(const Arr& crow, const Arr& col, const Arr& val, const Arr& x,
                   const Arr& out, int threads);
void csr_sddmm_arrs(const Arr& crow, const Arr& col, const Arr& a, const Arr& b,
                    const Arr& out, int threads);
// out (K, N) = S^T @ d by scatter (no transposed structure, no permuted values).
void csr_spmm_t_arrs(const Arr& crow, const Arr& col, const Arr& val, const Arr& d,
                     const Arr& out, int threads);
// out (M, N) = S @ x where nonzero p has value val[perm[p]] (N > 1): S^T @ d over the cached
// transposed structure, reading S's values in place.
void csr_spmm_perm_arrs(const Arr& crow, const Arr& col, const Arr& perm, const Arr& val,
                        const Arr& x, const Arr& out, int threads);
// Checks the CSR structure and num_cols (every error before any output is allocated).
void csr_transpose_check(const Arr& crow, const Arr& col, int64_t num_cols);
// crow_t (K+1), col_t (nnz), perm (nnz) of S^T; col_indices are range-checked here.
void csr_transpose_arrs(const Arr& crow, const Arr& col, int64_t num_cols, int32_t* crow_t,
                        int32_t* col_t, int64_t* perm, int threads);
// The BSR index rule, one for every product: crow_indices int32 (Mb+1,), col_indices int32
// (nnzb,) (TypeError / ValueError naming the argument).
void bsr_check_indices(const Arr& crow, const Arr& col);
void bsr_spmm_arrs(const Arr& crow, const Arr& col, const Arr& val, const Arr& x,
                   const Arr& out, int threads);
// out (Mb*R, N) = S^T @ x on S's transposed structure (crow, col: of S^T) without copying
// the blocks: block p of S^T is stored block perm[p] (val (nnzb, C, R)) transposed. N > 1.
void bsr_spmm_perm_arrs(const Arr& crow, const Arr& col, const Arr& perm, const Arr& val,
                        const Arr& x, const Arr& out, int threads);
void bsr_sddmm_arrs(const Arr& crow, const Arr& col, const Arr& a, const Arr& b,
                    const Arr& out, int threads);
void nm_spmm_arrs(const Arr& val, const Arr& meta, const Arr& x, const Arr& out, int64_t n,
                  int64_t m, int threads);
void nm_spmm_t_arrs(const Arr& val, const Arr& meta, const Arr& d, const Arr& out, int64_t n,
                    int64_t m, int threads);
void nm_sddmm_arrs(const Arr& meta, const Arr& a, const Arr& b, const Arr& out, int64_t n,
                   int64_t m, int threads);
// Bitmap (bitmap.cpp): row_offsets int32 (M+1), bitmap uint8 (M, 8 ceil(K/64)), nnz the
// number of values (== row_offsets[M], checked); each row's popcount against its span of
// values and the bits past K are checked as the products run.
void bitmap_spmm_arrs(const Arr& off, const Arr& bits, const Arr& val, const Arr& x,
                      const Arr& out, int64_t nnz, int threads);
void bitmap_spmm_t_arrs(const Arr& off, const Arr& bits, const Arr& val, const Arr& d,
                        const Arr& out, int64_t num_cols, int64_t nnz, int threads);
void bitmap_sddmm_arrs(const Arr& off, const Arr& bits, const Arr& a, const Arr& b,
                       const Arr& out, int64_t nnz, int threads);

}  // namespace sparse_ops
