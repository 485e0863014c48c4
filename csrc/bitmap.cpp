// Bitmap drivers: bitmap_spmm, bitmap_spmm_t, bitmap_sddmm (structure checks, threading,
// dispatch; drivers.h). SpMV (N == 1) has its own kernel (bitmap_kernels.h); wider products decode each
// row chunk to CSR column indices in L2-resident scratch and run the CSR kernels on it, so a
// chunk's 1-bit-a-position structure becomes 2 bytes a nonzero only while it is computed.
// S^T @ d needs no transposed structure: each task owns a range of S's columns (64-bit words
// of every row) and so a disjoint slice of the output.
#include <algorithm>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "drivers.h"
#include "kernels.h"
#include "panel.h"
#include "parallel.h"
#include "validate.h"

namespace sparse_ops {
namespace {

using BitmapShape = BitmapStructure;

// The narrowest CSR column type for K columns (as sparse_ops._checks.index_dtype_for).
DT column_dtype(int64_t K) { return K <= 32767 ? DT::i16 : DT::i32; }

int64_t popcount64(uint64_t w) { return __builtin_popcountll(w); }

// The precise message for a structure that failed a check (offsets already checked): the
// first row whose span is not its popcount or that sets a bit past K. O(M K / 64), run only
// after a kernel or a chunk check reported a bad row.
[[noreturn]] void throw_bad_structure(const uint8_t* bits, const int32_t* off,
                                      const BitmapShape& s) {
  const int64_t nw = s.rb / 8;
  const uint64_t past = s.K % 64 ? ~((1ull << (s.K % 64)) - 1) : 0;
  for (int64_t i = 0; i < s.M; ++i) {
    const uint8_t* row = bits + i * s.rb;
    int64_t cnt = 0;
    for (int64_t w = 0; w < nw; ++w) {
      uint64_t word;
      std::memcpy(&word, row + 8 * w, 8);
      cnt += popcount64(word);
      if (w == nw - 1 && (word & past)) {
        std::ostringstream o;
        o << "bitmap: row " << i << " sets bit " << 64 * w + __builtin_ctzll(word & past)
          << ", past the K = " << s.K << " columns (padding bits must be 0)";
        throw_value(o.str());
      }
    }
    if (cnt != off[i + 1] - off[i]) {
      std::ostringstream o;
      o << "row_offsets: row " << i << " spans " << off[i + 1] - off[i]
        << " values, its bitmap row sets " << cnt << " bits";
      throw_value(o.str());
    }
  }
  throw_value("bitmap: the structure changed while it was read");
}

// Chunk c's rows [bounds[c], bounds[c + 1]) checked (popcounts against the offsets, no bit past
// K) just before they are decoded or computed; a bad row is recorded in `bad`.
struct ChunkCheck {
  const KernelTable& tab;
  const uint8_t* bits;
  const int32_t* off;
  const BitmapShape& s;
  const std::vector<int64_t>& bounds;
  FirstBad& bad;
  bool operator()(int64_t c) const {
    const int64_t r = tab.bitmap_check(bits, s.rb, s.K, off, bounds[c], bounds[c + 1]);
    if (r >= 0) bad.record(r);
    return r < 0;
  }
};

// A row chunk [r0, r1) as CSR in the calling thread's scratch: local row pointers from 0 and
// column indices (the decoder may write 16 entries past the last one).
template <class I>
struct DecodedChunk {
  const int32_t* crow;
  const I* col;
};

template <class I>
DecodedChunk<I> decode_chunk(const KernelTable& tab, const int32_t* off, const uint8_t* bits,
                             int64_t rb, int64_t r0, int64_t r1) {
  const int64_t nr = r1 - r0, n = off[r1] - off[r0];
  const size_t crow_bytes = (static_cast<size_t>(nr + 1) * 4 + 63) / 64 * 64;
  char* buf = static_cast<char*>(
      scratch_buffer(kScratchDecode, crow_bytes + static_cast<size_t>(n + 16) * sizeof(I)));
  int32_t* crow = reinterpret_cast<int32_t*>(buf);
  I* col = reinterpret_cast<I*>(buf + crow_bytes);
  for (int64_t k = 0; k <= nr; ++k) crow[k] = off[r0 + k] - off[r0];
  bitmap_decode(tab, bits, rb, r0, r1, col);
  return {crow, col};
}

// The panel products' view of S (panel_kernels.h, panel_i8_kernels.h): its structure and
// values; the caller sets the operands.
PanelArgs panel_args(const BitmapShape& s, Values stored) {
  PanelArgs pa{PanelLayout::bitmap};
  pa.off = s.off;
  pa.bits = s.bits;
  pa.rb = s.rb;
  pa.nnz = s.nnz;
  pa.stored = stored;
  pa.M = s.M;
  pa.K = s.K;
  return pa;
}

// gscale: bitmap_spmm_grouped's group scales (int8 values, float32), null: none. The SpMV
// applies them in registers, the panel as it expands a row, the CSR kernels on the chunk's
// widened values (each value times its column's group scale, below).
template <class T>
void spmm_run(const BitmapShape& s, const int32_t* off, const uint8_t* bits, const Values& stored,
              const T* x, int64_t ldx, T* out, int64_t N, int threads,
              const float* gscale = nullptr, int64_t gs_ld = 0, int64_t gsize = 0,
              DT xsrc = DT::f32) {
  const KernelTable& tab = active_table();
  const int64_t M = s.M, K = s.K, nnz = s.nnz;
  const double work = static_cast<double>(nnz + M * s.rb) * static_cast<double>(N);
  threads = threads_for(threads, work);
  if (N == 1) {
    BitmapArgs<T> args{off, bits, nullptr, x, out, M, K, 1, nnz, s.rb, 1};
    args.stored = stored;
    args.gscale = gscale;
    args.gs_ld = gs_ld;
    args.gsize = gsize;
    args.x_narrow = xsrc == DT::bf16 || xsrc == DT::f16;
    args.call_tag = next_call_tag();
    if (stored.dt == compute_dtype(stored.dt)) args.val = static_cast<const T*>(stored.data);
    const int64_t nchunks = chunk_count(threads, M, nnz * 4 + M * s.rb);
    // A row costs its bitmap scan (rb / 8 words) plus its values.
    const auto bounds = split_by_prefix(off, M, nchunks, 1 + s.rb / 4, 1);
    const auto fn = typed<T>(tab).bitmap_spmv;
    FirstBad bad;  // the SpMV checks its rows as it goes (no separate pass over the bitmap)
    parallel_for(threads, nchunks, [&](int64_t c) {
      const int64_t r = fn(args, bounds[c], bounds[c + 1]);
      if (r >= 0) bad.record(r);
    });
    if (bad.any()) throw_bad_structure(bits, off, s);
    note_path("bitmap.spmv");
    return;
  }
  auto sparse = [&]() {  // the CSR kernels on each row chunk decoded to column indices
    with_index(column_dtype(K), [&](auto ti) {
      using I = decltype(ti);
      const auto fn = csr_fns<T, I>(tab).spmm;
      const auto tiles = col_tiles(N, tile_cols(K, N, sizeof(T), l2_tile_budget()), false);
      const TiledOperand<T> xt(x, K, ldx, tiles, threads);
      const int64_t nchunks = chunk_count(threads, M, nnz * static_cast<int64_t>(sizeof(I)));
      const auto bounds = split_by_prefix(off, M, nchunks, 2, 1);
      FirstBad bad;
      run_chunks(
          threads, nchunks, static_cast<int64_t>(tiles.size()), bad,
          ChunkCheck{tab, bits, off, s, bounds, bad},
          [&](int64_t t, int64_t c) {
            const int64_t r0 = bounds[c], r1 = bounds[c + 1], v0 = off[r0], v1 = off[r1];
            const DecodedChunk<I> d = decode_chunk<I>(tab, off, bits, s.rb, r0, r1);
            CsrSpmmArgs<T, I> a{d.crow, d.col, nullptr, xt.data(t), out + r0 * N,
                                r1 - r0, K, N, xt.ld(t), xt.col0(t)};
            a.val = chunk_values<T>(stored, nnz, v0, v1) + v0;
            if constexpr (std::is_same_v<T, float>)
              if (gscale) {  // int8 values: a.val is this thread's widened copy
                float* v = const_cast<float*>(a.val);
                for (int64_t r = 0; r < r1 - r0; ++r) {
                  const float* grow = gscale + (r0 + r) * gs_ld;
                  float sc = 0.0f;
                  int64_t gend = 0;  // columns ascend: one division a group
                  for (int32_t p = d.crow[r]; p < d.crow[r + 1]; ++p) {
                    const int64_t col = static_cast<int64_t>(d.col[p]);
                    if (col >= gend) {
                      sc = grow[col / gsize];
                      gend = (col / gsize + 1) * gsize;
                    }
                    v[p] *= sc;
                  }
                }
              }
            if (!fn(a, 0, r1 - r0, tiles[t].first, tiles[t].second)) bad.record(c);
          },
          xt.npack(), [&](int64_t t, int64_t q) { xt.pack(t, q); });
      if (bad.any()) throw_bad_structure(bits, off, s);
    });
  };
  if constexpr (!std::is_same_v<T, float>) {
    sparse();
    note_path("bitmap.csr");
  } else {
    auto panel = [&]() {  // load sparse, compute dense (panel_kernels.h)
      PanelArgs pa = panel_args(s, stored);
      pa.x = x;
      pa.out = out;
      pa.N = N;
      pa.ldx = ldx;
      pa.wscale = gscale;
      pa.ws_ld = gs_ld;
      pa.wgroup = gsize;
      const auto bounds = split_by_prefix(off, M, panel_chunks(M, threads), 1 + s.rb / 4, 1);
      FirstBad bad;
      panel_run(pa, bounds, threads, ChunkCheck{tab, bits, off, s, bounds, bad});
      if (bad.any()) throw_bad_structure(bits, off, s);
    };
    const double density =
        M * K > 0 ? static_cast<double>(nnz) / (static_cast<double>(M) * K) : 0.0;
    run_wide(PanelLayout::bitmap, N, density, x, K, ldx, panel, sparse, "bitmap.panel",
             "bitmap.csr");
  }
}

template <class T>
void sddmm_run(const BitmapShape& s, const int32_t* off, const uint8_t* bits, const T* a,
               const T* b, T* out, int64_t N, int threads) {
  const KernelTable& tab = active_table();
  const int64_t M = s.M, K = s.K, nnz = s.nnz;
  threads = threads_for(threads, static_cast<double>(nnz) * static_cast<double>(N + 1));
  auto run = [&](auto ti) {
    using I = decltype(ti);
    const auto fn = csr_fns<T, I>(tab).sddmm;
    const auto tiles = col_tiles(N, tile_cols(K, N, sizeof(T), l2_tile_budget()), true);
    const TiledOperand<T> bt(b, K, N, tiles, threads);
    const int64_t nchunks = chunk_count(threads, M, nnz * static_cast<int64_t>(sizeof(I)));
    const auto bounds = split_by_prefix(off, M, nchunks, 1, 1);
    FirstBad bad;
    run_chunks(
        threads, nchunks, static_cast<int64_t>(tiles.size()), bad,
        ChunkCheck{tab, bits, off, s, bounds, bad},
        [&](int64_t t, int64_t c) {
          const int64_t r0 = bounds[c], r1 = bounds[c + 1];
          const DecodedChunk<I> d = decode_chunk<I>(tab, off, bits, s.rb, r0, r1);
          const CsrSddmmArgs<T, I> args{d.crow,      d.col,    a + r0 * N, bt.data(t),
                                        out + off[r0], r1 - r0, K,          N,
                                        bt.ld(t),    bt.col0(t)};
          if (!fn(args, 0, r1 - r0, tiles[t].first, tiles[t].second, t > 0)) bad.record(c);
        },
        bt.npack(), [&](int64_t t, int64_t q) { bt.pack(t, q); });
    if (bad.any()) throw_bad_structure(bits, off, s);
  };
  with_index(column_dtype(K), run);
}

// out (K, N) = S^T @ d. Tasks: ranges of 64-bit column words x tiles of out's columns, each
// tile of out (64 words x width) sized for L2; a task zeroes and then fills its own slice.
template <class T>
void spmm_t_run(const BitmapShape& s, const int32_t* off, const uint8_t* bits, const T* val,
                const T* d, int64_t ldd, T* out, int64_t N, int threads) {
  const KernelTable& tab = active_table();
  const int64_t M = s.M, K = s.K, nw = s.rb / 8;
  threads = threads_for(threads, static_cast<double>(s.nnz) * static_cast<double>(N) + K * N);
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, nw));
  const auto wcuts = split_even(nw, parts);
  const int64_t rows_per = 64 * ((nw + parts - 1) / parts);
  int64_t tile = l2_tile_budget() / std::max<int64_t>(1, rows_per * static_cast<int64_t>(sizeof(T)));
  tile = std::max<int64_t>(16, tile / 16 * 16);
  const auto tiles = col_tiles(N, tile, false);
  const int64_t ntiles = static_cast<int64_t>(tiles.size());
  {  // every row checked first: any task reads every row
    const int64_t nchunks = chunk_count(threads, M, M * s.rb);
    const auto bounds = split_even(M, nchunks);
    FirstBad bad;
    run_chunks(threads, nchunks, 0, bad, ChunkCheck{tab, bits, off, s, bounds, bad},
               [](int64_t, int64_t) {});
    if (bad.any()) throw_bad_structure(bits, off, s);
  }
  const BitmapArgs<T> args{off, bits, val, d, out, M, K, N, s.nnz, s.rb, ldd};
  const auto fn = typed<T>(tab).bitmap_spmm_t;
  parallel_for(threads, parts * ntiles, [&](int64_t task) {
    const int64_t p = task / ntiles, t = task % ntiles;
    const int64_t w0 = wcuts[p], w1 = wcuts[p + 1];
    const int64_t n0 = tiles[t].first, n1 = tiles[t].second;
    const int64_t k1 = std::min(K, 64 * w1);
    for (int64_t k = 64 * w0; k < k1; ++k) std::fill(out + k * N + n0, out + k * N + n1, T(0));
    fn(args, out, w0, w1, n0, n1);
  });
}

}  // namespace

void bitmap_spmm(const BitmapStructure& s, Values val, const Dense& x, const Dense& out,
                 int threads) {
  check_row_pointers(s.off, s.M, s.nnz, "row_offsets", "values");
  with_compute(x.dt, [&](auto tf) {
    using T = decltype(tf);
    spmm_run<T>(s, s.off, s.bits, val, x.ptr<T>(), x.ld, out.ptr<T>(), x.cols, threads, nullptr,
                0, 0, x.src);
  });
}

void bitmap_spmm_grouped(const BitmapStructure& s, Values val, const float* scales,
                         int64_t gs_ld, int64_t gsize, const Dense& x, const Dense& out,
                         int threads) {
  check_row_pointers(s.off, s.M, s.nnz, "row_offsets", "values");
  // in float32: int8 values with group scales (the SpMV in registers, the panel as it
  // expands, the CSR kernels on the chunk's widened values)
  spmm_run<float>(s, s.off, s.bits, val, x.ptr<float>(), x.ld, out.ptr<float>(), x.cols,
                  threads, scales, gs_ld, gsize, x.src);
}

void bitmap_spmm_t(const BitmapStructure& s, Values val, const Dense& d, const Dense& out,
                   int threads) {
  check_row_pointers(s.off, s.M, s.nnz, "row_offsets", "values");
  with_compute(d.dt, [&](auto tf) {
    using T = decltype(tf);
    spmm_t_run<T>(s, s.off, s.bits, static_cast<const T*>(val.data), d.ptr<T>(), d.ld,
                  out.ptr<T>(), d.cols, threads);
  });
}

void bitmap_sddmm(const BitmapStructure& s, const Dense& a, const Dense& b, const Dense& out,
                  int threads) {
  check_row_pointers(s.off, s.M, s.nnz, "row_offsets", "values");
  with_compute(a.dt, [&](auto tf) {
    using T = decltype(tf);
    sddmm_run<T>(s, s.off, s.bits, a.ptr<T>(), b.ptr<T>(), out.ptr<T>(), a.cols, threads);
  });
}

void bitmap_spmm_w8a8(const BitmapStructure& s, const int8_t* val, const W8A8& q, float* out,
                      int threads) {
  check_row_pointers(s.off, s.M, s.nnz, "row_offsets", "values");
  const KernelTable& tab = active_table();
  threads = threads_for(threads, static_cast<double>(s.M) * s.K * static_cast<double>(q.N) / 8);
  PanelArgs pa = panel_args(s, {val, DT::i8});
  const PackedQuads pq = set_w8a8(pa, q, out, threads);
  const auto bounds = split_by_prefix(s.off, s.M, panel_chunks(s.M, threads), 1 + s.rb / 4, 1);
  FirstBad bad;
  panel_run(pa, bounds, threads, ChunkCheck{tab, s.bits, s.off, s, bounds, bad});
  if (bad.any()) throw_bad_structure(s.bits, s.off, s);
  note_path("bitmap.w8a8");
}

}  // namespace sparse_ops
