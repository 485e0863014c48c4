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

}  // namespace ISA_NS
}  // namespace sparse_ops
