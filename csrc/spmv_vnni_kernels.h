// Bitmap SpMV (N = 1) with int8 values and a bfloat16 or float16 x on AVX-512 with VBMI2 and
// VNNI (Intel Ice Lake and later Xeons, AMD Zen 4 and 5): integer products, no float work in
// the loop.
//
// x, once per call and thread, in 24-bit block fixed point: one power-of-two step s for all of
// x (its largest magnitude in [2^E, 2^(E+1)): s = 2^(E - 21)), q = round(x / s), |q| < 2^22,
// stored as three planes of signed base-256 digits, q = 2^16 h + 2^8 m + l (x_planes). Every
// x within 2^14 of the largest magnitude is exact (bfloat16 holds 8 significant bits, float16
// 11); smaller ones are rounded to s / 2 = 2^-23 of the largest at most, about what float32
// accumulation (the float kernels) loses when it adds such an x's product to a sum of the
// largest's size.
//
// Per 64-column word: one vpexpandb puts the word's values in the byte lanes of their columns
// (zero elsewhere), as the VBMI2 kernel does, one xor adds 128 to every lane (vpdpbusd's
// unsigned operand: v + 128 where set, 128 elsewhere), three vpdpbusd multiply the lanes by the
// digit planes, each summing 4 byte products into a dword lane. The 128 every lane carries
// adds 128 sum(q) to each row, taken off once a row (the same for every row):
//   out = (2^16 H + 2^8 Mid + L - 128 sum(q)) s      (H = sum (v + 128) h over the lanes, ...)
// in exact integers (int32 lanes, reduced into an int64 every kChunkWords words), one rounding
// at the end. The float kernel (spmv_vbmi_kernels.h) spends 4 permutes, 4 converts and 4 FMAs
// a word after the expand. Two rows at a time, from the two halves of a thread's rows. With
// group scales (bitmap_spmm_grouped, groups of 64k columns) each group's sums are folded,
// times its scale, into float32 lanes (3 converts and 3 FMAs a group), and the offset taken
// off per group (128 sum(q over the group) times its scale).
//
// Measured on an Intel Xeon (family 6 model 207, AVX-512 + VBMI2 + VNNI), 4096^2 bitmap 0.5
// int8, bfloat16 x: 1 thread, L3-hot 0.59 ms (the float kernel 0.93), where a loop that only
// loads the same bytes takes 0.42: the loop now waits on L3, not on ports. 2 threads, from
// DRAM (a standalone loop after a 384 MiB sweep): 0.38 ms, 27 GB/s, against 0.33 for the same
// bytes read as one dense stream.
//
// Guards as the VBMI2 kernel: no value read past nnz (a row whose 64-value loads would reach
// past nnz takes masked expand-loads), no plane past its words, bits past K dropped and the
// row reported, the row reported when its popcount is not its span. x must be finite
// (x_planes says when it is not; the caller then takes the float kernels).
#pragma once

namespace sparse_ops {
namespace ISA_NS {

// Bytes of planes a 64-column word: h, m, l (64 bytes each).
constexpr int64_t kPlaneWord = 192;
// Words summed in int32 lanes before the lanes are reduced into int64: a lane gains at most
// 4 * 255 * 128 a word, so 512 words keep a 16-lane sum below 2^31.
constexpr int64_t kChunkWords = 512;

// x as planes: the step s and 128 * sum(q) (the offset's share of every row's sum).
struct XPlanes {
  double step = 0.0;
  int64_t offset = 0;
};

// x (K float32 values, a bfloat16 or float16 x widened) into nw words of planes (columns
// past K: q = 0) and each word's sum of q (qw, nw). False where some x is infinite or NaN.
inline bool x_planes(const float* x, int64_t K, int64_t nw, uint8_t* planes, int32_t* qw,
                     XPlanes* xp) {
  const __m512i abs = _mm512_set1_epi32(0x7FFFFFFF);
  __m512i top = _mm512_setzero_si512();  // the largest |x|'s bits (ordered as the floats)
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    top = _mm512_max_epu32(top, _mm512_and_si512(_mm512_loadu_si512(x + k), abs));
  if (k < K) {
    const __mmask16 m = _cvtu32_mask16((1u << (K - k)) - 1);
    top = _mm512_max_epu32(top, _mm512_and_si512(_mm512_maskz_loadu_epi32(m, x + k), abs));
  }
  const uint32_t bits = _mm512_reduce_max_epu32(top);
  if (bits >= 0x7F800000u) return false;
  int e = 0;
  if (bits != 0) {
    float big;
    std::memcpy(&big, &bits, 4);
    std::frexp(big, &e);  // big in [2^(e-1), 2^e)
  }
  const int E = e - 1;
  // x * 2^(21 - E) in one or two exact float products (2^(21 - E) may pass 2^127)
  int sh = 21 - E;
  float f1 = 1.0f;
  if (sh > 120) {
    f1 = 0x1p64f;
    sh -= 64;
  }
  const __m512 m1 = _mm512_set1_ps(f1), m2 = _mm512_set1_ps(std::ldexp(1.0f, sh));
  int64_t sum = 0;
  for (int64_t w = 0; w < nw; ++w) {
    uint8_t* p = planes + kPlaneWord * w;
    __m512i qs = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) {
      const int64_t c = 64 * w + 16 * j, n = std::min<int64_t>(std::max<int64_t>(K - c, 0), 16);
      const __mmask16 m = _cvtu32_mask16(n == 16 ? 0xFFFFu : (1u << n) - 1);
      const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + c), m1), m2);
      const __m512i q = _mm512_cvtps_epi32(v);  // |q| < 2^22
      qs = _mm512_add_epi32(qs, q);
      // balanced base-256 digits, each in [-128, 128): q = 2^16 h + 2^8 m + l
      const __m512i l = _mm512_srai_epi32(_mm512_slli_epi32(q, 24), 24);
      const __m512i q1 = _mm512_srai_epi32(_mm512_sub_epi32(q, l), 8);
      const __m512i md = _mm512_srai_epi32(_mm512_slli_epi32(q1, 24), 24);
      const __m512i h = _mm512_srai_epi32(_mm512_sub_epi32(q1, md), 8);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 16 * j), _mm512_cvtepi32_epi8(h));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 64 + 16 * j), _mm512_cvtepi32_epi8(md));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 128 + 16 * j), _mm512_cvtepi32_epi8(l));
    }
    qw[w] = _mm512_reduce_add_epi32(qs);  // 64 values below 2^22: no overflow
    sum += qw[w];
  }
  xp->step = std::ldexp(1.0, E - 21);
  xp->offset = 128 * sum;
  return true;
}

// A word's values plus 128 in the byte lanes of its set columns, 128 elsewhere (vpdpbusd's
// unsigned operand). CAREFUL: read by a masked expand-load (popcount(word) values), else by
// a full 64-byte load.
template <bool CAREFUL>
inline __m512i vnni_expand(const uint8_t* v, uint64_t word) {
  const __mmask64 k = _cvtu64_mask64(word);
  const __m512i e = CAREFUL ? _mm512_maskz_expandloadu_epi8(k, v)
                            : _mm512_maskz_expand_epi8(k, _mm512_loadu_si512(v));
  return _mm512_xor_si512(e, _mm512_set1_epi8(static_cast<char>(0x80)));  // v + 128, unsigned
}

// Half-sum of a vector's two 256-bit halves.
inline __m256i vnni_halves(__m512i a) {
  return _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
}

// The three sums of one set of accumulators, H, Mid, L (clear() before the first add): of
// the words' (v + 128) times the planes' digits.
struct PlaneSums {
  __m512i h, m, l;
  void clear() { h = m = l = _mm512_setzero_si512(); }
  void add(__m512i u, const uint8_t* p) {
    h = _mm512_dpbusd_epi32(h, u, _mm512_loadu_si512(p));
    m = _mm512_dpbusd_epi32(m, u, _mm512_loadu_si512(p + 64));
    l = _mm512_dpbusd_epi32(l, u, _mm512_loadu_si512(p + 128));
  }
  // Group scales: f + (2^16 H + 2^8 Mid + L) * sc lane by lane, in float32, and cleared.
  __m512 fold(__m512 f, float sc) {
    const __m512 t = _mm512_fmadd_ps(
        _mm512_cvtepi32_ps(h), _mm512_set1_ps(65536.0f),
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(m), _mm512_set1_ps(256.0f), _mm512_cvtepi32_ps(l)));
    clear();
    return _mm512_fmadd_ps(t, _mm512_set1_ps(sc), f);
  }
  // 2^16 H + 2^8 Mid + L over the lanes (each lane sum below 2^31), and cleared.
  int64_t take() {
    const __m256i hm = _mm256_hadd_epi32(vnni_halves(h), vnni_halves(m));
    const __m256i l0 = _mm256_hadd_epi32(vnni_halves(l), _mm256_setzero_si256());
    const __m256i q = _mm256_hadd_epi32(hm, l0);  // each 128-bit half: partial H, Mid, L, 0
    const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    const int64_t H = _mm_extract_epi32(s, 0), Mid = _mm_extract_epi32(s, 1),
                  L = _mm_extract_epi32(s, 2);
    clear();
    return H * 65536 + Mid * 256 + L;
  }
};

// Rows rows[0..R) of out = S @ x for int8 values (the caller applies the row scales), x as
// planes (nw words) with step s, word by word together: R = 2 keeps two streams of values and
// bitmap words in flight and two independent chains of vpdpbusd. A malformed row, else -1.
// GS: group scales a.gscale of a.gsize columns (a multiple of 64): each group's integer sums
// folded, times its scale, into float32 lanes at the group's end (and every kChunkWords
// words within a longer one); the offset taken off per group: 128 sum(q over the group's
// words) times its scale (qw: each word's sum of q).
template <int R, bool GS>
inline int64_t planes_rows(const BitmapArgs<float>& a, const uint8_t* planes, const XPlanes& xp,
                           const int32_t* qw, const int64_t* rows) {
  const uint8_t* __restrict__ val = static_cast<const uint8_t*>(a.stored.data);
  const int64_t nw = a.rb / 8, nnz = a.nnz;
  const uint64_t last = bm_last_mask(a.K);
  const int64_t ahead = g_stream_ahead;
  const uint8_t* row[R];
  int64_t p[R], total[R];
  PlaneSums acc[R];
  [[maybe_unused]] const int64_t wpg = GS ? a.gsize / 64 : 1;
  [[maybe_unused]] const float* grow[R];
  [[maybe_unused]] __m512 f[R];
  [[maybe_unused]] double corr[R];
  [[maybe_unused]] int64_t qacc[R];
  bool fast = true;  // every row's 64-value loads stay inside the values
  for (int r = 0; r < R; ++r) {
    row[r] = a.bits + rows[r] * a.rb;
    p[r] = a.row_off[rows[r]];
    total[r] = 0;
    acc[r].clear();
    if constexpr (GS) {
      grow[r] = a.gscale + rows[r] * a.gs_ld;
      f[r] = _mm512_setzero_ps();
      corr[r] = 0.0;
      qacc[r] = 0;
    }
    fast = fast && p[r] + 64 * nw <= nnz;  // (a word adds at most 64 to p)
  }
  // GS: row r's sums so far into its float lanes, with the scale of word v's group
  [[maybe_unused]] const auto fold = [&](int r, int64_t v) {
    if constexpr (GS) {
      const float sc = grow[r][v / wpg];
      f[r] = acc[r].fold(f[r], sc);
      corr[r] += static_cast<double>(sc) * static_cast<double>(qacc[r]);
      qacc[r] = 0;
    }
  };
  const int64_t fw = fast ? a.K / 64 : 0;
  int64_t w = 0;
  while (w < fw) {
    const int64_t stop = std::min(fw, w + kChunkWords);
    for (; w < stop; ++w) {
      for (int r = 0; r < R; ++r) {
        const uint64_t word = bm_word(row[r] + 8 * w);
        word_prefetch(val + p[r], row[r] + 8 * w, w, ahead);
        acc[r].add(vnni_expand<false>(val + p[r], word), planes + kPlaneWord * w);
        p[r] += bm_popcount(word);
      }
      if constexpr (GS) {
        for (int r = 0; r < R; ++r) qacc[r] += qw[w];
        if ((w + 1) % wpg == 0)
          for (int r = 0; r < R; ++r) fold(r, w);
      }
    }
    for (int r = 0; r < R; ++r) {
      if constexpr (GS)
        fold(r, w - 1);  // (a longer group's part, or nothing)
      else
        total[r] += acc[r].take();
    }
  }
  for (int r = 0; r < R; ++r) {
    // the partial last word, or rows near the end of the values: masked expand-loads
    for (int64_t v = w, c = 0; v < nw; ++v, ++c) {
      const uint64_t word = bm_word(row[r] + 8 * v) & (v == nw - 1 ? last : ~uint64_t{0});
      if (p[r] + bm_popcount(word) > nnz) return rows[r];
      if (c == kChunkWords) {
        if constexpr (GS)
          fold(r, v - 1);
        else
          total[r] += acc[r].take();
        c = 0;
      }
      acc[r].add(vnni_expand<true>(val + p[r], word), planes + kPlaneWord * v);
      p[r] += bm_popcount(word);
      if constexpr (GS) {
        qacc[r] += qw[v];
        if ((v + 1) % wpg == 0) {
          fold(r, v);
          c = -1;  // (the next word starts a fresh count)
        }
      }
    }
    const bool pad = nw > 0 && (bm_word(row[r] + 8 * (nw - 1)) & ~last) != 0;
    if (__builtin_expect(pad || p[r] != a.row_off[rows[r] + 1], 0)) return rows[r];
    if constexpr (GS) {
      if (nw > 0) fold(r, nw - 1);  // a group cut short by K
      const double sum = static_cast<double>(_mm512_reduce_add_ps(f[r])) - 128.0 * corr[r];
      a.out[rows[r]] = static_cast<float>(sum * xp.step);
    } else {
      total[r] += acc[r].take();
      a.out[rows[r]] =
          static_cast<float>(static_cast<double>(total[r] - xp.offset) * xp.step);
    }
  }
  return -1;
}

// Rows [r0, r1): pairs from the two halves of the range, then the odd row. A malformed row,
// else -1.
template <bool GS>
inline int64_t bitmap_spmv_planes(const BitmapArgs<float>& a, const uint8_t* planes,
                                  const XPlanes& xp, const int32_t* qw, int64_t r0, int64_t r1) {
  return for_row_pairs<true>(r0, r1, [&](auto rc, const int64_t* rows) {
    return planes_rows<decltype(rc)::value, GS>(a, planes, xp, qw, rows);
  });
}

// The entry the AVX-512 table's bitmap SpMV calls for int8 values (one scale a row, or group
// scales of 64k columns) and a bfloat16 / float16 x where the CPU has VBMI2 and VNNI: builds
// x's planes once per call on each thread (scratch tagged with the call), then the rows.
// kSpmvNotTaken where x is not finite (the caller takes the float kernels).
int64_t bitmap_spmv_vnni_rows(const BitmapArgs<float>& a, int64_t r0, int64_t r1) {
  const int64_t nw = a.rb / 8;
  bool kept = false;
  // the planes, then the step and offset, then each word's sum of q
  const size_t head = static_cast<size_t>(kPlaneWord * nw) + sizeof(XPlanes);
  uint8_t* buf = static_cast<uint8_t*>(scratch_buffer(
      kScratchXPlanes, head + static_cast<size_t>(nw) * sizeof(int32_t), a.call_tag, &kept));
  int32_t* qw = reinterpret_cast<int32_t*>(buf + head);
  XPlanes xp;  // step < 0: x is not finite
  if (kept) {
    std::memcpy(&xp, buf + kPlaneWord * nw, sizeof xp);
  } else {
    if (!x_planes(a.x, a.K, nw, buf, qw, &xp)) xp.step = -1.0;
    std::memcpy(buf + kPlaneWord * nw, &xp, sizeof xp);
  }
  if (xp.step < 0.0) return kSpmvNotTaken;
  if (a.gscale) return bitmap_spmv_planes<true>(a, buf, xp, qw, r0, r1);  // gsize % 64 == 0
  return bitmap_spmv_planes<false>(a, buf, xp, qw, r0, r1);
}

}  // namespace ISA_NS
}  // namespace sparse_ops
