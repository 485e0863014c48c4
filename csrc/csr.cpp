// CSR drivers: csr_spmm, csr_spmm_t_*, csr_sddmm, csr_transpose (structure checks, threading,
// dispatch; drivers.h).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "drivers.h"
#include "kernels.h"
#include "parallel.h"
#include "validate.h"

namespace sparse_ops {
namespace {

template <class I>
[[noreturn]] void throw_bad_col(const I* col, int64_t p, int64_t hi,
                                const char* name = "col_indices") {
  std::ostringstream o;
  o << name << ": value " << static_cast<int64_t>(col[p]) << " at position " << p
    << " out of range [0, " << hi << ")";
  throw std::invalid_argument(o.str());
}

template <class I>
[[noreturn]] void throw_first_bad_col(const KernelTable& tab, const I* col, int64_t nnz,
                                      int64_t K, const char* name = "col_indices") {
  const int64_t p = first_bad(tab, col, nnz, K);
  throw_bad_col(col, p >= 0 ? p : 0, K, name);
}

// min(best, the seconds of one run() with the variant `mode` set)
template <class F>
double timed_min(F&& run, int mode, double best) {
  g_csr_spmv_loads.store(mode);
  const auto t0 = std::chrono::steady_clock::now();
  run();
  const auto dt = std::chrono::steady_clock::now() - t0;
  return std::min(best, std::chrono::duration<double>(dt).count());
}

// true when the scalar loads beat the gathers (beyond noise) on M rows of lo..lo+32 nonzeros
bool loads_win(const KernelTable& tab, int64_t M, int32_t lo) {
  constexpr int64_t K = 4096;
  std::vector<int32_t> crow(M + 1);
  crow[0] = 0;
  for (int64_t i = 0; i < M; ++i) crow[i + 1] = crow[i] + lo + static_cast<int32_t>((i * 37) % 33);
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
    for (int mode = 0; mode < 2; ++mode)
      best[mode] =
          timed_min([&] { fn(args, 0, M, 0, 1); }, mode ? kCsrLoadsAlways : 0, best[mode]);
  return best[1] < 0.97 * best[0];
}

// Decides g_csr_spmv_loads once: times the AVX2 SpMV with gathers and with scalar loads on two
// synthetic CSRs, x in L1/L2 (the gather cost, not DRAM, is what differs between CPUs), best
// of 5 alternating runs each, a few ms in all: short rows (2048 of 32-64 nonzeros) and long
// rows (256 of 384-448). The result is the mean row length below which a call takes the
// loads: 0 (gathers everywhere), kCsrLoadsAlways, or kCsrLoadsBelow where the loads win short
// rows and the gathers long ones. Zen 3: loads win the short rows, gathers the long ones
// (1.3-1.5x at 205 and 1229 a row: 0.05 and 0.3 of 4096); on Zen 5 the two tie at 48 a row,
// while on pruned rows of ~40 the loads take 1.8 cycles a nonzero and the gathers 2.9.
void calibrate_csr_spmv(const KernelTable& tab) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lk(mu);
  if (g_csr_spmv_loads.load() >= 0) return;
  if (const char* e = std::getenv("SPARSE_OPS_CSR_SPMV")) {
    if (std::strcmp(e, "gather") == 0 || std::strcmp(e, "loads") == 0) {
      g_csr_spmv_loads.store(std::strcmp(e, "loads") == 0 ? kCsrLoadsAlways : 0);
      return;
    }
  }
  // Rows not all whole vectors: the tails and the per-row reductions are what separate the
  // two variants on short rows (a row length that is a multiple of the vector hides them).
  const bool short_rows = loads_win(tab, 2048, 32), long_rows = loads_win(tab, 256, 384);
  g_csr_spmv_loads.store(long_rows ? kCsrLoadsAlways : (short_rows ? kCsrLoadsBelow : 0));
}

}  // namespace

const char* csr_spmv_choice() {
  const int v = g_csr_spmv_loads.load();
  static const std::string below = "loads below " + std::to_string(kCsrLoadsBelow) + " a row";
  return v < 0 ? "undecided"
               : (v == 0 ? "gather" : (v == kCsrLoadsAlways ? "loads" : below.c_str()));
}

namespace {

// The kernels validate the column indices as they run (fused); a chunk reporting a bad one
// sets `bad`, and the first bad position is then located for the message.
template <class T, class I>
void spmm_run(const int32_t* crow, const I* col, const Values& stored, const T* x, int64_t ldx,
              T* out, int64_t M, int64_t K, int64_t N, int threads,
              const int32_t* vperm = nullptr) {
  const KernelTable& tab = active_table();
  if (N == 1 && g_csr_spmv_loads.load(std::memory_order_relaxed) < 0 &&
      std::strcmp(tab.name, "avx2") == 0)
    calibrate_csr_spmv(tab);
  const auto fn = csr_fns<T, I>(tab).spmm;
  const int64_t nnz = crow[M];
  CsrSpmmArgs<T, I> args{crow, col, nullptr, x, out, M, K, N, ldx, 0};
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
        set_chunk_values(a, stored, nnz, crow[bounds[c]], crow[bounds[c + 1]]);
        a.x = xt.data(t);
        a.ldx = xt.ld(t);
        a.xc0 = xt.col0(t);
        if (!fn(a, bounds[c], bounds[c + 1], tiles[t].first, tiles[t].second)) bad.record(c);
      },
      xt.npack(), [&](int64_t t, int64_t q) { xt.pack(t, q); });
  if (bad.any() || (N == 0 && first_bad(tab, col, nnz, K) >= 0))
    throw_first_bad_col(tab, col, nnz, K, vperm ? "col_t" : "col_indices");
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
                   int32_t* col_t, int32_t* perm, int threads) {
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
        perm[q] = static_cast<int32_t>(p);
      }
  });
}

}  // namespace

void csr_spmm(const RowPointers& s, Values val, const Dense& x, const Dense& out, int threads) {
  check_row_pointers(s.crow, s.rows, s.count, "crow_indices", "col_indices");
  with_compute(x.dt, [&](auto tf) {
    using T = decltype(tf);
    with_index(s.col_dt, [&](auto ti) {
      using I = decltype(ti);
      spmm_run<T, I>(s.crow, static_cast<const I*>(s.col), val, x.ptr<T>(), x.ld, out.ptr<T>(),
                     s.rows, x.rows, x.cols, threads);
    });
  });
}

void csr_spmm_t_scatter(const RowPointers& s, Values val, const Dense& d, const Dense& out,
                        int threads) {
  check_row_pointers(s.crow, s.rows, s.count, "crow_indices", "col_indices");
  with_compute(d.dt, [&](auto tf) {
    using T = decltype(tf);
    with_index(s.col_dt, [&](auto ti) {
      using I = decltype(ti);
      spmm_t_run<T, I>(s.crow, static_cast<const I*>(s.col), static_cast<const T*>(val.data),
                       d.ptr<T>(), d.ld, out.ptr<T>(), s.rows, out.rows, d.cols, threads);
    });
  });
}

void csr_spmm_t_transposed(const RowPointers& t, const int32_t* perm, Values val,
                           const Dense& d, const Dense& out, int threads) {
  check_row_pointers(t.crow, t.rows, t.count, "crow_t", "col_t");
  const KernelTable& tab = active_table();
  if (first_bad(tab, perm, t.count, t.count) >= 0)
    throw_value("perm_t: entries must lie in [0, nnz)");
  with_compute(d.dt, [&](auto tf) {
    using T = decltype(tf);
    spmm_run<T, int32_t>(t.crow, static_cast<const int32_t*>(t.col), val, d.ptr<T>(), d.ld,
                         out.ptr<T>(), t.rows, d.rows, d.cols, threads, perm);
  });
}

void csr_sddmm(const RowPointers& s, const Dense& a, const Dense& b, const Dense& out,
               int threads) {
  check_row_pointers(s.crow, s.rows, s.count, "crow_indices", "col_indices");
  with_compute(a.dt, [&](auto tf) {
    using T = decltype(tf);
    with_index(s.col_dt, [&](auto ti) {
      using I = decltype(ti);
      sddmm_run<T, I>(s.crow, static_cast<const I*>(s.col), a.ptr<T>(), b.ptr<T>(),
                      out.ptr<T>(), s.rows, b.rows, a.cols, threads);
    });
  });
}

void csr_transpose(const RowPointers& s, int64_t cols, int32_t* crow_t, int32_t* col_t,
                   int32_t* perm, int threads) {
  check_row_pointers(s.crow, s.rows, s.count, "crow_indices", "col_indices");
  const KernelTable& tab = active_table();
  with_index(s.col_dt, [&](auto ti) {
    using I = decltype(ti);
    const I* c = static_cast<const I*>(s.col);
    const int64_t p = first_bad(tab, c, s.count, cols);
    if (p >= 0) throw_bad_col(c, p, cols);
    transpose_run<I>(s.crow, c, s.rows, cols, crow_t, col_t, perm, threads);
  });
}

}  // namespace sparse_ops
