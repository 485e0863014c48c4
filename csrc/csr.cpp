// CSR entry points: csr_spmm, csr_sddmm, csr_transpose (validation, threading, dispatch).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "entry_points.h"
#include "kernels.h"
#include "parallel.h"
#include "validate.h"

namespace sparse_ops {
namespace {

template <class I>
[[noreturn]] void throw_bad_col(const I* col, int64_t p, int64_t hi) {
  std::ostringstream o;
  o << "col_indices: value " << static_cast<int64_t>(col[p]) << " at position " << p
    << " out of range [0, " << hi << ")";
  throw std::invalid_argument(o.str());
}

// Checks crow_indices (1-D int32, >= 1 entry) and col_indices (1-D int16/int32) types and
// shapes; returns the column dtype.
DT check_csr_arrays(const Arr& crow, const Arr& col) {
  expect(crow, DT::i32, {"M+1"});
  if (crow.dim(0) < 1)
    throw_value("crow_indices: expected shape (M+1,) with M >= 0, got an empty array");
  const DT it = index_dtype(col, {DT::i16, DT::i32});
  expect(col, it, {"nnz"});
  return it;
}

template <class I>
[[noreturn]] void throw_first_bad_col(const KernelTable& tab, const I* col, int64_t nnz,
                                      int64_t K) {
  const int64_t p = first_bad(tab, col, nnz, K);
  throw_bad_col(col, p >= 0 ? p : 0, K);
}

// Decides g_csr_spmv_loads once: times the AVX2 SpMV with gathers and with scalar loads on a
// synthetic 2048 x 4096 CSR (48 nonzeros a row, x in L1/L2: the gather cost, not DRAM, is
// what differs between CPUs), best of 5 alternating runs each, about 2-4 ms in all.
void calibrate_csr_spmv(const KernelTable& tab) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lk(mu);
  if (g_csr_spmv_loads.load() >= 0) return;
  if (const char* e = std::getenv("SPARSE_OPS_CSR_SPMV")) {
    if (std::strcmp(e, "gather") == 0 || std::strcmp(e, "loads") == 0) {
      g_csr_spmv_loads.store(std::strcmp(e, "loads") == 0 ? 1 : 0);
      return;
    }
  }
  // Rows of 32 to 64 nonzeros, not all whole vectors: the tails and the per-row reductions
  // are what separate the two variants on short rows (a row length that is a multiple of
  // the vector hides them: on Zen 5 the two tie at 48 a row, while on pruned rows of ~40
  // the loads take 1.8 cycles a nonzero and the gathers 2.9).
  constexpr int64_t M = 2048, K = 4096;
  std::vector<int32_t> crow(M + 1);
  crow[0] = 0;
  for (int64_t i = 0; i < M; ++i) crow[i + 1] = crow[i] + static_cast<int32_t>(32 + (i * 37) % 33);
  const int64_t nnz = crow[M];
  std::vector<int16_t> col(nnz);
  std::vector<float> val(nnz, 0.5f), x(K, 1.0f), out(M);
  uint32_t r = 12345;
  for (auto& c : col) {
    r = r * 1664525u + 1013904223u;
    c = static_cast<int16_t>((r >> 8) % K);
  }
  for (int64_t i = 0; i < M; ++i) std::sort(col.begin() + crow[i], col.begin() + crow[i + 1]);
  const CsrSpmmArgs<float, int16_t> args{crow.data(), col.data(), val.data(), x.data(),
                                         out.data(), M, K, 1, 1, 0};
  const auto fn = csr_fns<float, int16_t>(tab).spmm;
  double best[2] = {1e30, 1e30};
  for (int rep = 0; rep < 5; ++rep)
    for (int mode = 0; mode < 2; ++mode) {
      g_csr_spmv_loads.store(mode);
      const auto t0 = std::chrono::steady_clock::now();
      fn(args, 0, M, 0, 1);
      const double dt =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best[mode] = std::min(best[mode], dt);
    }
  g_csr_spmv_loads.store(best[1] < 0.97 * best[0] ? 1 : 0);  // loads if faster (beyond noise)
}

}  // namespace

const char* csr_spmv_choice() {
  const int v = g_csr_spmv_loads.load();
  return v < 0 ? "undecided" : (v ? "loads" : "gather");
}

namespace {

// The kernels validate the column indices as they run (fused); a chunk reporting a bad one
// sets `bad`, and the first bad position is then located for the message.
template <class T, class I>
void spmm_run(const int32_t* crow, const I* col, const T* val, const HalfValues& hv, const T* x,
              int64_t ldx, T* out, int64_t M, int64_t K, int64_t N, int threads,
              const int32_t* vperm = nullptr) {
  const KernelTable& tab = active_table();
  if (N == 1 && g_csr_spmv_loads.load(std::memory_order_relaxed) < 0 &&
      std::strcmp(tab.name, "avx2") == 0)
    calibrate_csr_spmv(tab);
  const auto fn = csr_fns<T, I>(tab).spmm;
  const int64_t nnz = crow[M];
  CsrSpmmArgs<T, I> args{crow, col, val, x, out, M, K, N, ldx, 0};
  args.vperm = vperm;
  threads = threads_for(threads, static_cast<double>(nnz + M) * static_cast<double>(N));
  // Through a permutation every x tile is another pass of random value loads: wider tiles.
  const int64_t budget = l2_tile_budget() * (vperm ? 4 : 1);
  const auto tiles = col_tiles(N, tile_cols(K, N, sizeof(T), budget), false);
  const TiledOperand<T> xt(x, K, ldx, tiles, threads);
  const int64_t nchunks = chunk_count(threads, M, nnz * static_cast<int64_t>(sizeof(I)));
  const auto bounds = split_by_prefix(crow, M, nchunks, N == 1 ? 8 : 2, 1);
  FirstBad bad;
  run_chunks(
      threads, nchunks, static_cast<int64_t>(tiles.size()), bad, [](int64_t) { return true; },
      [&](int64_t t, int64_t c) {
        CsrSpmmArgs<T, I> a = args;
        set_chunk_values(a, val, hv, nnz, crow[bounds[c]], crow[bounds[c + 1]]);
        a.x = xt.data(t);
        a.ldx = xt.ld(t);
        a.xc0 = xt.col0(t);
        if (!fn(a, bounds[c], bounds[c + 1], tiles[t].first, tiles[t].second)) bad.record(c);
      },
      xt.npack(), [&](int64_t t, int64_t q) { xt.pack(t, q); });
  if (bad.any() || (N == 0 && first_bad(tab, col, nnz, K) >= 0))
    throw_first_bad_col(tab, col, nnz, K);
}

// out (K, N) = S^T @ d by scatter. With N wide enough, each task owns a slice of out's columns
// (no write conflicts) and runs every row; otherwise one task does it all.
template <class T, class I>
void spmm_t_run(const int32_t* crow, const I* col, const T* val, const T* d, int64_t ldd, T* out,
                int64_t M, int64_t K, int64_t N, int threads) {
  const KernelTable& tab = active_table();
  const auto fn = csr_fns<T, I>(tab).spmm_t;
  const int64_t nnz = crow[M];
  const CsrSpmmArgs<T, I> args{crow, col, val, d, out, M, K, N, ldd, 0};
  threads = threads_for(threads, static_cast<double>(nnz) * static_cast<double>(N) + K * N);
  constexpr int64_t kSlice = 64 / static_cast<int64_t>(sizeof(T));  // one cache line
  int64_t slices = std::min<int64_t>(threads, N / kSlice);
  if (slices < 1) slices = 1;
  const auto cuts = split_even(N / kSlice, slices);
  FirstBad bad;
  parallel_for(static_cast<int>(slices), slices, [&](int64_t t) {
    const int64_t n0 = cuts[t] * kSlice, n1 = t + 1 == slices ? N : cuts[t + 1] * kSlice;
    for (int64_t k = 0; k < K; ++k) std::fill(out + k * N + n0, out + k * N + n1, T(0));
    if (!fn(args, out, 0, M, n0, n1)) bad.record(t);
  });
  if (bad.any() || (N == 0 && first_bad(tab, col, nnz, K) >= 0))
    throw_first_bad_col(tab, col, nnz, K);
}

template <class T, class I>
void sddmm_run(const int32_t* crow, const I* col, const T* a, const T* b, T* out, int64_t M,
               int64_t K, int64_t N, int threads) {
  const KernelTable& tab = active_table();
  const auto fn = csr_fns<T, I>(tab).sddmm;
  const int64_t nnz = crow[M];
  const CsrSddmmArgs<T, I> args{crow, col, a, b, out, M, K, N, N, 0};
  threads = threads_for(threads, static_cast<double>(nnz) * static_cast<double>(N + 1));
  const auto tiles = col_tiles(N, tile_cols(K, N, sizeof(T), l2_tile_budget()), true);
  const TiledOperand<T> bt(b, K, N, tiles, threads);
  const int64_t nchunks = chunk_count(threads, M, nnz * static_cast<int64_t>(sizeof(I)));
  const auto bounds = split_by_prefix(crow, M, nchunks, 1, 1);
  FirstBad bad;
  run_chunks(
      threads, nchunks, static_cast<int64_t>(tiles.size()), bad, [](int64_t) { return true; },
      [&](int64_t t, int64_t c) {
        CsrSddmmArgs<T, I> s = args;
        s.b = bt.data(t);
        s.ldb = bt.ld(t);
        s.bc0 = bt.col0(t);
        if (!fn(s, bounds[c], bounds[c + 1], tiles[t].first, tiles[t].second, t > 0))
          bad.record(c);
      },
      bt.npack(), [&](int64_t t, int64_t q) { bt.pack(t, q); });
  if (bad.any()) throw_first_bad_col(tab, col, nnz, K);
}

// Counting sort of the nonzeros by column, stable in the row index. Rows are split into
// `parts` ranges; part t counts its columns, a prefix pass turns the counts into each part's
// start offsets per column, then each part scatters its nonzeros in row order.
template <class I>
void transpose_run(const int32_t* crow, const I* col, int64_t M, int64_t K, int32_t* crow_t,
                   int32_t* col_t, int64_t* perm, int threads) {
  const int64_t nnz = crow[M];
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, nnz / 65536));
  const auto bounds = split_by_prefix(crow, M, parts, 1, 1);
  std::vector<int32_t> cnt(static_cast<size_t>(parts * K), 0);
  parallel_for(static_cast<int>(parts), parts, [&](int64_t t) {
    int32_t* c = cnt.data() + t * K;
    for (int64_t p = crow[bounds[t]]; p < crow[bounds[t + 1]]; ++p) ++c[col[p]];
  });
  int64_t off = 0;
  for (int64_t k = 0; k < K; ++k) {
    crow_t[k] = static_cast<int32_t>(off);
    for (int64_t t = 0; t < parts; ++t) {
      const int32_t n = cnt[t * K + k];
      cnt[t * K + k] = static_cast<int32_t>(off);
      off += n;
    }
  }
  crow_t[K] = static_cast<int32_t>(off);
  parallel_for(static_cast<int>(parts), parts, [&](int64_t t) {
    int32_t* c = cnt.data() + t * K;
    for (int64_t i = bounds[t]; i < bounds[t + 1]; ++i)
      for (int64_t p = crow[i]; p < crow[i + 1]; ++p) {
        const int32_t q = c[col[p]]++;
        col_t[q] = static_cast<int32_t>(i);
        perm[q] = p;
      }
  });
}

}  // namespace

void csr_spmm_arrs(const Arr& crow, const Arr& col, const Arr& val, const Arr& x, const Arr& out,
                   int threads) {
  const DT it = check_csr_arrays(crow, col);
  const DT vt = value_dtype(val), ft = compute_dtype(vt);
  const int64_t M = crow.dim(0) - 1, nnz = col.dim(0);
  expect(val, vt, {nnz});
  expect(x, ft, {"K", "N"}, vt == ft ? "the dtype of values" : "float32 for half values");
  const int64_t K = x.dim(0), N = x.dim(1);
  expect(out, ft, {M, N}, "the dtype of values");
  for (const Arr* in : {&crow, &col, &val, &x}) expect_disjoint(out, *in);
  check_row_pointers(crow.ptr<int32_t>(), M, nnz, "crow_indices", "col_indices");
  with_float(ft, [&](auto tf) {
    using T = decltype(tf);
    with_index(it, [&](auto ti) {
      using I = decltype(ti);
      const HalfValues hv = half_values(val.data, vt == DT::bf16, vt == DT::f16);
      spmm_run<T, I>(crow.ptr<int32_t>(), col.ptr<I>(), hv.bits ? nullptr : val.ptr<T>(), hv,
                     x.ptr<T>(), x.ld, out.ptr<T>(), M, K, N, threads);
    });
  });
}

void csr_sddmm_arrs(const Arr& crow, const Arr& col, const Arr& a, const Arr& b, const Arr& out,
                    int threads) {
  const DT it = check_csr_arrays(crow, col);
  const DT ft = float_dtype(a);
  const int64_t M = crow.dim(0) - 1, nnz = col.dim(0);
  expect(a, ft, {M, "N"});
  const int64_t N = a.dim(1);
  expect(b, ft, {"K", N}, "the dtype of a");
  const int64_t K = b.dim(0);
  expect(out, ft, {nnz}, "the dtype of a");
  for (const Arr* in : {&crow, &col, &a, &b}) expect_disjoint(out, *in);
  check_row_pointers(crow.ptr<int32_t>(), M, nnz, "crow_indices", "col_indices");
  with_float(ft, [&](auto tf) {
    using T = decltype(tf);
    with_index(it, [&](auto ti) {
      using I = decltype(ti);
      sddmm_run<T, I>(crow.ptr<int32_t>(), col.ptr<I>(), a.ptr<T>(), b.ptr<T>(), out.ptr<T>(), M,
                      K, N, threads);
    });
  });
}

void csr_spmm_t_arrs(const Arr& crow, const Arr& col, const Arr& val, const Arr& d, const Arr& out,
                     int threads) {
  const DT it = check_csr_arrays(crow, col);
  const DT ft = float_dtype(val);
  const int64_t M = crow.dim(0) - 1, nnz = col.dim(0);
  expect(val, ft, {nnz});
  expect(d, ft, {M, "N"}, "the dtype of values");
  const int64_t N = d.dim(1);
  expect(out, ft, {"K", N}, "the dtype of values");
  const int64_t K = out.dim(0);
  for (const Arr* in : {&crow, &col, &val, &d}) expect_disjoint(out, *in);
  check_row_pointers(crow.ptr<int32_t>(), M, nnz, "crow_indices", "col_indices");
  with_float(ft, [&](auto tf) {
    using T = decltype(tf);
    with_index(it, [&](auto ti) {
      using I = decltype(ti);
      spmm_t_run<T, I>(crow.ptr<int32_t>(), col.ptr<I>(), val.ptr<T>(), d.ptr<T>(), d.ld,
                       out.ptr<T>(), M, K, N, threads);
    });
  });
}

void csr_spmm_perm_arrs(const Arr& crow, const Arr& col, const Arr& perm, const Arr& val,
                        const Arr& x, const Arr& out, int threads) {
  check_csr_arrays(crow, col);
  expect(col, DT::i32, {"nnz"});
  const DT ft = float_dtype(val);
  const int64_t M = crow.dim(0) - 1, nnz = col.dim(0);
  expect(perm, DT::i32, {nnz});
  expect(val, ft, {nnz});
  expect(x, ft, {"K", "N"}, "the dtype of values");
  const int64_t K = x.dim(0), N = x.dim(1);
  if (N <= 1) throw_value("x: the permuted-values product needs N > 1 columns");
  expect(out, ft, {M, N}, "the dtype of values");
  for (const Arr* in : {&crow, &col, &perm, &val, &x}) expect_disjoint(out, *in);
  // perm is a permutation of [0, nnz) by construction (csr_transpose); check its range anyway.
  const KernelTable& tab = active_table();
  if (first_bad(tab, perm.ptr<int32_t>(), nnz, nnz) >= 0)
    throw_value("perm: entries must lie in [0, nnz)");
  with_float(ft, [&](auto tf) {
    using T = decltype(tf);
    spmm_run<T, int32_t>(crow.ptr<int32_t>(), col.ptr<int32_t>(), val.ptr<T>(), HalfValues{},
                         x.ptr<T>(), x.ld, out.ptr<T>(), M, K, N, threads, perm.ptr<int32_t>());
  });
}

void csr_transpose_check(const Arr& crow, const Arr& col, int64_t num_cols) {
  check_csr_arrays(crow, col);
  if (num_cols < 0 || num_cols >= INT32_MAX)
    throw_value("num_cols: need 0 <= num_cols < 2**31 - 1, got " + std::to_string(num_cols));
  check_row_pointers(crow.ptr<int32_t>(), crow.dim(0) - 1, col.dim(0), "crow_indices",
                     "col_indices");
}

void csr_transpose_arrs(const Arr& crow, const Arr& col, int64_t num_cols, int32_t* crow_t,
                        int32_t* col_t, int64_t* perm, int threads) {
  const DT it = check_csr_arrays(crow, col);
  const int64_t M = crow.dim(0) - 1, nnz = col.dim(0), K = num_cols;
  const KernelTable& tab = active_table();
  with_index(it, [&](auto ti) {
    using I = decltype(ti);
    const I* c = col.ptr<I>();
    const int64_t p = first_bad(tab, c, nnz, K);
    if (p >= 0) throw_bad_col(c, p, K);
    transpose_run<I>(crow.ptr<int32_t>(), c, M, K, crow_t, col_t, perm, threads);
  });
}

py::tuple csr_transpose(py::handle crow_h, py::handle col_h, int64_t num_cols) {
  const Arr crow = as_array(crow_h, "crow_indices");
  const Arr col = as_array(col_h, "col_indices");
  csr_transpose_check(crow, col, num_cols);
  const int64_t nnz = col.dim(0), K = num_cols;
  py::array_t<int32_t> crow_t(K + 1);
  py::array_t<int32_t> col_t(nnz);
  py::array_t<int64_t> perm(nnz);
  int32_t* crow_tp = crow_t.mutable_data();
  int32_t* col_tp = col_t.mutable_data();
  int64_t* perm_p = perm.mutable_data();
  {
    py::gil_scoped_release nogil;
    csr_transpose_arrs(crow, col, K, crow_tp, col_tp, perm_p, default_threads());
  }
  return py::make_tuple(crow_t, col_t, perm);
}

void csr_spmm(py::handle crow_h, py::handle col_h, py::handle val_h, py::handle x_h,
              py::handle out_h, int64_t num_threads) {
  const Arr crow = as_array(crow_h, "crow_indices");
  const Arr col = as_array(col_h, "col_indices");
  const Arr val = as_array(val_h, "values");
  const Arr x = as_array(x_h, "x");
  const Arr out = as_array(out_h, "out", true);
  const int threads = threads_arg(num_threads);
  py::gil_scoped_release nogil;
  csr_spmm_arrs(crow, col, val, x, out, threads);
}

void csr_sddmm(py::handle crow_h, py::handle col_h, py::handle a_h, py::handle b_h,
               py::handle out_h, int64_t num_threads) {
  const Arr crow = as_array(crow_h, "crow_indices");
  const Arr col = as_array(col_h, "col_indices");
  const Arr a = as_array(a_h, "a");
  const Arr b = as_array(b_h, "b");
  const Arr out = as_array(out_h, "out", true);
  const int threads = threads_arg(num_threads);
  py::gil_scoped_release nogil;
  csr_sddmm_arrs(crow, col, a, b, out, threads);
}

}  // namespace sparse_ops
