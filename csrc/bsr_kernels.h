// BSR kernels (SpMM as a small-GEMM micro-kernel per block, SpMV, SDDMM), written once over
// V<T> and compiled per SIMD level by isa_*.cpp. Each chunk's block columns were checked just before (bsr.cpp).
#pragma once

namespace sparse_ops {
namespace ISA_NS {

// ---------------------------------------------------------------- SpMM micro-kernel
// yout[r, :] = yin[r, :] + sum_c A[r, c] * xb[c, :] for RB rows of one block and an output
// tile of (NV-1)*W + rem columns (yin == nullptr: from zero). acc: RB x NV vectors; each x row
// segment is loaded once and reused by the RB rows.
// TRANS: A[r, c] is read at A[c * RS + r] (a stored block transposed in place).
template <class T, int RB, int NV, bool MASK, bool TRANS = false>
inline void bsr_micro(const T* __restrict__ A, int64_t C, const T* __restrict__ xb, int64_t ldx,
                      const T* yin, int64_t ldin, T* yout, int64_t ldout, int rem,
                      int64_t RS = 0) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  reg acc[RB][NV];
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v)
      acc[r][v] = !yin ? VT::zero()
                       : ((MASK && v == NV - 1) ? VT::loadn(yin + r * ldin + v * W, rem)
                                                : VT::load(yin + r * ldin + v * W));
  for (int64_t c = 0; c < C; ++c) {
    reg xv[NV];
    const T* xr = xb + c * ldx;
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v)
      xv[v] = (MASK && v == NV - 1) ? VT::loadn(xr + v * W, rem) : VT::load(xr + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      const reg av = VT::set1(TRANS ? A[c * RS + r] : A[r * C + c]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = VT::fma(av, xv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      if (MASK && v == NV - 1)
        VT::storen(yout + r * ldout + v * W, acc[r][v], rem);
      else
        VT::store(yout + r * ldout + v * W, acc[r][v]);
    }
}

// Bytes of the per-block-row partial sums kept contiguous (L1) while the blocks of a block
// row accumulate; out rows at the caller's stride would conflict in the caches.
constexpr int64_t kBsrPartBytes = 32 * 1024;

template <class T, int NV, bool MASK, bool TRANS>
void bsr_spmm_tile(const BsrSpmmArgs<T>& a, int64_t br0, int64_t br1, int64_t n0, int rem) {
  using VT = V<T>;
  constexpr int W = VT::W;
  constexpr int RB = Tune::bsr_rb;
  constexpr int64_t PW = NV * W;  // part buffer row stride
  alignas(64) T part[kBsrPartBytes / sizeof(T)];
  const int64_t R = a.R, C = a.C, N = a.N, ldx = a.ldx;
  const int64_t w = static_cast<int64_t>(NV - 1) * W + rem;
  const bool use_part = R * PW * static_cast<int64_t>(sizeof(T)) <= kBsrPartBytes;
  for (int64_t i = br0; i < br1; ++i) {
    T* yb = a.out + i * R * N + n0;
    const int64_t s = a.crow[i], e = a.crow[i + 1];
    if (s == e) {
      for (int64_t r = 0; r < R; ++r)
        for (int64_t k = 0; k < w; ++k) yb[r * N + k] = T(0);
      continue;
    }
    for (int64_t p = s; p < e; ++p) {
      const T* A = a.val + (TRANS ? static_cast<int64_t>(a.perm[p]) : p) * R * C;
      if constexpr (TRANS) {  // blocks come in permuted order: fetch the row's next one ahead
        if (p + 1 < e) {
          const char* nb =
              reinterpret_cast<const char*>(a.val + static_cast<int64_t>(a.perm[p + 1]) * R * C);
          for (int64_t l = 0; l < R * C * static_cast<int64_t>(sizeof(T)); l += 64)
            prefetch(nb + l);
        }
      }
      const T* xb = a.x + static_cast<int64_t>(a.col[p]) * C * ldx + (n0 - a.xc0);
      // partial sums: part (or y itself when R is large); the last block writes y
      const T* yin = p == s ? nullptr : (use_part ? part : yb);
      const int64_t ldin = use_part ? PW : N;
      T* yout = (p == e - 1 || !use_part) ? yb : part;
      const int64_t ldout = yout == yb ? N : PW;
      int64_t r = 0;
      const int64_t rstep = TRANS ? 1 : C;  // where row r of the block starts
      for (; r + RB <= R; r += RB)
        bsr_micro<T, RB, NV, MASK, TRANS>(A + r * rstep, C, xb, ldx,
                                          yin ? yin + r * ldin : nullptr, ldin,
                                          yout + r * ldout, ldout, rem, R);
      for (; r < R; ++r)
        bsr_micro<T, 1, NV, MASK, TRANS>(A + r * rstep, C, xb, ldx,
                                         yin ? yin + r * ldin : nullptr, ldin,
                                         yout + r * ldout, ldout, rem, R);
    }
  }
}

// ---------------------------------------------------------------- SpMV (N == 1)
// y[r] = sum over blocks of A[r, :] . x[j*C : j*C + C] for RB rows; vectors along C.
template <class T, int RB, class TV = T>
inline void bsr_spmv_group(const BsrSpmmArgs<T>& a, int64_t s, int64_t e, int64_t r,
                           T* __restrict__ y) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  const int64_t R = a.R, C = a.C;
  reg acc[RB];
#pragma GCC unroll 32
  for (int q = 0; q < RB; ++q) acc[q] = VT::zero();
  // The first row group reads a few rows of each block (RB * C of R * C values, blocks apart):
  // a strided walk the hardware prefetchers stream poorly from DRAM (32x32 int8 blocks at 0.3:
  // 3.7 GB/s cold against 9 for a dense int8 product). It fetches whole blocks a stream
  // distance ahead instead, for itself and the groups after it.
  const int64_t bb = R * C * static_cast<int64_t>(sizeof(TV));
  const int64_t ahead = r == 0 && g_stream_ahead > 0 ? (g_stream_ahead + bb - 1) / bb : 0;
  for (int64_t p = s; p < e; ++p) {
    const TV* A = values_of<TV>(a) + p * R * C + r * C;
    if (ahead) prefetch_lines(values_of<TV>(a) + (p + ahead) * R * C, bb);
    const T* xs = a.x + static_cast<int64_t>(a.col[p]) * C;
    int64_t c = 0;
    for (; c + W <= C; c += W) {
      const reg xv = VT::load(xs + c);
#pragma GCC unroll 32
      for (int q = 0; q < RB; ++q) acc[q] = VT::fma(VT::load(A + q * C + c), xv, acc[q]);
    }
    if (c < C) {
      const int n = static_cast<int>(C - c);
      const reg xv = VT::loadn(xs + c, n);
#pragma GCC unroll 32
      for (int q = 0; q < RB; ++q) acc[q] = VT::fma(VT::loadn(A + q * C + c, n), xv, acc[q]);
    }
  }
  if constexpr (RB % 4 == 0) {
#pragma GCC unroll 8
    for (int q = 0; q < RB; q += 4)
      VT::hsum4(acc[q], acc[q + 1], acc[q + 2], acc[q + 3], y + r + q);
  } else {
#pragma GCC unroll 32
    for (int q = 0; q < RB; ++q) y[r + q] = VT::hsum(acc[q]);
  }
}

template <class T, class TV = T>
void bsr_spmv_rows(const BsrSpmmArgs<T>& a, int64_t br0, int64_t br1) {
  constexpr int RB = Tune::bsr_mv_rb;
  const int64_t R = a.R;
  for (int64_t i = br0; i < br1; ++i) {
    T* y = a.out + i * R;
    const int64_t s = a.crow[i], e = a.crow[i + 1];
    int64_t r = 0;
    for (; r + RB <= R; r += RB) bsr_spmv_group<T, RB, TV>(a, s, e, r, y);
    for (; r + 4 <= R; r += 4) bsr_spmv_group<T, 4, TV>(a, s, e, r, y);
    for (; r < R; ++r) bsr_spmv_group<T, 1, TV>(a, s, e, r, y);
  }
}

template <class T>
void bsr_spmm_rows(const BsrSpmmArgs<T>& a, int64_t br0, int64_t br1, int64_t n0, int64_t n1) {
  constexpr int W = V<T>::W;
  constexpr int NVMAX = Tune::bsr_nv;
  if (a.N == 1) {
    if (n0 >= n1) return;
    with_storage<T>(a.stored.dt,
                    [&](auto tv) { bsr_spmv_rows<T, decltype(tv)>(a, br0, br1); });
    return;
  }
  for (int64_t c = n0; c < n1; c += NVMAX * W) {
    const int64_t w = n1 - c < NVMAX * W ? n1 - c : NVMAX * W;
    const int nv = static_cast<int>((w + W - 1) / W);
    const int rem = static_cast<int>(w - static_cast<int64_t>(nv - 1) * W);
    with_nv<NVMAX>(nv, rem != W, [&](auto nvc, auto mc) {
      constexpr int V_ = decltype(nvc)::value;
      constexpr bool M_ = decltype(mc)::value;
      if (a.perm)
        bsr_spmm_tile<T, V_, M_, true>(a, br0, br1, c, rem);
      else
        bsr_spmm_tile<T, V_, M_, false>(a, br0, br1, c, rem);
    });
  }
}

// ---------------------------------------------------------------- SDDMM
// o[r*C + c] (+)= <ar[r, 0:w], br[c, 0:w]> for RA x CB dot products (rows stride N).
template <class T, int RA, int CB>
inline void bsr_sddmm_micro(const T* __restrict__ ar, const T* __restrict__ br, int64_t N,
                            int64_t w, T* __restrict__ o, int64_t C, bool accumulate) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  reg acc[RA][CB];
#pragma GCC unroll 16
  for (int r = 0; r < RA; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < CB; ++c) acc[r][c] = VT::zero();
  int64_t k = 0;
  for (; k + W <= w; k += W) {
    reg av[RA], bv[CB];
#pragma GCC unroll 16
    for (int r = 0; r < RA; ++r) av[r] = VT::load(ar + r * N + k);
#pragma GCC unroll 16
    for (int c = 0; c < CB; ++c) bv[c] = VT::load(br + c * N + k);
#pragma GCC unroll 16
    for (int r = 0; r < RA; ++r)
#pragma GCC unroll 16
      for (int c = 0; c < CB; ++c) acc[r][c] = VT::fma(av[r], bv[c], acc[r][c]);
  }
  if (k < w) {
    const int n = static_cast<int>(w - k);
    reg av[RA], bv[CB];
#pragma GCC unroll 16
    for (int r = 0; r < RA; ++r) av[r] = VT::loadn(ar + r * N + k, n);
#pragma GCC unroll 16
    for (int c = 0; c < CB; ++c) bv[c] = VT::loadn(br + c * N + k, n);
#pragma GCC unroll 16
    for (int r = 0; r < RA; ++r)
#pragma GCC unroll 16
      for (int c = 0; c < CB; ++c) acc[r][c] = VT::fma(av[r], bv[c], acc[r][c]);
  }
  T sums[RA][CB];
#pragma GCC unroll 16
  for (int r = 0; r < RA; ++r) {
    if constexpr (CB == 4)
      VT::hsum4(acc[r][0], acc[r][1], acc[r][2], acc[r][3], sums[r]);
    else
#pragma GCC unroll 16
      for (int c = 0; c < CB; ++c) sums[r][c] = VT::hsum(acc[r][c]);
#pragma GCC unroll 16
    for (int c = 0; c < CB; ++c) o[r * C + c] = accumulate ? o[r * C + c] + sums[r][c] : sums[r][c];
  }
}

template <class T, int RA>
inline void bsr_sddmm_rowgroup(const T* ar, const T* bb, int64_t N, int64_t w, T* o, int64_t C,
                               bool accumulate) {
  constexpr int CB = Tune::sd_cb;
  int64_t c = 0;
  for (; c + CB <= C; c += CB)
    bsr_sddmm_micro<T, RA, CB>(ar, bb + c * N, N, w, o + c, C, accumulate);
  for (; c < C; ++c) bsr_sddmm_micro<T, RA, 1>(ar, bb + c * N, N, w, o + c, C, accumulate);
}

template <class T>
void bsr_sddmm_rows(const BsrSddmmArgs<T>& a, int64_t br0, int64_t br1, int64_t n0, int64_t n1,
                    bool accumulate) {
  using VT = V<T>;
  constexpr int W = VT::W;
  constexpr int RA = Tune::sd_ra;
  const int64_t R = a.R, C = a.C, N = a.N;
  const int64_t w = n1 - n0;
  for (int64_t i = br0; i < br1; ++i) {
    for (int64_t p = a.crow[i]; p < a.crow[i + 1]; ++p) {
      const int64_t j = a.col[p];
      T* o = a.out + p * R * C;
      if (N == 1) {  // outer product a[iR : iR+R] x b[jC : jC+C]
        const T* bs = a.b + j * C;
        for (int64_t r = 0; r < R; ++r) {
          const auto av = VT::set1(a.a[i * R + r]);
          int64_t c = 0;
          for (; c + W <= C; c += W) VT::store(o + r * C + c, VT::mul(av, VT::load(bs + c)));
          if (c < C) {
            const int n = static_cast<int>(C - c);
            VT::storen(o + r * C + c, VT::mul(av, VT::loadn(bs + c, n)), n);
          }
        }
        continue;
      }
      const T* ab = a.a + i * R * N + n0;
      const T* bb = a.b + j * C * N + n0;
      int64_t r = 0;
      for (; r + RA <= R; r += RA)
        bsr_sddmm_rowgroup<T, RA>(ab + r * N, bb, N, w, o + r * C, C, accumulate);
      for (; r < R; ++r) bsr_sddmm_rowgroup<T, 1>(ab + r * N, bb, N, w, o + r * C, C, accumulate);
    }
  }
}

}  // namespace ISA_NS
}  // namespace sparse_ops
