// CSR kernels (SpMM, SpMV, SDDMM) and the index range check, written once over V<T> and
// compiled per SIMD level by isa_*.cpp. Inputs are trusted (validated by csr.cpp).
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

// ---------------------------------------------------------------- SpMV (N == 1)
template <class T, class I>
void csr_spmv_rows(const CsrSpmmArgs<T, I>& a, int64_t r0, int64_t r1) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  const int32_t* __restrict__ crow = a.crow;
  const I* __restrict__ col = a.col;
  const T* __restrict__ val = a.val;
  const T* __restrict__ x = a.x;
  T* __restrict__ out = a.out;
  for (int64_t i = r0; i < r1; ++i) {
    int64_t p = crow[i];
    const int64_t e = crow[i + 1];
    reg s0 = VT::zero(), s1 = VT::zero(), s2 = VT::zero(), s3 = VT::zero();
    for (; p + 4 * W <= e; p += 4 * W) {
      s0 = VT::fma(VT::load(val + p), VT::gather(x, VT::idx(col + p)), s0);
      s1 = VT::fma(VT::load(val + p + W), VT::gather(x, VT::idx(col + p + W)), s1);
      s2 = VT::fma(VT::load(val + p + 2 * W), VT::gather(x, VT::idx(col + p + 2 * W)), s2);
      s3 = VT::fma(VT::load(val + p + 3 * W), VT::gather(x, VT::idx(col + p + 3 * W)), s3);
    }
    for (; p + W <= e; p += W)
      s0 = VT::fma(VT::load(val + p), VT::gather(x, VT::idx(col + p)), s0);
    if (p < e) {
      const int n = static_cast<int>(e - p);
      s1 = VT::fma(VT::loadn(val + p, n), VT::gathern(x, VT::idxn(col + p, n), n), s1);
    }
    out[i] = VT::hsum(VT::add(VT::add(s0, s1), VT::add(s2, s3)));
  }
}

// ---------------------------------------------------------------- SpMM row tile
// Rows [r0, r1), output columns [n0, n0 + (NV-1)*W + rem): two accumulator sets (even / odd
// nonzeros) of NV vectors each, value broadcast, FMA with the gathered x row segment.
template <class T, class I, int NV, bool MASK>
void csr_spmm_tile(const CsrSpmmArgs<T, I>& a, int64_t r0, int64_t r1, int64_t n0, int rem) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  const int32_t* __restrict__ crow = a.crow;
  const I* __restrict__ col = a.col;
  const T* __restrict__ val = a.val;
  const T* __restrict__ xb = a.x + (n0 - a.xc0);
  const int64_t N = a.N, ldx = a.ldx;
  auto ld = [rem](const T* p, int v) {
    return (MASK && v == NV - 1) ? VT::loadn(p, rem) : VT::load(p);
  };
  for (int64_t i = r0; i < r1; ++i) {
    int64_t p = crow[i];
    const int64_t e = crow[i + 1];
    reg acc[NV], bcc[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[v] = bcc[v] = VT::zero();
    for (; p + 2 <= e; p += 2) {
      const T* x0 = xb + static_cast<int64_t>(col[p]) * ldx;
      const T* x1 = xb + static_cast<int64_t>(col[p + 1]) * ldx;
      const reg v0 = VT::set1(val[p]);
      const reg v1 = VT::set1(val[p + 1]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        acc[v] = VT::fma(v0, ld(x0 + v * W, v), acc[v]);
        bcc[v] = VT::fma(v1, ld(x1 + v * W, v), bcc[v]);
      }
    }
    if (p < e) {
      const T* x0 = xb + static_cast<int64_t>(col[p]) * ldx;
      const reg v0 = VT::set1(val[p]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[v] = VT::fma(v0, ld(x0 + v * W, v), acc[v]);
    }
    T* y = a.out + i * N + n0;
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      const reg s = VT::add(acc[v], bcc[v]);
      if (MASK && v == NV - 1)
        VT::storen(y + v * W, s, rem);
      else
        VT::store(y + v * W, s);
    }
  }
}

template <class T, class I>
void csr_spmm_rows(const CsrSpmmArgs<T, I>& a, int64_t r0, int64_t r1, int64_t n0, int64_t n1) {
  constexpr int W = V<T>::W;
  constexpr int NVMAX = Tune::csr_nv;
  if (a.N == 1) {
    if (n0 < n1) csr_spmv_rows(a, r0, r1);
    return;
  }
  for (int64_t c = n0; c < n1; c += NVMAX * W) {
    const int64_t w = n1 - c < NVMAX * W ? n1 - c : NVMAX * W;
    const int nv = static_cast<int>((w + W - 1) / W);
    const int rem = static_cast<int>(w - static_cast<int64_t>(nv - 1) * W);
    with_nv<NVMAX>(nv, rem != W, [&](auto nvc, auto mc) {
      csr_spmm_tile<T, I, decltype(nvc)::value, decltype(mc)::value>(a, r0, r1, c, rem);
    });
  }
}

// ---------------------------------------------------------------- SDDMM
template <class T, class I>
void csr_sddmm_rows(const CsrSddmmArgs<T, I>& a, int64_t r0, int64_t r1, int64_t n0, int64_t n1,
                    bool accumulate) {
  using VT = V<T>;
  constexpr int W = VT::W;
  const int32_t* __restrict__ crow = a.crow;
  const I* __restrict__ col = a.col;
  T* __restrict__ out = a.out;
  const int64_t N = a.N;
  if (N == 1) {  // out[p] = a[i] * b[col[p]]
    for (int64_t i = r0; i < r1; ++i) {
      const auto ai = VT::set1(a.a[i]);
      int64_t p = crow[i];
      const int64_t e = crow[i + 1];
      for (; p + W <= e; p += W) VT::store(out + p, VT::mul(ai, VT::gather(a.b, VT::idx(col + p))));
      if (p < e) {
        const int n = static_cast<int>(e - p);
        VT::storen(out + p, VT::mul(ai, VT::gathern(a.b, VT::idxn(col + p, n), n)), n);
      }
    }
    return;
  }
  const int64_t w = n1 - n0, ldb = a.ldb;
  const T* bb = a.b + (n0 - a.bc0);
  T r[4];
  for (int64_t i = r0; i < r1; ++i) {
    const T* ar = a.a + i * N + n0;
    int64_t p = crow[i];
    const int64_t e = crow[i + 1];
    for (; p + 4 <= e; p += 4) {
      dot_row4(ar, bb + static_cast<int64_t>(col[p]) * ldb,
               bb + static_cast<int64_t>(col[p + 1]) * ldb,
               bb + static_cast<int64_t>(col[p + 2]) * ldb,
               bb + static_cast<int64_t>(col[p + 3]) * ldb, w, r);
      for (int q = 0; q < 4; ++q) out[p + q] = accumulate ? out[p + q] + r[q] : r[q];
    }
    for (; p < e; ++p) {
      const T s = dot_row(ar, bb + static_cast<int64_t>(col[p]) * ldb, w);
      out[p] = accumulate ? out[p] + s : s;
    }
  }
}

}  // namespace ISA_NS
}  // namespace sparse_ops
