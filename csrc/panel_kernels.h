// Load sparse, compute dense: the wide products (N >= ~16) of the layouts that skip no
// compute at their usual densities (bitmap, N:M). Rows of S are expanded, KC columns at a
// time, into a dense float panel in L2 (zeros where nothing is stored), and a register-blocked
// dense micro-kernel (bsr_micro: RB rows x NV vectors of accumulators, each x row segment
// loaded once for the RB rows) runs every output column against it before the next panel.
// The weight is read once, in its stored bytes and dtype; the multiply-adds are the dense
// ones, at a dense kernel's rate (one x load per RB FMAs instead of one per FMA as in the
// CSR-style kernels, which are load-bound at these densities).
//
// Written once over V<float>, compiled per SIMD level by isa_*.cpp. The driver checked the
// chunk's structure just before (bitmap: popcounts against the offsets, no bit past K; N:M:
// every position < m and every column < K), so every write below lands inside the panel and
// every value read inside the array.
#pragma once

namespace sparse_ops {
namespace ISA_NS {

// Group scales (bitmap_spmm_grouped / nm_spmm_grouped: int8 values, a.wscale set): row i's
// expanded columns [k0, k0 + kw) times their groups' scales wscale[i * ws_ld + column /
// wgroup], in place, just after the row is expanded (still in L1). float(q) * scale: the
// dequantized weight's own float32 value.
inline void panel_scale_row(const PanelArgs& a, int64_t i, int64_t k0, int64_t kw, float* dst) {
  const float* ws = a.wscale + i * a.ws_ld;
  for (int64_t s0 = k0; s0 < k0 + kw;) {
    const int64_t g = s0 / a.wgroup, s1 = std::min(k0 + kw, (g + 1) * a.wgroup);
    const float sc = ws[g];
    float* d = dst + (s0 - k0);
    for (int64_t j = 0; j < s1 - s0; ++j) d[j] *= sc;
    s0 = s1;
  }
}

// Rows [i0, i0 + nr) of a bitmap S, columns [k0, k0 + kw), into panel (nr x kw, row stride
// kw; whole 64-column words are written, up to 63 floats past a row: the panel has room, and
// the columns past K are zeros since no bit is set there). cur[r]: the position in the values
// of row i0 + r's first stored column >= k0 (advanced). AVX2 expands a byte at a time (a
// permutation from a 256-entry table, then a blend that zeroes the unset lanes), AVX-512 16
// bits at a time (vexpandps); both read the next values as stored, widened in registers.
template <class TV>
inline void panel_expand_bitmap(const PanelArgs& a, int64_t i0, int64_t nr, int64_t k0,
                                int64_t kw, int64_t* cur, float* panel) {
  const TV* val = static_cast<const TV*>(a.stored.data);
  const int64_t w0 = k0 / 64, nw = (kw + 63) / 64;
  [[maybe_unused]] const int64_t nnz = a.nnz;  // the vector paths' load bound
#if SPARSE_OPS_ISA == 2
  const BmExpandTable& t = bm_expand_table();
#endif
  for (int64_t r = 0; r < nr; ++r) {
    float* dst = panel + r * kw;
    const uint8_t* row = a.bits + (i0 + r) * a.rb + 8 * w0;
    int64_t p = cur[r];
    for (int64_t w = 0; w < nw; ++w) {
      uint64_t word;
      std::memcpy(&word, row + 8 * w, 8);
      float* d = dst + 64 * w;
#if SPARSE_OPS_ISA == 2
      for (int q = 0; q < 8; ++q) {
        const unsigned byte = static_cast<unsigned>(word >> (8 * q)) & 0xFFu;
        if (!byte) {
          _mm256_storeu_ps(d + 8 * q, _mm256_setzero_ps());
          continue;
        }
        const __m256 v = bm_values8(val + p, nnz - p);
        const __m256i idx = _mm256_load_si256(reinterpret_cast<const __m256i*>(t.idx[byte]));
        _mm256_storeu_ps(d + 8 * q, _mm256_blendv_ps(_mm256_permutevar8x32_ps(v, idx),
                                                     _mm256_setzero_ps(),
                                                     _mm256_castsi256_ps(idx)));
        p += __builtin_popcount(byte);
      }
#elif SPARSE_OPS_ISA == 3
      for (int q = 0; q < 4; ++q) {
        const __mmask16 m = static_cast<__mmask16>(word >> (16 * q));
        if (!m) {
          _mm512_storeu_ps(d + 16 * q, _mm512_setzero_ps());
          continue;
        }
        const int64_t avail = nnz - p;
        const __m512 v = avail >= 16 ? V<float>::load(val + p)
                                     : V<float>::loadn(val + p, static_cast<int>(avail));
        _mm512_storeu_ps(d + 16 * q, _mm512_maskz_expand_ps(m, v));
        p += __builtin_popcount(m);
      }
#else
      std::memset(d, 0, 64 * sizeof(float));
      while (word) {
        d[__builtin_ctzll(word)] = scalar_of(val[p++]);
        word &= word - 1;
      }
#endif
    }
    // the row's next chunk into L2 while the panel is computed (48 rows of two streams each
    // are more than the hardware prefetchers track; panel_i8_kernels.h measured it)
    prefetch_next(row + 8 * nw, 8 * nw);
    prefetch_next(val + p, (p - cur[r]) * static_cast<int64_t>(sizeof(TV)));
    cur[r] = p;
    if (a.wscale) panel_scale_row(a, i0 + r, k0, kw, dst);
  }
}

// Rows [i0, i0 + nr) of an N:M S, columns [k0, k0 + kw) (k0 and the panel width whole groups),
// into panel (nr x kw, row stride kw). Two slots naming the same column add up, as in every
// other N:M product.
template <class TV>
inline void panel_expand_nm(const PanelArgs& a, int64_t i0, int64_t nr, int64_t k0, int64_t kw,
                            float* panel) {
  const TV* val = static_cast<const TV*>(a.stored.data);
  const int64_t n = a.n, m = a.m, b = a.b, Gn = a.G * n;
  const int64_t g0 = k0 / m, g1 = std::min(a.G, (k0 + kw + m - 1) / m);
  const unsigned fmask = (1u << b) - 1u;
  for (int64_t r = 0; r < nr; ++r) {
    float* dst = panel + r * kw;
    std::memset(dst, 0, static_cast<size_t>(kw) * sizeof(float));
    const uint8_t* mrow = a.meta + (i0 + r) * a.mbytes;
    const TV* vrow = val + (i0 + r) * Gn;
    if (g1 < a.G) {  // the row's next chunk into L2 (as in panel_expand_bitmap)
      prefetch_next(vrow + g1 * n, (g1 - g0) * n * static_cast<int64_t>(sizeof(TV)));
      prefetch_next(mrow + g1 * n * b / 8, ((g1 - g0) * n * b + 7) / 8);
    }
    for (int64_t g = g0; g < g1; ++g) {
      float* d = dst + (g * m - k0);
      for (int64_t j = 0; j < n; ++j) {
        const int64_t t = g * n + j, bo = t * b;
        d[(mrow[bo >> 3] >> (bo & 7)) & fmask] += scalar_of(vrow[t]);
      }
    }
    if (a.wscale) panel_scale_row(a, i0 + r, k0, kw, dst);
  }
}

// out rows [r0, r1), every column: S's rows expanded MC at a time, KC columns at a time.
template <class TV>
void panel_spmm_typed(const PanelArgs& a, int64_t r0, int64_t r1) {
  using VT = V<float>;
  constexpr int W = VT::W;
  constexpr int RB = Tune::panel_rb, NVMAX = Tune::panel_nv;
  constexpr int64_t MC = kPanelRows;
  const int64_t K = a.K, N = a.N, ldx = a.ldx;
  const int64_t KC = panel_kc(a.layout == PanelLayout::nm ? a.m : 64);
  float* panel = static_cast<float*>(
      scratch_buffer(kScratchPanel, static_cast<size_t>(MC * KC + 64) * sizeof(float)));
  int64_t cur[MC];
  for (int64_t i0 = r0; i0 < r1; i0 += MC) {
    const int64_t nr = std::min(MC, r1 - i0);
    if (a.layout == PanelLayout::bitmap)
      for (int64_t r = 0; r < nr; ++r) cur[r] = a.off[i0 + r];
    float* yb = a.out + i0 * N;
    if (K == 0) {
      for (int64_t r = 0; r < nr; ++r)
        std::memset(yb + r * N, 0, static_cast<size_t>(N) * sizeof(float));
      continue;
    }
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kw = std::min(KC, K - k0);
      if (a.layout == PanelLayout::bitmap)
        panel_expand_bitmap<TV>(a, i0, nr, k0, kw, cur, panel);
      else
        panel_expand_nm<TV>(a, i0, nr, k0, kw, panel);
      const float* xk = a.x + k0 * ldx;
      for (int64_t c = 0; c < N; c += NVMAX * W) {
        const int64_t w = N - c < NVMAX * W ? N - c : NVMAX * W;
        const int nv = static_cast<int>((w + W - 1) / W);
        const int rem = static_cast<int>(w - static_cast<int64_t>(nv - 1) * W);
        with_nv<NVMAX>(nv, rem != W, [&](auto nvc, auto mc) {
          constexpr int V_ = decltype(nvc)::value;
          constexpr bool M_ = decltype(mc)::value;
          float* y = yb + c;
          const float* yin = k0 == 0 ? nullptr : y;
          int64_t r = 0;
          for (; r + RB <= nr; r += RB)
            bsr_micro<float, RB, V_, M_>(panel + r * kw, kw, xk + c, ldx,
                                         yin ? yin + r * N : nullptr, N, y + r * N, N, rem);
          for (; r < nr; ++r)
            bsr_micro<float, 1, V_, M_>(panel + r * kw, kw, xk + c, ldx,
                                        yin ? yin + r * N : nullptr, N, y + r * N, N, rem);
        });
      }
    }
  }
}

// The float panel product (W8A8, a.xq4 set, runs the int8 panels of panel_i8_kernels.h).
inline void panel_spmm_rows(const PanelArgs& a, int64_t r0, int64_t r1) {
  with_storage<float>(a.stored.dt, [&](auto tv) { panel_spmm_typed<decltype(tv)>(a, r0, r1); });
}

}  // namespace ISA_NS
}  // namespace sparse_ops
