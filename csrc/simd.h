// Per-ISA vector wrappers V<T> and tuning constants, used by the kernel templates.
//
// Included only from isa_*.cpp, after `#pragma GCC target(...)`, with two macros set:
//   SPARSE_OPS_ISA  1 = scalar, 2 = AVX2+FMA, 3 = AVX-512 (F, BW, VL, DQ)
//   ISA_NS          the namespace the kernels of this ISA live in (scalar / avx2 / avx512)
// Every symbol lands in sparse_ops::ISA_NS, so the three builds never collide (no ODR mixing
// of code compiled for different targets).
//
// V<T> interface (W lanes of T):
//   reg zero(), set1(T), load(p), loadn(p, n), store(p, r), storen(p, r, n)   n in [0, W]
//   reg fma(a, b, c) = a * b + c, add, mul;  T hsum(reg); hsum4(r0, r1, r2, r3, T out[4])
//   reg lane(r, q): lane q of r in every lane (q a constant after unrolling: one permute)
//   ivec idx(const int16_t*|const int32_t*), idxn(p, n)   W column indices as int32 lanes
//   reg gather(base, ivec), gathern(base, ivec, n)        base[idx[l]] (lanes >= n give 0)
//   store_idx(int32_t*, ivec), ivec iset1(int32_t), iadd(ivec, ivec), imul(ivec, int32_t)
//   vmask valid(idx, kv), validn(idx, kv, n): lanes (< n) with 0 <= idx < kv (kv = iset1(K))
//   vmask mand(a, b), mtrue(); bool all(m), alln(m, n)
//   reg gatherm(base, idx, m)                            base[idx[l]] where m (else 0)
//   Dec dec(b); ivec nm_cols(gbase, bits, Dec)           N:M columns of W consecutive slots:
//       gbase[l] + ((bits >> (l * b)) & (2^b - 1)); nm_pos(bits, Dec) without gbase
//   kPerm2, perm2n(lo, hi, idx, n): lanes l < n of the 2W-lane table (lo, hi) at idx[l];
//       perm4n(t0, t1, t2, t3, idx, n) likewise from a 4W-lane table
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace sparse_ops {
namespace ISA_NS {

inline float bf16_bits_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float f16_bits_to_f32(uint16_t h);

// A stored value as the compute type.
inline float scalar_of(float v) { return v; }
inline double scalar_of(double v) { return v; }
inline float scalar_of(Bf16 h) { return bf16_bits_to_f32(h.bits); }
inline float scalar_of(F16 h) { return f16_bits_to_f32(h.bits); }
inline float scalar_of(I8 q) { return static_cast<float>(q.bits); }

inline float f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);  // inf / nan
  } else if (exp != 0) {
    u = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do {
      man <<= 1;
      ++e;
    } while (!(man & 0x400u));
    u = sign | ((112u - static_cast<uint32_t>(e)) << 23) | ((man & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <class T>
struct V;

inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

// The next BYTES of a stream read once, g_stream_ahead bytes ahead of p, into L2 (one
// prefetch a cache line, at least one): called once per BYTES of progress along the stream.
template <int64_t BYTES>
inline void prefetch_stream(const void* p) {
  const char* q = static_cast<const char*>(p) + g_stream_ahead;
  constexpr int64_t lines = BYTES / 64 > 0 ? BYTES / 64 : 1;
#pragma GCC unroll 8
  for (int64_t l = 0; l < lines; ++l) _mm_prefetch(q + 64 * l, _MM_HINT_T1);
}

// The two streams of a 64-bit metadata word w (a bitmap word, or the 32 slots of an N:4 row)
// `ahead` bytes on, into L2: the line of its values (32 or 64 bytes a word at the usual
// densities), and every 8th word the line of the metadata (8 bytes a word); none for ahead
// <= 0. The callers read the distance once a call (g_stream_ahead, or g_shuffle_ahead for the
// AVX2 bitmap loop, which measured faster without it on Zen 3: see bitmap_spmv_shuffle).
inline void word_prefetch(const uint8_t* vals, const uint8_t* meta, int64_t w, int64_t ahead) {
  if (ahead <= 0) return;
  _mm_prefetch(reinterpret_cast<const char*>(vals + ahead), _MM_HINT_T1);
  if ((w & 7) == 0) _mm_prefetch(reinterpret_cast<const char*>(meta + ahead), _MM_HINT_T1);
}

// The rows [r0, r1) of a SpMV, with PAIRS two at a time from the two halves of the range (rows
// i and i + h: twice the streams in flight), then the odd last row; else one by one:
// fn(std::integral_constant<int, R>{}, rows) for R rows, returning a malformed row or -1. The
// first malformed row ends the walk and is returned, else -1.
template <bool PAIRS, class F>
inline int64_t for_row_pairs(int64_t r0, int64_t r1, F&& fn) {
  int64_t i = r0;
  if constexpr (PAIRS) {
    const int64_t h = (r1 - r0) / 2;
    for (; i < r0 + h; ++i) {
      const int64_t pair[2] = {i, i + h};
      const int64_t bad = fn(std::integral_constant<int, 2>{}, pair);
      if (bad >= 0) return bad;
    }
    i = r0 + 2 * h;
  }
  for (; i < r1; ++i) {
    const int64_t bad = fn(std::integral_constant<int, 1>{}, &i);
    if (bad >= 0) return bad;
  }
  return -1;
}

// [p, p + bytes) into L2, one prefetch a cache line.
inline void prefetch_lines(const void* p, int64_t bytes) {
  const char* q = static_cast<const char*>(p);
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(q + o, _MM_HINT_T1);
}

// prefetch_lines for data read next (the panels' next chunk of a row), unless
// SPARSE_OPS_PREFETCH_BYTES=0 turned prefetching off (A/B runs).
inline void prefetch_next(const void* p, int64_t bytes) {
  if (g_stream_ahead > 0) prefetch_lines(p, bytes);
}

#if SPARSE_OPS_ISA == 3
// ----------------------------------------------------------------------------- AVX-512

inline __mmask16 mask16(int n) { return static_cast<__mmask16>(0xFFFFu >> (16 - n)); }
inline __mmask8 mask8(int n) { return static_cast<__mmask8>(0xFFu >> (8 - n)); }

template <>
struct V<float> {
  using T = float;
  using reg = __m512;
  using ivec = __m512i;
  static constexpr int W = 16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(T a) { return _mm512_set1_ps(a); }
  static reg lane(reg v, int q) { return _mm512_permutexvar_ps(_mm512_set1_epi32(q), v); }
  static reg load(const T* p) { return _mm512_loadu_ps(p); }
  static reg loadn(const T* p, int n) { return _mm512_maskz_loadu_ps(mask16(n), p); }
  static reg from_bf16(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static reg load(const Bf16* p) {
    return from_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static reg loadn(const Bf16* p, int n) { return from_bf16(_mm256_maskz_loadu_epi16(mask16(n), p)); }
  static reg load(const F16* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static reg loadn(const F16* p, int n) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(n), p)); }
  static reg from_i8(__m128i q) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)); }
  static reg load(const I8* p) {
    return from_i8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static reg loadn(const I8* p, int n) { return from_i8(_mm_maskz_loadu_epi8(mask16(n), p)); }
  static void store(T* p, reg a) { _mm512_storeu_ps(p, a); }
  static void storen(T* p, reg a, int n) { _mm512_mask_storeu_ps(p, mask16(n), a); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static T hsum(reg a) { return _mm512_reduce_add_ps(a); }
  static __m128 hsum4v(reg s0, reg s1, reg s2, reg s3) {  // [sum s0, sum s1, sum s2, sum s3]
    const __m512 a = _mm512_add_ps(_mm512_unpacklo_ps(s0, s1), _mm512_unpackhi_ps(s0, s1));
    const __m512 b = _mm512_add_ps(_mm512_unpacklo_ps(s2, s3), _mm512_unpackhi_ps(s2, s3));
    const __m512 c = _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x44), _mm512_shuffle_ps(a, b, 0xEE));
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(c), 1));
    const __m256 d = _mm256_add_ps(_mm512_castps512_ps256(c), hi);
    return _mm_add_ps(_mm256_castps256_ps128(d), _mm256_extractf128_ps(d, 1));
  }
  static void hsum4(reg s0, reg s1, reg s2, reg s3, T* out) {
    _mm_storeu_ps(out, hsum4v(s0, s1, s2, s3));
  }
  static ivec idx(const int32_t* p) { return _mm512_loadu_si512(p); }
  static void store_idx(int32_t* p, ivec v) { _mm512_storeu_si512(p, v); }
  static ivec iset1(int32_t v) { return _mm512_set1_epi32(v); }
  using vmask = __mmask16;
  static vmask valid(ivec i, ivec kv) { return _mm512_cmplt_epu32_mask(i, kv); }
  static vmask validn(ivec i, ivec kv, int n) { return valid(i, kv) & mask16(n); }
  static vmask mand(vmask a, vmask b) { return static_cast<vmask>(a & b); }
  static vmask mtrue() { return 0xFFFF; }
  static bool all(vmask m) { return m == 0xFFFF; }
  static bool alln(vmask m, int n) { return m == mask16(n); }
  static reg gatherm(const T* base, ivec i, vmask m) {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, i, base, 4);
  }
  static ivec idx(const int16_t* p) {
    return _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static ivec idxn(const int32_t* p, int n) { return _mm512_maskz_loadu_epi32(mask16(n), p); }
  static ivec idxn(const int16_t* p, int n) {
    return _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(mask16(n), p));
  }
  static reg gather(const T* base, ivec i) { return _mm512_i32gather_ps(i, base, 4); }
  static reg gathern(const T* base, ivec i, int n) {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask16(n), i, base, 4);
  }
  struct Dec {
    __m512i sel, sh, bm;
  };
  static Dec dec(int b) {
    const __m512i off = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(b));
    return {_mm512_srli_epi32(off, 5), _mm512_and_si512(off, _mm512_set1_epi32(31)),
            _mm512_set1_epi32((1 << b) - 1)};
  }
  static ivec nm_pos(uint64_t bits, const Dec& d) {
    const __m512i w = _mm512_permutexvar_epi32(
        d.sel, _mm512_castsi128_si512(_mm_cvtsi64_si128(static_cast<long long>(bits))));
    return _mm512_and_si512(_mm512_srlv_epi32(w, d.sh), d.bm);
  }
  static ivec nm_cols(const int32_t* gbase, uint64_t bits, const Dec& d) {
    return _mm512_add_epi32(_mm512_loadu_si512(gbase), nm_pos(bits, d));
  }
  // goff + nm_pos for 16 slots of b <= 2 bits (the 32 bits at p) when m == 2^b: goff's
  // multiples of m leave the field's bits free, so OR adds. A broadcast from memory (a load
  // port), a shift and one ternary logic op: three vector uops fewer on ports 0 and 5 than
  // nm_pos + iadd (vmovq, vpermd, vpand, vpaddd), which bound the 2:4 SpMV there.
  static constexpr bool kNmIdxPow2 = true;
  static ivec nm_idx_pow2(const uint8_t* p, ivec goff, const Dec& d) {
    int32_t w;
    std::memcpy(&w, p, 4);
    return _mm512_ternarylogic_epi32(_mm512_srlv_epi32(_mm512_set1_epi32(w), d.sh), d.bm, goff,
                                     0xEA);  // (A & B) | C
  }
  static ivec iadd(ivec a, ivec b) { return _mm512_add_epi32(a, b); }
  static ivec imul(ivec a, int32_t k) { return _mm512_mullo_epi32(a, _mm512_set1_epi32(k)); }
  // Lanes l < n of the 2W-lane table (lo, hi) at idx[l]; other lanes 0.
  static constexpr bool kPerm2 = true;
  static reg perm2n(reg lo, reg hi, ivec idx, int n) {
    return n == W ? _mm512_permutex2var_ps(lo, idx, hi)
                  : _mm512_maskz_permutex2var_ps(mask16(n), lo, idx, hi);
  }
  // Lanes l < n of the 4W-lane table (t0, t1, t2, t3) at idx[l]; other lanes 0.
  static reg perm4n(reg t0, reg t1, reg t2, reg t3, ivec idx, int n) {
    const __mmask16 upper = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
    const reg lo = _mm512_permutex2var_ps(t0, idx, t1);
    const reg hi = _mm512_permutex2var_ps(t2, idx, t3);
    return _mm512_maskz_mov_ps(mask16(n), _mm512_mask_blend_ps(upper, lo, hi));
  }
};

template <>
struct V<double> {
  using T = double;
  using reg = __m512d;
  using ivec = __m256i;
  static constexpr int W = 8;
  static reg zero() { return _mm512_setzero_pd(); }
  static reg set1(T a) { return _mm512_set1_pd(a); }
  static reg lane(reg v, int q) { return _mm512_permutexvar_pd(_mm512_set1_epi64(q), v); }
  static reg load(const T* p) { return _mm512_loadu_pd(p); }
  static reg loadn(const T* p, int n) { return _mm512_maskz_loadu_pd(mask8(n), p); }
  static void store(T* p, reg a) { _mm512_storeu_pd(p, a); }
  static void storen(T* p, reg a, int n) { _mm512_mask_storeu_pd(p, mask8(n), a); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  static T hsum(reg a) { return _mm512_reduce_add_pd(a); }
  static void hsum4(reg s0, reg s1, reg s2, reg s3, T* out) {
    const __m512d a = _mm512_add_pd(_mm512_unpacklo_pd(s0, s1), _mm512_unpackhi_pd(s0, s1));
    const __m512d b = _mm512_add_pd(_mm512_unpacklo_pd(s2, s3), _mm512_unpackhi_pd(s2, s3));
    // a: per 128-bit lane [s0 part, s1 part]; b likewise for s2, s3
    const __m512d c =
        _mm512_add_pd(_mm512_shuffle_f64x2(a, b, 0x88), _mm512_shuffle_f64x2(a, b, 0xDD));
    // c lanes: [a0+a1, a2+a3, b0+b1, b2+b3] (128-bit lanes)
    const __m512d d = _mm512_add_pd(c, _mm512_shuffle_f64x2(c, c, 0xB1));
    // d lanes: [a, a, b, b] full sums per pair
    _mm_storeu_pd(out, _mm512_castpd512_pd128(d));
    _mm_storeu_pd(out + 2, _mm512_extractf64x2_pd(d, 2));
  }
  static ivec idx(const int32_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static void store_idx(int32_t* p, ivec v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  }
  static ivec iset1(int32_t v) { return _mm256_set1_epi32(v); }
  using vmask = __mmask8;
  static vmask valid(ivec i, ivec kv) { return _mm256_cmplt_epu32_mask(i, kv); }
  static vmask validn(ivec i, ivec kv, int n) { return valid(i, kv) & mask8(n); }
  static vmask mand(vmask a, vmask b) { return static_cast<vmask>(a & b); }
  static vmask mtrue() { return 0xFF; }
  static bool all(vmask m) { return m == 0xFF; }
  static bool alln(vmask m, int n) { return m == mask8(n); }
  static reg gatherm(const T* base, ivec i, vmask m) {
    return _mm512_mask_i32gather_pd(_mm512_setzero_pd(), m, i, base, 8);
  }
  static ivec idx(const int16_t* p) {
    return _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static ivec idxn(const int32_t* p, int n) { return _mm256_maskz_loadu_epi32(mask8(n), p); }
  static ivec idxn(const int16_t* p, int n) {
    return _mm256_cvtepi16_epi32(_mm_maskz_loadu_epi16(mask8(n), p));
  }
  static reg gather(const T* base, ivec i) { return _mm512_i32gather_pd(i, base, 8); }
  static reg gathern(const T* base, ivec i, int n) {
    return _mm512_mask_i32gather_pd(_mm512_setzero_pd(), mask8(n), i, base, 8);
  }
  struct Dec {
    __m256i sh, bm;
  };
  static Dec dec(int b) {
    return {_mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(b)),
            _mm256_set1_epi32((1 << b) - 1)};
  }
  static ivec nm_pos(uint64_t bits, const Dec& d) {  // 8 * b <= 32 bits
    const __m256i w = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(bits)));
    return _mm256_and_si256(_mm256_srlv_epi32(w, d.sh), d.bm);
  }
  static ivec nm_cols(const int32_t* gbase, uint64_t bits, const Dec& d) {
    return _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gbase)),
                            nm_pos(bits, d));
  }
  static ivec iadd(ivec a, ivec b) { return _mm256_add_epi32(a, b); }
  static ivec imul(ivec a, int32_t k) { return _mm256_mullo_epi32(a, _mm256_set1_epi32(k)); }
  static constexpr bool kPerm2 = true;
  static reg perm2n(reg lo, reg hi, ivec idx, int n) {
    return _mm512_maskz_permutex2var_pd(mask8(n), lo, _mm512_cvtepi32_epi64(idx), hi);
  }
  static reg perm4n(reg t0, reg t1, reg t2, reg t3, ivec idx, int n) {
    const __m512i i64 = _mm512_cvtepi32_epi64(idx);
    const __mmask8 upper = _mm512_test_epi64_mask(i64, _mm512_set1_epi64(16));
    const reg lo = _mm512_permutex2var_pd(t0, i64, t1);
    const reg hi = _mm512_permutex2var_pd(t2, i64, t3);
    return _mm512_maskz_mov_pd(mask8(n), _mm512_mask_blend_pd(upper, lo, hi));
  }
};

struct Tune {
  static constexpr int csr_nv = 4;       // vectors per CSR output-row tile (x2 accumulator sets)
  static constexpr int bsr_rb = 4;       // BSR micro-kernel: rows x vectors of accumulators
  static constexpr int bsr_nv = 4;
  // dense-panel micro-kernel (panel_kernels.h): 24 accumulators, 4 x vectors, a broadcast
  static constexpr int panel_rb = 6;
  static constexpr int panel_nv = 4;
  static constexpr int bsr_mv_rb = 16;   // BSR SpMV: rows per accumulator group
  static constexpr int sd_ra = 4;        // BSR SDDMM: a-rows x b-rows of dot products
  static constexpr int sd_cb = 4;
  static constexpr int nm_nv = 8;        // N:M output-row tile
  static constexpr int nm_unroll = 2;    // N:M slots in flight (accumulator sets)
};

#elif SPARSE_OPS_ISA == 2
// ----------------------------------------------------------------------------- AVX2 + FMA

inline __m256i lanes_lt(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i lanes_lt64(int n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
inline __m128i lanes_lt32x4(int n) {
  return _mm_cmpgt_epi32(_mm_set1_epi32(n), _mm_setr_epi32(0, 1, 2, 3));
}

template <>
struct V<float> {
  using T = float;
  using reg = __m256;
  using ivec = __m256i;
  static constexpr int W = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(T a) { return _mm256_set1_ps(a); }
  static reg lane(reg v, int q) { return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(q)); }
  static reg load(const T* p) { return _mm256_loadu_ps(p); }
  static reg loadn(const T* p, int n) { return _mm256_maskload_ps(p, lanes_lt(n)); }
  static __m128i load8h(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
  static __m128i load8hn(const void* p, int n) {  // no 16-bit masked load in AVX2
    alignas(16) uint16_t b[8] = {};
    std::memcpy(b, p, static_cast<size_t>(n) * 2);
    return _mm_load_si128(reinterpret_cast<const __m128i*>(b));
  }
  static reg from_bf16(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static reg load(const Bf16* p) { return from_bf16(load8h(p)); }
  static reg loadn(const Bf16* p, int n) { return from_bf16(load8hn(p, n)); }
  static reg load(const F16* p) { return _mm256_cvtph_ps(load8h(p)); }
  static reg loadn(const F16* p, int n) { return _mm256_cvtph_ps(load8hn(p, n)); }
  static reg from_i8(__m128i q) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)); }
  static reg load(const I8* p) {
    return from_i8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static reg loadn(const I8* p, int n) {
    int64_t b = 0;
    std::memcpy(&b, p, static_cast<size_t>(n));
    return from_i8(_mm_cvtsi64_si128(b));
  }
  static void store(T* p, reg a) { _mm256_storeu_ps(p, a); }
  static void storen(T* p, reg a, int n) { _mm256_maskstore_ps(p, lanes_lt(n), a); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static T hsum(reg a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static void hsum4(reg s0, reg s1, reg s2, reg s3, T* out) {
    const __m256 c = _mm256_hadd_ps(_mm256_hadd_ps(s0, s1), _mm256_hadd_ps(s2, s3));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1)));
  }
  static ivec idx(const int32_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static void store_idx(int32_t* p, ivec v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  }
  static ivec iset1(int32_t v) { return _mm256_set1_epi32(v); }
  using vmask = __m256i;
  static vmask valid(ivec i, ivec kv) {
    return _mm256_and_si256(_mm256_cmpgt_epi32(i, _mm256_set1_epi32(-1)),
                            _mm256_cmpgt_epi32(kv, i));
  }
  static vmask validn(ivec i, ivec kv, int n) {
    return _mm256_and_si256(valid(i, kv), lanes_lt(n));
  }
  static vmask mand(vmask a, vmask b) { return _mm256_and_si256(a, b); }
  static vmask mtrue() { return _mm256_set1_epi32(-1); }
  static bool all(vmask m) { return _mm256_movemask_ps(_mm256_castsi256_ps(m)) == 0xFF; }
  static bool alln(vmask m, int n) {
    return _mm256_movemask_ps(_mm256_castsi256_ps(m)) == (1 << n) - 1;
  }
  static reg gatherm(const T* base, ivec i, vmask m) {
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, i, _mm256_castsi256_ps(m), 4);
  }
  static ivec idx(const int16_t* p) {
    return _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static ivec idxn(const int32_t* p, int n) {
    return _mm256_maskload_epi32(reinterpret_cast<const int*>(p), lanes_lt(n));
  }
  static ivec idxn(const int16_t* p, int n) {
    int16_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(t, p, sizeof(int16_t) * static_cast<size_t>(n));
    return idx(t);
  }
  static reg gather(const T* base, ivec i) {  // masked form: no undefined source register
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, i,
                                    _mm256_castsi256_ps(_mm256_set1_epi32(-1)), 4);
  }
  static reg gathern(const T* base, ivec i, int n) {
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, i,
                                    _mm256_castsi256_ps(lanes_lt(n)), 4);
  }
  struct Dec {
    __m256i sh, bm;
  };
  static Dec dec(int b) {
    return {_mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(b)),
            _mm256_set1_epi32((1 << b) - 1)};
  }
  static ivec nm_pos(uint64_t bits, const Dec& d) {  // 8 * b <= 32 bits
    const __m256i w = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(bits)));
    return _mm256_and_si256(_mm256_srlv_epi32(w, d.sh), d.bm);
  }
  static ivec nm_cols(const int32_t* gbase, uint64_t bits, const Dec& d) {
    return _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gbase)),
                            nm_pos(bits, d));
  }
  static ivec iadd(ivec a, ivec b) { return _mm256_add_epi32(a, b); }
  static ivec imul(ivec a, int32_t k) { return _mm256_mullo_epi32(a, _mm256_set1_epi32(k)); }
  // Lanes l < n of the 2W-lane table (lo, hi) at idx[l]; other lanes 0. Two in-lane-crossing
  // permutes and a blend: no gather (microcoded and slow on Zen 2/3).
  static constexpr bool kPerm2 = true;
  static reg perm2(reg lo, reg hi, ivec idx) {
    const reg a = _mm256_permutevar8x32_ps(lo, idx);  // uses idx & 7
    const reg b = _mm256_permutevar8x32_ps(hi, idx);
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));  // bit 3
  }
  static reg keep_n(reg r, int n) {
    return n >= W ? r : _mm256_and_ps(r, _mm256_castsi256_ps(lanes_lt(n)));
  }
  static reg perm2n(reg lo, reg hi, ivec idx, int n) { return keep_n(perm2(lo, hi, idx), n); }
  // Lanes l < n of the 4W-lane table (t0, t1, t2, t3) at idx[l]; other lanes 0.
  static reg perm4n(reg t0, reg t1, reg t2, reg t3, ivec idx, int n) {
    const reg lo = perm2(t0, t1, idx), hi = perm2(t2, t3, idx);
    return keep_n(
        _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 27))), n);  // bit 4
  }
};

template <>
struct V<double> {
  using T = double;
  using reg = __m256d;
  using ivec = __m128i;
  static constexpr int W = 4;
  static reg zero() { return _mm256_setzero_pd(); }
  static reg set1(T a) { return _mm256_set1_pd(a); }
  static reg lane(reg v, int q) {
    const __m256i i = _mm256_setr_epi32(2 * q, 2 * q + 1, 2 * q, 2 * q + 1, 2 * q, 2 * q + 1,
                                        2 * q, 2 * q + 1);
    return _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), i));
  }
  static reg load(const T* p) { return _mm256_loadu_pd(p); }
  static reg loadn(const T* p, int n) { return _mm256_maskload_pd(p, lanes_lt64(n)); }
  static void store(T* p, reg a) { _mm256_storeu_pd(p, a); }
  static void storen(T* p, reg a, int n) { _mm256_maskstore_pd(p, lanes_lt64(n), a); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
  static T hsum(reg a) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }
  static void hsum4(reg s0, reg s1, reg s2, reg s3, T* out) {
    const __m256d a = _mm256_hadd_pd(s0, s1);  // [s0 01, s1 01, s0 23, s1 23]
    const __m256d b = _mm256_hadd_pd(s2, s3);
    _mm_storeu_pd(out, _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1)));
    _mm_storeu_pd(out + 2, _mm_add_pd(_mm256_castpd256_pd128(b), _mm256_extractf128_pd(b, 1)));
  }
  static ivec idx(const int32_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
  static void store_idx(int32_t* p, ivec v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
  static ivec iset1(int32_t v) { return _mm_set1_epi32(v); }
  using vmask = __m128i;
  static vmask valid(ivec i, ivec kv) {
    return _mm_and_si128(_mm_cmpgt_epi32(i, _mm_set1_epi32(-1)), _mm_cmpgt_epi32(kv, i));
  }
  static vmask validn(ivec i, ivec kv, int n) {
    return _mm_and_si128(valid(i, kv), lanes_lt32x4(n));
  }
  static vmask mand(vmask a, vmask b) { return _mm_and_si128(a, b); }
  static vmask mtrue() { return _mm_set1_epi32(-1); }
  static bool all(vmask m) { return _mm_movemask_ps(_mm_castsi128_ps(m)) == 0xF; }
  static bool alln(vmask m, int n) {
    return _mm_movemask_ps(_mm_castsi128_ps(m)) == (1 << n) - 1;
  }
  static reg gatherm(const T* base, ivec i, vmask m) {
    return _mm256_mask_i32gather_pd(_mm256_setzero_pd(), base, i,
                                    _mm256_castsi256_pd(_mm256_cvtepi32_epi64(m)), 8);
  }
  static ivec idx(const int16_t* p) {
    return _mm_cvtepi16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static ivec idxn(const int32_t* p, int n) {
    return _mm_maskload_epi32(reinterpret_cast<const int*>(p), lanes_lt32x4(n));
  }
  static ivec idxn(const int16_t* p, int n) {
    int16_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(t, p, sizeof(int16_t) * static_cast<size_t>(n));
    return idx(t);
  }
  static reg gather(const T* base, ivec i) {
    return _mm256_mask_i32gather_pd(_mm256_setzero_pd(), base, i,
                                    _mm256_castsi256_pd(_mm256_set1_epi64x(-1)), 8);
  }
  static reg gathern(const T* base, ivec i, int n) {
    return _mm256_mask_i32gather_pd(_mm256_setzero_pd(), base, i,
                                    _mm256_castsi256_pd(lanes_lt64(n)), 8);
  }
  struct Dec {
    __m128i sh, bm;
  };
  static Dec dec(int b) {
    return {_mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(b)),
            _mm_set1_epi32((1 << b) - 1)};
  }
  static ivec nm_pos(uint64_t bits, const Dec& d) {
    const __m128i w = _mm_set1_epi32(static_cast<int>(static_cast<uint32_t>(bits)));
    return _mm_and_si128(_mm_srlv_epi32(w, d.sh), d.bm);
  }
  static ivec nm_cols(const int32_t* gbase, uint64_t bits, const Dec& d) {
    return _mm_add_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gbase)),
                         nm_pos(bits, d));
  }
  static ivec iadd(ivec a, ivec b) { return _mm_add_epi32(a, b); }
  static ivec imul(ivec a, int32_t k) { return _mm_mullo_epi32(a, _mm_set1_epi32(k)); }
  static constexpr bool kPerm2 = false;
  static reg perm2n(reg, reg, ivec, int) { return zero(); }
  static reg perm4n(reg, reg, reg, reg, ivec, int) { return zero(); }
};

struct Tune {
  static constexpr int csr_nv = 4;
  static constexpr int bsr_rb = 4;
  static constexpr int bsr_nv = 2;
  // dense-panel micro-kernel (panel_kernels.h): 12 accumulators (4-cycle FMA x 2 ports
  // + margin), 2 x vectors, a broadcast
  static constexpr int panel_rb = 6;
  static constexpr int panel_nv = 2;
  static constexpr int bsr_mv_rb = 8;
  static constexpr int sd_ra = 2;
  static constexpr int sd_cb = 4;
  static constexpr int nm_nv = 8;      // 64 columns: 8 accumulators, fewer passes over S
  static constexpr int nm_unroll = 1;  // 8 chains already cover the FMA latency at NV = 8
};

#else
// ----------------------------------------------------------------------------- portable
// No SIMD intrinsics: a "vector" is a small array of W lanes, with plain loops the compiler
// can vectorise for the baseline target (SSE2 on x86-64) or keep scalar.

template <class TT>
struct V {
  using T = TT;
  static constexpr int W = 32 / static_cast<int>(sizeof(T));  // 8 floats, 4 doubles
  struct reg {
    T v[W];
  };
  struct ivec {
    int32_t v[W];
  };
  using vmask = uint32_t;  // bit l: lane l
  static reg zero() {
    reg r;
    for (int l = 0; l < W; ++l) r.v[l] = T(0);
    return r;
  }
  static reg set1(T a) {
    reg r;
    for (int l = 0; l < W; ++l) r.v[l] = a;
    return r;
  }
  static reg lane(const reg& v, int q) { return set1(v.v[q]); }
  static reg load(const T* p) {
    reg r;
    for (int l = 0; l < W; ++l) r.v[l] = p[l];
    return r;
  }
  static reg loadn(const T* p, int n) {
    reg r;
    for (int l = 0; l < W; ++l) r.v[l] = l < n ? p[l] : T(0);
    return r;
  }
  // Any reduced storage type (value_types.h), widened through its scalar_of().
  template <class H, class = std::enable_if_t<is_reduced(H::dt)>>
  static reg load(const H* p) {
    reg r;
    for (int l = 0; l < W; ++l) r.v[l] = static_cast<T>(scalar_of(p[l]));
    return r;
  }
  template <class H, class = std::enable_if_t<is_reduced(H::dt)>>
  static reg loadn(const H* p, int n) {
    reg r;
    for (int l = 0; l < W; ++l) r.v[l] = l < n ? static_cast<T>(scalar_of(p[l])) : T(0);
    return r;
  }
  static void store(T* p, reg a) {
    for (int l = 0; l < W; ++l) p[l] = a.v[l];
  }
  static void storen(T* p, reg a, int n) {
    for (int l = 0; l < n; ++l) p[l] = a.v[l];
  }
  static reg fma(reg a, reg b, reg c) {
    for (int l = 0; l < W; ++l) c.v[l] += a.v[l] * b.v[l];
    return c;
  }
  static reg add(reg a, reg b) {
    for (int l = 0; l < W; ++l) a.v[l] += b.v[l];
    return a;
  }
  static reg mul(reg a, reg b) {
    for (int l = 0; l < W; ++l) a.v[l] *= b.v[l];
    return a;
  }
  static T hsum(reg a) {
    T s = T(0);
    for (int l = 0; l < W; ++l) s += a.v[l];
    return s;
  }
  static void hsum4(reg s0, reg s1, reg s2, reg s3, T* out) {
    out[0] = hsum(s0);
    out[1] = hsum(s1);
    out[2] = hsum(s2);
    out[3] = hsum(s3);
  }
  template <class I>
  static ivec idx(const I* p) {
    ivec r;
    for (int l = 0; l < W; ++l) r.v[l] = p[l];
    return r;
  }
  template <class I>
  static ivec idxn(const I* p, int n) {
    ivec r;
    for (int l = 0; l < W; ++l) r.v[l] = l < n ? static_cast<int32_t>(p[l]) : 0;
    return r;
  }
  static void store_idx(int32_t* p, ivec v) {
    for (int l = 0; l < W; ++l) p[l] = v.v[l];
  }
  static ivec iset1(int32_t v) {
    ivec r;
    for (int l = 0; l < W; ++l) r.v[l] = v;
    return r;
  }
  static ivec iadd(ivec a, ivec b) {
    for (int l = 0; l < W; ++l) a.v[l] += b.v[l];
    return a;
  }
  static ivec imul(ivec a, int32_t k) {
    for (int l = 0; l < W; ++l) a.v[l] *= k;
    return a;
  }
  static vmask valid(ivec i, ivec kv) {
    vmask m = 0;
    for (int l = 0; l < W; ++l)
      m |= static_cast<vmask>(static_cast<uint32_t>(i.v[l]) < static_cast<uint32_t>(kv.v[l]))
           << l;
    return m;
  }
  static vmask lanes(int n) { return static_cast<vmask>((uint64_t{1} << n) - 1); }
  static vmask validn(ivec i, ivec kv, int n) { return valid(i, kv) & lanes(n); }
  static vmask mand(vmask a, vmask b) { return a & b; }
  static vmask mtrue() { return lanes(W); }
  static bool all(vmask m) { return m == lanes(W); }
  static bool alln(vmask m, int n) { return m == lanes(n); }
  static reg gatherm(const T* base, ivec i, vmask m) {
    reg r;
    for (int l = 0; l < W; ++l) r.v[l] = (m >> l) & 1 ? base[i.v[l]] : T(0);
    return r;
  }
  static reg gather(const T* base, ivec i) {
    reg r;
    for (int l = 0; l < W; ++l) r.v[l] = base[i.v[l]];
    return r;
  }
  static reg gathern(const T* base, ivec i, int n) { return gatherm(base, i, lanes(n)); }
  struct Dec {
    int b;
    uint32_t bm;
  };
  static Dec dec(int b) { return {b, (1u << b) - 1u}; }
  static ivec nm_pos(uint64_t bits, const Dec& d) {  // W * b <= 32 bits
    ivec r;
    for (int l = 0; l < W; ++l) r.v[l] = static_cast<int32_t>((bits >> (l * d.b)) & d.bm);
    return r;
  }
  static ivec nm_cols(const int32_t* gbase, uint64_t bits, const Dec& d) {
    return iadd(idx(gbase), nm_pos(bits, d));
  }
  static constexpr bool kPerm2 = false;
  static reg perm2n(reg, reg, ivec, int) { return zero(); }
  static reg perm4n(reg, reg, reg, reg, ivec, int) { return zero(); }
};

struct Tune {
  static constexpr int csr_nv = 2;
  static constexpr int bsr_rb = 1;
  static constexpr int bsr_nv = 4;
  static constexpr int panel_rb = 1;  // dense-panel micro-kernel (panel_kernels.h)
  static constexpr int panel_nv = 4;
  static constexpr int bsr_mv_rb = 4;
  static constexpr int sd_ra = 2;
  static constexpr int sd_cb = 2;
  static constexpr int nm_nv = 2;
  static constexpr int nm_unroll = 2;
};
#endif

// Calls f(integral_constant<int, nv>, bool_constant<mask>) for a runtime nv in [1, NV].
template <int NV, class F>
inline void with_nv(int nv, bool mask, F&& f) {
  if constexpr (NV >= 1) {
    if (nv == NV) {
      if (mask)
        f(std::integral_constant<int, NV>{}, std::true_type{});
      else
        f(std::integral_constant<int, NV>{}, std::false_type{});
      return;
    }
    with_nv<NV - 1>(nv, mask, f);
  }
}

// Up to 8 bytes from p (avail of them readable) as a little-endian word, zero-filled.
inline uint64_t load_bytes(const uint8_t* p, int64_t avail) {
  uint64_t w = 0;
  if (avail >= 8)
    std::memcpy(&w, p, 8);
  else if (avail > 0)
    std::memcpy(&w, p, static_cast<size_t>(avail));
  return w;
}

}  // namespace ISA_NS
}  // namespace sparse_ops
