// bfloat16 / float16 → float32 widening of value arrays, compiled per SIMD level.
#pragma once

#include <cstring>

namespace sparse_ops {
namespace ISA_NS {

inline void widen_bf16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if SPARSE_OPS_ISA == 3
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
  }
#elif SPARSE_OPS_ISA == 2
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
  }
#endif
  for (; i < n; ++i) dst[i] = bf16_bits_to_f32(src[i]);
}

inline void widen_f16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
#if SPARSE_OPS_ISA == 3
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i,
                     _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
#elif SPARSE_OPS_ISA == 2
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
#endif
  for (; i < n; ++i) dst[i] = f16_bits_to_f32(src[i]);
}

}  // namespace ISA_NS
}  // namespace sparse_ops
