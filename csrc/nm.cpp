// N:M drivers: nm_spmm, nm_spmm_t, nm_sddmm (metadata checks, threading, dispatch; drivers.h).
#include <algorithm>
#include <cstring>
#include <memory>
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

struct NmGeom {
  int64_t n, m, b, K, G, Gn, mbytes;
};

NmGeom geometry(int64_t n, int64_t m, int64_t K) {
  if (m < 2 || m > 16 || n < 1 || n >= m) {
    std::ostringstream o;
    o << (m < 2 || m > 16 ? "m" : "n") << ": need 1 <= n < m <= 16, got n=" << n << ", m=" << m;
    throw_value(o.str());
  }
  if (K >= (int64_t{1} << 31) - 16)
    throw_value("K: " + std::to_string(K) + " columns is too many for N:M (need < 2**31 - 16)");
  NmGeom g{};
  g.n = n;
  g.m = m;
  g.b = m == 2 ? 1 : (m <= 4 ? 2 : 4);
  g.K = K;
  g.G = (K + m - 1) / m;
  g.Gn = g.G * n;
  g.mbytes = (g.Gn * g.b + 7) / 8;
  return g;
}

inline int64_t pos_at(const uint8_t* mrow, int64_t t, int64_t b) {
  const int64_t bo = t * b;
  return (mrow[bo >> 3] >> (bo & 7)) & ((1 << b) - 1);
}

// Checks the metadata of rows [r0, r1): every position < m and every column < K. Returns the
// first bad slot as row * Gn + t, or -1.
struct MetaCheck {
  const NmGeom& g;
  const uint8_t* meta;
  bool pow2;                 // m == 2^b: every position < m by construction
  int64_t last_lim;          // positions allowed in the last group (K - (G-1)*m)
  uint8_t bad_byte[256];     // a field of this byte holds a position >= m (only if !pow2)

  explicit MetaCheck(const NmGeom& geom, const uint8_t* md) : g(geom), meta(md) {
    pow2 = (int64_t{1} << g.b) == g.m;
    last_lim = g.G > 0 ? g.K - (g.G - 1) * g.m : g.m;
    const int fields = static_cast<int>(8 / g.b);
    for (int v = 0; v < 256; ++v) {
      bool bad = false;
      for (int f = 0; f < fields; ++f)
        if (((v >> (f * g.b)) & ((1 << g.b) - 1)) >= g.m) bad = true;
      bad_byte[v] = bad;
    }
  }

  bool needed() const { return g.Gn > 0 && (!pow2 || last_lim < g.m); }
  // Rows [r0, r1) checked before they are computed: true if they may be; the first bad slot
  // is recorded in `bad` otherwise.
  bool chunk_ok(int64_t r0, int64_t r1, FirstBad& bad) const {
    if (!needed()) return true;
    const int64_t q = first_bad(r0, r1);
    if (q >= 0) bad.record(q);
    return q < 0;
  }

  // Some field of the 8 bytes holds a position >= m (SWAR, b = 2 or 4; m < 2^b).
  bool word_bad(uint64_t w) const {
    constexpr uint64_t ones = 0x0101010101010101ull;
    if (g.b == 2)  // m = 3: a field equal to 3
      return (w & (w >> 1) & 0x5555555555555555ull) != 0;
    // b = 4: split the nibbles into bytes; byte + (0x80 - m) reaches 0x80 iff byte >= m
    const uint64_t lo = w & 0x0F0F0F0F0F0F0F0Full, hi = (w >> 4) & 0x0F0F0F0F0F0F0F0Full;
    const uint64_t add = static_cast<uint64_t>(0x80 - g.m) * ones;
    return (((lo + add) | (hi + add)) & (0x80 * ones)) != 0;
  }

  int64_t first_bad(int64_t r0, int64_t r1) const {
    const int64_t Gn = g.Gn, b = g.b;
    const int64_t full = (Gn * b) / 8;  // bytes holding only real slots
    for (int64_t i = r0; i < r1; ++i) {
      const uint8_t* mrow = meta + i * g.mbytes;
      int64_t t_bad = Gn;
      if (!pow2) {
        int64_t t0 = Gn, k = 0;
        for (; k + 8 <= full; k += 8) {  // eight bytes at a time, then the byte table
          uint64_t w;
          std::memcpy(&w, mrow + k, 8);
          if (word_bad(w)) break;
        }
        for (; k < full; ++k)
          if (bad_byte[mrow[k]]) {
            t0 = k * 8 / b;
            break;
          }
        if (t0 == Gn) t0 = full * 8 / b;
        for (int64_t t = t0; t < Gn; ++t)
          if (pos_at(mrow, t, b) >= g.m) {
            t_bad = t;
            break;
          }
      }
      if (last_lim < g.m) {
        for (int64_t t = (g.G - 1) * g.n; t < Gn && t < t_bad; ++t)
          if (pos_at(mrow, t, b) >= last_lim) {
            t_bad = t;
            break;
          }
      }
      if (t_bad < Gn) return i * Gn + t_bad;
    }
    return -1;
  }
};

[[noreturn]] void throw_bad_meta(const NmGeom& g, const uint8_t* meta, int64_t q) {
  const int64_t i = q / g.Gn, t = q % g.Gn, grp = t / g.n, s = t % g.n;
  const int64_t p = pos_at(meta + i * g.mbytes, t, g.b);
  std::ostringstream o;
  o << "metadata: position " << p << " of slot " << s << " (row " << i << ", group " << grp
    << ")";
  if (p >= g.m)
    o << " is not < m=" << g.m;
  else
    o << " gives column " << grp * g.m + p << " >= K=" << g.K;
  throw std::invalid_argument(o.str());
}

std::vector<int32_t> group_base(const NmGeom& g) {
  std::vector<int32_t> gb(static_cast<size_t>(g.Gn + 16), 0);
  for (int64_t t = 0; t < g.Gn; ++t) gb[t] = static_cast<int32_t>((t / g.n) * g.m);
  return gb;
}

// The panel products' view of S (panel_kernels.h, panel_i8_kernels.h): M rows of metadata of
// geometry g and their values; the caller sets the operands.
PanelArgs panel_args(const NmGeom& g, const uint8_t* meta, int64_t M, Values stored) {
  PanelArgs pa{PanelLayout::nm};
  pa.meta = meta;
  pa.n = g.n;
  pa.m = g.m;
  pa.b = g.b;
  pa.G = g.G;
  pa.mbytes = g.mbytes;
  pa.stored = stored;
  pa.M = M;
  pa.K = g.K;
  return pa;
}

template <class T>
void spmm_run(const NmArgs<T>& args, const Values& stored, const NmGeom& g, int threads) {
  const KernelTable& tab = active_table();
  const auto fn = typed<T>(tab).nm_spmm;
  const int64_t M = args.M, N = args.N;
  threads = threads_for(threads, static_cast<double>(M) * (g.Gn + 1) * N);
  const MetaCheck check(g, args.meta);
  auto sparse = [&]() {  // the N:M kernels, slot by slot
    // The kernel keeps chunks of x rows in L1 (the tile need not fit L2): 512-byte x rows.
    const auto tiles = col_tiles(N, 512 / static_cast<int64_t>(sizeof(T)), false);
    const TiledOperand<T> xt(args.x, g.K, args.ldx, tiles, threads);
    const int64_t nchunks = chunk_count(threads, M, M * g.mbytes);
    const auto bounds = split_even(M, nchunks);
    const uint64_t call = next_call_tag();
    FirstBad bad;
    run_chunks(
        threads, nchunks, static_cast<int64_t>(tiles.size()), bad,
        [&](int64_t c) { return check.chunk_ok(bounds[c], bounds[c + 1], bad); },
        [&](int64_t t, int64_t c) {
          NmArgs<T> a = args;
          a.call = call;
          set_chunk_values(a, stored, M * g.Gn, bounds[c] * g.Gn, bounds[c + 1] * g.Gn);
          if constexpr (std::is_same_v<T, float>)
            if (a.gscale && N > 1) {  // int8 values: a.val is this thread's widened copy
              float* v = const_cast<float*>(a.val);
              const int64_t per = a.gsize / g.m * g.n;  // slots a scale group (whole groups)
              for (int64_t i = bounds[c]; i < bounds[c + 1]; ++i) {
                const float* grow = a.gscale + i * a.gs_ld;
                float* vr = v + i * g.Gn;
                for (int64_t t0 = 0, j = 0; t0 < g.Gn; t0 += per, ++j) {
                  const float sc = grow[j];
                  const int64_t t1 = std::min(g.Gn, t0 + per);
                  for (int64_t t = t0; t < t1; ++t) vr[t] *= sc;
                }
              }
            }
          a.x = xt.data(t);
          a.ldx = xt.ld(t);
          a.xc0 = xt.col0(t);
          fn(a, bounds[c], bounds[c + 1], tiles[t].first, tiles[t].second);
        },
        xt.npack(), [&](int64_t t, int64_t q) { xt.pack(t, q); });
    if (bad.any()) throw_bad_meta(g, args.meta, bad.get());
  };
  if constexpr (!std::is_same_v<T, float>) {
    sparse();
    note_path(N == 1 ? "nm.spmv" : "nm.slots");
  } else {
    auto panel = [&]() {  // load sparse, compute dense (panel_kernels.h)
      PanelArgs pa = panel_args(g, args.meta, M, stored);
      pa.x = args.x;
      pa.out = args.out;
      pa.N = N;
      pa.ldx = args.ldx;
      pa.wscale = args.gscale;
      pa.ws_ld = args.gs_ld;
      pa.wgroup = args.gsize;
      const auto bounds = split_even(M, panel_chunks(M, threads));
      FirstBad bad;
      panel_run(pa, bounds, threads,
                [&](int64_t c) { return check.chunk_ok(bounds[c], bounds[c + 1], bad); });
      if (bad.any()) throw_bad_meta(g, args.meta, bad.get());
    };
    run_wide(PanelLayout::nm, N, static_cast<double>(g.n) / static_cast<double>(g.m), args.x,
             g.K, args.ldx, panel, sparse, "nm.panel", N == 1 ? "nm.spmv" : "nm.slots");
  }
}

template <class T>
void sddmm_run(const NmArgs<T>& args, const NmGeom& g, int threads) {
  const KernelTable& tab = active_table();
  const auto fn = typed<T>(tab).nm_sddmm;
  const int64_t M = args.M, N = args.N;
  threads = threads_for(threads, static_cast<double>(M) * g.Gn * (N + 1));
  const auto tiles = col_tiles(N, tile_cols(g.K, N, sizeof(T), l2_tile_budget()), true);
  const TiledOperand<T> bt(args.y, g.K, N, tiles, threads);
  const int64_t nchunks = chunk_count(threads, M, M * g.mbytes);
  const auto bounds = split_even(M, nchunks);
  const MetaCheck check(g, args.meta);
  FirstBad bad;
  run_chunks(
      threads, nchunks, static_cast<int64_t>(tiles.size()), bad,
      [&](int64_t c) { return check.chunk_ok(bounds[c], bounds[c + 1], bad); },
      [&](int64_t t, int64_t c) {
        NmArgs<T> a = args;
        a.y = bt.data(t);
        a.ldx = bt.ld(t);
        a.xc0 = bt.col0(t);
        fn(a, bounds[c], bounds[c + 1], tiles[t].first, tiles[t].second, t > 0);
      },
      bt.npack(), [&](int64_t t, int64_t q) { bt.pack(t, q); });
  if (bad.any()) throw_bad_meta(g, args.meta, bad.get());
}

// out (K, N) = S^T @ d. Threads own column slices of out when N is wide enough; otherwise
// each part of the rows accumulates into a private K x N buffer (part 0 into out) and the
// buffers are summed at the end.
template <class T>
void spmm_t_run(const NmArgs<T>& args, const NmGeom& g, int threads) {
  const KernelTable& tab = active_table();
  const auto fn = typed<T>(tab).nm_spmm_t;
  const int64_t M = args.M, K = g.K, N = args.N;
  T* out = args.out;
  threads = threads_for(threads, static_cast<double>(M) * g.Gn * N + static_cast<double>(K) * N);
  {  // validate everything first: any part may scatter into any row of out
    const int64_t nchunks = chunk_count(threads, M, M * g.mbytes);
    const auto bounds = split_even(M, nchunks);
    const MetaCheck check(g, args.meta);
    FirstBad bad;
    if (check.needed())
      run_chunks(
          threads, nchunks, 0, bad,
          [&](int64_t c) { return check.chunk_ok(bounds[c], bounds[c + 1], bad); },
          [](int64_t, int64_t) {});
    if (bad.any()) throw_bad_meta(g, args.meta, bad.get());
  }
  if (K * N == 0) return;
  const int64_t col_tile = 256 / static_cast<int64_t>(sizeof(T));
  if (threads > 1 && N >= col_tile * threads) {
    const auto tiles = col_tiles(N, col_tile, false);
    const int64_t nt = static_cast<int64_t>(tiles.size());
    parallel_for(threads, nt, [&](int64_t t) {
      const int64_t n0 = tiles[t].first, n1 = tiles[t].second;
      for (int64_t k = 0; k < K; ++k) std::fill(out + k * N + n0, out + k * N + n1, T(0));
      fn(args, out, 0, M, n0, n1);
    });
    return;
  }
  int64_t parts = threads;
  const int64_t buf_elems = K * N;
  constexpr int64_t kMaxBufBytes = int64_t{512} << 20;
  if ((parts - 1) * buf_elems * static_cast<int64_t>(sizeof(T)) > kMaxBufBytes)
    parts = 1 + kMaxBufBytes / (buf_elems * static_cast<int64_t>(sizeof(T)));
  parts = std::max<int64_t>(1, std::min<int64_t>(parts, M));
  if (parts <= 1) {
    std::fill(out, out + K * N, T(0));
    fn(args, out, 0, M, 0, N);
    return;
  }
  std::unique_ptr<T[]> bufs(new T[static_cast<size_t>((parts - 1) * buf_elems)]);
  const auto rows = split_even(M, parts);
  const int nth = static_cast<int>(parts);
  parallel_for(nth, parts, [&](int64_t t) {
    T* o = t == 0 ? out : bufs.get() + (t - 1) * buf_elems;
    std::fill(o, o + buf_elems, T(0));
    fn(args, o, rows[t], rows[t + 1], 0, N);
  });
  const auto red = split_even(buf_elems, 4 * parts);
  parallel_for(nth, 4 * parts, [&](int64_t c) {
    for (int64_t t = 1; t < parts; ++t) {
      const T* src = bufs.get() + (t - 1) * buf_elems;
      for (int64_t e = red[c]; e < red[c + 1]; ++e) out[e] += src[e];
    }
  });
}

// nm_spmm, and nm_spmm_grouped with its group scales (null gscale: none): the SpMV applies
// them in registers, the panel as it expands a row, the slot kernels (N > 1) on the chunk's
// widened values.
void spmm_entry(const NmStructure& s, Values val, const Dense& x, const Dense& out, int threads,
                const float* gscale = nullptr, int64_t gs_ld = 0, int64_t gsize = 0) {
  const NmGeom g = geometry(s.n, s.m, s.K);
  const std::vector<int32_t> gb = group_base(g);
  with_compute(x.dt, [&](auto tf) {
    using T = decltype(tf);
    NmArgs<T> args{nullptr, s.meta, gb.data(), x.ptr<T>(), nullptr, out.ptr<T>(),
                   s.M, s.K, x.cols, g.G, g.n, g.m, g.b, g.mbytes, x.ld, 0};
    args.gscale = gscale;
    args.gs_ld = gs_ld;
    args.gsize = gsize;
    spmm_run<T>(args, val, g, threads);
  });
}
}  // namespace

void nm_spmm(const NmStructure& s, Values val, const Dense& x, const Dense& out, int threads) {
  spmm_entry(s, val, x, out, threads);
}

void nm_spmm_grouped(const NmStructure& s, Values val, const float* scales, int64_t gs_ld,
                     int64_t gsize, const Dense& x, const Dense& out, int threads) {
  spmm_entry(s, val, x, out, threads, scales, gs_ld, gsize);
}

void nm_spmm_t(const NmStructure& s, Values val, const Dense& d, const Dense& out,
               int threads) {
  const NmGeom g = geometry(s.n, s.m, s.K);
  const std::vector<int32_t> gb = group_base(g);
  with_compute(d.dt, [&](auto tf) {
    using T = decltype(tf);
    const NmArgs<T> args{static_cast<const T*>(val.data), s.meta, gb.data(), d.ptr<T>(),
                         nullptr, out.ptr<T>(), s.M, s.K, d.cols, g.G, g.n, g.m, g.b, g.mbytes,
                         d.ld, 0};
    spmm_t_run<T>(args, g, threads);
  });
}

void nm_sddmm(const NmStructure& s, const Dense& a, const Dense& b, const Dense& out,
              int threads) {
  const NmGeom g = geometry(s.n, s.m, s.K);
  const std::vector<int32_t> gb = group_base(g);
  with_compute(a.dt, [&](auto tf) {
    using T = decltype(tf);
    const NmArgs<T> args{nullptr, s.meta, gb.data(), a.ptr<T>(), b.ptr<T>(), out.ptr<T>(),
                         s.M, s.K, a.cols, g.G, g.n, g.m, g.b, g.mbytes, a.cols, 0};
    sddmm_run<T>(args, g, threads);
  });
}

void nm_spmm_w8a8(const NmStructure& s, const int8_t* val, const W8A8& q, float* out,
                  int threads) {
  const NmGeom g = geometry(s.n, s.m, s.K);
  threads = threads_for(threads, static_cast<double>(s.M) * s.K * static_cast<double>(q.N) / 8);
  PanelArgs pa = panel_args(g, s.meta, s.M, {val, DT::i8});
  const PackedQuads pq = set_w8a8(pa, q, out, threads);
  const MetaCheck check(g, s.meta);
  const auto bounds = split_even(s.M, panel_chunks(s.M, threads));
  FirstBad bad;
  panel_run(pa, bounds, threads,
            [&](int64_t c) { return check.chunk_ok(bounds[c], bounds[c + 1], bad); });
  if (bad.any()) throw_bad_meta(g, s.meta, bad.get());
  note_path("nm.w8a8");
}

}  // namespace sparse_ops
