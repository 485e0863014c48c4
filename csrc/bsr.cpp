// BSR entry points: bsr_spmm, bsr_sddmm (validation, threading, dispatch).
#include <sstream>
#include <stdexcept>
#include <vector>

#include "entry_points.h"
#include "kernels.h"
#include "parallel.h"
#include "validate.h"

namespace sparse_ops {

void bsr_check_indices(const Arr& crow, const Arr& col) {
  expect(crow, DT::i32, {"Mb+1"});
  if (crow.dim(0) < 1)
    throw_value("crow_indices: expected shape (Mb+1,) with Mb >= 0, got an empty array");
  expect(col, DT::i32, {"nnzb"});
}

namespace {


// R x C from a (nnzb, R, C) array; both must be >= 1.
void block_dims(const Arr& blocks, DT ft, int64_t nnzb, int64_t* R, int64_t* C) {
  expect(blocks, ft, {nnzb, "R", "C"});
  *R = blocks.dim(1);
  *C = blocks.dim(2);
  if (*R < 1 || *C < 1) {
    std::ostringstream o;
    o << blocks.name << ": block size R x C must be at least 1 x 1, got " << *R << " x " << *C;
    throw_value(o.str());
  }
}

void check_block_multiple(const Arr& a, int64_t rows, int64_t block, const char* what) {
  if (rows % block != 0) {
    std::ostringstream o;
    o << a.name << ": " << rows << " rows is not a multiple of the block " << what << " " << block;
    throw_value(o.str());
  }
}

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

[[noreturn]] void throw_bad_block_col(const int32_t* col, int64_t p, int64_t Kb) {
  std::ostringstream o;
  o << "col_indices: value " << col[p] << " at position " << p << " out of range [0, " << Kb
    << ") (block columns)";
  throw std::invalid_argument(o.str());
}

template <class T>
void spmm_run(const BsrSpmmArgs<T>& args, const HalfValues& hv, int threads) {
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
        set_chunk_values(a, args.val, hv, nnzb * R * C, args.crow[bounds[c]] * R * C,
                             args.crow[bounds[c + 1]] * R * C);
        a.x = xt.data(t);
        a.ldx = xt.ld(t);
        a.xc0 = xt.col0(t);
        fn(a, bounds[c], bounds[c + 1], tiles[t].first, tiles[t].second);
      },
      xt.npack(), [&](int64_t t, int64_t q) { xt.pack(t, q); });
  if (bad.any()) throw_bad_block_col(args.col, bad.get(), args.Kb);
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

void bsr_spmm_arrs(const Arr& crow, const Arr& col, const Arr& val, const Arr& x, const Arr& out,
                   int threads) {
  bsr_check_indices(crow, col);
  const DT vt = value_dtype(val), ft = compute_dtype(vt);
  const int64_t Mb = crow.dim(0) - 1, nnzb = col.dim(0);
  int64_t R = 0, C = 0;
  block_dims(val, vt, nnzb, &R, &C);
  expect(x, ft, {"K", "N"}, vt == ft ? "the dtype of values" : "float32 for half values");
  const int64_t K = x.dim(0), N = x.dim(1);
  check_block_multiple(x, K, C, "width C =");
  expect(out, ft, {Mb * R, N}, "the dtype of values");
  for (const Arr* in : {&crow, &col, &val, &x}) expect_disjoint(out, *in);
  check_row_pointers(crow.ptr<int32_t>(), Mb, nnzb, "crow_indices", "col_indices");
  with_float(ft, [&](auto tf) {
    using T = decltype(tf);
    const HalfValues hv = half_values(val.data, vt == DT::bf16, vt == DT::f16);
    const BsrSpmmArgs<T> args{crow.ptr<int32_t>(), col.ptr<int32_t>(),
                              hv.bits ? nullptr : val.ptr<T>(), x.ptr<T>(),
                              out.ptr<T>(), Mb, K / C, R, C, N, x.ld, 0};
    spmm_run<T>(args, hv, threads);
  });
}

void bsr_spmm_perm_arrs(const Arr& crow, const Arr& col, const Arr& perm, const Arr& val,
                        const Arr& x, const Arr& out, int threads) {
  bsr_check_indices(crow, col);
  const DT ft = float_dtype(val);
  const int64_t Mb = crow.dim(0) - 1, nnzb = col.dim(0);
  int64_t Rs = 0, Cs = 0;  // the stored blocks: (Cs, Rs) are the transposed blocks' (R, C)
  block_dims(val, ft, nnzb, &Rs, &Cs);
  const int64_t R = Cs, C = Rs;
  expect(perm, DT::i32, {nnzb});
  expect(x, ft, {"K", "N"}, "the dtype of values");
  const int64_t K = x.dim(0), N = x.dim(1);
  if (N <= 1) throw_value("x: the permuted-blocks product needs N > 1 columns");
  check_block_multiple(x, K, C, "width C =");
  expect(out, ft, {Mb * R, N}, "the dtype of values");
  for (const Arr* in : {&crow, &col, &perm, &val, &x}) expect_disjoint(out, *in);
  // perm is a permutation of [0, nnzb) by construction (the transposed structure); the block
  // columns were checked when it was built. Check the permutation's range anyway.
  const KernelTable& tab = active_table();
  if (first_bad(tab, perm.ptr<int32_t>(), nnzb, nnzb) >= 0)
    throw_value("perm: entries must lie in [0, nnzb)");
  with_float(ft, [&](auto tf) {
    using T = decltype(tf);
    BsrSpmmArgs<T> args{crow.ptr<int32_t>(), col.ptr<int32_t>(), val.ptr<T>(), x.ptr<T>(),
                        out.ptr<T>(), Mb, K / C, R, C, N, x.ld, 0};
    args.perm = perm.ptr<int32_t>();
    spmm_run<T>(args, HalfValues{}, threads);
  });
}

void bsr_sddmm_arrs(const Arr& crow, const Arr& col, const Arr& a, const Arr& b, const Arr& out,
                    int threads) {
  bsr_check_indices(crow, col);
  const DT ft = float_dtype(a);
  const int64_t Mb = crow.dim(0) - 1, nnzb = col.dim(0);
  int64_t R = 0, C = 0;
  if (out.dt != ft)
    expect(out, ft, {nnzb, "R", "C"}, "the dtype of a");  // throws the dtype error
  block_dims(out, ft, nnzb, &R, &C);
  expect(a, ft, {Mb * R, "N"});
  const int64_t N = a.dim(1);
  expect(b, ft, {"K", N}, "the dtype of a");
  const int64_t K = b.dim(0);
  check_block_multiple(b, K, C, "width C =");
  for (const Arr* in : {&crow, &col, &a, &b}) expect_disjoint(out, *in);
  check_row_pointers(crow.ptr<int32_t>(), Mb, nnzb, "crow_indices", "col_indices");
  with_float(ft, [&](auto tf) {
    using T = decltype(tf);
    const BsrSddmmArgs<T> args{crow.ptr<int32_t>(), col.ptr<int32_t>(), a.ptr<T>(), b.ptr<T>(),
                               out.ptr<T>(), Mb, K / C, R, C, N};
    sddmm_run<T>(args, threads);
  });
}

void bsr_spmm(py::handle crow_h, py::handle col_h, py::handle val_h, py::handle x_h,
              py::handle out_h, int64_t num_threads) {
  const Arr crow = as_array(crow_h, "crow_indices");
  const Arr col = as_array(col_h, "col_indices");
  const Arr val = as_array(val_h, "values");
  const Arr x = as_array(x_h, "x");
  const Arr out = as_array(out_h, "out", true);
  const int threads = threads_arg(num_threads);
  py::gil_scoped_release nogil;
  bsr_spmm_arrs(crow, col, val, x, out, threads);
}

void bsr_sddmm(py::handle crow_h, py::handle col_h, py::handle a_h, py::handle b_h,
               py::handle out_h, int64_t num_threads) {
  const Arr crow = as_array(crow_h, "crow_indices");
  const Arr col = as_array(col_h, "col_indices");
  const Arr a = as_array(a_h, "a");
  const Arr b = as_array(b_h, "b");
  const Arr out = as_array(out_h, "out", true);
  const int threads = threads_arg(num_threads);
  py::gil_scoped_release nogil;
  bsr_sddmm_arrs(crow, col, a, b, out, threads);
}

}  // namespace sparse_ops
