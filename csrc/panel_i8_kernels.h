// W8A8 on the dense panel: int8 weights (bitmap or N:M, values as stored) times activations
// quantized per token to int8, with integer dot products. The design of panel_kernels.h
// ("load sparse, compute dense"), in integers: rows of S are expanded KC columns at a time
// into an int8 panel in L1 (48 rows x KC bytes: a quarter of the float panel), and a
// register-blocked micro-kernel multiplies it with the activations packed in quads
// (xq4[q * ldq + 4 t + j] = xq[t, 4 q + j]: the layout VNNI's vpdpbusd reads) into int32
// accumulators; each run of columns sharing one weight scale (a group, or the whole chunk for
// per-row scales) is flushed into the float output as acc * w_scale[row, group] * x_scale[t].
//
// AVX2 (and the AVX-512 build, on the same 256-bit code) multiplies with vpmaddubsw: the
// unsigned operand is |w| (broadcast 4 bytes of a row), the signed one x with w's sign
// (vpsignb), so a pair sum is at most 2 * 128 * 127 = 32512 and never saturates (the
// activations lie in [-127, 127], checked when they are packed); vpmaddwd against ones
// widens the pairs to int32. The scalar build runs the same arithmetic in plain loops.
// Exactness: a run is at most KC <= 960 columns, so |acc| <= 960 * 128 * 127 < 2^24 and its
// float conversion is exact; the float output sums one rounded product per run.
//
// VNNI (vpdpbusd: 4 unsigned x signed byte products summed into int32, one instruction where
// AVX2 needs three) takes the unsigned operand from the activations: x + 128 (x ^ 0x80, in
// [1, 255]) times w, four bytes of a row broadcast; the flush subtracts 128 * the run's sum
// of w per row (computed once per run from the panel). |acc| <= 960 * 255 * 128 < 2^31, and
// the difference, the exact product sum, is below 2^24 as above. The same engine with the
// instruction emulated exactly by AVX2 instructions (kDotEmulated) runs the tests on CPUs
// without VNNI; isa_avxvnni.cpp / isa_avx512vnni.cpp compile it with the instruction.
//
// N:M slots naming the same column add up (as in every N:M product); if such a sum leaves
// int8 the chunk is expanded instead into an int16 panel and computed by the plain loops.
#pragma once

namespace sparse_ops {
namespace ISA_NS {

#if SPARSE_OPS_ISA >= 2
// For each bitmap byte, the pshufb control that moves its packed values to their set lanes:
// lane l takes byte rank(l) of the packed values if bit l is set, else 0 (0x80).
struct BmShuffleTable {
  alignas(16) uint8_t ctl[256][8];
};
inline const BmShuffleTable& bm_shuffle_table() {
  static const BmShuffleTable t = [] {
    BmShuffleTable r{};
    for (int b = 0; b < 256; ++b) {
      int rank = 0;
      for (int l = 0; l < 8; ++l)
        r.ctl[b][l] = (b >> l) & 1 ? static_cast<uint8_t>(rank++) : uint8_t{0x80};
    }
    return r;
  }();
  return t;
}
#endif

// Rows [i0, i0 + nr) of a bitmap S, columns [k0, k0 + kw) (kw a multiple of 64 or up to K),
// into an int8 panel (row stride ps >= kw rounded up to 64: whole words are written, zeros
// past K). cur[r]: the position in the values of the row's first column >= k0 (advanced).
// AVX2 places each byte's next 8 values with one pshufb (a 256-entry table of controls).
// (noinline here and below: inlined into panel_i8_rows, the loop's pointers were spilled to
// the stack, a store-to-load chain of ~10 cycles a byte measured on Zen 3)
__attribute__((noinline)) void panel_i8_expand_bitmap(const PanelArgs& a, int64_t i0, int64_t nr,
                                                      int64_t k0, int64_t kw, int64_t* cur,
                                                      int8_t* panel, int64_t ps) {
  const int8_t* val = static_cast<const int8_t*>(a.stored.data);
  const int64_t w0 = k0 / 64, nw = (kw + 63) / 64;
  [[maybe_unused]] const int64_t nnz = a.nnz;
#if SPARSE_OPS_ISA >= 2
  const BmShuffleTable& t = bm_shuffle_table();
#endif
  for (int64_t r = 0; r < nr; ++r) {
    int8_t* dst = panel + r * ps;
    const uint8_t* row = a.bits + (i0 + r) * a.rb + 8 * w0;
    int64_t p = cur[r];
    for (int64_t w = 0; w < nw; ++w) {
      uint64_t word;
      std::memcpy(&word, row + 8 * w, 8);
      int8_t* d = dst + 64 * w;
#if SPARSE_OPS_ISA >= 2
      for (int q = 0; q < 8; ++q) {
        const unsigned byte = static_cast<unsigned>(word >> (8 * q)) & 0xFFu;
        __m128i v = _mm_setzero_si128();
        if (byte) {
          const int64_t avail = nnz - p;  // the chunk check bounds p + popcount by nnz
          if (avail >= 8) {
            v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(val + p));
          } else {
            int8_t tmp[8] = {};
            std::memcpy(tmp, val + p, static_cast<size_t>(avail > 0 ? avail : 0));
            v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(tmp));
          }
          v = _mm_shuffle_epi8(v, _mm_loadl_epi64(reinterpret_cast<const __m128i*>(t.ctl[byte])));
          p += __builtin_popcount(byte);
        }
        _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 8 * q), v);
      }
#else
      std::memset(d, 0, 64);
      while (word) {
        d[__builtin_ctzll(word)] = val[p++];
        word &= word - 1;
      }
#endif
    }
    // the row's next chunk (bitmap words and about as many values as this one) into L2 while
    // the panel is computed: 48 rows of two streams each are more than the hardware tracks
    prefetch_next(row + 8 * nw, 8 * nw);
    prefetch_next(val + p, p - cur[r]);
    cur[r] = p;
  }
}

#if SPARSE_OPS_ISA >= 2
// 2-bit positions (m = 3 or 4) with n = 1 or 2 slots a group: a metadata byte holds 4 slots,
// whole groups, 4m/n <= 16 columns. For each byte, the pshufb control that moves its 4 values
// (packed) to their columns, and whether the byte cannot be placed so (two slots naming one
// column, whose values add up, or a position >= m).
struct NmShuffleTable {
  alignas(16) uint8_t ctl[256][16];
  bool odd[256];
};
inline NmShuffleTable nm_shuffle_build(int n, int m) {
  NmShuffleTable r{};
  for (int v = 0; v < 256; ++v) {
    std::memset(r.ctl[v], 0x80, 16);
    for (int f = 0; f < 4; ++f) {
      const int pos = (v >> (2 * f)) & 3, col = (f / n) * m + pos;
      if (pos >= m || r.ctl[v][col] != 0x80) r.odd[v] = true;
      else r.ctl[v][col] = static_cast<uint8_t>(f);
    }
  }
  return r;
}
inline const NmShuffleTable* nm_shuffle_table(int64_t n, int64_t m, int64_t b) {
  if (b != 2 || (n != 1 && n != 2) || (m != 3 && m != 4)) return nullptr;
  static const NmShuffleTable t[2][2] = {{nm_shuffle_build(1, 3), nm_shuffle_build(1, 4)},
                                         {nm_shuffle_build(2, 3), nm_shuffle_build(2, 4)}};
  return &t[n - 1][m - 3];
}
#endif

// Rows [i0, i0 + nr) of an N:M S, columns [k0, k0 + kw) (whole groups), into a panel of P
// (int8 or int16; row stride ps >= kw rounded up to 4, zeros there). Returns false if a sum
// of slots naming one column left P (int8 only; the panel is then incomplete).
template <class P>
__attribute__((noinline)) bool panel_i8_expand_nm(const PanelArgs& a, int64_t i0, int64_t nr,
                                                  int64_t k0, int64_t kw, P* panel, int64_t ps) {
  const int8_t* val = static_cast<const int8_t*>(a.stored.data);
  const int64_t n = a.n, m = a.m, b = a.b, Gn = a.G * n;
  const int64_t g0 = k0 / m, g1 = std::min(a.G, (k0 + kw + m - 1) / m);
  const unsigned fmask = (1u << b) - 1u;
  const int64_t kz = (kw + 3) / 4 * 4;
  bool ok = true;
#if SPARSE_OPS_ISA >= 2
  // A byte's 4 slots at once (k0 is a multiple of 4 groups' columns: bytes start there).
  const NmShuffleTable* tab = sizeof(P) == 1 ? nm_shuffle_table(n, m, b) : nullptr;
  const int64_t gpb = tab ? 4 / n : 1;            // groups a byte
  const int64_t gfull = tab ? g0 + (g1 - g0) / gpb * gpb : g0;  // groups placed by bytes
  const bool narrow = gpb * m <= 8;
#else
  const int64_t gfull = g0;
#endif
  for (int64_t r = 0; r < nr; ++r) {
    P* dst = panel + r * ps;
    std::memset(dst, 0, static_cast<size_t>(kz) * sizeof(P));
    const uint8_t* mrow = a.meta + (i0 + r) * a.mbytes;
    const int8_t* vrow = val + (i0 + r) * Gn;
#if SPARSE_OPS_ISA >= 2
    if constexpr (sizeof(P) == 1) {
      // 8- or 16-byte stores: up to 16 - 4m/n bytes past a byte's columns, overwritten by the
      // next byte, or zeros past the chunk's groups (inside the row, or the next row before it is
      // cleared, or the buffer's slack)
      for (int64_t g = g0; g < gfull; g += gpb) {
        const int64_t k = g * n / 4;
        const unsigned byte = mrow[k];
        if (tab->odd[byte]) {
          ok = false;
          break;
        }
        int32_t v4;
        std::memcpy(&v4, vrow + 4 * k, 4);
        const __m128i e = _mm_shuffle_epi8(
            _mm_cvtsi32_si128(v4), _mm_load_si128(reinterpret_cast<const __m128i*>(tab->ctl[byte])));
        if (narrow)  // 2:4, 2:3: a byte's columns fit 8 bytes
          _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + (g * m - k0)), e);
        else
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (g * m - k0)), e);
      }
      if (!ok) break;
    }
#endif
    if (g1 < a.G) {  // the row's next chunk into L2 (see panel_i8_expand_bitmap)
      prefetch_next(vrow + g1 * n, (g1 - g0) * n);
      prefetch_next(mrow + g1 * n * b / 8, ((g1 - g0) * n * b + 7) / 8);
    }
    for (int64_t g = gfull; g < g1; ++g) {
      P* d = dst + (g * m - k0);
      for (int64_t j = 0; j < n; ++j) {
        const int64_t t = g * n + j, bo = t * b;
        P& e = d[(mrow[bo >> 3] >> (bo & 7)) & fmask];
        const int s = static_cast<int>(e) + vrow[t];
        if constexpr (sizeof(P) == 1) ok &= s >= -128 && s <= 127;
        e = static_cast<P>(s);
      }
    }
  }
  return ok;
}

// The weight-scale runs of columns [k0, k0 + kw): [s0, s1) pieces split at multiples of
// a.wgroup (a multiple of 4; >= K for one scale a row), each calling f(s0, s1, group).
template <class F>
inline void for_scale_runs(const PanelArgs& a, int64_t k0, int64_t kw, F&& f) {
  for (int64_t s0 = k0; s0 < k0 + kw;) {
    const int64_t g = s0 / a.wgroup;
    const int64_t s1 = std::min(k0 + kw, (g + 1) * a.wgroup);
    f(s0, s1, g);
    s0 = s1;
  }
}

// y[r, t] (+)= acc * ws[r] * xs[t] for the nr x w tile: the flush of one run, plain.
inline void flush_run_plain(const int32_t* acc, int64_t nr, int64_t w, const float* ws,
                            int64_t ws_ld, const float* xs, float* y, int64_t ldy, bool first) {
  for (int64_t r = 0; r < nr; ++r)
    for (int64_t t = 0; t < w; ++t) {
      const float v = static_cast<float>(acc[r * w + t]) * (ws[r * ws_ld] * xs[t]);
      y[r * ldy + t] = first ? v : y[r * ldy + t] + v;
    }
}

// Rows [0, nr) of the panel (P: int8 or int16, stride ps) times columns [c, c + w) of the
// quads, over the scale runs of [k0, k0 + kw): plain loops (the scalar build; on the vector
// builds, chunks whose N:M slot sums left int8). nr <= kPanelRows. The run starting at column
// first_col overwrites the output, the others add to it.
template <class P>
void panel_i8_plain(const PanelArgs& a, const P* panel, int64_t ps, int64_t nr, int64_t i0,
                    int64_t k0, int64_t kw, int64_t c, int64_t w, int64_t first_col = 0) {
  constexpr int64_t TW = 16;
  int32_t acc[kPanelRows * TW];
  for (int64_t c0 = c; c0 < c + w; c0 += TW) {
    const int64_t tw = std::min(TW, c + w - c0);
    for_scale_runs(a, k0, kw, [&](int64_t s0, int64_t s1, int64_t g) {
      std::memset(acc, 0, static_cast<size_t>(nr * tw) * sizeof(int32_t));
      const int64_t nq = (s1 - s0 + 3) / 4;  // s0 is a multiple of 4
      for (int64_t r = 0; r < nr; ++r) {
        const P* pr = panel + r * ps + (s0 - k0);
        for (int64_t q = 0; q < nq; ++q) {
          const int8_t* xq = a.xq4 + (s0 / 4 + q) * a.ldq + 4 * c0;
          for (int64_t t = 0; t < tw; ++t) {
            int32_t s = 0;
            for (int j = 0; j < 4; ++j) s += static_cast<int32_t>(pr[4 * q + j]) * xq[4 * t + j];
            acc[r * tw + t] += s;
          }
        }
      }
      flush_run_plain(acc, nr, tw, a.wscale + i0 * a.ws_ld + g, a.ws_ld, a.xscale + c0,
                      a.out + i0 * a.N + c0, a.N, s0 == first_col);
    });
  }
}

#if SPARSE_OPS_ISA >= 2
// acc + the sums of four u8 x s8 products per int32 lane (vpdpbusd), without saturation.
template <int D>
inline __m256i dot4(__m256i acc, __m256i u, __m256i s) {
  if constexpr (D == kDotVnni) {
#if SPARSE_OPS_VNNI == 1
    return _mm256_dpbusd_avx_epi32(acc, u, s);
#elif SPARSE_OPS_VNNI == 2
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    static_assert(D != kDotVnni, "vpdpbusd is compiled in isa_avxvnni.cpp / isa_avx512vnni.cpp");
    return acc;
#endif
  } else {
    // exact: bytes widened to 16 bits (even and odd ones apart), vpmaddwd sums pairs in 32
    const __m256i lo = _mm256_set1_epi16(0x00FF);
    const __m256i ue = _mm256_and_si256(u, lo), uo = _mm256_srli_epi16(u, 8);
    const __m256i se = _mm256_srai_epi16(_mm256_slli_epi16(s, 8), 8), so = _mm256_srai_epi16(s, 8);
    return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(ue, se),
                                                  _mm256_madd_epi16(uo, so)));
  }
}

// RB rows x NV vectors (8 tokens each) of int32 accumulators over nq quads (panel: the rows'
// first column of the run, ps apart; xq: the run's first quad row, ldq apart), then the
// flush into y (rows ldy apart): y (+)= float(acc - comp[row]) * ws[row] * xs[token].
// D: the dot product (kDot*); comp (VNNI engines): 128 * the run's weight sum of each row.
// M_: the last vector holds rem < 8 tokens (masked loads and stores of y and xs).
// Pieces: pieces(f) calls f(panel, xq, nq) for each piece of the run (one for a panel; a
// BSR run may sum several blocks in the registers before its one flush).
template <int D, int RB, int NV, bool M_, class Pieces>
inline void panel_i8_micro_pieces(Pieces&& pieces, int64_t ps, int64_t ldq,
                                  const int32_t* comp, const float* ws, int64_t ws_ld,
                                  const float* xs, float* y, int64_t ldy, bool first, int rem) {
  [[maybe_unused]] const __m256i ones = _mm256_set1_epi16(1);
  [[maybe_unused]] const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256i acc[RB][NV];
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_si256();
  pieces([&](const int8_t* panel, const int8_t* xq, int64_t nq) {
  for (int64_t q = 0; q < nq; ++q) {
    __m256i x[NV];
    const int8_t* xr = xq + q * ldq;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      x[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + 32 * v));
      if constexpr (D != kDotOwn) x[v] = _mm256_xor_si256(x[v], flip);  // x + 128, unsigned
    }
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      int32_t w4;
      std::memcpy(&w4, panel + r * ps + 4 * q, 4);
      const __m256i wb = _mm256_set1_epi32(w4);
      if constexpr (D == kDotOwn) {
        const __m256i wa = _mm256_abs_epi8(wb);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
          acc[r][v] = _mm256_add_epi32(
              acc[r][v],
              _mm256_madd_epi16(_mm256_maddubs_epi16(wa, _mm256_sign_epi8(x[v], wb)), ones));
      } else {
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = dot4<D>(acc[r][v], x[v], wb);
      }
    }
  }
  });
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), lane);
  __m256 xsv[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v)
    xsv[v] = (M_ && v == NV - 1) ? _mm256_maskload_ps(xs + 8 * v, tail)
                                 : _mm256_loadu_ps(xs + 8 * v);
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r) {
    const __m256 wsr = _mm256_set1_ps(ws[r * ws_ld]);
    float* yr = y + r * ldy;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __m256 s = _mm256_mul_ps(wsr, xsv[v]);
      __m256i a = acc[r][v];
      if constexpr (D != kDotOwn) a = _mm256_sub_epi32(a, _mm256_set1_epi32(comp[r]));
      const __m256 p = _mm256_cvtepi32_ps(a);
      const bool mk = M_ && v == NV - 1;
      __m256 o;
      if (first)
        o = _mm256_mul_ps(p, s);
      else
        o = _mm256_fmadd_ps(p, s, mk ? _mm256_maskload_ps(yr + 8 * v, tail)
                                     : _mm256_loadu_ps(yr + 8 * v));
      if (mk)
        _mm256_maskstore_ps(yr + 8 * v, tail, o);
      else
        _mm256_storeu_ps(yr + 8 * v, o);
    }
  }
}

template <int D, int RB, int NV, bool M_>
inline void panel_i8_micro(const int8_t* panel, int64_t ps, const int8_t* xq, int64_t ldq,
                           int64_t nq, const int32_t* comp, const float* ws, int64_t ws_ld,
                           const float* xs, float* y, int64_t ldy, bool first, int rem) {
  panel_i8_micro_pieces<D, RB, NV, M_>([&](auto&& f) { f(panel, xq, nq); }, ps, ldq, comp, ws,
                                       ws_ld, xs, y, ldy, first, rem);
}

// comp[r] (+)= 128 * the sum of the len bytes of panel row r (rows ps apart), r < nr.
inline void panel_i8_run_sums(const int8_t* pk, int64_t ps, int64_t nr, int64_t len,
                              int32_t* comp, bool add = false) {
  for (int64_t r = 0; r < nr; ++r) {
    const int8_t* p = pk + r * ps;
    int32_t s = 0;
    for (int64_t j = 0; j < len; ++j) s += p[j];
    comp[r] = (add ? comp[r] : 0) + 128 * s;
  }
}

// f(c, rem, nvc, mc) for each block of up to NVMAX vectors of W tokens from token c: nvc its
// vectors (an integral_constant), mc whether the last one is partial (rem tokens).
template <int NVMAX, int W, class F>
inline void for_token_blocks(int64_t N, F&& f) {
  for (int64_t c = 0; c < N; c += NVMAX * W) {
    const int64_t w = std::min<int64_t>(NVMAX * W, N - c);
    const int nv = static_cast<int>((w + W - 1) / W);
    const int rem = static_cast<int>(w - static_cast<int64_t>(nv - 1) * W);
    with_nv<NVMAX>(nv, rem != W, [&](auto nvc, auto mc) { f(c, rem, nvc, mc); });
  }
}

// f(r, rb) for row strips [r, r + rb) covering rows [0, nr): RB at a time, then 4, 2, 1
// (rb an integral_constant: panel tails, block heights such as 32 = 5 x 6 + 2).
template <int RB, class F>
inline void for_row_strips(int64_t nr, F&& f) {
  int64_t r = 0;
  const auto strips = [&](auto rb) {
    for (; r + decltype(rb)::value <= nr; r += decltype(rb)::value) f(r, rb);
  };
  strips(std::integral_constant<int, RB>{});
  strips(std::integral_constant<int, 4>{});
  strips(std::integral_constant<int, 2>{});
  strips(std::integral_constant<int, 1>{});
}
#endif

// BSR: out rows [r0, r1) (whole block rows), every column. Its blocks are dense: the
// micro-kernel runs on each stored block as it is stored (row stride C). A block row's work is
// cut into flush units: with one scale a row, runs of whole blocks (up to kI8RunCols columns
// and ~8 KiB) summed in the registers (one flush a unit); with group scales, each block's
// scale runs.
// Token blocks of 16 outside the units keep the output tile in L1.
constexpr int64_t kI8RunCols = 960;  // |acc| < 2^24: exact in float (see the top)
struct I8Unit {
  int64_t p0, p1, o0, o1, g;  // blocks [p0, p1), their columns [o0, o1), scale group g
};
// A block row's flush units (blocks [p0, p1)) in this thread's scratch, *nu of them.
inline const I8Unit* bsr_i8_units(const PanelArgs& a, int64_t p0, int64_t p1, int64_t* nu) {
  const int64_t R = a.R, C = a.C;
  const bool per_row = a.wgroup >= a.K && C <= kI8RunCols;
  const int64_t cap = per_row ? (p1 - p0) : (p1 - p0) * (C / 4 + C / kI8RunCols + 2);
  I8Unit* units = static_cast<I8Unit*>(
      scratch_buffer(kScratchUnits, static_cast<size_t>(cap) * sizeof(I8Unit)));
  int64_t n = 0;
  if (per_row) {
    // and about 8 KiB of weights, so that a unit's blocks and their x quads stay in L1 while
    // its rows are computed (units of 30 32x32 blocks ran 1.4x slower at 16 tokens)
    const int64_t L = std::max<int64_t>(1, std::min(kI8RunCols / C, 8192 / (R * C)));
    for (int64_t p = p0; p < p1; p += L) units[n++] = {p, std::min(p + L, p1), 0, C, 0};
  } else {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t k0 = static_cast<int64_t>(a.bcol[p]) * C;
      for_scale_runs(a, k0, C, [&](int64_t s0, int64_t s1, int64_t g) {
        for (int64_t t = s0; t < s1; t += kI8RunCols)
          units[n++] = {p, p + 1, t - k0, std::min(s1, t + kI8RunCols) - k0, g};
      });
    }
  }
  *nu = n;
  return units;
}

// f(i0, p0, p1, yb) for each block row of out rows [r0, r1) (whole block rows) that stores
// blocks: its first row, its blocks [p0, p1), its output rows; the others are zeroed.
template <class F>
inline void for_bsr_block_rows(const PanelArgs& a, int64_t r0, int64_t r1, F&& f) {
  const int64_t R = a.R, N = a.N;
  for (int64_t br = r0 / R; br < r1 / R; ++br) {
    const int64_t i0 = br * R, p0 = a.crow[br], p1 = a.crow[br + 1];
    float* yb = a.out + i0 * N;
    if (p0 == p1)
      std::memset(yb, 0, static_cast<size_t>(R * N) * sizeof(float));
    else
      f(i0, p0, p1, yb);
  }
}

template <int D>
void bsr_i8_rows(const PanelArgs& a, int64_t r0, int64_t r1) {
  const int64_t R = a.R, C = a.C, N = a.N;
  const int8_t* val = static_cast<const int8_t*>(a.stored.data);
  for_bsr_block_rows(a, r0, r1, [&](int64_t i0, int64_t p0, int64_t p1, float* yb) {
#if SPARSE_OPS_ISA >= 2
    constexpr int RB = 6, NVMAX = 2, W = 8;
    int64_t nu = 0;
    const I8Unit* units = bsr_i8_units(a, p0, p1, &nu);
    // VNNI engines: 128 x each row's weight sum over a unit, [unit][row]
    [[maybe_unused]] int32_t* comp = nullptr;
    if constexpr (D != kDotOwn) {
      comp = static_cast<int32_t*>(scratch_buffer(
          kScratchRunSums, static_cast<size_t>(nu * R) * sizeof(int32_t)));
      for (int64_t j = 0; j < nu; ++j) {
        const I8Unit& u = units[j];
        for (int64_t p = u.p0; p < u.p1; ++p)
          panel_i8_run_sums(val + p * R * C + u.o0, C, R, u.o1 - u.o0, comp + j * R, p > u.p0);
      }
    }
    for_token_blocks<NVMAX, W>(N, [&](int64_t c, int rem, auto nvc, auto mc) {
      constexpr int V_ = decltype(nvc)::value;
      constexpr bool M_ = decltype(mc)::value;
      for (int64_t j = 0; j < nu; ++j) {
        const I8Unit u = units[j];
        const float* ws = a.wscale + i0 * a.ws_ld + u.g;
        const int32_t* cj = D != kDotOwn ? comp + j * R : nullptr;
        float* y = yb + c;
        // the unit's blocks, rows [r, r + RB) of each
        const auto blocks = [&](int64_t r) {
          return [&, r](auto&& f) {
            for (int64_t p = u.p0; p < u.p1; ++p)
              f(val + (p * R + r) * C + u.o0,
                a.xq4 + ((static_cast<int64_t>(a.bcol[p]) * C + u.o0) / 4) * a.ldq + 4 * c,
                (u.o1 - u.o0) / 4);
          };
        };
        for_row_strips<RB>(R, [&](int64_t r, auto rb) {
          panel_i8_micro_pieces<D, decltype(rb)::value, V_, M_>(
              blocks(r), C, a.ldq, cj ? cj + r : nullptr, ws + r * a.ws_ld, a.ws_ld,
              a.xscale + c, y + r * N, N, j == 0, rem);
        });
      }
    });
#else
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t k0 = static_cast<int64_t>(a.bcol[p]) * C;
      for (int64_t r = 0; r < R; r += kPanelRows)
        panel_i8_plain<int8_t>(a, val + p * R * C + r * C, C, std::min(kPanelRows, R - r),
                               i0 + r, k0, C, 0, N, p == p0 ? k0 : -1);
    }
#endif
  });
}

// Rows [r0, r1) of a bitmap or N:M S, kPanelRows at a time, KC columns at a time (KC a
// multiple of 64 and of m: whole bitmap words, whole quads, whole groups): each chunk is
// expanded into this thread's int8 panel (row stride KC) and f(panel, i0, nr, k0, kw) computes
// it; a chunk whose N:M slot sums leave int8 runs on an int16 panel with the plain loops
// instead. K == 0 zeroes the output rows. Shared by the engines (panel_amx_kernels.h too).
template <class F>
void for_i8_panels(const PanelArgs& a, int64_t r0, int64_t r1, int64_t KC, F&& f) {
  constexpr int64_t MC = kPanelRows;
  const int64_t K = a.K, N = a.N, ps = KC;
  int8_t* panel = static_cast<int8_t*>(
      scratch_buffer(kScratchPanel, static_cast<size_t>(MC * ps + 64)));
  int64_t cur[MC];
  for (int64_t i0 = r0; i0 < r1; i0 += MC) {
    const int64_t nr = std::min(MC, r1 - i0);
    if (K == 0) {
      for (int64_t r = 0; r < nr; ++r)
        std::memset(a.out + (i0 + r) * N, 0, static_cast<size_t>(N) * sizeof(float));
      continue;
    }
    if (a.layout == PanelLayout::bitmap)
      for (int64_t r = 0; r < nr; ++r) cur[r] = a.off[i0 + r];
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kw = std::min(KC, K - k0);
      bool ok = true;
      if (a.layout == PanelLayout::bitmap)
        panel_i8_expand_bitmap(a, i0, nr, k0, kw, cur, panel, ps);
      else
        ok = panel_i8_expand_nm<int8_t>(a, i0, nr, k0, kw, panel, ps);
      if (!ok) {  // N:M slot sums outside int8: this chunk on an int16 panel, plain loops
        int16_t* wide = static_cast<int16_t*>(scratch_buffer(
            kScratchPanelWide, static_cast<size_t>(MC * ps) * sizeof(int16_t)));
        panel_i8_expand_nm<int16_t>(a, i0, nr, k0, kw, wide, ps);
        panel_i8_plain<int16_t>(a, wide, ps, nr, i0, k0, kw, 0, N);
        continue;
      }
      f(static_cast<const int8_t*>(panel), i0, nr, k0, kw);
    }
  }
}

// out rows [r0, r1), every column: the W8A8 product on int8 panels (see the top of the file),
// the vector levels' micro-kernel on dot product D (kDot*; the scalar level: plain loops).
template <int D>
void panel_i8_rows(const PanelArgs& a, int64_t r0, int64_t r1) {
  if (a.layout == PanelLayout::bsr) return bsr_i8_rows<D>(a, r0, r1);
  constexpr int64_t MC = kPanelRows;
  const int64_t N = a.N;
  const int64_t KC = panel_kc(a.layout == PanelLayout::nm ? a.m : 64);
  const int64_t ps = KC;
  // VNNI engines: [run][row] weight sums; runs a chunk <= KC / 4 + 1 (wgroup >= 4)
  [[maybe_unused]] int32_t* comp =
      D != kDotOwn ? static_cast<int32_t*>(scratch_buffer(
                         kScratchRunSums, static_cast<size_t>((KC / 4 + 1) * MC) * sizeof(int32_t)))
                   : nullptr;
  for_i8_panels(a, r0, r1, KC, [&](const int8_t* panel, int64_t i0, int64_t nr, int64_t k0,
                                   int64_t kw) {
#if SPARSE_OPS_ISA >= 2
    constexpr int RB = 6, NVMAX = 2, W = 8;
    float* yb = a.out + i0 * N;
    // VNNI engines: 128 x each row's weight sum per scale run, [run][row], once a chunk
    if constexpr (D != kDotOwn) {
      int64_t j = 0;
      for_scale_runs(a, k0, kw, [&](int64_t s0, int64_t s1, int64_t) {
        panel_i8_run_sums(panel + (s0 - k0), ps, nr, (s1 - s0 + 3) / 4 * 4, comp + j++ * MC);
      });
    }
    // token blocks outside, runs inside: the block's output tile stays in L1 across the
    // runs (runs outside re-read 48 rows x N of output from L2 per run: +30 % at G = 32)
    for_token_blocks<NVMAX, W>(N, [&](int64_t c, int rem, auto nvc, auto mc) {
      constexpr int V_ = decltype(nvc)::value;
      constexpr bool M_ = decltype(mc)::value;
      int64_t j = 0;
      for_scale_runs(a, k0, kw, [&](int64_t s0, int64_t s1, int64_t g) {
        const int64_t nq = (s1 - s0 + 3) / 4;  // past K: zeros in the panel and the quads
        const int8_t* xq = a.xq4 + (s0 / 4) * a.ldq + 4 * c;
        const int8_t* pk = panel + (s0 - k0);
        const float* ws = a.wscale + i0 * a.ws_ld + g;
        const int64_t run = j++;
        const int32_t* cj = D != kDotOwn ? comp + run * MC : nullptr;
        float* y = yb + c;
        for_row_strips<RB>(nr, [&](int64_t r, auto rb) {
          panel_i8_micro<D, decltype(rb)::value, V_, M_>(
              pk + r * ps, ps, xq, a.ldq, nq, cj ? cj + r : nullptr, ws + r * a.ws_ld,
              a.ws_ld, a.xscale + c, y + r * N, N, s0 == 0, rem);
        });
      });
    });
#else
    panel_i8_plain<int8_t>(a, panel, ps, nr, i0, k0, kw, 0, N);
#endif
  });
}

#ifdef SPARSE_OPS_VNNI
// The entry of isa_avxvnni.cpp / isa_avx512vnni.cpp (kernels.h declares both namespaces').
void panel_i8_vnni_rows(const PanelArgs& a, int64_t r0, int64_t r1) {
  panel_i8_rows<kDotVnni>(a, r0, r1);
}
#endif

}  // namespace ISA_NS
}  // namespace sparse_ops
