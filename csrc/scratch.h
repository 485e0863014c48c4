// Per-thread scratch buffers that outlive a call. Kernels need temporary buffers of a few
// hundred KiB to a few MiB; allocating them per call means mmap/munmap, page faults and TLB
// shootdowns that stall the other threads. A buffer is reused by later calls on the thread.
#pragma once

#include <cstddef>

namespace sparse_ops {

enum ScratchSlot {
  kScratchPart = 0,
  kScratchColumns = 1,
  kScratchPack = 2,
  kScratchValues = 3,  // a row chunk's bfloat16 / float16 values widened to float32
  kScratchDecode = 4,  // a bitmap row chunk decoded to CSR (row pointers, column indices)
  kScratchSlots = 5
};

// A 64-byte aligned buffer of at least `bytes` bytes, owned by the calling thread and valid
// until its next call with the same slot. Throws std::bad_alloc.
void* scratch_buffer(ScratchSlot slot, size_t bytes);

}  // namespace sparse_ops
