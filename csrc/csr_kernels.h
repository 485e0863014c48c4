// CSR kernels (SpMM, SpMV, SDDMM) and the index range check, written once over V<T> and
// compiled per SIMD level by isa_*.cpp. Row pointers were checked on this call (csr.cpp);
// column indices are checked on the fly.
#pragma once

namespace sparse_ops {
namespace ISA_NS {

// ---------------------------------------------------------------- index range check
template <class I>
int64_t first_bad_index(const I* v, int64_t n, int64_t hi) {
  // Block-wise min/max (vectorises), then locate the first offender in a bad block.
  constexpr int64_t B = 2048;
  for (int64_t s = 0; s < n; s += B) {
    const int64_t e = s + B < n ? s + B : n;
    int32_t lo = 0, mx = 0;
    if (e > s) lo = mx = static_cast<int32_t>(v[s]);
    for (int64_t p = s; p < e; ++p) {
      const int32_t c = static_cast<int32_t>(v[p]);
      lo = c < lo ? c : lo;
      mx = c > mx ? c : mx;
    }
    if (lo < 0 || static_cast<int64_t>(mx) >= hi) {
      for (int64_t p = s; p < e; ++p)
        if (v[p] < 0 || static_cast<int64_t>(v[p]) >= hi) return p;
    }
  }
  return -1;
}

// Every kernel checks each column index against K as it goes (the fused validation): an
// index outside [0, K) is never dereferenced, and the kernel returns false.

inline int32_t k_limit(int64_t K) { return K < INT32_MAX ? static_cast<int32_t>(K) : INT32_MAX; }

// ---------------------------------------------------------------- SpMV (N == 1)
// Gathers x[col] W at a time, four accumulators.
// TV: the values as stored (T, or Bf16 / F16 widened in registers).
template <class T, class I, class TV = T>
bool csr_spmv_rows(const CsrSpmmArgs<T, I>& a, int64_t r0, int64_t r1) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  const int32_t* __restrict__ crow = a.crow;
  const I* __restrict__ col = a.col;
  const TV* __restrict__ val = values_of<TV>(a);
  const T* __restrict__ x = a.x;
  T* __restrict__ out = a.out;
  const auto kv = VT::iset1(k_limit(a.K));
  bool ok = true;
  for (int64_t i = r0; i < r1; ++i) {
    int64_t p = crow[i];
    const int64_t e = crow[i + 1];
    reg s0 = VT::zero(), s1 = VT::zero(), s2 = VT::zero(), s3 = VT::zero();
    auto mall = VT::mtrue();
    if constexpr (W >= 8) {  // wide vectors: eight gathers in flight
      reg t0 = VT::zero(), t1 = VT::zero(), t2 = VT::zero(), t3 = VT::zero();
      for (; p + 8 * W <= e; p += 8 * W) {
        prefetch_stream<8 * W * sizeof(TV)>(val + p);
        prefetch_stream<8 * W * sizeof(I)>(col + p);
        const auto i0 = VT::idx(col + p), i1 = VT::idx(col + p + W);
        const auto i2 = VT::idx(col + p + 2 * W), i3 = VT::idx(col + p + 3 * W);
        const auto i4 = VT::idx(col + p + 4 * W), i5 = VT::idx(col + p + 5 * W);
        const auto i6 = VT::idx(col + p + 6 * W), i7 = VT::idx(col + p + 7 * W);
        const auto m0 = VT::valid(i0, kv), m1 = VT::valid(i1, kv);
        const auto m2 = VT::valid(i2, kv), m3 = VT::valid(i3, kv);
        const auto m4 = VT::valid(i4, kv), m5 = VT::valid(i5, kv);
        const auto m6 = VT::valid(i6, kv), m7 = VT::valid(i7, kv);
        mall = VT::mand(mall, VT::mand(VT::mand(VT::mand(m0, m1), VT::mand(m2, m3)),
                                       VT::mand(VT::mand(m4, m5), VT::mand(m6, m7))));
        s0 = VT::fma(VT::load(val + p), VT::gatherm(x, i0, m0), s0);
        s1 = VT::fma(VT::load(val + p + W), VT::gatherm(x, i1, m1), s1);
        s2 = VT::fma(VT::load(val + p + 2 * W), VT::gatherm(x, i2, m2), s2);
        s3 = VT::fma(VT::load(val + p + 3 * W), VT::gatherm(x, i3, m3), s3);
        t0 = VT::fma(VT::load(val + p + 4 * W), VT::gatherm(x, i4, m4), t0);
        t1 = VT::fma(VT::load(val + p + 5 * W), VT::gatherm(x, i5, m5), t1);
        t2 = VT::fma(VT::load(val + p + 6 * W), VT::gatherm(x, i6, m6), t2);
        t3 = VT::fma(VT::load(val + p + 7 * W), VT::gatherm(x, i7, m7), t3);
      }
      s0 = VT::add(s0, t0);
      s1 = VT::add(s1, t1);
      s2 = VT::add(s2, t2);
      s3 = VT::add(s3, t3);
    }
    for (; p + 4 * W <= e; p += 4 * W) {
      prefetch_stream<4 * W * sizeof(TV)>(val + p);
      prefetch_stream<4 * W * sizeof(I)>(col + p);
      const auto i0 = VT::idx(col + p), i1 = VT::idx(col + p + W);
      const auto i2 = VT::idx(col + p + 2 * W), i3 = VT::idx(col + p + 3 * W);
      const auto m0 = VT::valid(i0, kv), m1 = VT::valid(i1, kv);
      const auto m2 = VT::valid(i2, kv), m3 = VT::valid(i3, kv);
      mall = VT::mand(mall, VT::mand(VT::mand(m0, m1), VT::mand(m2, m3)));
      s0 = VT::fma(VT::load(val + p), VT::gatherm(x, i0, m0), s0);
      s1 = VT::fma(VT::load(val + p + W), VT::gatherm(x, i1, m1), s1);
      s2 = VT::fma(VT::load(val + p + 2 * W), VT::gatherm(x, i2, m2), s2);
      s3 = VT::fma(VT::load(val + p + 3 * W), VT::gatherm(x, i3, m3), s3);
    }
    for (; p + W <= e; p += W) {
      const auto i0 = VT::idx(col + p);
      const auto m0 = VT::valid(i0, kv);
      mall = VT::mand(mall, m0);
      s0 = VT::fma(VT::load(val + p), VT::gatherm(x, i0, m0), s0);
    }
    if (p < e) {
      const int n = static_cast<int>(e - p);
      const auto i0 = VT::idxn(col + p, n);
      const auto m0 = VT::validn(i0, kv, n);
      ok = ok && VT::alln(m0, n);
      s1 = VT::fma(VT::loadn(val + p, n), VT::gatherm(x, i0, m0), s1);
    }
    ok = ok && VT::all(mall);
    out[i] = VT::hsum(VT::add(VT::add(s0, s1), VT::add(s2, s3)));
  }
  return ok;
}

// Gather-free SpMV: x[col] by scalar loads into 8 independent accumulators (3 loads and one
// FMA a nonzero). Kept scalar on purpose (no auto-vectorisation into gathers).
template <class T, class I, class TV = T>
__attribute__((optimize("no-tree-vectorize"))) bool csr_spmv_rows_loads(
    const CsrSpmmArgs<T, I>& a, int64_t r0, int64_t r1) {
  const int32_t* __restrict__ crow = a.crow;
  const I* __restrict__ col = a.col;
  const TV* __restrict__ val = values_of<TV>(a);
  const T* __restrict__ x = a.x;
  const uint32_t uK = static_cast<uint32_t>(k_limit(a.K));
  bool ok = true;
  for (int64_t i = r0; i < r1; ++i) {
    int64_t p = crow[i];
    const int64_t e = crow[i + 1];
    T s[8] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
    for (; p + 8 <= e; p += 8) {
      if ((p & 15) < 8) prefetch_stream<16 * sizeof(TV)>(val + p);
      if ((p & 31) < 8) prefetch_stream<32 * sizeof(I)>(col + p);
      uint32_t c[8];
      bool bad = false;
      for (int u = 0; u < 8; ++u) {
        c[u] = static_cast<uint32_t>(static_cast<int32_t>(col[p + u]));
        bad |= c[u] >= uK;
      }
      if (__builtin_expect(bad, 0)) {
        ok = false;
        continue;
      }
      for (int u = 0; u < 8; ++u) s[u] += static_cast<T>(scalar_of(val[p + u])) * x[c[u]];
    }
    for (; p < e; ++p) {
      const uint32_t c = static_cast<uint32_t>(static_cast<int32_t>(col[p]));
      if (c >= uK) {
        ok = false;
        continue;
      }
      s[p & 7] += static_cast<T>(scalar_of(val[p])) * x[c];
    }
    a.out[i] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  }
  return ok;
}

// ---------------------------------------------------------------- SpMM row tile
// Rows [r0, r1), output columns [n0, n0 + (NV-1)*W + rem): U accumulator sets of NV vectors
// (U consecutive nonzeros in flight, at least 8 independent chains where NV >= 2), value
// broadcast, FMA with the gathered x row segment.
template <class T, class I, int NV, bool MASK, bool INDIRECT>
bool csr_spmm_tile(const CsrSpmmArgs<T, I>& a, int64_t r0, int64_t r1, int64_t n0, int rem) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  constexpr int U = NV >= 8 ? 1 : (NV >= 4 ? 2 : 4);
  const int32_t* __restrict__ crow = a.crow;
  const I* __restrict__ col = a.col;
  const T* __restrict__ val = a.val;
  const int32_t* __restrict__ vperm = a.vperm;
  auto value = [&](int64_t p) { return INDIRECT ? val[vperm[p]] : val[p]; };
  const T* __restrict__ xb = a.x + (n0 - a.xc0);
  const int64_t N = a.N, ldx = a.ldx;
  const uint32_t uK = static_cast<uint32_t>(k_limit(a.K));
  bool ok = true;
  auto ld = [rem](const T* p, int v) {
    return (MASK && v == NV - 1) ? VT::loadn(p, rem) : VT::load(p);
  };
  for (int64_t i = r0; i < r1; ++i) {
    int64_t p = crow[i];
    const int64_t e = crow[i + 1];
    reg acc[U][NV];
#pragma GCC unroll 16
    for (int u = 0; u < U; ++u)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[u][v] = VT::zero();
    for (; p + U <= e; p += U) {
      if constexpr (INDIRECT) {  // the values come in permuted order: fetch them ahead
        constexpr int64_t kAhead = 32;
        if (p + kAhead + U <= e) {
#pragma GCC unroll 16
          for (int u = 0; u < U; ++u) prefetch(val + vperm[p + kAhead + u]);
        }
      }
      uint32_t c[U];
      bool bad = false;
#pragma GCC unroll 16
      for (int u = 0; u < U; ++u) {
        c[u] = static_cast<uint32_t>(static_cast<int32_t>(col[p + u]));
        bad |= c[u] >= uK;
      }
      if (__builtin_expect(bad, 0)) {
        ok = false;
        continue;
      }
#pragma GCC unroll 16
      for (int u = 0; u < U; ++u) {
        const T* xu = xb + static_cast<int64_t>(c[u]) * ldx;
        const reg vu = VT::set1(value(p + u));
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[u][v] = VT::fma(vu, ld(xu + v * W, v), acc[u][v]);
      }
    }
    for (; p < e; ++p) {
      const uint32_t c0 = static_cast<uint32_t>(static_cast<int32_t>(col[p]));
      if (c0 >= uK) {
        ok = false;
        continue;
      }
      const T* x0 = xb + static_cast<int64_t>(c0) * ldx;
      const reg v0 = VT::set1(value(p));
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[0][v] = VT::fma(v0, ld(x0 + v * W, v), acc[0][v]);
    }
    T* y = a.out + i * N + n0;
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      reg s = acc[0][v];
#pragma GCC unroll 16
      for (int u = 1; u < U; ++u) s = VT::add(s, acc[u][v]);
      if (MASK && v == NV - 1)
        VT::storen(y + v * W, s, rem);
      else
        VT::store(y + v * W, s);
    }
  }
  return ok;
}

// ---------------------------------------------------------------- transposed SpMM (scatter)
// out[col[p], n0:n1) += val[p] * d[i, n0:n1) for the nonzeros of rows [r0, r1): S^T @ d
// without transposing S (no permutation of the values, which is a random gather of nnz
// values per call). Here a.x = d (M x N, row stride ldx), a.K = rows of out (stride N);
// the out columns [n0, n1) were zeroed by the caller. Column indices are checked as in SpMM.
template <class T, class I>
bool csr_spmm_t_rows(const CsrSpmmArgs<T, I>& a, T* out, int64_t r0, int64_t r1, int64_t n0,
                     int64_t n1) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  const int32_t* __restrict__ crow = a.crow;
  const I* __restrict__ col = a.col;
  const T* __restrict__ val = a.val;
  const int64_t N = a.N, ldd = a.ldx, w = n1 - n0;
  const uint32_t uK = static_cast<uint32_t>(k_limit(a.K));
  const int64_t full = w / W * W;
  const int rem = static_cast<int>(w - full);
  bool ok = true;
  for (int64_t i = r0; i < r1; ++i) {
    const T* __restrict__ di = a.x + i * ldd + n0;
    for (int64_t p = crow[i]; p < crow[i + 1]; ++p) {
      const uint32_t c = static_cast<uint32_t>(static_cast<int32_t>(col[p]));
      if (__builtin_expect(c >= uK, 0)) {
        ok = false;
        continue;
      }
      const reg v = VT::set1(val[p]);
      T* __restrict__ o = out + static_cast<int64_t>(c) * N + n0;
      int64_t j = 0;
      for (; j + 2 * W <= full; j += 2 * W) {
        const reg o0 = VT::fma(v, VT::load(di + j), VT::load(o + j));
        const reg o1 = VT::fma(v, VT::load(di + j + W), VT::load(o + j + W));
        VT::store(o + j, o0);
        VT::store(o + j + W, o1);
      }
      for (; j < full; j += W) VT::store(o + j, VT::fma(v, VT::load(di + j), VT::load(o + j)));
      if (rem) VT::storen(o + j, VT::fma(v, VT::loadn(di + j, rem), VT::loadn(o + j, rem)), rem);
    }
  }
  return ok;
}

template <class T, class I>
bool csr_spmm_rows(const CsrSpmmArgs<T, I>& a, int64_t r0, int64_t r1, int64_t n0, int64_t n1) {
  constexpr int W = V<T>::W;
  constexpr int NVMAX = Tune::csr_nv;
  if (a.N == 1) {
    if (n0 >= n1) return true;
    return with_storage<T>(a.stored.dt, [&](auto tv) {
      using TV = decltype(tv);
#if SPARSE_OPS_ISA == 2
      // loads while the rows' mean length is below the measured bound (kernels.h)
      if (static_cast<int64_t>(a.crow[r1]) - a.crow[r0] <
          static_cast<int64_t>(g_csr_spmv_loads.load(std::memory_order_relaxed)) * (r1 - r0))
        return csr_spmv_rows_loads<T, I, TV>(a, r0, r1);
#endif
      return csr_spmv_rows<T, I, TV>(a, r0, r1);
    });
  }
  // Values read through the permutation are random loads, paid once per pass over the
  // rows: twice the tile width (8 vectors, one accumulator set) halves the passes.
  bool ok = true;
  auto tiles = [&](auto nvmax, auto indirect) {
    constexpr int NVT = decltype(nvmax)::value;
    for (int64_t c = n0; c < n1; c += NVT * W) {
      const int64_t w = n1 - c < NVT * W ? n1 - c : NVT * W;
      const int nv = static_cast<int>((w + W - 1) / W);
      const int rem = static_cast<int>(w - static_cast<int64_t>(nv - 1) * W);
      with_nv<NVT>(nv, rem != W, [&](auto nvc, auto mc) {
        ok = csr_spmm_tile<T, I, decltype(nvc)::value, decltype(mc)::value,
                           decltype(indirect)::value>(a, r0, r1, c, rem) && ok;
      });
    }
  };
  if (a.vperm)
    tiles(std::integral_constant<int, 2 * NVMAX>{}, std::true_type{});
  else
    tiles(std::integral_constant<int, NVMAX>{}, std::false_type{});
  return ok;
}

// ---------------------------------------------------------------- SDDMM
template <class T, class I>
bool csr_sddmm_rows(const CsrSddmmArgs<T, I>& a, int64_t r0, int64_t r1, int64_t n0, int64_t n1,
                    bool accumulate) {
  using VT = V<T>;
  constexpr int W = VT::W;
  const int32_t* __restrict__ crow = a.crow;
  const I* __restrict__ col = a.col;
  T* __restrict__ out = a.out;
  const int64_t N = a.N;
  bool ok = true;
  if (N == 1) {  // out[p] = a[i] * b[col[p]]
    const auto kv = VT::iset1(k_limit(a.K));
    for (int64_t i = r0; i < r1; ++i) {
      const auto ai = VT::set1(a.a[i]);
      int64_t p = crow[i];
      const int64_t e = crow[i + 1];
      for (; p + W <= e; p += W) {
        const auto i0 = VT::idx(col + p);
        const auto m0 = VT::valid(i0, kv);
        ok = ok && VT::all(m0);
        VT::store(out + p, VT::mul(ai, VT::gatherm(a.b, i0, m0)));
      }
      if (p < e) {
        const int n = static_cast<int>(e - p);
        const auto i0 = VT::idxn(col + p, n);
        const auto m0 = VT::validn(i0, kv, n);
        ok = ok && VT::alln(m0, n);
        VT::storen(out + p, VT::mul(ai, VT::gatherm(a.b, i0, m0)), n);
      }
    }
    return ok;
  }
  const uint32_t uK = static_cast<uint32_t>(k_limit(a.K));
  const int64_t w = n1 - n0, ldb = a.ldb;
  const T* bb = a.b + (n0 - a.bc0);
  auto brow = [&](int64_t p) {  // b row of nonzero p; row 0 stands in for a bad index
    const uint32_t c = static_cast<uint32_t>(static_cast<int32_t>(col[p]));
    if (__builtin_expect(c >= uK, 0)) {
      ok = false;
      return static_cast<const T*>(nullptr);
    }
    return bb + static_cast<int64_t>(c) * ldb;
  };
  T r[4];
  for (int64_t i = r0; i < r1; ++i) {
    const T* ar = a.a + i * N + n0;
    int64_t p = crow[i];
    const int64_t e = crow[i + 1];
    for (; p + 4 <= e; p += 4) {
      const T *b0 = brow(p), *b1 = brow(p + 1), *b2 = brow(p + 2), *b3 = brow(p + 3);
      if (__builtin_expect(!b0 || !b1 || !b2 || !b3, 0)) continue;
      dot_row4(ar, b0, b1, b2, b3, w, r);
      for (int q = 0; q < 4; ++q) out[p + q] = accumulate ? out[p + q] + r[q] : r[q];
    }
    for (; p < e; ++p) {
      const T* b0 = brow(p);
      if (!b0) continue;
      const T s = dot_row(ar, b0, w);
      out[p] = accumulate ? out[p] + s : s;
    }
  }
  return ok;
}

}  // namespace ISA_NS
}  // namespace sparse_ops
