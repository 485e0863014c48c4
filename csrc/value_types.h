// Value dtypes: one trait each. A dtype of the values is a storage type (what memory holds)
// computed in a compute type (what the kernels accumulate in): float32 and float64 compute in
// themselves; the reduced-precision storage types below compute in float32.
//
// Adding a value dtype (say fp8 e4m3) touches:
//   - here: its DT enumerator, its storage struct (with `dt` and `name`), and its entry in
//     ReducedTypes (which every dispatch over storage types, the value-dtype check and the
//     error messages' dtype names walk);
//   - simd.h: V<float>::load / loadn overloads for its storage pointer (the widen in
//     registers), per SIMD level, and scalar_of() for the scalar paths;
//   - torch_ops.cpp: its at::ScalarType in dt_of();
//   - Python: one entry of sparse_ops/dtypes.py.
// Every kernel that reads stored values (the SpMV paths in registers, the wider products a
// widened row chunk at a time) then takes it.
// Torch-free: included by the per-ISA kernel files.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

namespace sparse_ops {

enum class DT : int { f32, f64, bf16, f16, i8, i16, i32, i64, u8, other };

// Reduced-precision storage (bit patterns), computed in float32.
struct Bf16 {
  static constexpr DT dt = DT::bf16;
  static constexpr const char* name = "bfloat16";
  uint16_t bits;
};
// A float32's bfloat16 bits, rounded to nearest even; NaN stays a quiet NaN. (Scalar and
// parsed before any ISA pragma: one definition for every translation unit.)
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
struct F16 {
  static constexpr DT dt = DT::f16;
  static constexpr const char* name = "float16";
  uint16_t bits;
};

// int8 values: the integers of a quantized matrix (its scales are applied by the caller, per
// output row; see sparse_ops/quantize.py), widened to float32 exactly.
struct I8 {
  static constexpr DT dt = DT::i8;
  static constexpr const char* name = "int8";
  int8_t bits;
};

template <class... S>
struct TypeList {};
// Every reduced-precision storage type, in the order dispatches try them.
using ReducedTypes = TypeList<Bf16, F16, I8>;

// The compute type of values stored as `dt`: float64 for float64, else float32.
inline DT compute_dtype(DT dt) { return dt == DT::f64 ? DT::f64 : DT::f32; }

namespace detail {
template <class... S>
constexpr bool is_reduced_in(DT dt, TypeList<S...>) {
  return ((dt == S::dt) || ...);
}
}  // namespace detail

// True for a reduced-precision storage dtype (one of ReducedTypes).
constexpr bool is_reduced(DT dt) { return detail::is_reduced_in(dt, ReducedTypes{}); }

// True for a dtype the products take as values.
constexpr bool is_value_dtype(DT dt) { return dt == DT::f32 || dt == DT::f64 || is_reduced(dt); }

// Values as stored: a pointer and its dtype.
struct Values {
  const void* data = nullptr;
  DT dt = DT::f32;
};

namespace detail {
template <class T, class F, class S0, class... S>
decltype(auto) with_storage_in(DT dt, F&& f, TypeList<S0, S...>) {
  if (dt == S0::dt) return f(S0{});
  if constexpr (sizeof...(S) > 0)
    return with_storage_in<T>(dt, std::forward<F>(f), TypeList<S...>{});
  else
    return f(T{});
}
}  // namespace detail

// Calls f(S{}) with S the storage type of values of dtype `dt` computed in T: a reduced
// storage type when T is float and `dt` is one, else T itself.
template <class T, class F>
decltype(auto) with_storage(DT dt, F&& f) {
  if constexpr (std::is_same_v<T, float>)
    return detail::with_storage_in<T>(dt, std::forward<F>(f), ReducedTypes{});
  else
    return f(T{});
}

// Calls f(T{}) with T = float or double, the compute type of `dt`.
template <class F>
decltype(auto) with_compute(DT dt, F&& f) {
  if (compute_dtype(dt) == DT::f64) return f(double{});
  return f(float{});
}

// Calls f(I{}) with I = int16_t or int32_t for an index dtype.
template <class F>
decltype(auto) with_index(DT dt, F&& f) {
  if (dt == DT::i16) return f(int16_t{});
  return f(int32_t{});
}

}  // namespace sparse_ops
