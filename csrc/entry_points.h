// The Python-facing functions of sparse_ops._C (bound in bindings.cpp). Each validates every
// argument before touching memory, then releases the GIL and runs the kernels of the active
// SIMD level on num_threads OpenMP threads. Outputs are preallocated by the caller and fully
// overwritten.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>

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

}  // namespace sparse_ops
