// bfloat16 / float16 → float32 widening of value arrays, compiled per SIMD level.
#pragma once

namespace sparse_ops {
namespace ISA_NS {

// The same half loads the SpMV kernels use (V<float>::load overloads for Bf16 / F16).
template <class H>
inline void widen_half(const uint16_t* src, float* dst, int64_t n) {
  using VT = V<float>;
  constexpr int W = VT::W;
  const H* h = reinterpret_cast<const H*>(src);
  int64_t i = 0;
  for (; i + W <= n; i += W) VT::store(dst + i, VT::load(h + i));
  if (i < n) {
    const int rest = static_cast<int>(n - i);
    VT::storen(dst + i, VT::loadn(h + i, rest), rest);
  }
}

inline void widen_bf16(const uint16_t* src, float* dst, int64_t n) {
  widen_half<Bf16>(src, dst, n);
}
inline void widen_f16(const uint16_t* src, float* dst, int64_t n) {
  widen_half<F16>(src, dst, n);
}

}  // namespace ISA_NS
}  // namespace sparse_ops
