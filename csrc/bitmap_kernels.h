// Bitmap kernels: SpMV, the transposed product S^T @ d, and decoding a row range to CSR
// column indices (the SpMM and SDDMM run the CSR kernels on decoded row chunks, bitmap.cpp).
// Written once and compiled per SIMD level by isa_*.cpp. The SpMV guards itself (no value
// read past nnz, no x past K, a flag for a row whose popcount is not its span); the decoder
// and S^T @ d trust rows that bitmap_check_rows passed just before (bitmap.cpp).
//
// SpMV: each 64-bit word of a row covers 64 columns. AVX-512 expands the next popcount(m)
// packed values into the set lanes of each 16-bit mask m (vexpandps) and multiplies by x's 16
// columns under the same mask; AVX2 does the same per byte with a 256-entry permutation
// table (vpermps, then a blend that zeroes the unset lanes). The values are streamed once, in
// order, with 1 bit a position of metadata: d * 4 + 1/8 bytes a position in fp32.
#pragma once

namespace sparse_ops {
namespace ISA_NS {

inline uint64_t bm_word(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}
inline int64_t bm_popcount(uint64_t w) { return __builtin_popcountll(w); }

// The bits of a row's last word that lie below K (all of them when 64 divides K).
inline uint64_t bm_last_mask(int64_t K) { return K % 64 ? (uint64_t{1} << (K % 64)) - 1 : ~uint64_t{0}; }

// The first row of [r0, r1) whose popcount is not off[i + 1] - off[i] or that sets a bit
// past K, else -1. One popcount a word: a chunk's bitmap is checked just before it is
// decoded (it is then in L1/L2 for the decoder).
inline int64_t bitmap_check_rows(const uint8_t* bits, int64_t rb, int64_t K, const int32_t* off,
                                 int64_t r0, int64_t r1) {
  const int64_t nw = rb / 8;
  const uint64_t past = ~bm_last_mask(K);
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* row = bits + i * rb;
    int64_t c0 = 0, c1 = 0;
    int64_t w = 0;
    for (; w + 2 <= nw; w += 2) {
      c0 += bm_popcount(bm_word(row + 8 * w));
      c1 += bm_popcount(bm_word(row + 8 * w + 8));
    }
    if (w < nw) c0 += bm_popcount(bm_word(row + 8 * w));
    const bool pad = nw > 0 && (bm_word(row + 8 * (nw - 1)) & past) != 0;
    if (pad || c0 + c1 != static_cast<int64_t>(off[i + 1]) - off[i]) return i;
  }
  return -1;
}

// Software prefetch ahead of the value stream (3 lines a 64-column word: up to 48 fp32 values)
// into L2 a stream-distance ahead (prefetch_stream), and of the bitmap. Needed: vexpandps is slow enough on Zen 4/5
// that the out-of-order window no longer covers the loads' latency once the matrix leaves
// L2; without prefetches the AVX-512 SpMV ran at a quarter of memory speed (Zen 5 EPYC).
template <class TV>
inline void bm_prefetch(const TV* val, int64_t p, const uint8_t* row, int64_t w) {
  prefetch_stream<192>(val + p);
  if ((w & 7) == 0) prefetch_stream<64>(row + 8 * w);
}

// ---------------------------------------------------------------- SpMV, one bit at a time
// GS: each value times its group's scale a.gscale[i * gs_ld + column / gsize] (int8 values of
// bitmap_spmv_grouped, any gsize).
template <class T, class TV, bool GS = false>
int64_t bitmap_spmv_bits(const BitmapArgs<T>& a, int64_t r0, int64_t r1) {
  const TV* __restrict__ val = values_of<TV>(a);
  const T* __restrict__ x = a.x;
  const int64_t nw = a.rb / 8, nnz = a.nnz;
  const uint64_t last = bm_last_mask(a.K);
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* row = a.bits + i * a.rb;
    const float* grow = GS ? a.gscale + i * a.gs_ld : nullptr;
    int64_t p = a.row_off[i];
    T s[4] = {T(0), T(0), T(0), T(0)};
    for (int64_t w = 0; w < nw; ++w) {
      const uint64_t raw = bm_word(row + 8 * w);
      uint64_t word = w == nw - 1 ? raw & last : raw;
      if (__builtin_expect(word != raw || p + bm_popcount(word) > nnz, 0)) return i;
      while (word) {
        const int64_t j = 64 * w + __builtin_ctzll(word);
        if constexpr (GS)
          s[p & 3] += static_cast<T>(scalar_of(val[p])) * static_cast<T>(grow[j / a.gsize]) * x[j];
        else
          s[p & 3] += static_cast<T>(scalar_of(val[p])) * x[j];
        ++p;
        word &= word - 1;
      }
    }
    if (__builtin_expect(p != a.row_off[i + 1], 0)) return i;
    a.out[i] = (s[0] + s[1]) + (s[2] + s[3]);
  }
  return -1;
}

#if SPARSE_OPS_ISA == 3
template <class TV>
int64_t bitmap_spmv_vec(const BitmapArgs<float>& a, int64_t r0, int64_t r1) {
  const TV* __restrict__ val = values_of<TV>(a);
  const float* __restrict__ x = a.x;
  const int64_t nw = a.rb / 8;
  // Below this value index a word's four 16-value loads stay inside the array (p + 64 <= nnz);
  // past it the values are read by masked expand-loads, which touch only popcount(m) of them
  // and none past nnz, whatever the bitmap holds.
  const int64_t safe = a.nnz - 64;
  const uint64_t last = bm_last_mask(a.K);
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* row = a.bits + i * a.rb;
    int64_t p = a.row_off[i];
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    // The last word loses its bits past K (a row that sets one is reported below), so the
    // masked x loads never reach past K.
    const bool pad = nw > 0 && (bm_word(row + 8 * (nw - 1)) & ~last) != 0;
    const float* xw = x;
    for (int64_t w = 0; w < nw; ++w, xw += 64) {
      const uint64_t word = w == nw - 1 ? bm_word(row + 8 * w) & last : bm_word(row + 8 * w);
      bm_prefetch(val, p, row, w);
      const uint32_t lo = static_cast<uint32_t>(word), hi = static_cast<uint32_t>(word >> 32);
      const __mmask16 m0 = _cvtu32_mask16(lo & 0xFFFFu), m1 = _cvtu32_mask16(lo >> 16);
      const __mmask16 m2 = _cvtu32_mask16(hi & 0xFFFFu), m3 = _cvtu32_mask16(hi >> 16);
      const int64_t p1 = p + __builtin_popcount(lo & 0xFFFFu);
      const int64_t p2 = p + __builtin_popcount(lo);
      const int64_t p3 = p2 + __builtin_popcount(hi & 0xFFFFu);
      __m512 a0, a1, a2, a3;
      if (__builtin_expect(p <= safe, 1)) {
        a0 = V<float>::load(val + p);
        a1 = V<float>::load(val + p1);
        a2 = V<float>::load(val + p2);
        a3 = V<float>::load(val + p3);
        // Keeps the loads apart from the expands: folded into memory-form vexpandps the loop
        // ran at half speed on Zen 5 (measured), depending on code placement.
        asm("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3));
        a0 = _mm512_maskz_expand_ps(m0, a0);
        a1 = _mm512_maskz_expand_ps(m1, a1);
        a2 = _mm512_maskz_expand_ps(m2, a2);
        a3 = _mm512_maskz_expand_ps(m3, a3);
      } else {  // the last words of the array: never read past it
        auto tail = [&](__mmask16 m, int64_t q) {
          const int64_t n = a.nnz - q;
          return _mm512_maskz_expand_ps(
              m, V<float>::loadn(val + q, static_cast<int>(n >= 16 ? 16 : (n > 0 ? n : 0))));
        };
        a0 = tail(m0, p);
        a1 = tail(m1, p1);
        a2 = tail(m2, p2);
        a3 = tail(m3, p3);
      }
      p += bm_popcount(word);
      s0 = _mm512_fmadd_ps(a0, _mm512_maskz_loadu_ps(m0, xw), s0);
      s1 = _mm512_fmadd_ps(a1, _mm512_maskz_loadu_ps(m1, xw + 16), s1);
      s2 = _mm512_fmadd_ps(a2, _mm512_maskz_loadu_ps(m2, xw + 32), s2);
      s3 = _mm512_fmadd_ps(a3, _mm512_maskz_loadu_ps(m3, xw + 48), s3);
    }
    if (__builtin_expect(pad || p != a.row_off[i + 1], 0)) return i;
    a.out[i] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  }
  return -1;
}
#elif SPARSE_OPS_ISA == 2
// For each byte b: lane l takes packed value rank(l) if bit l is set, else the sign bit is
// set (the blend below zeroes it; vpermps reads only the low 3 bits).
struct BmExpandTable {
  alignas(32) int32_t idx[256][8];
};
inline const BmExpandTable& bm_expand_table() {
  static const BmExpandTable t = [] {
    BmExpandTable r{};
    for (int b = 0; b < 256; ++b) {
      int rank = 0;
      for (int l = 0; l < 8; ++l) r.idx[b][l] = (b >> l) & 1 ? rank++ : INT32_MIN;
    }
    return r;
  }();
  return t;
}

// acc + (the byte's expanded values) * x, both zeroed in the unset lanes: an inf or NaN in an
// x column that is not stored must not reach the sum (0 * inf is NaN), as at every other
// level. `v` holds the next 8 packed values.
inline __m256 bm_fma8(const BmExpandTable& t, unsigned b, __m256 v, __m256 xv, __m256 acc) {
  const __m256i idx = _mm256_load_si256(reinterpret_cast<const __m256i*>(t.idx[b]));
  const __m256 unset = _mm256_castsi256_ps(idx);
  const __m256 e = _mm256_blendv_ps(_mm256_permutevar8x32_ps(v, idx), _mm256_setzero_ps(), unset);
  return _mm256_fmadd_ps(e, _mm256_blendv_ps(xv, _mm256_setzero_ps(), unset), acc);
}

// The next 8 packed values, of which `avail` lie inside the array (masked load past it).
template <class TV>
inline __m256 bm_values8(const TV* p, int64_t avail) {
  return avail >= 8 ? V<float>::load(p)
                    : V<float>::loadn(p, static_cast<int>(avail > 0 ? avail : 0));
}

// One byte's 8 columns, the values loaded in full (the caller checked they are in the array).
template <class TV>
inline __m256 bm_chunk8(const BmExpandTable& t, unsigned b, const TV* p, const float* xv,
                        __m256 acc) {
  __m256 v = V<float>::load(p);
  asm("" : "+x"(v));  // keep the load out of vpermps (see the AVX-512 kernel)
  return bm_fma8(t, b, v, _mm256_loadu_ps(xv), acc);
}

template <class TV>
int64_t bitmap_spmv_vec(const BitmapArgs<float>& a, int64_t r0, int64_t r1) {
  const BmExpandTable& t = bm_expand_table();
  const TV* __restrict__ val = values_of<TV>(a);
  const float* __restrict__ x = a.x;
  const int64_t nw = a.rb / 8, nnz = a.nnz, K = a.K;
  const int64_t safe = nnz - 64;  // a word's eight 8-value loads stay inside the array
  // Words whose 64 columns all lie inside x; the last one may not (masked x loads there).
  const int64_t full_words = K / 64;
  const uint64_t last = bm_last_mask(K);
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* row = a.bits + i * a.rb;
    int64_t p = a.row_off[i];
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    // Bits past K are dropped from the last word (and the row reported): x is read below K.
    const bool pad = nw > 0 && (bm_word(row + 8 * (nw - 1)) & ~last) != 0;
    for (int64_t w = 0; w < nw; ++w) {
      const uint64_t word = w == nw - 1 ? bm_word(row + 8 * w) & last : bm_word(row + 8 * w);
      bm_prefetch(val, p, row, w);
      if (!word) continue;
      const float* xw = x + 64 * w;
      const uint32_t lo = static_cast<uint32_t>(word), hi = static_cast<uint32_t>(word >> 32);
      if (__builtin_expect(w < full_words && p <= safe, 1)) {
        const int64_t q1 = p + __builtin_popcount(lo & 0xFFu);
        const int64_t q2 = p + __builtin_popcount(lo & 0xFFFFu);
        const int64_t q3 = p + __builtin_popcount(lo & 0xFFFFFFu);
        const int64_t q4 = p + __builtin_popcount(lo);
        const int64_t q5 = q4 + __builtin_popcount(hi & 0xFFu);
        const int64_t q6 = q4 + __builtin_popcount(hi & 0xFFFFu);
        const int64_t q7 = q4 + __builtin_popcount(hi & 0xFFFFFFu);
        s0 = bm_chunk8(t, lo & 0xFFu, val + p, xw, s0);
        s1 = bm_chunk8(t, (lo >> 8) & 0xFFu, val + q1, xw + 8, s1);
        s2 = bm_chunk8(t, (lo >> 16) & 0xFFu, val + q2, xw + 16, s2);
        s3 = bm_chunk8(t, lo >> 24, val + q3, xw + 24, s3);
        s0 = bm_chunk8(t, hi & 0xFFu, val + q4, xw + 32, s0);
        s1 = bm_chunk8(t, (hi >> 8) & 0xFFu, val + q5, xw + 40, s1);
        s2 = bm_chunk8(t, (hi >> 16) & 0xFFu, val + q6, xw + 48, s2);
        s3 = bm_chunk8(t, hi >> 24, val + q7, xw + 56, s3);
      } else {  // the array's last values, or the columns past K: careful loads
        __m256* s[4] = {&s0, &s1, &s2, &s3};
        int64_t q = p;
        for (int k = 0; k < 8; ++k) {
          const unsigned b = static_cast<unsigned>(word >> (8 * k)) & 0xFFu;
          if (!b) continue;
          const int64_t left = K - 64 * w - 8 * k;  // >= 1: a bit is set below K
          const __m256 xv = left >= 8 ? _mm256_loadu_ps(xw + 8 * k)
                                      : V<float>::loadn(xw + 8 * k, static_cast<int>(left));
          *s[k & 3] = bm_fma8(t, b, bm_values8(val + q, nnz - q), xv, *s[k & 3]);
          q += __builtin_popcount(b);
        }
      }
      p += bm_popcount(word);
    }
    if (__builtin_expect(pad || p != a.row_off[i + 1], 0)) return i;
    a.out[i] = V<float>::hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  }
  return -1;
}
#endif

template <class T>
int64_t bitmap_spmv_rows(const BitmapArgs<T>& a, int64_t r0, int64_t r1) {
  return with_storage<T>(a.stored.dt, [&](auto tv) {
    using TV = decltype(tv);
#if SPARSE_OPS_ISA >= 2
    if constexpr (std::is_same_v<T, float>) return bitmap_spmv_vec<TV>(a, r0, r1);
#endif
    return bitmap_spmv_bits<T, TV>(a, r0, r1);
  });
}

// ---------------------------------------------------------------- decoding to CSR columns
#if SPARSE_OPS_ISA == 2
// For each byte value, the positions of its set bits in order (then zeros): a byte of the
// bitmap decodes with one 8-byte load, a widening, an add and a store.
struct BitPositions {
  alignas(64) uint8_t pos[256][8];
  BitPositions() {
    for (int v = 0; v < 256; ++v) {
      int k = 0;
      for (int b = 0; b < 8; ++b)
        if (v >> b & 1) pos[v][k++] = static_cast<uint8_t>(b);
      for (; k < 8; ++k) pos[v][k] = 0;
    }
  }
};
inline const BitPositions& bit_positions() {
  static const BitPositions t;
  return t;
}
#endif

// Writes up to 16 entries past the row chunk's last column (the buffer has that slack).
template <class I>
void bitmap_decode_rows(const uint8_t* bits, int64_t rb, int64_t r0, int64_t r1, I* cols) {
  const int64_t nw = rb / 8;
  int64_t q = 0;
#if SPARSE_OPS_ISA == 3
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#elif SPARSE_OPS_ISA == 2
  const BitPositions& bp = bit_positions();
#endif
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* row = bits + i * rb;
    for (int64_t w = 0; w < nw; ++w) {
      uint64_t word = bm_word(row + 8 * w);
      if (!word) continue;
#if SPARSE_OPS_ISA == 3
      for (int k = 0; k < 4; ++k) {
        const __mmask16 m = static_cast<__mmask16>(word >> (16 * k));
        if (!m) continue;
        const __m512i c = _mm512_maskz_compress_epi32(
            m, _mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int>(64 * w + 16 * k))));
        if constexpr (sizeof(I) == 4)
          _mm512_storeu_si512(cols + q, c);
        else
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(cols + q), _mm512_cvtepi32_epi16(c));
        q += bm_popcount(m);
      }
#elif SPARSE_OPS_ISA == 2
      for (int k = 0; k < 8; ++k) {
        // No branch on an empty byte: at density 0.2 one byte in six is empty, at random.
        const unsigned byte = static_cast<unsigned>(word >> (8 * k)) & 0xffu;
        const __m128i p8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bp.pos[byte]));
        const int base = static_cast<int>(64 * w + 8 * k);
        if constexpr (sizeof(I) == 4) {
          const __m256i c = _mm256_add_epi32(_mm256_cvtepu8_epi32(p8), _mm256_set1_epi32(base));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(cols + q), c);
        } else {
          const __m128i c = _mm_add_epi16(_mm_cvtepu8_epi16(p8),
                                          _mm_set1_epi16(static_cast<int16_t>(base)));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(cols + q), c);
        }
        q += __builtin_popcount(byte);
      }
#else
      while (word) {
        cols[q++] = static_cast<I>(64 * w + __builtin_ctzll(word));
        word &= word - 1;
      }
#endif
    }
  }
}

// ---------------------------------------------------------------- S^T @ d over column words
template <class T>
void bitmap_spmm_t_cols(const BitmapArgs<T>& a, T* out, int64_t w0, int64_t w1, int64_t n0,
                        int64_t n1) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  const T* __restrict__ val = a.val;
  const int64_t N = a.N, ldd = a.ldx, width = n1 - n0;
  const int64_t full = width / W * W;
  const int rem = static_cast<int>(width - full);
  for (int64_t i = 0; i < a.M; ++i) {
    const uint8_t* row = a.bits + i * a.rb;
    int64_t p = a.row_off[i];
    for (int64_t w = 0; w < w0; ++w) p += bm_popcount(bm_word(row + 8 * w));
    const T* __restrict__ di = a.x + i * ldd + n0;
    for (int64_t w = w0; w < w1; ++w) {
      uint64_t word = bm_word(row + 8 * w);
      while (word) {
        const int64_t j = 64 * w + __builtin_ctzll(word);
        word &= word - 1;
        const T v = val[p++];
        T* __restrict__ o = out + j * N + n0;
        if (width == 1) {
          o[0] += v * di[0];
          continue;
        }
        const reg vv = VT::set1(v);
        int64_t c = 0;
        for (; c + 2 * W <= full; c += 2 * W) {
          const reg o0 = VT::fma(vv, VT::load(di + c), VT::load(o + c));
          const reg o1 = VT::fma(vv, VT::load(di + c + W), VT::load(o + c + W));
          VT::store(o + c, o0);
          VT::store(o + c + W, o1);
        }
        for (; c < full; c += W) VT::store(o + c, VT::fma(vv, VT::load(di + c), VT::load(o + c)));
        if (rem) VT::storen(o + c, VT::fma(vv, VT::loadn(di + c, rem), VT::loadn(o + c, rem)), rem);
      }
    }
  }
}

}  // namespace ISA_NS
}  // namespace sparse_ops
