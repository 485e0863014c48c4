// Reduced-precision (bfloat16, float16, ...) → float32 widening of value arrays, compiled per
// SIMD level.
#pragma once

namespace sparse_ops {
namespace ISA_NS {

// The same half loads the SpMV kernels use (V<float>::load overloads for Bf16 / F16).
template <class H>
inline void widen_half(const H* h, float* dst, int64_t n) {
  using VT = V<float>;
  constexpr int W = VT::W;
  int64_t i = 0;
  for (; i + W <= n; i += W) VT::store(dst + i, VT::load(h + i));
  if (i < n) {
    const int rest = static_cast<int>(n - i);
    VT::storen(dst + i, VT::loadn(h + i, rest), rest);
  }
}

// Values of a reduced-precision storage type (value_types.h), widened to float32.
inline void widen_values(Values src, int64_t offset, float* dst, int64_t n) {
  with_storage<float>(src.dt, [&](auto tv) {
    using TV = decltype(tv);
    if constexpr (!std::is_same_v<TV, float>)
      widen_half<TV>(static_cast<const TV*>(src.data) + offset, dst, n);
  });
}

// ---------------------------------------------------------------- dequantization
// A float32 vector's bfloat16 bits, rounded to nearest even (finite lanes: the caller keeps
// non-finite scales off this path), stored to n <= W halves at p.
#if SPARSE_OPS_ISA == 3
inline void store_bf16n(uint16_t* p, __m512 v, int n) {
  __m512i u = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  u = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
  _mm256_mask_storeu_epi16(p, static_cast<__mmask16>(n >= 16 ? 0xFFFFu : (1u << n) - 1),
                           _mm512_cvtepi32_epi16(u));
}
#elif SPARSE_OPS_ISA == 2
inline void store_bf16n(uint16_t* p, __m256 v, int n) {
  __m256i u = _mm256_castps_si256(v);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  u = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF))), 16);
  // 8 dwords < 2^16 -> 8 words (packus works per 128-bit half: halves joined by the permute)
  const __m128i h = _mm256_castsi256_si128(
      _mm256_permute4x64_epi64(_mm256_packus_epi32(u, u), 0x08));
  if (n >= 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), h);
  } else {
    alignas(16) uint16_t t[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(t), h);
    std::memcpy(p, t, sizeof(uint16_t) * n);
  }
}
#endif

// out[p] = q[p] * s[r] for every p of the runs r in [r0, r1), run r = [off[r], off[r + 1]),
// as float32 (DT::f32) or bfloat16 bits (DT::bf16). One pass, the values widened and scaled
// in registers; a run with a non-finite scale goes value by value (its NaN / inf as torch).
inline void dequant_runs_rows(const int8_t* q, const float* s, const int32_t* off, int64_t r0,
                              int64_t r1, DT dt, void* out) {
  float* of = static_cast<float*>(out);
  uint16_t* ob = static_cast<uint16_t*>(out);
  for (int64_t r = r0; r < r1; ++r) {
    const float sc = s[r];
    const int64_t a = off[r], b = off[r + 1];
    int64_t p = a;
#if SPARSE_OPS_ISA >= 2
    using VT = V<float>;
    constexpr int W = VT::W;
    const I8* qi = reinterpret_cast<const I8*>(q);
    if (std::isfinite(sc)) {
      const auto vs = VT::set1(sc);
      for (; p < b; p += W) {
        const int n = b - p >= W ? W : static_cast<int>(b - p);
        const auto v = VT::mul(n == W ? VT::load(qi + p) : VT::loadn(qi + p, n), vs);
        if (dt == DT::f32) {
          if (n == W)
            VT::store(of + p, v);
          else
            VT::storen(of + p, v, n);
        } else {
          store_bf16n(ob + p, v, n);
        }
      }
    }
#endif
    for (; p < b; ++p) {
      const float v = static_cast<float>(q[p]) * sc;
      if (dt == DT::f32)
        of[p] = v;
      else
        ob[p] = bf16_bits(v);
    }
  }
}

}  // namespace ISA_NS
}  // namespace sparse_ops
