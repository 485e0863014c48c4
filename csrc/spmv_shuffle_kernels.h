// SpMV by byte shuffles (N = 1, AVX2): bitmap, 2:4 and 1:4 weights with int8 values (W8A16),
// and bitmap weights with bfloat16 values (a value's two bytes moved into the top half of a
// float32 lane are that value: the same kernel without the convert), as stored, x float32.
// 2:4 and 1:4 (int8 and bfloat16 values) by default gather x by in-lane permutes instead
// (nm4_spmv_perm, below the shuffle kernels).
// Included after bitmap_kernels.h and nm_kernels.h; the table's bitmap
// SpMV and N:M product enter here (bitmap_spmv_entry, nm_spmm_entry) and fall through to those
// headers wherever these kernels do not apply.
//
// Eight columns at a time: one metadata byte (8 bitmap bits, or 4 slots of 2:4 = 2 groups)
// indexes a 32-byte vpshufb control that moves each stored value byte into the top byte of its
// column's 32-bit lane, every other byte zero. vcvtdq2ps then gives value * 2^24 exactly, so a
// byte costs a broadcast load of the packed values, one shuffle (table operand from L1), one
// convert and one FMA with x from memory. The float-value paths widen the values, permute them
// into place and blend (bitmap: 8 vector µops a byte; 2:4: a decode, two permutes and a blend
// per 8 slots). The 2^24 is taken out of each row's sum (a power of two: exact).
//
// Unset lanes hold +0 and meet every column of x: an inf or NaN there would reach the sum
// (0 * inf), and value * 2^24 * x must not overflow where the reference does not. So these
// kernels run only when every x is finite and below 2^64 in magnitude (x_fits_shuffle, one
// pass over K floats a chunk); otherwise the float paths run, which never read unset columns.
#pragma once

namespace sparse_ops {
namespace ISA_NS {

#if SPARSE_OPS_ISA >= 2
// vpshufb controls (each 128-bit half picks from its own copy of the 8 broadcast bytes).
struct I8ShuffleTables {
  // bitmap byte b: lane l takes packed value rank(l) (the set bits of b below l) if bit l is set
  alignas(64) uint8_t bitmap[256][32];
  // 2:4 byte b (slots s = 0..3 at bits 2s, slots 0-1 in columns 0-3, slots 2-3 in 4-7): lane l
  // takes the slot of its group whose position is l % 4; [1] adds 4 to every rank (the odd
  // byte of a pair whose 8 values were broadcast together).
  alignas(64) uint8_t nm24[2][256][32];
  // 1:4 nibble v (the positions of 2 groups, 1 slot each, 8 columns) of half h of a metadata
  // byte (slots 2h, 2h + 1): lane l takes slot 2h + l / 4 if its position is l % 4; [odd]
  // adds 4 to the ranks (the odd byte of a pair whose 8 values were broadcast together).
  alignas(64) uint8_t nm14[2][2][16][32];
  // bitmap byte b with bfloat16 values (8 broadcast to each 128-bit half: 16 bytes): lane l
  // takes value rank(l)'s two bytes as its top half, which is that value as a float32
  alignas(64) uint8_t bitmap_bf16[256][32];
};

inline const I8ShuffleTables& i8_shuffle_tables() {
  static const I8ShuffleTables t = [] {
    I8ShuffleTables r;
    std::memset(&r, 0x80, sizeof r);
    for (int b = 0; b < 256; ++b) {
      int rank = 0;
      for (int l = 0; l < 8; ++l)
        if ((b >> l) & 1) {
          r.bitmap_bf16[b][4 * l + 2] = static_cast<uint8_t>(2 * rank);
          r.bitmap_bf16[b][4 * l + 3] = static_cast<uint8_t>(2 * rank + 1);
          r.bitmap[b][4 * l + 3] = static_cast<uint8_t>(rank++);
        }
      for (int l = 0; l < 8; ++l) {
        const int g = l / 4, c = l % 4;
        for (int s = 2 * g; s < 2 * g + 2; ++s) {
          if (((b >> (2 * s)) & 3) != c) continue;
          r.nm24[0][b][4 * l + 3] = static_cast<uint8_t>(s);
          r.nm24[1][b][4 * l + 3] = static_cast<uint8_t>(s + 4);
          break;  // a repeated position: nm24_distinct sends the row elsewhere
        }
      }
    }
    for (int odd = 0; odd < 2; ++odd)
      for (int h = 0; h < 2; ++h)
        for (int v = 0; v < 16; ++v)
          for (int l = 0; l < 8; ++l)
            if (((v >> (2 * (l / 4))) & 3) == l % 4)
              r.nm14[odd][h][v][4 * l + 3] = static_cast<uint8_t>(4 * odd + 2 * h + l / 4);
    return r;
  }();
  return t;
}

// True when every x[k] is finite and |x[k]| < 2^64: then every term value * 2^24 * x is below
// 2^95 and a row's sum below 2^128 for any K < 2^33.
inline bool x_fits_shuffle(const float* x, int64_t K) {
  const __m256i lim = _mm256_set1_epi32(0x5F7FFFFF), abs = _mm256_set1_epi32(0x7FFFFFFF);
  __m256i bad = _mm256_setzero_si256();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k));
    bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(_mm256_and_si256(v, abs), lim));
  }
  bool ok = _mm256_testz_si256(bad, bad);
  for (; k < K; ++k) {
    uint32_t u;
    std::memcpy(&u, x + k, 4);
    ok = ok && (u & 0x7FFFFFFFu) <= 0x5F7FFFFFu;
  }
  return ok;
}

// The 8 lanes of one byte: v8 holds the packed value bytes (broadcast to every qword), ctl
// its 32-byte control. Lane l = value * 2^24 or +0.
inline __m256 i8_lanes(uint64_t v8, const uint8_t* ctl) {
  const __m256i c = _mm256_load_si256(reinterpret_cast<const __m256i*>(ctl));
  return _mm256_cvtepi32_ps(
      _mm256_shuffle_epi8(_mm256_set1_epi64x(static_cast<long long>(v8)), c));
}

// 256-bit helpers of their own: V<float> is 512 bits wide at the AVX-512 level.
inline __m256 ymm_loadn(const float* p, int64_t n) {  // lanes < n, others 0
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lanes));
}
inline float ymm_hsum(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline uint64_t load8(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// The bitmap shuffle kernel's two value kinds: int8 (one byte a value, 8 broadcast to every
// qword; lanes value * 2^24 after vcvtdq2ps) and bfloat16 (two bytes, 8 broadcast to each
// 128-bit half; a lane's top two bytes are the value as a float32: no convert at all).
struct I8Lanes {
  static constexpr int64_t bytes = 1;
  static constexpr float unit = 0x1p-24f;  // the lanes' scale, taken out of a row's sum
  static const uint8_t* table() { return &i8_shuffle_tables().bitmap[0][0]; }
  static __m256 lanes(const uint8_t* v, const uint8_t* ctl) { return i8_lanes(load8(v), ctl); }
  // the same with `avail` values at v (none read past them)
  static __m256 lanes_n(const uint8_t* v, int64_t avail, const uint8_t* ctl) {
    return i8_lanes(load_bytes(v, avail), ctl);
  }
};
struct Bf16Lanes {
  static constexpr int64_t bytes = 2;
  static constexpr float unit = 1.0f;
  static const uint8_t* table() { return &i8_shuffle_tables().bitmap_bf16[0][0]; }
  static __m256 shuffled(__m128i v16, const uint8_t* ctl) {
    const __m256i c = _mm256_load_si256(reinterpret_cast<const __m256i*>(ctl));
    return _mm256_castsi256_ps(_mm256_shuffle_epi8(_mm256_broadcastsi128_si256(v16), c));
  }
  static __m256 lanes(const uint8_t* v, const uint8_t* ctl) {
    return shuffled(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v)), ctl);
  }
  static __m256 lanes_n(const uint8_t* v, int64_t avail, const uint8_t* ctl) {
    alignas(16) uint8_t buf[16] = {};
    const int64_t n = 2 * avail < 16 ? 2 * avail : 16;
    if (n > 0) std::memcpy(buf, v, static_cast<size_t>(n));
    return shuffled(_mm_load_si128(reinterpret_cast<const __m128i*>(buf)), ctl);
  }
};

// Group scales along K (GS; gsize a multiple of 32): the accumulators hold one group at a time
// and are folded into `total`, scaled by the group's scale, at each 32-column half that ends a
// group. Without GS, one sum a row (the caller scales it).
template <bool GS>
struct I8Fold {
  const float* grow = nullptr;
  int64_t hpg = 1, left = 1, g = 0, groups = 0;
  __m256 total = _mm256_setzero_ps();
  I8Fold(const float* gscale, int64_t gs_ld, int64_t gsize, int64_t K, int64_t i) {
    if constexpr (GS) {
      grow = gscale + i * gs_ld;
      hpg = left = gsize / 32;
      groups = (K + gsize - 1) / gsize;
    } else {
      (void)gscale, (void)gs_ld, (void)gsize, (void)K, (void)i;
    }
  }
  static __m256 sum4(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
    return _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  }
  void fold(__m256& s0, __m256& s1, __m256& s2, __m256& s3) {
    if (g < groups) total = _mm256_fmadd_ps(sum4(s0, s1, s2, s3), _mm256_set1_ps(grow[g]), total);
    s0 = s1 = s2 = s3 = _mm256_setzero_ps();
  }
  // after each 32-column half of the row, in order
  void half(__m256& s0, __m256& s1, __m256& s2, __m256& s3) {
    if constexpr (GS) {
      if (--left) return;
      fold(s0, s1, s2, s3);
      left = hpg;
      ++g;
    } else {
      (void)s0, (void)s1, (void)s2, (void)s3;
    }
  }
  // the row's sum of value * 2^24 * (scale) * x: a group cut short by the row's end folded too
  __m256 finish(__m256& s0, __m256& s1, __m256& s2, __m256& s3) {
    if constexpr (GS) {
      if (left != hpg) fold(s0, s1, s2, s3);
      return total;
    } else {
      return sum4(s0, s1, s2, s3);
    }
  }
  // the scale of column c (1 without GS)
  float scale(int64_t c) const {
    if constexpr (GS) return grow[c / (32 * hpg)];
    else return (void)c, 1.0f;
  }
};

// ---------------------------------------------------------------- bitmap
// rorx (BMI2: rotate by an immediate into another register) and popcnt written out: left to
// itself the compiler copies the word before each shr by an immediate and zeroes popcnt's
// destination first. Here a byte's control offset and count cost 4 integer µops (rorx, and,
// popcnt, add); popcnt writes its own source, so the false dependence some Intel cores give
// its destination is on a value it needs anyway. Hot loop on Zen 3: 93 -> 68 instructions a
// word; with the two changes below, 1.49 -> 1.30 ms for 4096^2 on one thread (L2-resident).
template <int N>
inline uint64_t rorx64(uint64_t w) {
  uint64_t r;
  asm("rorx %2, %1, %0" : "=r"(r) : "r"(w), "i"(N));
  return r;
}
inline uint64_t popcnt64(uint64_t w) {
  asm("popcnt %0, %0" : "+r"(w));
  return w;
}

// Byte B of a whole bitmap word whose values (from v) and x (xw: the word's 64 columns) lie in
// range: its control at tbase + 32 * byte = rotate(word, 8B - 5) & 0x1FE0, its values o values
// into v (o: the popcounts of the bytes before it), o advanced past them.
template <class VK, int B>
inline void bm_byte_shuffle(const uint8_t* tbase, uint64_t word, const uint8_t* v, uint64_t& o,
                            const float* xw, __m256& s) {
  const uint64_t c = rorx64<(8 * B - 5) & 63>(word) & 0x1FE0u;
  s = _mm256_fmadd_ps(VK::lanes(v + VK::bytes * o, tbase + c), _mm256_loadu_ps(xw + 8 * B), s);
  o += popcnt64(c);
}

// One 32-column half (4 bytes h) near the end of the values or of x: values by VK::lanes_n
// (none read past nnz), x by masked loads (none past K; the caller dropped bits past K).
// q: the half's first value.
template <class VK>
inline void bm_half_careful(const uint8_t* tbase, uint32_t h, const uint8_t* val, int64_t q,
                            int64_t nnz, const float* xh, int64_t left, __m256& s0, __m256& s1,
                            __m256& s2, __m256& s3) {
  __m256* s[4] = {&s0, &s1, &s2, &s3};
  for (int k = 0; k < 4; ++k) {
    const unsigned b = (h >> (8 * k)) & 0xFFu;
    if (!b) continue;
    const int64_t n = left - 8 * k;  // >= 1: a bit is set below K
    const __m256 xv = n >= 8 ? _mm256_loadu_ps(xh + 8 * k)
                             : ymm_loadn(xh + 8 * k, n);
    *s[k] = _mm256_fmadd_ps(VK::lanes_n(val + VK::bytes * q, nnz - q, tbase + 32 * b), xv, *s[k]);
    q += __builtin_popcount(b);
  }
}

// Rows [r0, r1); GS: a.gscale (gsize a multiple of 32), else one sum a row. Guarded as
// bitmap_spmv_vec: no value read past nnz, no x past K (bits past K dropped, the row reported),
// the row reported when its popcount is not its span. A row whose offset leaves 64 values a
// word of room before nnz (all rows but the last few: a word adds at most 64 to p) runs its
// whole words with no check; its last partial word, and the rows near nnz, take the careful
// halves. row_off is known monotonic and inside [0, nnz] (check_row_pointers).
// Software prefetch on Intel only (g_shuffle_ahead): on Zen 3 (AVX2, 2 threads, 4096^2,
// weights from DRAM) the per-word prefetch cost 6-10 % (0.92-0.99x int8pack_mm against
// 1.06-1.08x without); on an Intel Xeon (family 6 model 207, this AVX2 path, 2 threads, after
// an fp32 matmul) it took bf16 values 1.86-1.92 -> 1.42-1.48 ms and left int8 unchanged. A
// branch over all-zero words cost 8 % of the hot loop (a zero word runs with all-zero
// controls; the layout serves 30-70 % density, where such words are rare).
template <class VK, bool GS>
int64_t bitmap_spmv_shuffle(const BitmapArgs<float>& a, int64_t r0, int64_t r1) {
  static_assert(!GS || VK::bytes == 1, "group scales are int8's");
  const uint8_t* tbase = VK::table();
  const uint8_t* __restrict__ val = static_cast<const uint8_t*>(a.stored.data);
  const float* __restrict__ x = a.x;
  const int64_t nw = a.rb / 8, nnz = a.nnz, K = a.K;
  const int64_t full_words = K / 64;
  const uint64_t last = bm_last_mask(K);
  const int64_t ahead = g_shuffle_ahead;  // 0 on AMD (see below), read once
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* row = a.bits + i * a.rb;
    int64_t p = a.row_off[i];
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    I8Fold<GS> f(a.gscale, a.gs_ld, a.gsize, K, i);
    const bool pad = nw > 0 && (bm_word(row + 8 * (nw - 1)) & ~last) != 0;
    const int64_t fast = p + 64 * nw <= nnz ? full_words : 0;
    int64_t w = 0;
    for (; w < fast; ++w) {  // a word of zeros runs too (all-zero controls): no branch a word
      const uint64_t word = bm_word(row + 8 * w);
      const uint8_t* v = val + VK::bytes * p;
      word_prefetch(v, row + 8 * w, w, ahead);
      const float* xw = x + 64 * w;
      uint64_t o = 0;
      bm_byte_shuffle<VK, 0>(tbase, word, v, o, xw, s0);
      bm_byte_shuffle<VK, 1>(tbase, word, v, o, xw, s1);
      bm_byte_shuffle<VK, 2>(tbase, word, v, o, xw, s2);
      bm_byte_shuffle<VK, 3>(tbase, word, v, o, xw, s3);
      f.half(s0, s1, s2, s3);
      bm_byte_shuffle<VK, 4>(tbase, word, v, o, xw, s0);
      bm_byte_shuffle<VK, 5>(tbase, word, v, o, xw, s1);
      bm_byte_shuffle<VK, 6>(tbase, word, v, o, xw, s2);
      bm_byte_shuffle<VK, 7>(tbase, word, v, o, xw, s3);
      f.half(s0, s1, s2, s3);
      p += static_cast<int64_t>(o);
    }
    for (; w < nw; ++w) {  // the partial last word, or a row near the end of the values
      const uint64_t word = w == nw - 1 ? bm_word(row + 8 * w) & last : bm_word(row + 8 * w);
      const uint32_t lo = static_cast<uint32_t>(word), hi = static_cast<uint32_t>(word >> 32);
      const int64_t ph = p + _mm_popcnt_u32(lo);
      bm_half_careful<VK>(tbase, lo, val, p, nnz, x + 64 * w, K - 64 * w, s0, s1, s2, s3);
      f.half(s0, s1, s2, s3);
      bm_half_careful<VK>(tbase, hi, val, ph, nnz, x + 64 * w + 32, K - 64 * w - 32, s0, s1,
                          s2, s3);
      f.half(s0, s1, s2, s3);
      p = ph + _mm_popcnt_u32(hi);
    }
    if (__builtin_expect(pad || p != a.row_off[i + 1], 0)) return i;
    a.out[i] = ymm_hsum(f.finish(s0, s1, s2, s3)) * VK::unit;
  }
  return -1;
}

// ---------------------------------------------------------------- 2:4
// All 2-bit positions of a group distinct, for 8 packed metadata bytes (32 slots): a byte's
// slot pairs (bits 0-3, 4-7) must differ. A repeated position (allowed by the format: the
// reference sums both) cannot be expressed by one shuffle.
inline bool nm24_distinct(uint64_t m) {
  const uint64_t t = (m ^ (m >> 2)) & 0x3333333333333333ull;
  return ((t | (t >> 1)) & 0x1111111111111111ull) == 0x1111111111111111ull;
}

// Slot u's stored value as a float: int8 or bfloat16 (the rows' last slots, one by one).
struct I8Slot {
  static float value(const uint8_t* v, int64_t u) {
    return static_cast<float>(static_cast<int8_t>(v[u]));
  }
};
struct Bf16Slot {
  static float value(const uint8_t* v, int64_t u) {
    uint16_t h;
    std::memcpy(&h, v + 2 * u, 2);
    return bf16_bits_to_f32(h);
  }
};

// One N:4 row (N slots a group of 4 columns, 2-bit positions) slot by slot from slot u0:
// value * scale * x[column] for every slot whose column lies below K; values read by Slot.
template <int N, bool GS, class Slot = I8Slot>
float nm4_row_slots(const uint8_t* vrow, const uint8_t* mrow, const float* x, int64_t u0,
                    int64_t Gn, int64_t K, const I8Fold<GS>& f) {
  float s = 0.f;
  for (int64_t u = u0; u < Gn; ++u) {
    const int64_t col = (u / N) * 4 + ((mrow[u / 4] >> (2 * (u % 4))) & 3);
    if (col < K) s += Slot::value(vrow, u) * f.scale(col) * x[col];
  }
  return s;
}

// Rows [r0, r1) of out = S @ x, S 2:4 with int8 values, x (K,) unit stride; GS: a.gscale
// (gsize a multiple of 32), else one sum a row (the caller scales it).
template <bool GS>
void nm24_spmv_i8(const NmArgs<float>& a, int64_t r0, int64_t r1) {
  const uint8_t* t0b = &i8_shuffle_tables().nm24[0][0][0];
  const uint8_t* t1b = &i8_shuffle_tables().nm24[1][0][0];
  const int64_t Gn = a.G * 2, stride = a.meta_stride, K = a.K;
  const float* __restrict__ x = a.x;
  // whole metadata words (32 slots, 64 columns) while their columns, slots and bytes exist,
  // then single bytes (4 slots, 8 columns), then the row's last slots one by one
  const int64_t words = std::min({K / 64, Gn / 32, stride / 8});
  const int64_t bytes = std::min(K / 8, Gn / 4);
  const int64_t ahead = g_stream_ahead;  // prefetch distance (bytes), read once
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* __restrict__ vrow = static_cast<const uint8_t*>(a.stored.data) + i * Gn;
    const uint8_t* __restrict__ mrow = a.meta + i * stride;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    I8Fold<GS> f(a.gscale, a.gs_ld, a.gsize, K, i);
    bool ok = true;
    for (int64_t w = 0; w < words; ++w) {
      const uint64_t m = load8(mrow + 8 * w);
      ok &= nm24_distinct(m);
      word_prefetch(vrow + 32 * w, mrow + 8 * w, w, ahead);
      const uint8_t* vw = vrow + 32 * w;
      const float* xw = x + 64 * w;
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {  // 2 bytes, 8 values, 16 columns
        // byte j's control at base + 32 * byte = (m >> (8j - 5)) & 0x1FE0
        const uint64_t v8 = load8(vw + 8 * q);
        const uint8_t* c0 = t0b + (q ? (m >> (16 * q - 5)) & 0x1FE0u : (m << 5) & 0x1FE0u);
        const uint8_t* c1 = t1b + ((m >> (16 * q + 3)) & 0x1FE0u);
        if (q & 1) {
          s2 = _mm256_fmadd_ps(i8_lanes(v8, c0), _mm256_loadu_ps(xw + 16 * q), s2);
          s3 = _mm256_fmadd_ps(i8_lanes(v8, c1), _mm256_loadu_ps(xw + 16 * q + 8), s3);
          f.half(s0, s1, s2, s3);
        } else {
          s0 = _mm256_fmadd_ps(i8_lanes(v8, c0), _mm256_loadu_ps(xw + 16 * q), s0);
          s1 = _mm256_fmadd_ps(i8_lanes(v8, c1), _mm256_loadu_ps(xw + 16 * q + 8), s1);
        }
      }
    }
    __m256 s = f.finish(s0, s1, s2, s3);  // every full group folded (GS), or the row's sum
    for (int64_t j = 8 * words; j < bytes; ++j) {
      const unsigned b = mrow[j];
      ok &= nm24_distinct(b | 0x1111111111111100ull);  // the other bytes' fields pass
      uint32_t v4;
      std::memcpy(&v4, vrow + 4 * j, 4);
      __m256 e = i8_lanes(v4, t0b + 32 * b);
      if constexpr (GS) e = _mm256_mul_ps(e, _mm256_set1_ps(f.scale(8 * j)));
      s = _mm256_fmadd_ps(e, _mm256_loadu_ps(x + 8 * j), s);
    }
    const float tail = nm4_row_slots<2, GS>(vrow, mrow, x, 4 * bytes, Gn, K, f);
    if (__builtin_expect(!ok, 0)) {  // a repeated position: the row slot by slot
      a.out[i] = nm4_row_slots<2, GS>(vrow, mrow, x, 0, Gn, K, f);
      continue;
    }
    a.out[i] = ymm_hsum(s) * 0x1p-24f + tail;
  }
}

// ---------------------------------------------------------------- N:4 by in-lane permutes
// The 2:4 and 1:4 SpMV gathering x instead of spreading the values. A chunk is 8 slots (2
// metadata bytes) over 16 (2:4) or 32 (1:4) columns; lane l holds slot s(l), chosen so that
// each 128-bit half meets its groups' columns of x as loaded: 2:4: s = (0, 4, 1, 5, 2, 6, 3,
// 7), x[0..8) is groups 0 | 1 and x[8..16) groups 2 | 3, the low half holding the slots of
// groups 0 and 2 (two vpermilps, one blend); 1:4: s = (0, 2, 4, 6, 1, 3, 5, 7), the 4 x
// vectors are groups 0 | 1, 2 | 3, 4 | 5, 6 | 7, lane l (and l + 4) from vector l % 4 (four
// vpermilps, three blends). The 2 bytes broadcast to every lane and shifted by 2 s(l) (one
// vpsrlvd) leave slot s(l)'s position in lane l's low 2 bits, the only bits vpermilps reads.
// The 8 values are broadcast once and one constant vpshufb puts value s(l) in the top byte
// of lane l (vcvtdq2ps: value * 2^24 exactly, as the shuffle kernels above; bfloat16 values:
// their two bytes into the lane's top half, the value as a float32, no convert). Per 2:4
// chunk: 8 vector uops, 2 of them on the shuffle port, and no integer work (the shuffle
// kernel: 10 vector uops and 8 integer ones, rorx / and / popcnt for its table controls); the
// 1:4 slot-a-group kernel spends 4 shuffles, 4 converts and ~10 integer uops on a 1:4
// chunk's 32 columns. Repeated positions need no detour (each slot reads its own column).
// Figures in csrc/README.md. SPARSE_OPS_NM4_PERM=0 (or _C._set_nm4_perm(False)) keeps the
// shuffle kernels (int8) and the float path (bfloat16).

// The constants of a slot order s: the vpsrlvd shifts 2 s(l), and the vpshufb controls that
// move value s(l)'s byte (int8) or two bytes (bfloat16) into the top of lane l (each 128-bit
// half of the broadcast holds all 8 values).
struct PermConsts {
  alignas(32) int32_t shifts[8];
  alignas(32) int8_t i8[32];
  alignas(32) int8_t bf16[32];
};
constexpr PermConsts perm_consts(const int (&s)[8]) {
  PermConsts c{};
  for (int l = 0; l < 8; ++l) {
    c.shifts[l] = 2 * s[l];
    for (int b = 0; b < 4; ++b) c.i8[4 * l + b] = c.bf16[4 * l + b] = -128;
    c.i8[4 * l + 3] = static_cast<int8_t>(s[l]);
    c.bf16[4 * l + 2] = static_cast<int8_t>(2 * s[l]);
    c.bf16[4 * l + 3] = static_cast<int8_t>(2 * s[l] + 1);
  }
  return c;
}
inline __m256i load_consts(const void* p) {
  return _mm256_load_si256(static_cast<const __m256i*>(p));
}

template <int N>
struct NmPerm;
template <>
struct NmPerm<2> {
  static constexpr int cols = 16;
  static constexpr int slot[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  static constexpr PermConsts k = perm_consts(slot);
  static __m256 gather(const float* xc, __m256i idx) {
    const __m256 pa = _mm256_permutevar_ps(_mm256_loadu_ps(xc), idx);      // groups 0 | 1
    const __m256 pb = _mm256_permutevar_ps(_mm256_loadu_ps(xc + 8), idx);  // groups 2 | 3
    return _mm256_blend_ps(pa, pb, 0xAA);
  }
};
template <>
struct NmPerm<1> {
  static constexpr int cols = 32;
  static constexpr int slot[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  static constexpr PermConsts k = perm_consts(slot);
  static __m256 gather(const float* xc, __m256i idx) {
    const __m256 p0 = _mm256_permutevar_ps(_mm256_loadu_ps(xc), idx);       // groups 0 | 1
    const __m256 p1 = _mm256_permutevar_ps(_mm256_loadu_ps(xc + 8), idx);   // groups 2 | 3
    const __m256 p2 = _mm256_permutevar_ps(_mm256_loadu_ps(xc + 16), idx);  // groups 4 | 5
    const __m256 p3 = _mm256_permutevar_ps(_mm256_loadu_ps(xc + 24), idx);  // groups 6 | 7
    return _mm256_blend_ps(_mm256_blend_ps(_mm256_blend_ps(p0, p1, 0x22), p2, 0x44), p3, 0x88);
  }
};

// A chunk's 8 values at v in lane order s(l): int8 (its byte in the lane's top byte: value *
// 2^24 after vcvtdq2ps) or bfloat16 (its two bytes as the lane's top half: the value as a
// float32, no convert); value(v, u) (the slot readers): slot u's value (the row's tail).
struct PermI8 : I8Slot {
  static constexpr int64_t bytes = 1;
  static constexpr float unit = 0x1p-24f;
  template <int N>
  static __m256 lanes(const uint8_t* v) {
    return _mm256_cvtepi32_ps(
        _mm256_shuffle_epi8(_mm256_set1_epi64x(static_cast<long long>(load8(v))),
                            load_consts(NmPerm<N>::k.i8)));
  }
};
struct PermBf16 : Bf16Slot {
  static constexpr int64_t bytes = 2;
  static constexpr float unit = 1.0f;
  template <int N>
  static __m256 lanes(const uint8_t* v) {
    const __m128i v16 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v));
    return _mm256_castsi256_ps(
        _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(v16), load_consts(NmPerm<N>::k.bf16)));
  }
};

// One chunk: mb (its 2 metadata bytes in the low 16 bits of every lane), its 8 values at v,
// x at xc; acc += value (* 2^24 for int8) * x[slot column], lane l for slot s(l).
template <int N, class VK>
inline __m256 nm4_perm_chunk(__m256i mb, const uint8_t* v, const float* xc, __m256 acc) {
  const __m256i idx = _mm256_srlv_epi32(mb, load_consts(NmPerm<N>::k.shifts));
  return _mm256_fmadd_ps(VK::template lanes<N>(v), NmPerm<N>::gather(xc, idx), acc);
}

inline __m256i nm4_meta16(const uint8_t* m) {  // 2 bytes, no byte past them read
  uint16_t h;
  std::memcpy(&h, m, 2);
  return _mm256_set1_epi32(h);
}

// Rows [r0, r1) of out = S @ x, S N:4 (N = 1, 2) with int8 (VK = PermI8) or bfloat16
// (PermBf16) values, x (K,) unit stride; GS (int8): a.gscale (gsize a multiple of 32), else
// one sum a row (the caller scales it). Blocks of 4 chunks while a 4-byte metadata load at
// each chunk stays inside the row, then single chunks (2-byte loads), then the row's last
// slots one by one.
template <int N, class VK, bool GS>
void nm4_spmv_perm(const NmArgs<float>& a, int64_t r0, int64_t r1) {
  static_assert(!GS || VK::bytes == 1, "group scales are int8's");
  constexpr int64_t C = NmPerm<N>::cols;  // columns a chunk
  constexpr int64_t vb = 8 * VK::bytes;   // value bytes a chunk
  const int64_t Gn = a.G * N, stride = a.meta_stride, K = a.K;
  const float* __restrict__ x = a.x;
  const int64_t chunks = std::min(K / C, Gn / 8);
  // block w reads metadata bytes 8w .. 8w + 9 (4 bytes at each chunk's 2)
  const int64_t blocks = std::min(chunks / 4, stride >= 10 ? (stride - 10) / 8 + 1 : 0);
  const int64_t ahead = g_stream_ahead;  // prefetch distance (bytes), read once
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* __restrict__ vrow =
        static_cast<const uint8_t*>(a.stored.data) + i * Gn * VK::bytes;
    const uint8_t* __restrict__ mrow = a.meta + i * stride;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    I8Fold<GS> f(a.gscale, a.gs_ld, a.gsize, K, i);
    for (int64_t w = 0; w < blocks; ++w) {
      const uint8_t* vw = vrow + 4 * vb * w;
      const uint8_t* mw = mrow + 8 * w;
      const float* xw = x + 4 * C * w;
      word_prefetch(vw, mw, w, ahead);
      uint32_t m4[4];  // each chunk's 2 metadata bytes, read as 4 (inside the row)
      for (int q = 0; q < 4; ++q) std::memcpy(&m4[q], mw + 2 * q, 4);
      auto chunk = [&](int q, __m256 acc) {  // chunk q of the block into acc
        return nm4_perm_chunk<N, VK>(_mm256_set1_epi32(static_cast<int>(m4[q])), vw + q * vb,
                                     xw + q * C, acc);
      };
      // group scales fold every 32 columns: every 2 chunks of 2:4, every chunk of 1:4
      s0 = chunk(0, s0);
      if constexpr (N == 1) f.half(s0, s1, s2, s3);
      s1 = chunk(1, s1);
      f.half(s0, s1, s2, s3);
      s2 = chunk(2, s2);
      if constexpr (N == 1) f.half(s0, s1, s2, s3);
      s3 = chunk(3, s3);
      f.half(s0, s1, s2, s3);
    }
    __m256 s = f.finish(s0, s1, s2, s3);  // every full group folded (GS), or the row's sum
    for (int64_t c = 4 * blocks; c < chunks; ++c) {
      __m256 e = nm4_perm_chunk<N, VK>(nm4_meta16(mrow + 2 * c), vrow + vb * c, x + C * c,
                                       _mm256_setzero_ps());
      if constexpr (GS) e = _mm256_mul_ps(e, _mm256_set1_ps(f.scale(C * c)));
      s = _mm256_add_ps(s, e);
    }
    const float tail = nm4_row_slots<N, GS, VK>(vrow, mrow, x, 8 * chunks, Gn, K, f);
    a.out[i] = ymm_hsum(s) * VK::unit + tail;
  }
}

// Rows [r0, r1) of out = S @ x, S 1:4 with int8 values (one slot a group of 4 columns), x (K,)
// unit stride; GS: a.gscale (gsize a multiple of 32), else one sum a row (the caller scales
// it). A metadata byte holds 4 slots (16 columns): each nibble (2 groups, 8 columns) picks
// its control; a pair of bytes shares one broadcast of its 8 values (32 columns).
template <bool GS>
void nm14_spmv_i8(const NmArgs<float>& a, int64_t r0, int64_t r1) {
  const uint8_t* tb = &i8_shuffle_tables().nm14[0][0][0][0];
  constexpr int64_t kOdd = 2 * 16 * 32, kHi = 16 * 32;  // table offsets of [odd], [h = 1]
  const int64_t Gn = a.G, stride = a.meta_stride, K = a.K;
  const float* __restrict__ x = a.x;
  // whole metadata words (32 slots, 128 columns), then single bytes (4 slots, 16 columns),
  // then the row's last slots one by one
  const int64_t words = std::min({K / 128, Gn / 32, stride / 8});
  const int64_t bytes = std::min(K / 16, Gn / 4);
  const int64_t ahead = g_stream_ahead;  // prefetch distance (bytes), read once
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* __restrict__ vrow = static_cast<const uint8_t*>(a.stored.data) + i * Gn;
    const uint8_t* __restrict__ mrow = a.meta + i * stride;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    I8Fold<GS> f(a.gscale, a.gs_ld, a.gsize, K, i);
    for (int64_t w = 0; w < words; ++w) {
      const uint64_t m = load8(mrow + 8 * w);
      word_prefetch(vrow + 32 * w, mrow + 8 * w, w, ahead);
      const uint8_t* vw = vrow + 32 * w;
      const float* xw = x + 128 * w;
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {  // 2 bytes, 8 values, 32 columns: one half
        // the nibble at bit P: its control at tb (+ kHi, kOdd) + ((m >> (P - 5)) & 0x1E0)
        const uint64_t v8 = load8(vw + 8 * q);
        const int sh = 16 * q;
        const uint8_t* c0 = tb + (q ? (m >> (sh - 5)) & 0x1E0u : (m << 5) & 0x1E0u);
        const uint8_t* c1 = tb + kHi + (q ? (m >> (sh - 1)) & 0x1E0u : (m << 1) & 0x1E0u);
        const uint8_t* c2 = tb + kOdd + ((m >> (sh + 3)) & 0x1E0u);
        const uint8_t* c3 = tb + kOdd + kHi + ((m >> (sh + 7)) & 0x1E0u);
        s0 = _mm256_fmadd_ps(i8_lanes(v8, c0), _mm256_loadu_ps(xw + 32 * q), s0);
        s1 = _mm256_fmadd_ps(i8_lanes(v8, c1), _mm256_loadu_ps(xw + 32 * q + 8), s1);
        s2 = _mm256_fmadd_ps(i8_lanes(v8, c2), _mm256_loadu_ps(xw + 32 * q + 16), s2);
        s3 = _mm256_fmadd_ps(i8_lanes(v8, c3), _mm256_loadu_ps(xw + 32 * q + 24), s3);
        f.half(s0, s1, s2, s3);
      }
    }
    __m256 s = f.finish(s0, s1, s2, s3);  // every full group folded (GS), or the row's sum
    for (int64_t j = 8 * words; j < bytes; ++j) {
      const unsigned b = mrow[j];
      uint32_t v4;
      std::memcpy(&v4, vrow + 4 * j, 4);
      __m256 e0 = i8_lanes(v4, tb + 32 * (b & 0xFu));
      __m256 e1 = i8_lanes(v4, tb + kHi + 32 * (b >> 4));
      if constexpr (GS) {
        const __m256 sc = _mm256_set1_ps(f.scale(16 * j));  // 16 columns in one group
        e0 = _mm256_mul_ps(e0, sc);
        e1 = _mm256_mul_ps(e1, sc);
      }
      s = _mm256_fmadd_ps(e0, _mm256_loadu_ps(x + 16 * j), s);
      s = _mm256_fmadd_ps(e1, _mm256_loadu_ps(x + 16 * j + 8), s);
    }
    const float tail = nm4_row_slots<1, GS>(vrow, mrow, x, 4 * bytes, Gn, K, f);
    a.out[i] = ymm_hsum(s) * 0x1p-24f + tail;
  }
}
#endif


// The table's bitmap SpMV. With group scales (a.gscale, int8 values: bitmap_spmm_grouped): the
// VBMI2 kernel where gsize is a multiple of 64 (AVX-512 with VBMI2), else the shuffle kernel at
// every vector level where gsize is a multiple of 32, else bit by bit. With one scale a row,
// int8 and bfloat16 values take the shuffle kernel on AVX2 and the VBMI2 expand kernel on
// AVX-512 where the CPU has it (spmv_vbmi_kernels.h; else the AVX-512 expand-load path).
// Before all of these, int8 values (one scale a row, or groups of 64k columns) times a
// bfloat16 / float16 x take the integer kernel where the CPU has VBMI2 and VNNI
// (spmv_vnni_kernels.h).
template <class T>
int64_t bitmap_spmv_entry(const BitmapArgs<T>& a, int64_t r0, int64_t r1) {
  if constexpr (std::is_same_v<T, float>) {
#if SPARSE_OPS_ISA == 3
    // int8 values (one scale a row, or groups of whole words) times a bf16 / f16 x
    if (a.stored.dt == DT::i8 && a.x_narrow && (!a.gscale || a.gsize % 64 == 0) &&
        g_bitmap_vnni.load(std::memory_order_relaxed) == 1) {
      const int64_t r = avx512vbmi_vnni::bitmap_spmv_vnni_rows(a, r0, r1);
      if (r != kSpmvNotTaken) return r;
    }
#endif
    if (a.gscale) {
#if SPARSE_OPS_ISA == 3
      if (a.gsize % 64 == 0 && g_bitmap_vbmi.load(std::memory_order_relaxed) == 1 &&
          x_fits_shuffle(a.x, a.K))
        return avx512vbmi::bitmap_spmv_vbmi_rows(a, r0, r1);
#endif
#if SPARSE_OPS_ISA >= 2
      if (a.gsize % 32 == 0 && x_fits_shuffle(a.x, a.K))
        return bitmap_spmv_shuffle<I8Lanes, true>(a, r0, r1);
#endif
      return bitmap_spmv_bits<float, I8, true>(a, r0, r1);
    }
#if SPARSE_OPS_ISA == 2
    if ((a.stored.dt == DT::i8 || a.stored.dt == DT::bf16) && x_fits_shuffle(a.x, a.K))
      return a.stored.dt == DT::i8 ? bitmap_spmv_shuffle<I8Lanes, false>(a, r0, r1)
                                   : bitmap_spmv_shuffle<Bf16Lanes, false>(a, r0, r1);
#elif SPARSE_OPS_ISA == 3
    if ((a.stored.dt == DT::i8 || a.stored.dt == DT::bf16) &&
        g_bitmap_vbmi.load(std::memory_order_relaxed) == 1 && x_fits_shuffle(a.x, a.K))
      return avx512vbmi::bitmap_spmv_vbmi_rows(a, r0, r1);
#endif
  }
  return bitmap_spmv_rows<T>(a, r0, r1);
}

// The table's N:M product: on AVX2 the 2:4 and 1:4 SpMV by in-lane permutes of x (int8 values
// with one scale a row, applied by the caller, or group scales of a multiple of 32 columns;
// bfloat16 values), or with SPARSE_OPS_NM4_PERM=0 the shuffle kernels (int8 only).
template <class T>
void nm_spmm_entry(const NmArgs<T>& a, int64_t r0, int64_t r1, int64_t n0, int64_t n1) {
#if SPARSE_OPS_ISA == 2
  if constexpr (std::is_same_v<T, float>) {
    const bool perm = g_nm4_perm.load(std::memory_order_relaxed) == 1;
    // a 2:4 or 1:4 SpMV (2-bit positions)
    const bool nm4 = a.N == 1 && n0 < n1 && (a.n == 1 || a.n == 2) && a.m == 4 && a.bits == 2;
    if (nm4 && a.stored.dt == DT::bf16 && perm && !a.gscale && x_fits_shuffle(a.x, a.K))
      return a.n == 2 ? nm4_spmv_perm<2, PermBf16, false>(a, r0, r1)
                      : nm4_spmv_perm<1, PermBf16, false>(a, r0, r1);
    if (nm4 && a.stored.dt == DT::i8 && (!a.gscale || a.gsize % 32 == 0) &&
        x_fits_shuffle(a.x, a.K)) {
      if (perm && a.n == 2)
        return a.gscale ? nm4_spmv_perm<2, PermI8, true>(a, r0, r1)
                        : nm4_spmv_perm<2, PermI8, false>(a, r0, r1);
      if (perm)
        return a.gscale ? nm4_spmv_perm<1, PermI8, true>(a, r0, r1)
                        : nm4_spmv_perm<1, PermI8, false>(a, r0, r1);
      if (a.n == 2)
        return a.gscale ? nm24_spmv_i8<true>(a, r0, r1) : nm24_spmv_i8<false>(a, r0, r1);
      return a.gscale ? nm14_spmv_i8<true>(a, r0, r1) : nm14_spmv_i8<false>(a, r0, r1);
    }
  }
#endif
  nm_spmm_rows<T>(a, r0, r1, n0, n1);
}

}  // namespace ISA_NS
}  // namespace sparse_ops
