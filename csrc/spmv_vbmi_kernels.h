// Bitmap SpMV (N = 1) with int8 or bfloat16 values on AVX-512 with VBMI and VBMI2 (Intel Ice
// Lake and later Xeons, AMD Zen 4 and 5): one byte- or word-expand places a word's 64 packed
// values in the lanes of their columns, zero elsewhere, then one permute per 16 columns moves
// each into its column's float32 lane:
//   int8: vpexpandb (64 values into 64 byte lanes, 64-bit mask = the bitmap word), vpermb with
//     a fixed control and a zeroing mask putting byte 16j + l into the top byte of dword lane l
//     (vcvtdq2ps then gives value * 2^24 exactly, taken out of the row's sum at the end);
//   bfloat16: vpexpandw per 32-column half, vpermw putting word 16j + l into the top half of
//     dword lane l: that lane is the value as a float32, no convert.
// Then one FMA with x per 16 columns. Per 64 columns: 1 expand (2 for bf16), 4 permutes, 4
// converts (int8), 4 FMAs; the AVX-512 float path (bitmap_kernels.h) widens and expands each
// 16 values (vpmovsxbd, vcvtdq2ps, vexpandps) and AVX2 shuffles byte by byte. Measured on an
// Intel Xeon (family 6 model 207, AVX-512 + VBMI2, 1 thread, 4096^2 bitmap 0.5, L2/L3-hot):
// int8 1.97 ms (AVX-512 widen+vexpandps) / 1.60 (AVX2 shuffles) -> 0.82 ms; bf16 2.05 -> 1.07.
//
// As the AVX2 shuffle kernels, unset lanes hold +0 and meet every column of x, so these run
// only when every x is finite and below 2^64 (x_fits_shuffle, checked by the caller). Guards as
// bitmap_spmv_vec: no value read past nnz (a row whose 64 values a word of room reach past nnz
// takes masked expand-loads, which read popcount(mask) values), no x past K (bits past K
// dropped, the row reported), the row reported when its popcount is not its span.
#pragma once

namespace sparse_ops {
namespace ISA_NS {

struct VbmiI8 {  // int8 values: 1 byte, value * 2^24 in the lanes
  static constexpr int64_t bytes = 1;
  static constexpr float unit = 0x1p-24f;
};
struct VbmiBf16 {  // bfloat16 values: 2 bytes, the value itself in the lanes
  static constexpr int64_t bytes = 2;
  static constexpr float unit = 1.0f;
};

// vpermb controls: byte 4l + 3 of control j takes source byte 16j + l (the other bytes are
// zeroed by the mask); vpermw controls: word 2l + 1 of control j takes source word 16j + l.
struct VbmiControls {
  alignas(64) uint8_t b[4][64];
  alignas(64) uint16_t w[2][32];
};
inline const VbmiControls& vbmi_controls() {
  static const VbmiControls c = [] {
    VbmiControls r{};
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 16; ++l) r.b[j][4 * l + 3] = static_cast<uint8_t>(16 * j + l);
    for (int j = 0; j < 2; ++j)
      for (int l = 0; l < 16; ++l) r.w[j][2 * l + 1] = static_cast<uint16_t>(16 * j + l);
    return r;
  }();
  return c;
}

// A word's 64 columns: the four 16-column float32 vectors of its values (zero where unset).
// CAREFUL: values read by masked expand-loads (popcount(word) of them), else by full loads.
template <class VK, bool CAREFUL>
inline void vbmi_word(const uint8_t* v, uint64_t word, const __m512i* ctl, __m512 f[4]) {
  if constexpr (VK::bytes == 1) {
    const __mmask64 k = _cvtu64_mask64(word);
    const __m512i e = CAREFUL ? _mm512_maskz_expandloadu_epi8(k, v)
                              : _mm512_maskz_expand_epi8(k, _mm512_loadu_si512(v));
    constexpr __mmask64 top = 0x8888888888888888ull;
    for (int j = 0; j < 4; ++j)
      f[j] = _mm512_cvtepi32_ps(_mm512_maskz_permutexvar_epi8(top, ctl[j], e));
  } else {
    const uint32_t lo = static_cast<uint32_t>(word), hi = static_cast<uint32_t>(word >> 32);
    const uint8_t* vh = v + 2 * static_cast<int64_t>(__builtin_popcount(lo));
    const __mmask32 kl = _cvtu32_mask32(lo), kh = _cvtu32_mask32(hi);
    const __m512i el = CAREFUL ? _mm512_maskz_expandloadu_epi16(kl, v)
                               : _mm512_maskz_expand_epi16(kl, _mm512_loadu_si512(v));
    const __m512i eh = CAREFUL ? _mm512_maskz_expandloadu_epi16(kh, vh)
                               : _mm512_maskz_expand_epi16(kh, _mm512_loadu_si512(vh));
    constexpr __mmask32 top = 0xAAAAAAAAu;
    f[0] = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(top, ctl[0], el));
    f[1] = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(top, ctl[1], el));
    f[2] = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(top, ctl[0], eh));
    f[3] = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(top, ctl[1], eh));
  }
}

// Rows [r0, r1) of out = S @ x, one sum a row (int8: the caller scales it); the first row
// found malformed, else -1.
// GS: int8 values with group scales a.gscale of a.gsize columns, a multiple of 64 (whole
// words): the accumulators hold one group at a time and are folded into the row's total,
// times the group's scale, after the group's last word (three adds and an FMA a group).
template <class VK, bool GS = false>
int64_t bitmap_spmv_vbmi(const BitmapArgs<float>& a, int64_t r0, int64_t r1) {
  const VbmiControls& c = vbmi_controls();
  __m512i ctl[4];
  for (int j = 0; j < 4; ++j)
    ctl[j] = VK::bytes == 1 ? _mm512_load_si512(c.b[j]) : _mm512_load_si512(c.w[j & 1]);
  const uint8_t* __restrict__ val = static_cast<const uint8_t*>(a.stored.data);
  const float* __restrict__ x = a.x;
  const int64_t nw = a.rb / 8, nnz = a.nnz, K = a.K, full_words = K / 64;
  const uint64_t last = bm_last_mask(K);
  const int64_t ahead = g_stream_ahead;  // prefetch distance (bytes), read once
  [[maybe_unused]] const int64_t wpg = GS ? a.gsize / 64 : 1;  // words a group
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* row = a.bits + i * a.rb;
    int64_t p = a.row_off[i];
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
    __m512 f[4];
    const bool pad = nw > 0 && (bm_word(row + 8 * (nw - 1)) & ~last) != 0;
    [[maybe_unused]] const float* grow = GS ? a.gscale + i * a.gs_ld : nullptr;
    [[maybe_unused]] int64_t left = wpg, g = 0;
    [[maybe_unused]] __m512 total = _mm512_setzero_ps();
    // GS, after each word: at a group's end (or, forced, the row's), the group's sums times
    // its scale into total
    const auto fold = [&](bool force) {
      if constexpr (GS) {
        if (--left && !force) return;
        const __m512 t = _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]));
        total = _mm512_fmadd_ps(t, _mm512_set1_ps(grow[g]), total);
        for (int j = 0; j < 4; ++j) s[j] = _mm512_setzero_ps();
        left = wpg;
        ++g;
      } else {
        (void)force;
      }
    };
    // whole words whose 64-value loads stay inside the values (a word adds at most 64 to p)
    const int64_t fast = p + 64 * nw <= nnz ? full_words : 0;
    int64_t w = 0;
    for (; w < fast; ++w) {
      const uint64_t word = bm_word(row + 8 * w);
      word_prefetch(val + VK::bytes * p, row + 8 * w, w, ahead);
      vbmi_word<VK, false>(val + VK::bytes * p, word, ctl, f);
      const float* xw = x + 64 * w;
      for (int j = 0; j < 4; ++j) s[j] = _mm512_fmadd_ps(f[j], _mm512_loadu_ps(xw + 16 * j), s[j]);
      p += bm_popcount(word);
      fold(false);
    }
    for (; w < nw; ++w) {  // the partial last word, or a row near the end of the values
      const uint64_t word = w == nw - 1 ? bm_word(row + 8 * w) & last : bm_word(row + 8 * w);
      if (p + bm_popcount(word) > nnz) return i;
      vbmi_word<VK, true>(val + VK::bytes * p, word, ctl, f);
      const float* xw = x + 64 * w;
      for (int j = 0; j < 4; ++j) {  // x only at set columns: none past K
        const __mmask16 m = _cvtu32_mask16(static_cast<uint32_t>(word >> (16 * j)) & 0xFFFFu);
        s[j] = _mm512_fmadd_ps(f[j], _mm512_maskz_loadu_ps(m, xw + 16 * j), s[j]);
      }
      p += bm_popcount(word);
      fold(false);
    }
    if (__builtin_expect(pad || p != a.row_off[i + 1], 0)) return i;
    if constexpr (GS) {
      if (left != wpg) fold(true);  // a group cut short by K
      a.out[i] = _mm512_reduce_add_ps(total) * VK::unit;
    } else {
      a.out[i] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]),
                                                    _mm512_add_ps(s[2], s[3]))) * VK::unit;
    }
  }
  // (two rows at a time from the two halves of the range, as the 2:4 decode does, measured
  // within the noise here: 1.10-1.19x against 1.08-1.15x int8pack_mm; this loop is bound by
  // its permutes and converts, not by the memory system)
  return -1;
}

// The entry the AVX-512 table's bitmap SpMV calls where the CPU has VBMI and VBMI2.
int64_t bitmap_spmv_vbmi_rows(const BitmapArgs<float>& a, int64_t r0, int64_t r1) {
  if (a.gscale) return bitmap_spmv_vbmi<VbmiI8, true>(a, r0, r1);  // int8, gsize % 64 == 0
  return a.stored.dt == DT::i8 ? bitmap_spmv_vbmi<VbmiI8>(a, r0, r1)
                               : bitmap_spmv_vbmi<VbmiBf16>(a, r0, r1);
}

}  // namespace ISA_NS
}  // namespace sparse_ops
