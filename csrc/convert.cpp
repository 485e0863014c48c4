// bfloat16 <-> float32 conversions of a SpMV's dense operands, done here instead of by aten
// calls (torch_ops.cpp): in a model, right after a torch op that evicted the caches, each aten
// conversion (dispatcher, TensorIterator, an allocation) cost ~25-30 us of cold code and data
// on an Intel Xeon (family 6 model 207) against ~1 us for these loops at decode sizes.
#include <cstdint>

#include "drivers.h"
#include "kernels.h"

namespace sparse_ops {

void widen_bf16(const void* src, float* dst, int64_t n) {
  active_table().widen({src, DT::bf16}, 0, dst, n);
}

void narrow_bf16(const float* src, void* dst, int64_t n) {
  uint16_t* o = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) o[i] = bf16_bits(src[i]);
}

}  // namespace sparse_ops
