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
//   reg fma(a, b, c) = a * b + c, add, mul;  T hsum(reg)
//   ivec idx(const int16_t*|const int32_t*), idxn(p, n)   W column indices as int32 lanes
//   reg gather(base, ivec), gathern(base, ivec, n)        base[idx[l]] (lanes >= n give 0)
//   store_idx(int32_t*, ivec)
//   Dec dec(b); ivec nm_cols(gbase, bits, Dec)           N:M columns of W consecutive slots:
//       gbase[l] + ((bits >> (l * b)) & (2^b - 1))
#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace sparse_ops {
namespace ISA_NS {

template <class T>
struct V;

inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }

#if SPARSE_OPS_ISA == 3
// ----------------------------------------------------------------------------- AVX-512
constexpr int kVecRegs = 32;

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
  static reg load(const T* p) { return _mm512_loadu_ps(p); }
  static reg loadn(const T* p, int n) { return _mm512_maskz_loadu_ps(mask16(n), p); }
  static void store(T* p, reg a) { _mm512_storeu_ps(p, a); }
  static void storen(T* p, reg a, int n) { _mm512_mask_storeu_ps(p, mask16(n), a); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static T hsum(reg a) { return _mm512_reduce_add_ps(a); }
  static ivec idx(const int32_t* p) { return _mm512_loadu_si512(p); }
  static void store_idx(int32_t* p, ivec v) { _mm512_storeu_si512(p, v); }
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
  static ivec nm_cols(const int32_t* gbase, uint64_t bits, const Dec& d) {
    const __m512i w = _mm512_permutexvar_epi32(
        d.sel, _mm512_castsi128_si512(_mm_cvtsi64_si128(static_cast<long long>(bits))));
    const __m512i p = _mm512_and_si512(_mm512_srlv_epi32(w, d.sh), d.bm);
    return _mm512_add_epi32(_mm512_loadu_si512(gbase), p);
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
  static reg load(const T* p) { return _mm512_loadu_pd(p); }
  static reg loadn(const T* p, int n) { return _mm512_maskz_loadu_pd(mask8(n), p); }
  static void store(T* p, reg a) { _mm512_storeu_pd(p, a); }
  static void storen(T* p, reg a, int n) { _mm512_mask_storeu_pd(p, mask8(n), a); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  static T hsum(reg a) { return _mm512_reduce_add_pd(a); }
  static ivec idx(const int32_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static void store_idx(int32_t* p, ivec v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
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
  static ivec nm_cols(const int32_t* gbase, uint64_t bits, const Dec& d) {  // 8 * b <= 32 bits
    const __m256i w = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(bits)));
    const __m256i p = _mm256_and_si256(_mm256_srlv_epi32(w, d.sh), d.bm);
    return _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gbase)), p);
  }
};

struct Tune {
  static constexpr int csr_nv = 4;       // vectors per CSR output-row tile (x2 accumulator sets)
  static constexpr int bsr_rb = 4;       // BSR micro-kernel: rows x vectors of accumulators
  static constexpr int bsr_nv = 4;
  static constexpr int bsr_mv_rb = 16;   // BSR SpMV: rows per accumulator group
  static constexpr int sd_ra = 4;        // BSR SDDMM: a-rows x b-rows of dot products
  static constexpr int sd_cb = 4;
  static constexpr int nm_nv = 4;        // N:M output-row tile
  static constexpr int nm_unroll = 2;    // N:M slots in flight (accumulator sets)
};

#elif SPARSE_OPS_ISA == 2
// ----------------------------------------------------------------------------- AVX2 + FMA
constexpr int kVecRegs = 16;

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
  static reg load(const T* p) { return _mm256_loadu_ps(p); }
  static reg loadn(const T* p, int n) { return _mm256_maskload_ps(p, lanes_lt(n)); }
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
  static ivec idx(const int32_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
  static void store_idx(int32_t* p, ivec v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
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
  static ivec nm_cols(const int32_t* gbase, uint64_t bits, const Dec& d) {  // 8 * b <= 32 bits
    const __m256i w = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(bits)));
    const __m256i p = _mm256_and_si256(_mm256_srlv_epi32(w, d.sh), d.bm);
    return _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gbase)), p);
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
  static ivec idx(const int32_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
  static void store_idx(int32_t* p, ivec v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
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
  static ivec nm_cols(const int32_t* gbase, uint64_t bits, const Dec& d) {
    const __m128i w = _mm_set1_epi32(static_cast<int>(static_cast<uint32_t>(bits)));
    const __m128i p = _mm_and_si128(_mm_srlv_epi32(w, d.sh), d.bm);
    return _mm_add_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gbase)), p);
  }
};

struct Tune {
  static constexpr int csr_nv = 4;
  static constexpr int bsr_rb = 4;
  static constexpr int bsr_nv = 2;
  static constexpr int bsr_mv_rb = 8;
  static constexpr int sd_ra = 2;
  static constexpr int sd_cb = 4;
  static constexpr int nm_nv = 4;
  static constexpr int nm_unroll = 2;
};

#else
// ----------------------------------------------------------------------------- scalar
constexpr int kVecRegs = 16;

template <class TT>
struct V {
  using T = TT;
  using reg = T;
  using ivec = int32_t;
  static constexpr int W = 1;
  static reg zero() { return T(0); }
  static reg set1(T a) { return a; }
  static reg load(const T* p) { return *p; }
  static reg loadn(const T* p, int n) { return n > 0 ? *p : T(0); }
  static void store(T* p, reg a) { *p = a; }
  static void storen(T* p, reg a, int n) {
    if (n > 0) *p = a;
  }
  static reg fma(reg a, reg b, reg c) { return a * b + c; }
  static reg add(reg a, reg b) { return a + b; }
  static reg mul(reg a, reg b) { return a * b; }
  static T hsum(reg a) { return a; }
  static ivec idx(const int32_t* p) { return *p; }
  static void store_idx(int32_t* p, ivec v) { *p = v; }
  static ivec idx(const int16_t* p) { return *p; }
  static ivec idxn(const int32_t* p, int n) { return n > 0 ? *p : 0; }
  static ivec idxn(const int16_t* p, int n) { return n > 0 ? *p : 0; }
  static reg gather(const T* base, ivec i) { return base[i]; }
  static reg gathern(const T* base, ivec i, int n) { return n > 0 ? base[i] : T(0); }
  struct Dec {
    uint32_t bm;
  };
  static Dec dec(int b) { return {(1u << b) - 1u}; }
  static ivec nm_cols(const int32_t* gbase, uint64_t bits, const Dec& d) {
    return gbase[0] + static_cast<int32_t>(bits & d.bm);
  }
};

struct Tune {
  static constexpr int csr_nv = 4;
  static constexpr int bsr_rb = 4;
  static constexpr int bsr_nv = 2;
  static constexpr int bsr_mv_rb = 4;
  static constexpr int sd_ra = 2;
  static constexpr int sd_cb = 2;
  static constexpr int nm_nv = 4;
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
