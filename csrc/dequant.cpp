// torch.ops.sparse_ops.dequant_runs: the weights of an int8 matrix with group scales, for
// the products that cannot yet apply group scales in registers (sparse_ops/quantize.py).
//
//   dequant_runs(Tensor values, Tensor scales, Tensor run_off, ScalarType dtype) -> Tensor
//
// values: int8, any shape, contiguous; read flattened. The flattened values are cut into runs
// r = 0 .. R-1, run r being [run_off[r], run_off[r + 1]), each with one scale scales[r]
// (float32 or bfloat16, (R,)). run_off: int32 (R + 1,), from 0 to values.numel(), never
// decreasing (checked here, before any value is read). Returns values * scale, shaped like
// values, in dtype (float32, bfloat16 or float16). Runs are split over torch's threads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstdint>
#include <string>

#include "kernels.h"
#include "torch_errors.h"

namespace sparse_ops {
namespace {

using at::Tensor;

// float16, and any dtype where a run could not be split: value by value.
template <class O>
void dequant(const int8_t* q, const float* s, const int32_t* off, int64_t runs, O* out) {
  at::parallel_for(0, runs, 2048, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float sc = s[r];
      const int32_t a = off[r], b = off[r + 1];
      for (int32_t p = a; p < b; ++p) out[p] = static_cast<O>(static_cast<float>(q[p]) * sc);
    }
  });
}

// float32 and bfloat16: the active SIMD level's kernel (widen_kernels.h), runs over threads.
void dequant_simd(const int8_t* q, const float* s, const int32_t* off, int64_t runs, DT dt,
                  void* out) {
  const KernelTable& t = active_table();
  at::parallel_for(0, runs, 2048, [&](int64_t r0, int64_t r1) {
    t.dequant(q, s, off, r0, r1, dt, out);
  });
}

Tensor dequant_runs(const Tensor& values, const Tensor& scales, const Tensor& run_off,
                    at::ScalarType dtype) {
  if (!values.device().is_cpu() || !scales.device().is_cpu() || !run_off.device().is_cpu())
    value_error("dequant_runs: values, scales and run_off must be CPU tensors");
  if (values.scalar_type() != at::kChar)
    type_error("values: expected an int8 tensor, got " +
               std::string(c10::toString(values.scalar_type())));
  if (scales.scalar_type() != at::kFloat && scales.scalar_type() != at::kBFloat16)
    type_error("scales: expected a float32 or bfloat16 tensor, got " +
               std::string(c10::toString(scales.scalar_type())));
  if (run_off.scalar_type() != at::kInt)
    type_error("run_off: expected an int32 tensor, got " +
               std::string(c10::toString(run_off.scalar_type())));
  if (dtype != at::kFloat && dtype != at::kBFloat16 && dtype != at::kHalf)
    type_error("dtype: expected float32, bfloat16 or float16, got " +
               std::string(c10::toString(dtype)));
  if (scales.dim() != 1 || run_off.dim() != 1 || run_off.size(0) != scales.size(0) + 1)
    value_error("run_off: expected shape (" + std::to_string(scales.size(0) + 1) +
                ",) for " + std::to_string(scales.size(0)) + " scales, got " +
                std::to_string(run_off.dim()) + "-D of " + std::to_string(run_off.numel()));
  const Tensor q = values.contiguous();
  const Tensor s = scales.to(at::kFloat).contiguous();
  const Tensor o = run_off.contiguous();
  const int64_t nnz = q.numel(), runs = s.size(0);
  const int32_t* off = o.data_ptr<int32_t>();
  if (off[0] != 0 || off[runs] != nnz)
    value_error("run_off: must run from 0 to values.numel() = " + std::to_string(nnz) +
                ", got " + std::to_string(off[0]) + " .. " + std::to_string(off[runs]));
  for (int64_t r = 0; r < runs; ++r)
    if (off[r + 1] < off[r])
      value_error("run_off: decreases at run " + std::to_string(r) + " (" +
                  std::to_string(off[r]) + " then " + std::to_string(off[r + 1]) + ")");
  Tensor out = at::empty(q.sizes(), q.options().dtype(dtype));
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sp = s.data_ptr<float>();
  if (dtype == at::kFloat)
    dequant_simd(qp, sp, off, runs, DT::f32, out.data_ptr<float>());
  else if (dtype == at::kBFloat16)
    dequant_simd(qp, sp, off, runs, DT::bf16, out.data_ptr<at::BFloat16>());
  else
    dequant(qp, sp, off, runs, out.data_ptr<at::Half>());
  return out;
}

}  // namespace
}  // namespace sparse_ops

TORCH_LIBRARY_FRAGMENT(sparse_ops, m) {
  m.def("dequant_runs(Tensor values, Tensor scales, Tensor run_off, ScalarType dtype) -> Tensor");
}

TORCH_LIBRARY_IMPL(sparse_ops, CPU, m) { m.impl("dequant_runs", &sparse_ops::dequant_runs); }
