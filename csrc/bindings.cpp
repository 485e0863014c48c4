// pybind11 module sparse_ops._C: the entry points of entry_points.h plus the SIMD level.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "entry_points.h"
#include "kernels.h"
#include "parallel.h"
#include "team.h"

namespace py = pybind11;
using namespace sparse_ops;

namespace sparse_ops {
size_t transpose_cache_size();  // torch_ops.cpp
const char* csr_spmv_choice();   // csr.cpp
void transpose_cache_clear();
}  // namespace sparse_ops

PYBIND11_MODULE(_C, mod) {
  mod.doc() =
      "C++ CPU kernels of sparse-ops (CSR, BSR, N:M). Importing it registers the torch "
      "operators torch.ops.sparse_ops.* (torch_ops.cpp). The functions below are the raw "
      "entry points on numpy arrays (C-contiguous; outputs preallocated and fully "
      "overwritten; float32 / float64), used by the kernel tests.";

  mod.def("csr_spmm", &csr_spmm, py::arg("crow_indices"), py::arg("col_indices"),
          py::arg("values"), py::arg("x"), py::arg("out"), py::arg("num_threads"),
          "out (M, N) = S @ x for CSR S (M, K) and x (K, N).");
  mod.def("csr_sddmm", &csr_sddmm, py::arg("crow_indices"), py::arg("col_indices"), py::arg("a"),
          py::arg("b"), py::arg("out"), py::arg("num_threads"),
          "out[p] = <a[i], b[col[p]]> for every stored (i, col[p]); a (M, N), b (K, N).");
  mod.def("csr_transpose", &csr_transpose, py::arg("crow_indices"), py::arg("col_indices"),
          py::arg("num_cols"),
          "(crow_t int32[K+1], col_t int32[nnz], perm int64[nnz]): the CSR structure of S^T "
          "(stable: row indices ascend in each transposed row) and values_t = values[perm].");
  mod.def("bsr_spmm", &bsr_spmm, py::arg("crow_indices"), py::arg("col_indices"),
          py::arg("values"), py::arg("x"), py::arg("out"), py::arg("num_threads"),
          "out (Mb*R, N) = S @ x for BSR S with values (nnzb, R, C), x (K, N), K % C == 0.");
  mod.def("bsr_sddmm", &bsr_sddmm, py::arg("crow_indices"), py::arg("col_indices"), py::arg("a"),
          py::arg("b"), py::arg("out"), py::arg("num_threads"),
          "out[p, r, c] = <a[i*R + r], b[j*C + c]> for each stored block p = (i, j).");
  mod.def("nm_spmm", &nm_spmm, py::arg("values"), py::arg("metadata"), py::arg("x"),
          py::arg("out"), py::arg("n"), py::arg("m"), py::arg("num_threads"),
          "out (M, N) = S @ x for N:M S (values (M, G*n), packed metadata), x (K, N).");
  mod.def("nm_spmm_t", &nm_spmm_t, py::arg("values"), py::arg("metadata"), py::arg("d"),
          py::arg("out"), py::arg("n"), py::arg("m"), py::arg("num_threads"),
          "out (K, N) = S^T @ d for N:M S (M, K), d (M, N); K = out.shape[0].");
  mod.def("nm_sddmm", &nm_sddmm, py::arg("metadata"), py::arg("a"), py::arg("b"), py::arg("out"),
          py::arg("n"), py::arg("m"), py::arg("num_threads"),
          "out[i, g*n + s] = <a[i], b[g*m + p]> for every N:M slot; a (M, N), b (K, N).");
  mod.def(
      "simd_level", [] { return std::string(active_table().name); },
      "The SIMD level the kernels run at: 'avx512', 'avx2' or 'scalar'.");
  mod.def(
      "_set_simd_level",
      [](const std::string& level) { return std::string(set_simd_level(level.c_str())); },
      py::arg("level"),
      "Testing aid: switch the kernels to 'scalar', 'avx2' or 'avx512' (ValueError if unknown "
      "or unsupported). Returns the level now active.");
  mod.def(
      "_set_tile_bytes", [](int64_t bytes) { set_tile_budget(bytes); }, py::arg("bytes"),
      "Testing aid: the L2 budget for column tiles of the dense operand (0 = default), so that "
      "small inputs take the tiled, packed paths.");
  mod.def(
      "_csr_spmv_choice", [] { return std::string(csr_spmv_choice()); },
      "How the AVX2 CSR SpMV reads x: 'gather', 'loads' (measured at the first AVX2 SpMV, or "
      "SPARSE_OPS_CSR_SPMV) or 'undecided'.");
  mod.def(
      "_set_csr_spmv", [](const std::string& how) {
        if (how != "gather" && how != "loads" && how != "auto")
          throw py::value_error("how: expected 'gather', 'loads' or 'auto', got '" + how + "'");
        g_csr_spmv_loads.store(how == "auto" ? -1 : (how == "loads" ? 1 : 0));
      }, py::arg("how"), "Testing aid: force the AVX2 CSR SpMV variant ('auto' re-measures).");
  mod.def(
      "_team_debug", [](bool on) { team_debug(on); }, py::arg("on"),
      "Testing aid: while on, record the OS thread ids of the threads that run the kernels' "
      "tasks (torch's intra-op team); turning it on or off clears the record.");
  mod.def(
      "_team_threads_seen", [] { return team_threads_seen(); },
      "Testing aid: the distinct OS thread ids that ran kernel tasks since _team_debug(True).");
  mod.def(
      "_transpose_cache_size", [] { return transpose_cache_size(); },
      "Testing aid: structures whose transpose (for S^T @ d) the torch ops have cached.");
  mod.def(
      "_transpose_cache_clear", [] { transpose_cache_clear(); },
      "Testing aid: forget every cached transpose.");
  mod.def(
      "_supported_simd_levels",
      [] {
        int n = 0;
        const char* const* names = supported_levels(&n);
        std::vector<std::string> v(names, names + n);
        return v;
      },
      "Testing aid: the SIMD levels this CPU can run, lowest first.");
}
