// N:M kernels (SpMM, SpMV, transposed SpMM, SDDMM), written once over V<T> and compiled per
// SIMD level by isa_*.cpp. The packed metadata is decoded on the fly (no decompressed copy):
// slot t of a row has position (meta[t*b/8] >> (t*b%8)) & (2^b-1) and column gbase[t] + that.
// Inputs are trusted (validated by nm.cpp).
#pragma once

namespace sparse_ops {
namespace ISA_NS {

// Bytes of the x / out tile kept in L1 by the group-chunked loops.
constexpr int64_t kNmL1Bytes = 16 * 1024;

inline int64_t nm_pos(const uint8_t* __restrict__ mrow, int64_t t, int64_t b, uint32_t bm) {
  const int64_t bo = t * b;
  return (mrow[bo >> 3] >> (bo & 7)) & bm;
}

template <class T>
inline int64_t nm_group_chunk(const NmArgs<T>& a, int64_t row_bytes) {
  const int64_t gc = kNmL1Bytes / (a.m * (row_bytes > 0 ? row_bytes : 1));
  return gc > 1 ? gc : 1;
}

// ---------------------------------------------------------------- SpMV (N == 1)
template <class T>
void nm_spmv_rows(const NmArgs<T>& a, int64_t r0, int64_t r1) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  const int64_t Gn = a.G * a.n, b = a.bits, stride = a.meta_stride;
  const auto dec = VT::dec(static_cast<int>(b));
  const T* __restrict__ x = a.x;
  for (int64_t i = r0; i < r1; ++i) {
    const T* __restrict__ vrow = a.val + i * Gn;
    const uint8_t* mrow = a.meta + i * stride;
    reg s0 = VT::zero(), s1 = VT::zero();
    int64_t t = 0;
    auto cols_at = [&](int64_t tt) {
      const int64_t bo = tt * b, by = bo >> 3;
      const uint64_t bits = load_bytes(mrow + by, stride - by) >> (bo & 7);
      return VT::nm_cols(a.gbase + tt, bits, dec);
    };
    for (; t + 2 * W <= Gn; t += 2 * W) {
      s0 = VT::fma(VT::load(vrow + t), VT::gather(x, cols_at(t)), s0);
      s1 = VT::fma(VT::load(vrow + t + W), VT::gather(x, cols_at(t + W)), s1);
    }
    for (; t + W <= Gn; t += W) s0 = VT::fma(VT::load(vrow + t), VT::gather(x, cols_at(t)), s0);
    if (t < Gn) {
      const int n = static_cast<int>(Gn - t);
      s1 = VT::fma(VT::loadn(vrow + t, n), VT::gathern(x, cols_at(t), n), s1);
    }
    a.out[i] = VT::hsum(VT::add(s0, s1));
  }
}

// ---------------------------------------------------------------- SpMM
// Output tile of (NV-1)*W + rem columns; groups in chunks whose x rows (chunk*m rows of the
// tile) stay in L1 while every row of [r0, r1) streams its slots through them.
template <class T, int NV, bool MASK>
void nm_spmm_tile(const NmArgs<T>& a, int64_t r0, int64_t r1, int64_t n0, int rem) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  const int64_t N = a.N, n = a.n, b = a.bits, G = a.G, Gn = G * n, stride = a.meta_stride;
  const uint32_t bm = (1u << b) - 1u;
  const T* __restrict__ xb = a.x + n0;
  const int32_t* __restrict__ gbase = a.gbase;
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
  const int64_t GC = nm_group_chunk(a, static_cast<int64_t>(NV * W * sizeof(T)));
  for (int64_t g0 = 0; g0 < G; g0 += GC) {
    const int64_t t0 = g0 * n, t1 = (g0 + GC < G ? g0 + GC : G) * n;
    for (int64_t i = r0; i < r1; ++i) {
      const T* __restrict__ vrow = a.val + i * Gn;
      const uint8_t* __restrict__ mrow = a.meta + i * stride;
      T* y = a.out + i * N + n0;
      reg acc[NV], bcc[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        acc[v] = g0 == 0 ? VT::zero() : ld(y + v * W, v);
        bcc[v] = VT::zero();
      }
      int64_t t = t0;
      for (; t + 2 <= t1; t += 2) {
        const T* x0 = xb + (gbase[t] + nm_pos(mrow, t, b, bm)) * N;
        const T* x1 = xb + (gbase[t + 1] + nm_pos(mrow, t + 1, b, bm)) * N;
        const reg v0 = VT::set1(vrow[t]);
        const reg v1 = VT::set1(vrow[t + 1]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) {
          acc[v] = VT::fma(v0, ld(x0 + v * W, v), acc[v]);
          bcc[v] = VT::fma(v1, ld(x1 + v * W, v), bcc[v]);
        }
      }
      if (t < t1) {
        const T* x0 = xb + (gbase[t] + nm_pos(mrow, t, b, bm)) * N;
        const reg v0 = VT::set1(vrow[t]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[v] = VT::fma(v0, ld(x0 + v * W, v), acc[v]);
      }
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) st(y + v * W, VT::add(acc[v], bcc[v]), v);
    }
  }
}

template <class T>
void nm_spmm_rows(const NmArgs<T>& a, int64_t r0, int64_t r1, int64_t n0, int64_t n1) {
  constexpr int W = V<T>::W;
  constexpr int NVMAX = Tune::nm_nv;
  if (a.N == 1) {
    if (n0 < n1) nm_spmv_rows(a, r0, r1);
    return;
  }
  for (int64_t c = n0; c < n1; c += NVMAX * W) {
    const int64_t w = n1 - c < NVMAX * W ? n1 - c : NVMAX * W;
    const int nv = static_cast<int>((w + W - 1) / W);
    const int rem = static_cast<int>(w - static_cast<int64_t>(nv - 1) * W);
    with_nv<NVMAX>(nv, rem != W, [&](auto nvc, auto mc) {
      nm_spmm_tile<T, decltype(nvc)::value, decltype(mc)::value>(a, r0, r1, c, rem);
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
  const int64_t N = a.N, n = a.n, b = a.bits, G = a.G, Gn = G * n, stride = a.meta_stride;
  const uint32_t bm = (1u << b) - 1u;
  const int32_t* __restrict__ gbase = a.gbase;
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
  for (int64_t g0 = 0; g0 < G; g0 += GC) {
    const int64_t t0 = g0 * n, t1 = (g0 + GC < G ? g0 + GC : G) * n;
    for (int64_t i = r0; i < r1; ++i) {
      const T* __restrict__ vrow = a.val + i * Gn;
      const uint8_t* __restrict__ mrow = a.meta + i * stride;
      reg dv[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) dv[v] = ld(a.x + i * N + n0 + v * W, v);
      for (int64_t t = t0; t < t1; ++t) {
        T* o = ob + (gbase[t] + nm_pos(mrow, t, b, bm)) * N;
        const reg s = VT::set1(vrow[t]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) st(o + v * W, VT::fma(s, dv[v], ld(o + v * W, v)), v);
      }
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
  const uint32_t bm = (1u << b) - 1u;
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
  const int64_t w = n1 - n0;
  const int64_t GC = nm_group_chunk(a, w * static_cast<int64_t>(sizeof(T)));
  const T* yb = a.y + n0;
  T r[4];
  for (int64_t g0 = 0; g0 < G; g0 += GC) {
    const int64_t t0 = g0 * n, t1 = (g0 + GC < G ? g0 + GC : G) * n;
    for (int64_t i = r0; i < r1; ++i) {
      const T* ar = a.x + i * N + n0;
      const uint8_t* __restrict__ mrow = a.meta + i * stride;
      T* orow = out + i * Gn;
      int64_t t = t0;
      for (; t + 4 <= t1; t += 4) {
        dot_row4(ar, yb + (gbase[t] + nm_pos(mrow, t, b, bm)) * N,
                 yb + (gbase[t + 1] + nm_pos(mrow, t + 1, b, bm)) * N,
                 yb + (gbase[t + 2] + nm_pos(mrow, t + 2, b, bm)) * N,
                 yb + (gbase[t + 3] + nm_pos(mrow, t + 3, b, bm)) * N, w, r);
        for (int q = 0; q < 4; ++q) orow[t + q] = accumulate ? orow[t + q] + r[q] : r[q];
      }
      for (; t < t1; ++t) {
        const T s = dot_row(ar, yb + (gbase[t] + nm_pos(mrow, t, b, bm)) * N, w);
        orow[t] = accumulate ? orow[t] + s : s;
      }
    }
  }
}

}  // namespace ISA_NS
}  // namespace sparse_ops
