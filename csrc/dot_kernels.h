// Dot-product helpers shared by the SDDMM kernels (CSR, BSR, N:M); compiled per SIMD level.
#pragma once

namespace sparse_ops {
namespace ISA_NS {

// Dot product of two length-w rows, 2 accumulators.
template <class T>
inline T dot_row(const T* __restrict__ x, const T* __restrict__ y, int64_t w) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  reg s0 = VT::zero(), s1 = VT::zero();
  int64_t k = 0;
  for (; k + 2 * W <= w; k += 2 * W) {
    s0 = VT::fma(VT::load(x + k), VT::load(y + k), s0);
    s1 = VT::fma(VT::load(x + k + W), VT::load(y + k + W), s1);
  }
  if (k + W <= w) {
    s0 = VT::fma(VT::load(x + k), VT::load(y + k), s0);
    k += W;
  }
  if (k < w) {
    const int n = static_cast<int>(w - k);
    s1 = VT::fma(VT::loadn(x + k, n), VT::loadn(y + k, n), s1);
  }
  return VT::hsum(VT::add(s0, s1));
}

// Four dot products sharing the x row: x . y0, x . y1, x . y2, x . y3.
template <class T>
inline void dot_row4(const T* __restrict__ x, const T* y0, const T* y1, const T* y2, const T* y3,
                     int64_t w, T* r) {
  using VT = V<T>;
  using reg = typename VT::reg;
  constexpr int W = VT::W;
  reg s0 = VT::zero(), s1 = VT::zero(), s2 = VT::zero(), s3 = VT::zero();
  int64_t k = 0;
  for (; k + W <= w; k += W) {
    const reg xv = VT::load(x + k);
    s0 = VT::fma(xv, VT::load(y0 + k), s0);
    s1 = VT::fma(xv, VT::load(y1 + k), s1);
    s2 = VT::fma(xv, VT::load(y2 + k), s2);
    s3 = VT::fma(xv, VT::load(y3 + k), s3);
  }
  if (k < w) {
    const int n = static_cast<int>(w - k);
    const reg xv = VT::loadn(x + k, n);
    s0 = VT::fma(xv, VT::loadn(y0 + k, n), s0);
    s1 = VT::fma(xv, VT::loadn(y1 + k, n), s1);
    s2 = VT::fma(xv, VT::loadn(y2 + k, n), s2);
    s3 = VT::fma(xv, VT::loadn(y3 + k, n), s3);
  }
  VT::hsum4(s0, s1, s2, s3, r);
}

}  // namespace ISA_NS
}  // namespace sparse_ops
