// BSR drivers: bsr_spmm, bsr_spmm_t_transposed, bsr_sddmm (block-column checks, threading,
// dispatch; drivers.h).
#include <sstream>
#include <stdexcept>
#include <vector>

#include "drivers.h"
#include "kernels.h"
#include "panel.h"
#include "parallel.h"
#include "validate.h"

namespace sparse_ops {

namespace {


struct BlockColCheck {
  const KernelTable& tab;
  const int32_t* crow;
  const int32_t* col;
  const std::vector<int64_t>& bounds;
  int64_t Kb;
  FirstBad& bad;
  bool operator()(int64_t c) const {
    const int64_t p0 = crow[bounds[c]], p1 = crow[bounds[c + 1]];
    const int64_t p = first_bad(tab, col + p0, p1 - p0, Kb);
    if (p >= 0) {
      bad.record(p0 + p);
      return false;
    }
    return true;
  }
};

[[noreturn]] void throw_bad_block_col(const int32_t* col, int64_t p, int64_t Kb,
                                      const char* name = "col_indices") {
  std::ostringstream o;
  o << name << ": value " << col[p] << " at position " << p << " out of range [0, " << Kb
    << ") (block columns)";
  throw std::invalid_argument(o.str());
}

template <class T>
void spmm_run(const BsrSpmmArgs<T>& args, const Values& stored, int threads) {
  const KernelTable& tab = active_table();
  const auto fn = typed<T>(tab).bsr_spmm;
  const int64_t Mb = args.Mb, R = args.R, C = args.C, N = args.N, K = args.Kb * C;
  const int64_t nnzb = args.crow[Mb];
  threads = threads_for(threads, static_cast<double>(nnzb * R * C + Mb * R) * N);
  const auto tiles = col_tiles(N, tile_cols(K, N, sizeof(T), l2_tile_budget()), false);
  const TiledOperand<T> xt(args.x, K, args.ldx, tiles, threads);
  const int64_t nchunks = chunk_count(threads, Mb, nnzb * R * C * static_cast<int64_t>(sizeof(T)));
  const auto bounds = split_by_prefix(args.crow, Mb, nchunks, R, R * C);
  FirstBad bad;
  const BlockColCheck check{tab, args.crow, args.col, bounds, args.Kb, bad};
  run_chunks(
      threads, nchunks, static_cast<int64_t>(tiles.size()), bad,
      check,
      [&](int64_t t, int64_t c) {
        BsrSpmmArgs<T> a = args;
        set_chunk_values(a, stored, nnzb * R * C, args.crow[bounds[c]] * R * C,
                         args.crow[bounds[c + 1]] * R * C);
        a.x = xt.data(t);
        a.ldx = xt.ld(t);
        a.xc0 = xt.col0(t);
        fn(a, bounds[c], bounds[c + 1], tiles[t].first, tiles[t].second);
      },
      xt.npack(), [&](int64_t t, int64_t q) { xt.pack(t, q); });
  if (bad.any()) throw_bad_block_col(args.col, bad.get(), args.Kb, args.perm ? "col_t" : "col_indices");
}

template <class T>
void sddmm_run(const BsrSddmmArgs<T>& args, int threads) {
  const KernelTable& tab = active_table();
  const auto fn = typed<T>(tab).bsr_sddmm;
  const int64_t Mb = args.Mb, R = args.R, C = args.C, N = args.N;
  const int64_t nnzb = args.crow[Mb];
  threads = threads_for(threads, static_cast<double>(nnzb * R * C) * (N + 1));
  // Per block the micro-kernel reads R + C rows of the tile: keep them in L2.
  const auto tiles = col_tiles(N, tile_cols(R + C, N, sizeof(T), 256 * 1024), true);
  const int64_t nchunks = chunk_count(threads, Mb, nnzb * R * C * static_cast<int64_t>(sizeof(T)));
  const auto bounds = split_by_prefix(args.crow, Mb, nchunks, R, R * C);
  FirstBad bad;
  const BlockColCheck check{tab, args.crow, args.col, bounds, args.Kb, bad};
  run_chunks(threads, nchunks, static_cast<int64_t>(tiles.size()), bad,
             check,
             [&](int64_t t, int64_t c) {
               fn(args, bounds[c], bounds[c + 1], tiles[t].first, tiles[t].second, t > 0);
             });
  if (bad.any()) throw_bad_block_col(args.col, bad.get(), args.Kb);
}

}  // namespace

void bsr_spmm(const RowPointers& s, int64_t R, int64_t C, Values val, const Dense& x,
              const Dense& out, int threads) {
  check_row_pointers(s.crow, s.rows, s.count, "crow_indices", "col_indices");
  with_compute(x.dt, [&](auto tf) {
    using T = decltype(tf);
    const BsrSpmmArgs<T> args{s.crow, static_cast<const int32_t*>(s.col), nullptr, x.ptr<T>(),
                              out.ptr<T>(), s.rows, x.rows / C, R, C, x.cols, x.ld, 0};
    spmm_run<T>(args, val, threads);
  });
}

void bsr_spmm_t_transposed(const RowPointers& t, const int32_t* perm, int64_t R, int64_t C,
                           Values val, const Dense& d, const Dense& out, int threads) {
  check_row_pointers(t.crow, t.rows, t.count, "crow_t", "col_t");
  const KernelTable& tab = active_table();
  if (first_bad(tab, perm, t.count, t.count) >= 0)
    throw_value("perm_t: entries must lie in [0, nnzb)");
  // Block p of S^T is stored block perm[p] (R x C) transposed: the transposed blocks are C x R.
  with_compute(d.dt, [&](auto tf) {
    using T = decltype(tf);
    BsrSpmmArgs<T> args{t.crow, static_cast<const int32_t*>(t.col), nullptr, d.ptr<T>(),
                        out.ptr<T>(), t.rows, d.rows / R, C, R, d.cols, d.ld, 0};
    args.perm = perm;
    spmm_run<T>(args, val, threads);
  });
}

void bsr_sddmm(const RowPointers& s, int64_t R, int64_t C, const Dense& a, const Dense& b,
               const Dense& out, int threads) {
  check_row_pointers(s.crow, s.rows, s.count, "crow_indices", "col_indices");
  with_compute(a.dt, [&](auto tf) {
    using T = decltype(tf);
    const BsrSddmmArgs<T> args{s.crow, static_cast<const int32_t*>(s.col), a.ptr<T>(),
                               b.ptr<T>(), out.ptr<T>(), s.rows, b.rows / C, R, C, a.cols};
    sddmm_run<T>(args, threads);
  });
}

void bsr_spmm_w8a8(const RowPointers& s, int64_t R, int64_t C, const int8_t* val,
                   const W8A8& q, float* out, int threads) {
  const int64_t K = q.K;
  check_row_pointers(s.crow, s.rows, s.count, "crow_indices", "col_indices");
  const KernelTable& tab = active_table();
  const int32_t* col = static_cast<const int32_t*>(s.col);
  const int64_t Mb = s.rows, Kb = K / C, nnzb = s.crow[Mb];
  threads = threads_for(threads, static_cast<double>(nnzb * R * C) * static_cast<double>(q.N) / 8);
  PanelArgs pa{PanelLayout::bsr};
  pa.crow = s.crow;
  pa.bcol = col;
  pa.R = R;
  pa.C = C;
  pa.M = Mb * R;
  pa.K = K;
  pa.stored = {val, DT::i8};
  const PackedQuads pq = set_w8a8(pa, q, out, threads);
  const int64_t nchunks = std::max<int64_t>(1, std::min<int64_t>(Mb, 8 * int64_t{threads}));
  const auto blocks = split_by_prefix(s.crow, Mb, nchunks, R, R * C);
  std::vector<int64_t> rows(blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) rows[i] = blocks[i] * R;
  FirstBad bad;
  panel_run(pa, rows, threads, BlockColCheck{tab, s.crow, col, blocks, Kb, bad});
  if (bad.any()) throw_bad_block_col(col, bad.get(), Kb);
  note_path("bsr.w8a8");
}

}  // namespace sparse_ops
