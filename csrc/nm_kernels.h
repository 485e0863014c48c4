// N:M kernels (SpMM, SpMV, transposed SpMM, SDDMM), written once over V<T> and compiled per
// SIMD level by isa_*.cpp. The packed metadata is decoded on the fly (no decompressed copy):
// slot t of a row has position (meta[t*b/8] >> (t*b%8)) & (2^b-1) and column gbase[t] + that.
// Each chunk's metadata was checked just before where it can be out of range (nm.cpp).
#pragma once

namespace sparse_ops {
namespace ISA_NS {

// Bytes of the x / out tile kept in L1 by the group-chunked loops.
constexpr int64_t kNmL1Bytes = 32 * 1024;

inline int64_t nm_pos(const uint8_t* __restrict__ mrow, int64_t t, int64_t b, uint32_t bm) {
  const int64_t bo = t * b;
  return (mrow[bo >> 3] >> (bo & 7)) & bm;
}

constexpr int64_t kNmMaxSlots = 512;
constexpr int64_t kNmAhead = 8;  // rows prefetched ahead in the group-chunked loops
constexpr int64_t kNmRowBlock = 512;  // rows sharing one pass over the group chunks

// A 64-byte aligned buffer of n elements from the calling thread's scratch slot.
template <class T>
struct Scratch {
  T* p;
  Scratch(ScratchSlot slot, int64_t n)
      : p(static_cast<T*>(scratch_buffer(slot, static_cast<size_t>(n) * sizeof(T)))) {}
};

inline int64_t gcd64(int64_t a, int64_t b) {
  while (b) {
    const int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// Groups per chunk: the chunk's m rows per group of row_bytes each fit kNmL1Bytes, the chunk
// starts every row's slots at a multiple of W (vector decode), and its slots fit the buffer.
template <class T>
inline int64_t nm_group_chunk(const NmArgs<T>& a, int64_t row_bytes) {
  constexpr int64_t W = V<T>::W;
  const int64_t align = W / gcd64(a.n, W);
  int64_t gc = kNmL1Bytes / (a.m * (row_bytes > 0 ? row_bytes : 1));
  gc = gc < (kNmMaxSlots - W) / a.n ? gc : (kNmMaxSlots - W) / a.n;
  gc = gc / align * align;
  return gc > align ? gc : align;
}

// Rows of a block are far apart (new pages), and each row's slice of a group chunk is a new
// stream: at row i of [r0, r1), prefetch the slice [t0, t1) of row i + kNmAhead, wrapping to
// the next chunk's slice (from t1) of the block's first rows.
template <class T>
inline void nm_prefetch_ahead(const NmArgs<T>& a, int64_t i, int64_t r0, int64_t r1, int64_t t0,
                              int64_t t1) {
  const int64_t Gn = a.G * a.n;
  int64_t ip = i + kNmAhead, tp = t0;
  if (ip >= r1) {
    ip -= r1 - r0;
    tp = t1;
  }
  if (tp >= Gn) return;
  const int64_t vlines = (t1 - t0) * static_cast<int64_t>(sizeof(T)) / 64 + 1;
  const char* pv = reinterpret_cast<const char*>(a.val + ip * Gn + tp);
  for (int64_t l = 0; l < vlines; ++l) prefetch(pv + 64 * l);
  prefetch(a.meta + ip * a.meta_stride + tp * a.bits / 8);
}

// cols[t - t0] = scale * column of slot t of the row whose metadata is mrow, for t in
// [t0, t1); t0 a multiple of W. May write up to W - 1 entries past t1 - t0.
template <class T>
inline void nm_decode(const NmArgs<T>& a, const uint8_t* mrow, const typename V<T>::Dec& dec,
                      int64_t t0, int64_t t1, int32_t* cols, int32_t scale = 1) {
  using VT = V<T>;
  constexpr int W = VT::W;
  const int64_t b = a.bits, stride = a.meta_stride;
  for (int64_t t = t0; t < t1; t += W) {
    const int64_t bo = t * b, by = bo >> 3;
    const uint64_t bits = load_bytes(mrow + by, stride - by) >> (bo & 7);
    const auto c = VT::nm_cols(a.gbase + t, bits, dec);
    VT::store_idx(cols + (t - t0), scale == 1 ? c : VT::imul(c, scale));
  }
}

// ---------------------------------------------------------------- SpMV (N == 1)
// Whether V has nm_idx_pow2 (the AVX-512 float table: 16 slots of b <= 2 bits).
template <class VT, class = void>
struct HasNmIdxPow2 : std::false_type {};
template <class VT>
struct HasNmIdxPow2<VT, std::void_t<decltype(VT::kNmIdxPow2)>> : std::true_type {};

// When W slots span at most TBL*W columns (n divides W and m <= TBL*n: 2:4, 1:2, 4:8 with two
// tables; 1:4, 2:8, 4:16 with four), the x values of a block of W slots come from TBL
// contiguous vector loads and permutes instead of a gather.
// GS: the values are scaled per group of gsize columns (a.gscale) as they are loaded; the
// caller checked that gsize is a multiple of the span of a block, so a block lies in one group.
// P2: the fast blocks' indices by VT::nm_idx_pow2 (b <= 2, m == 2^b: 2:4, 1:4, 1:2).
template <class T, int TBL, class TV = T, bool GS = false, bool P2 = false>
void nm_spmv_perm(const NmArgs<T>& a, int64_t r0, int64_t r1) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  const int64_t Gn = a.G * a.n, b = a.bits, stride = a.meta_stride, K = a.K;
  const int64_t span = (W / a.n) * a.m;  // columns covered by W slots
  const int64_t bpb = W * b / 8;         // metadata bytes per block of W slots (W*b % 8 == 0)
  const auto dec = VT::dec(static_cast<int>(b));
  alignas(64) int32_t go[W];
  for (int l = 0; l < W; ++l) go[l] = static_cast<int32_t>((l / a.n) * a.m);
  const auto goff = VT::idx(go);
  const T* __restrict__ x = a.x;
  auto clampw = [](int64_t v) { return static_cast<int>(v < 0 ? 0 : (v > W ? W : v)); };
  // GS: blocks a scale group (the caller checked gsize % span == 0), and its log2 or -1
  const int64_t bpg = GS ? std::max<int64_t>(1, a.gsize / span) : 1;
  const int gshift = (bpg & (bpg - 1)) == 0 ? __builtin_ctzll(static_cast<uint64_t>(bpg)) : -1;
  // x values of a block whose window starts at column base (load(q): the window's q-th vector)
  auto window = [](auto load, const auto& idx, int n) {
    if constexpr (TBL == 2)
      return VT::perm2n(load(0), load(1), idx, n);
    else
      return VT::perm4n(load(0), load(1), load(2), load(3), idx, n);
  };
  // Blocks k < nfast read 8 metadata bytes and TBL*W x values with no bounds checks.
  int64_t nfast = Gn / W;
  if (stride >= 8) nfast = std::min(nfast, (stride - 8) / bpb + 1); else nfast = 0;
  if (K >= TBL * W) nfast = std::min(nfast, (K - TBL * W) / span + 1); else nfast = 0;
  // row i's streams
  struct Row {
    const TV* vrow;
    const uint8_t* mrow;
    const float* grow;
  };
  auto row_at = [&](int64_t i) {
    return Row{values_of<TV>(a) + i * Gn, a.meta + i * stride,
               GS ? a.gscale + i * a.gs_ld : nullptr};
  };
  // the values of block k (the W slots from k * W), scaled by their group's scale (block k's
  // group: k / bpg, a shift when bpg is a power of two: no division a block)
  auto vals = [&](const Row& r, int64_t k) {
    if constexpr (GS)
      return VT::mul(VT::load(r.vrow + k * W),
                     VT::set1(r.grow[gshift >= 0 ? k >> gshift : k / bpg]));
    else
      return VT::load(r.vrow + k * W);
  };
  // the x values of block k's slots
  auto fast = [&](const Row& r, int64_t k) {
    typename VT::ivec idx;
    if constexpr (P2) {
      idx = VT::nm_idx_pow2(r.mrow + k * bpb, goff, dec);
    } else {
      uint64_t bits;
      std::memcpy(&bits, r.mrow + k * bpb, 8);
      idx = VT::iadd(goff, VT::nm_pos(bits, dec));
    }
    const T* xw = x + k * span;
    return window([xw](int q) { return VT::load(xw + q * VT::W); }, idx, W);
  };
  auto prefetch = [&](const Row& r, int64_t k) {
    prefetch_stream<2 * W * sizeof(TV)>(r.vrow + k * W);
    if ((k & 15) == 0) prefetch_stream<64>(r.mrow + k * bpb);
  };
  // blocks [k, Gn / W rounded up) of row r, checked, into s
  auto tail = [&](const Row& r, int64_t k, reg s) {
    for (int64_t t = k * W; t < Gn; t += W, ++k) {
      const int n = static_cast<int>(Gn - t < W ? Gn - t : W);
      const int64_t by = k * bpb, base = k * span;
      const auto idx = VT::iadd(goff, VT::nm_pos(load_bytes(r.mrow + by, stride - by), dec));
      const reg xv = window(
          [&](int q) { return VT::loadn(x + base + q * W, clampw(K - base - q * W)); }, idx, n);
      reg v = VT::loadn(r.vrow + t, n);
      if constexpr (GS) v = VT::mul(v, VT::set1(r.grow[k / bpg]));
      s = VT::fma(v, xv, s);
    }
    return s;
  };
  // rows idx[0 .. R) at once, their blocks interleaved (2R streams in flight)
  auto rows = [&](auto rc, const int64_t* idx) {
    constexpr int R = decltype(rc)::value;
    Row rw[R];
    reg s0[R], s1[R];
    for (int j = 0; j < R; ++j) {
      rw[j] = row_at(idx[j]);
      s0[j] = s1[j] = VT::zero();
    }
    int64_t k = 0;
    for (; k + 2 <= nfast; k += 2) {
      for (int j = 0; j < R; ++j) prefetch(rw[j], k);
      for (int j = 0; j < R; ++j) s0[j] = VT::fma(vals(rw[j], k), fast(rw[j], k), s0[j]);
      for (int j = 0; j < R; ++j) s1[j] = VT::fma(vals(rw[j], k + 1), fast(rw[j], k + 1), s1[j]);
    }
    for (; k < nfast; ++k)
      for (int j = 0; j < R; ++j) s0[j] = VT::fma(vals(rw[j], k), fast(rw[j], k), s0[j]);
    for (int j = 0; j < R; ++j) a.out[idx[j]] = VT::hsum(VT::add(s0[j], tail(rw[j], k, s1[j])));
  };
  // P2 (the 2:4 / 1:4 decode on AVX-512): two rows at a time, from the two halves of the range:
  // four streams in flight instead of two
  for_row_pairs<P2>(r0, r1, [&](auto rc, const int64_t* idx) {
    rows(rc, idx);
    return int64_t{-1};
  });
}

template <class T, class TV = T, bool GS = false>
void nm_spmv_rows(const NmArgs<T>& a, int64_t r0, int64_t r1) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  if constexpr (VT::kPerm2) {
    const bool aligned = !GS || a.gsize % ((W / a.n) * a.m) == 0;
    if constexpr (HasNmIdxPow2<VT>::value)
      if (aligned && W % a.n == 0 && a.bits <= 2 && a.m == (int64_t{1} << a.bits)) {
        if ((W / a.n) * a.m <= 2 * W) return nm_spmv_perm<T, 2, TV, GS, true>(a, r0, r1);
        if ((W / a.n) * a.m <= 4 * W) return nm_spmv_perm<T, 4, TV, GS, true>(a, r0, r1);
      }
    if (aligned && W % a.n == 0 && (W / a.n) * a.m <= 2 * W)
      return nm_spmv_perm<T, 2, TV, GS>(a, r0, r1);
    if (aligned && W % a.n == 0 && (W / a.n) * a.m <= 4 * W)
      return nm_spmv_perm<T, 4, TV, GS>(a, r0, r1);
  }
  const int64_t Gn = a.G * a.n, b = a.bits, stride = a.meta_stride;
  const auto dec = VT::dec(static_cast<int>(b));
  const T* __restrict__ x = a.x;
  for (int64_t i = r0; i < r1; ++i) {
    const TV* __restrict__ vrow = values_of<TV>(a) + i * Gn;
    const uint8_t* mrow = a.meta + i * stride;
    reg s0 = VT::zero(), s1 = VT::zero();
    int64_t t = 0;
    auto cols_at = [&](int64_t tt) {
      const int64_t bo = tt * b, by = bo >> 3;
      const uint64_t bits = load_bytes(mrow + by, stride - by) >> (bo & 7);
      return VT::nm_cols(a.gbase + tt, bits, dec);
    };
    // GS: the W slots from t scaled lane by lane (slot u's group: its group base column
    // over gsize, gsize a multiple of m); any n, m, W.
    auto scaled = [&](reg v, int64_t tt, int nl) {
      if constexpr (GS) {
        alignas(64) T sc[W] = {};
        const float* grow = a.gscale + i * a.gs_ld;
        for (int l = 0; l < nl; ++l) sc[l] = static_cast<T>(grow[a.gbase[tt + l] / a.gsize]);
        return VT::mul(v, VT::load(sc));
      } else {
        (void)tt;
        (void)nl;
        return v;
      }
    };
    for (; t + 2 * W <= Gn; t += 2 * W) {
      prefetch_stream<2 * W * sizeof(TV)>(vrow + t);
      if ((t & (16 * W - 1)) == 0) prefetch_stream<64>(mrow + t * b / 8);
      s0 = VT::fma(scaled(VT::load(vrow + t), t, W), VT::gather(x, cols_at(t)), s0);
      s1 = VT::fma(scaled(VT::load(vrow + t + W), t + W, W), VT::gather(x, cols_at(t + W)), s1);
    }
    for (; t + W <= Gn; t += W)
      s0 = VT::fma(scaled(VT::load(vrow + t), t, W), VT::gather(x, cols_at(t)), s0);
    if (t < Gn) {
      const int n = static_cast<int>(Gn - t);
      s1 = VT::fma(scaled(VT::loadn(vrow + t, n), t, n), VT::gathern(x, cols_at(t), n), s1);
    }
    a.out[i] = VT::hsum(VT::add(s0, s1));
  }
}

// ---------------------------------------------------------------- SpMM
// Output tile of (NV-1)*W + rem columns; groups in chunks whose x rows (chunk*m rows of the
// tile) stay in L1 while a block of rows streams its slots through them.
//
// Decoding the metadata must stay off the FMA ports. SPB > 0: each metadata byte holds SPB
// slots making whole groups (2:4, 1:4, 1:2, 2:3, 1:8, 2:8, ...): a 256-entry table gives the
// SPB x offsets of a byte value relative to its first group, so the slot loop does one table
// load per slot and no vector decode. SPB == 0: any n:m, columns decoded W at a time into a
// buffer (PREMUL: premultiplied by ldx, which needs K * ldx < 2^31).
template <class T, int NV, bool MASK, int SPB, bool PREMUL>
void nm_spmm_tile(const NmArgs<T>& a, int64_t r0, int64_t r1, int64_t n0, int rem) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  // independent accumulator sets (slots in flight): >= 8 chains to cover the FMA latency
  constexpr int U = Tune::nm_unroll > 8 / NV ? Tune::nm_unroll : 8 / NV;
  const int64_t N = a.N, n = a.n, m = a.m, b = a.bits, G = a.G, Gn = G * n;
  const int64_t stride = a.meta_stride, ldx = a.ldx;
  const T* __restrict__ xb = a.x + (n0 - a.xc0);
  auto ld = [rem](const T* p, int v) {
    return (MASK && v == NV - 1) ? VT::loadn(p, rem) : VT::load(p);
  };
  auto st = [rem](T* p, reg s, int v) {
    if (MASK && v == NV - 1)
      VT::storen(p, s, rem);
    else
      VT::store(p, s);
  };
  if (Gn == 0) {
    for (int64_t i = r0; i < r1; ++i)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) st(a.out + i * N + n0 + v * W, VT::zero(), v);
    return;
  }
  int64_t GC = nm_group_chunk(a, static_cast<int64_t>(NV * W * sizeof(T)));
  // SPB > 0: the table, chunks of whole bytes
  constexpr int LUTN = SPB > 0 ? 256 * SPB : 1;
  alignas(64) int32_t lut[LUTN];
  const int64_t unit_step = SPB > 0 ? (SPB / n) * m * ldx : 0;  // x offset from byte to byte
  if constexpr (SPB > 0) {
    const int64_t gpb = SPB / n;  // groups per byte
    GC = GC / gpb * gpb > 0 ? GC / gpb * gpb : gpb;
    for (int v = 0; v < 256; ++v)
      for (int q = 0; q < SPB; ++q)
        lut[v * SPB + q] =
            static_cast<int32_t>(((q / n) * m + ((v >> (q * b)) & ((1 << b) - 1))) * ldx);
  }
  // SPB == 0: decoded columns of row i and of row i + 1
  constexpr int CB = SPB > 0 ? 1 : kNmMaxSlots;
  alignas(64) int32_t colbuf[2][CB];
  const auto dec = VT::dec(static_cast<int>(b));
  const int32_t scale = PREMUL ? static_cast<int32_t>(ldx) : 1;
  const int64_t mul = PREMUL ? 1 : ldx;
  // Partial sums of a block of rows live in a contiguous buffer (L2) between group chunks;
  // the last chunk writes out. (Out rows at the caller's stride would conflict in the caches.)
  const int64_t RB = r1 - r0 < kNmRowBlock ? r1 - r0 : kNmRowBlock;
  Scratch<T> part_buf(kScratchPart, RB * NV * W);
  T* __restrict__ part = part_buf.p;
  for (int64_t rb0 = r0; rb0 < r1; rb0 += RB) {
    const int64_t rb1 = rb0 + RB < r1 ? rb0 + RB : r1;
    for (int64_t g0 = 0; g0 < G; g0 += GC) {
      const int64_t t0 = g0 * n, t1 = (g0 + GC < G ? g0 + GC : G) * n, ns = t1 - t0;
      const bool first = g0 == 0, last = g0 + GC >= G;
      if constexpr (SPB == 0) nm_decode(a, a.meta + rb0 * stride, dec, t0, t1, colbuf[0], scale);
      for (int64_t i = rb0; i < rb1; ++i) {
        if constexpr (SPB == 0) {  // decode the next row first: ready when its FMAs start
          if (i + 1 < rb1)
            nm_decode(a, a.meta + (i + 1) * stride, dec, t0, t1, colbuf[(i + 1 - rb0) & 1],
                      scale);
        }
        nm_prefetch_ahead(a, i, rb0, rb1, t0, t1);
        const T* __restrict__ vrow = a.val + i * Gn + t0;
        T* pr = part + (i - rb0) * (NV * W);
        reg acc[U][NV];
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) {
          acc[0][v] = first ? VT::zero() : VT::load(pr + v * W);
#pragma GCC unroll 16
          for (int u = 1; u < U; ++u) acc[u][v] = VT::zero();
        }
        auto slot_r = [&](int u, const T* xs, reg vs) {
#pragma GCC unroll 16
          for (int v = 0; v < NV; ++v) acc[u][v] = VT::fma(vs, ld(xs + v * W, v), acc[u][v]);
        };
        auto slot = [&](int u, const T* xs, T val) { slot_r(u, xs, VT::set1(val)); };
        if constexpr (SPB > 0) {
          const uint8_t* __restrict__ mb = a.meta + i * stride + t0 / SPB;
          const int64_t nfull = ns / SPB;
          const T* xk = xb + (t0 / SPB) * unit_step;
          int64_t k = 0;
          // Narrow tiles (one or two vectors of x a slot): the slot's x load and FMA are
          // about all the work, and a broadcast load of its value per slot would be a third
          // of the loads. Load W values at once and broadcast each lane with a permute.
          constexpr int BPV = W % SPB == 0 ? W / SPB : 0;  // metadata bytes per W values
          if constexpr (NV <= 2 && BPV > 0) {
            for (; k + BPV <= nfull; k += BPV, xk += BPV * unit_step) {
              const reg vv = VT::load(vrow + k * SPB);
#pragma GCC unroll 16
              for (int kk = 0; kk < BPV; ++kk) {
                const int32_t* L = lut + mb[k + kk] * SPB;
                const T* xq = xk + kk * unit_step;
#pragma GCC unroll 8
                for (int q = 0; q < SPB; ++q)
                  slot_r((kk * SPB + q) % U, xq + L[q], VT::lane(vv, kk * SPB + q));
              }
            }
          }
          for (; k < nfull; ++k, xk += unit_step) {
            const int32_t* L = lut + mb[k] * SPB;
            const T* vk = vrow + k * SPB;
#pragma GCC unroll 8
            for (int q = 0; q < SPB; ++q) slot(q % U, xk + L[q], vk[q]);
          }
          const int64_t tail = ns - nfull * SPB;  // the row's last byte, partly padding
          if (tail > 0) {
            const int32_t* L = lut + mb[nfull] * SPB;
            for (int64_t q = 0; q < tail; ++q) slot(0, xk + L[q], vrow[nfull * SPB + q]);
          }
        } else {
          const int32_t* cols = colbuf[(i - rb0) & 1];
          int64_t t = 0;
          for (; t + U <= ns; t += U) {
#pragma GCC unroll 16
            for (int u = 0; u < U; ++u)
              slot(u, xb + static_cast<int64_t>(cols[t + u]) * mul, vrow[t + u]);
          }
          for (; t < ns; ++t) slot(0, xb + static_cast<int64_t>(cols[t]) * mul, vrow[t]);
        }
        T* y = a.out + i * N + n0;
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) {
#pragma GCC unroll 16
          for (int u = 1; u < U; ++u) acc[0][v] = VT::add(acc[0][v], acc[u][v]);
          if (last)
            st(y + v * W, acc[0][v], v);
          else
            VT::store(pr + v * W, acc[0][v]);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- SpMM, narrow N
// For 2 <= N <= 8 on the two-table permute path (see nm_spmv_perm): the task transposes x
// into NC contiguous columns (padded with 2W zeros, so window loads need no checks) and runs NC
// SpMVs sharing each block's values and decoded indices: per W slots one values load, one
// index decode, and per column two loads, a permute and an FMA.
template <class T>
inline bool nm_perm_ok(const NmArgs<T>& a) {
  constexpr int W = V<T>::W;
  return V<T>::kPerm2 && W % a.n == 0 && (W / a.n) * a.m <= 2 * W;
}

template <class T, int NC>
void nm_spmm_narrow(const NmArgs<T>& a, int64_t r0, int64_t r1) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  const int64_t Gn = a.G * a.n, b = a.bits, stride = a.meta_stride, K = a.K, N = a.N;
  const int64_t span = (W / a.n) * a.m, bpb = W * b / 8, ldt = K + 2 * W;
  const int64_t nblocks = (Gn + W - 1) / W;
  // The transposed x is the same for every task of a call: built once per thread and call.
  bool kept = false;
  T* __restrict__ xt = static_cast<T*>(
      scratch_buffer(kScratchColumns, static_cast<size_t>(NC * ldt) * sizeof(T), a.call, &kept));
  if (!kept) {
    for (int64_t k = 0; k < K; ++k)
      for (int j = 0; j < NC; ++j) xt[j * ldt + k] = a.x[k * a.ldx + j];
    for (int j = 0; j < NC; ++j)
      for (int64_t k = K; k < ldt; ++k) xt[j * ldt + k] = T(0);
  }
  const auto dec = VT::dec(static_cast<int>(b));
  alignas(64) int32_t go[W];
  for (int l = 0; l < W; ++l) go[l] = static_cast<int32_t>((l / a.n) * a.m);
  const auto goff = VT::idx(go);
  const int64_t nfast = stride >= 8 ? std::min(Gn / W, (stride - 8) / bpb + 1) : 0;
  // Blocks per chunk: the chunk's window of the NC transposed columns stays in L1 while a
  // block of rows goes through it; per-row partial sums (NC vectors) wait in `part`.
  const int64_t KB = std::max<int64_t>(1, kNmL1Bytes * 3 / 4 / (NC * span * sizeof(T)));
  constexpr int64_t RB = 64;
  Scratch<T> part_buf(kScratchPart, RB * NC * W);
  T* __restrict__ part = part_buf.p;
  for (int64_t rb0 = r0; rb0 < r1; rb0 += RB) {
    const int64_t rb1 = rb0 + RB < r1 ? rb0 + RB : r1;
    for (int64_t k0 = 0; k0 < nblocks; k0 += KB) {
      const int64_t k1 = k0 + KB < nblocks ? k0 + KB : nblocks;
      for (int64_t i = rb0; i < rb1; ++i) {
        nm_prefetch_ahead(a, i, rb0, rb1, k0 * W, k1 * W);  // W * b bits = bpb bytes a block
        const T* __restrict__ vrow = a.val + i * Gn;
        const uint8_t* __restrict__ mrow = a.meta + i * stride;
        T* pr = part + (i - rb0) * NC * W;
        reg acc[NC];
#pragma GCC unroll 16
        for (int j = 0; j < NC; ++j) acc[j] = k0 == 0 ? VT::zero() : VT::load(pr + j * W);
        for (int64_t k = k0; k < k1; ++k) {
          uint64_t bits;
          int n = W;
          if (k < nfast) {
            std::memcpy(&bits, mrow + k * bpb, 8);
          } else {
            bits = load_bytes(mrow + k * bpb, stride - k * bpb);
            n = static_cast<int>(Gn - k * W < W ? Gn - k * W : W);
          }
          const auto idx = VT::iadd(goff, VT::nm_pos(bits, dec));
          const reg v = n == W ? VT::load(vrow + k * W) : VT::loadn(vrow + k * W, n);
          const T* xw = xt + k * span;
#pragma GCC unroll 16
          for (int j = 0; j < NC; ++j)
            acc[j] = VT::fma(
                v, VT::perm2n(VT::load(xw + j * ldt), VT::load(xw + j * ldt + W), idx, n), acc[j]);
        }
        if (k1 < nblocks) {
#pragma GCC unroll 16
          for (int j = 0; j < NC; ++j) VT::store(pr + j * W, acc[j]);
          continue;
        }
        T sums[NC];
        constexpr int NC4 = NC / 4 * 4;
#pragma GCC unroll 4
        for (int j = 0; j < NC4; j += 4)
          VT::hsum4(acc[j], acc[j + 1], acc[j + 2], acc[j + 3], sums + j);
#pragma GCC unroll 4
        for (int j = NC4; j < NC; ++j) sums[j] = VT::hsum(acc[j]);
        T* y = a.out + i * N;
#pragma GCC unroll 16
        for (int j = 0; j < NC; ++j) y[j] = sums[j];
      }
    }
  }
}

// Slots per metadata byte when a byte holds whole groups (the table path), else 0.
inline int nm_lut_spb(int64_t n, int64_t b) {
  const int64_t spb = 8 / b;
  return spb % n == 0 ? static_cast<int>(spb) : 0;
}

template <class T>
void nm_spmm_rows(const NmArgs<T>& a, int64_t r0, int64_t r1, int64_t n0, int64_t n1) {
  constexpr int W = V<T>::W;
  constexpr int NVMAX = Tune::nm_nv;
  if (a.N == 1) {
    if (n0 >= n1) return;
    with_storage<T>(a.stored.dt, [&](auto tv) {
      if constexpr (std::is_same_v<T, float> && std::is_same_v<decltype(tv), I8>) {
        if (a.gscale) return nm_spmv_rows<T, I8, true>(a, r0, r1);
      }
      nm_spmv_rows<T, decltype(tv)>(a, r0, r1);
    });
    return;
  }
  // N = 16 goes to the row tile: one x vector a slot with the values broadcast from a
  // register (1.6 cycles a slot on Zen 5 against 2.5 for 16 transposed columns).
  if (a.N <= 8 && n0 == 0 && n1 == a.N && a.G > 0 && nm_perm_ok(a)) {
    switch (a.N) {
      case 2: return nm_spmm_narrow<T, 2>(a, r0, r1);
      case 3: return nm_spmm_narrow<T, 3>(a, r0, r1);
      case 4: return nm_spmm_narrow<T, 4>(a, r0, r1);
      case 5: return nm_spmm_narrow<T, 5>(a, r0, r1);
      case 6: return nm_spmm_narrow<T, 6>(a, r0, r1);
      case 7: return nm_spmm_narrow<T, 7>(a, r0, r1);
      default: return nm_spmm_narrow<T, 8>(a, r0, r1);
    }
  }
  for (int64_t c = n0; c < n1; c += NVMAX * W) {
    const int64_t w = n1 - c < NVMAX * W ? n1 - c : NVMAX * W;
    const int nv = static_cast<int>((w + W - 1) / W);
    const int rem = static_cast<int>(w - static_cast<int64_t>(nv - 1) * W);
    const bool fits = a.K * a.ldx < (int64_t{1} << 31);  // x offsets as int32
    const int spb = fits ? nm_lut_spb(a.n, a.bits) : 0;
    with_nv<NVMAX>(nv, rem != W, [&](auto nvc, auto mc) {
      constexpr int V_ = decltype(nvc)::value;
      constexpr bool M_ = decltype(mc)::value;
      switch (spb) {
        case 2:
          return nm_spmm_tile<T, V_, M_, 2, true>(a, r0, r1, c, rem);
        case 4:
          return nm_spmm_tile<T, V_, M_, 4, true>(a, r0, r1, c, rem);
        case 8:
          return nm_spmm_tile<T, V_, M_, 8, true>(a, r0, r1, c, rem);
        default:
          if (fits) return nm_spmm_tile<T, V_, M_, 0, true>(a, r0, r1, c, rem);
          return nm_spmm_tile<T, V_, M_, 0, false>(a, r0, r1, c, rem);
      }
    });
  }
}

// ---------------------------------------------------------------- transposed SpMM
// out[col, tile] += val * d[i, tile]: d's row tile stays in registers, out rows of one group
// chunk stay in L1 (read-modify-write).
template <class T, int NV, bool MASK>
void nm_spmm_t_tile(const NmArgs<T>& a, T* out, int64_t r0, int64_t r1, int64_t n0, int rem) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  const int64_t N = a.N, n = a.n, m = a.m, b = a.bits, G = a.G, Gn = G * n, stride = a.meta_stride;
  T* ob = out + n0;
  auto ld = [rem](const T* p, int v) {
    return (MASK && v == NV - 1) ? VT::loadn(p, rem) : VT::load(p);
  };
  auto st = [rem](T* p, reg s, int v) {
    if (MASK && v == NV - 1)
      VT::storen(p, s, rem);
    else
      VT::store(p, s);
  };
  const int64_t GC = nm_group_chunk(a, static_cast<int64_t>(NV * W * sizeof(T)));
  const auto dec = VT::dec(static_cast<int>(b));
  alignas(64) int32_t cols[kNmMaxSlots];
  // The chunk's output rows accumulate in a scratch tile whose rows are one vector longer
  // than the tile: rows of out itself (N * 4 bytes apart, often a multiple of 512) put many
  // read-modify-writes a multiple of 4 KiB apart, which the load/store unit takes for
  // dependences. The tile is added into out once per chunk.
  constexpr int64_t ldt = (NV + 1) * W;
  Scratch<T> tile_buf(kScratchPart, GC * m * ldt);
  T* __restrict__ tile = tile_buf.p;
  for (int64_t g0 = 0; g0 < G; g0 += GC) {
    const int64_t g1 = g0 + GC < G ? g0 + GC : G;
    const int64_t t0 = g0 * n, t1 = g1 * n, ns = t1 - t0;
    const int64_t c0 = g0 * m, nrows = (g1 * m < a.K ? g1 * m : a.K) - c0;
    for (int64_t r = 0; r < nrows; ++r)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) VT::store(tile + r * ldt + v * W, VT::zero());
    for (int64_t i = r0; i < r1; ++i) {
      nm_prefetch_ahead(a, i, r0, r1, t0, t1);
      const T* __restrict__ vrow = a.val + i * Gn + t0;
      nm_decode(a, a.meta + i * stride, dec, t0, t1, cols);
      reg dv[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) dv[v] = ld(a.x + i * a.ldx + n0 + v * W, v);
      for (int64_t t = 0; t < ns; ++t) {
        T* o = tile + (static_cast<int64_t>(cols[t]) - c0) * ldt;
        const reg s = VT::set1(vrow[t]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) VT::store(o + v * W, VT::fma(s, dv[v], VT::load(o + v * W)));
      }
    }
    for (int64_t r = 0; r < nrows; ++r) {
      T* o = ob + (c0 + r) * N;
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v)
        st(o + v * W, VT::add(ld(o + v * W, v), VT::load(tile + r * ldt + v * W)), v);
    }
  }
}

template <class T>
void nm_spmm_t_rows(const NmArgs<T>& a, T* out, int64_t r0, int64_t r1, int64_t n0, int64_t n1) {
  constexpr int W = V<T>::W;
  constexpr int NVMAX = Tune::nm_nv;
  if (a.N == 1) {
    if (n0 >= n1) return;
    const int64_t n = a.n, b = a.bits, Gn = a.G * n, stride = a.meta_stride;
    const uint32_t bm = (1u << b) - 1u;
    for (int64_t i = r0; i < r1; ++i) {
      const T di = a.x[i];
      const T* __restrict__ vrow = a.val + i * Gn;
      const uint8_t* __restrict__ mrow = a.meta + i * stride;
      for (int64_t t = 0; t < Gn; ++t) out[a.gbase[t] + nm_pos(mrow, t, b, bm)] += vrow[t] * di;
    }
    return;
  }
  for (int64_t c = n0; c < n1; c += NVMAX * W) {
    const int64_t w = n1 - c < NVMAX * W ? n1 - c : NVMAX * W;
    const int nv = static_cast<int>((w + W - 1) / W);
    const int rem = static_cast<int>(w - static_cast<int64_t>(nv - 1) * W);
    with_nv<NVMAX>(nv, rem != W, [&](auto nvc, auto mc) {
      nm_spmm_t_tile<T, decltype(nvc)::value, decltype(mc)::value>(a, out, r0, r1, c, rem);
    });
  }
}

// ---------------------------------------------------------------- SDDMM
template <class T>
void nm_sddmm_rows(const NmArgs<T>& a, int64_t r0, int64_t r1, int64_t n0, int64_t n1,
                   bool accumulate) {
  using VT = V<T>;
  constexpr int W = VT::W;
  const int64_t N = a.N, n = a.n, b = a.bits, G = a.G, Gn = G * n, stride = a.meta_stride;
  const int32_t* __restrict__ gbase = a.gbase;
  T* __restrict__ out = a.out;
  if (N == 1) {  // out[i, t] = a[i] * b[col(t)]
    const auto dec = VT::dec(static_cast<int>(b));
    for (int64_t i = r0; i < r1; ++i) {
      const auto ai = VT::set1(a.x[i]);
      const uint8_t* mrow = a.meta + i * stride;
      T* orow = out + i * Gn;
      auto cols_at = [&](int64_t tt) {
        const int64_t bo = tt * b, by = bo >> 3;
        const uint64_t bits = load_bytes(mrow + by, stride - by) >> (bo & 7);
        return VT::nm_cols(gbase + tt, bits, dec);
      };
      int64_t t = 0;
      for (; t + W <= Gn; t += W) VT::store(orow + t, VT::mul(ai, VT::gather(a.y, cols_at(t))));
      if (t < Gn) {
        const int k = static_cast<int>(Gn - t);
        VT::storen(orow + t, VT::mul(ai, VT::gathern(a.y, cols_at(t), k)), k);
      }
    }
    return;
  }
  const int64_t w = n1 - n0, ldy = a.ldx;
  const int64_t GC = nm_group_chunk(a, w * static_cast<int64_t>(sizeof(T)));
  const T* yb = a.y + (n0 - a.xc0);
  const auto dec = VT::dec(static_cast<int>(b));
  alignas(64) int32_t cols[kNmMaxSlots];
  T r[4];
  for (int64_t g0 = 0; g0 < G; g0 += GC) {
    const int64_t t0 = g0 * n, t1 = (g0 + GC < G ? g0 + GC : G) * n, ns = t1 - t0;
    for (int64_t i = r0; i < r1; ++i) {
      const T* ar = a.x + i * N + n0;
      nm_decode(a, a.meta + i * stride, dec, t0, t1, cols);
      T* orow = out + i * Gn + t0;
      int64_t t = 0;
      for (; t + 4 <= ns; t += 4) {
        dot_row4(ar, yb + static_cast<int64_t>(cols[t]) * ldy,
                 yb + static_cast<int64_t>(cols[t + 1]) * ldy,
                 yb + static_cast<int64_t>(cols[t + 2]) * ldy,
                 yb + static_cast<int64_t>(cols[t + 3]) * ldy, w, r);
        for (int q = 0; q < 4; ++q) orow[t + q] = accumulate ? orow[t + q] + r[q] : r[q];
      }
      for (; t < ns; ++t) {
        const T s = dot_row(ar, yb + static_cast<int64_t>(cols[t]) * ldy, w);
        orow[t] = accumulate ? orow[t] + s : s;
      }
    }
  }
}

}  // namespace ISA_NS
}  // namespace sparse_ops
