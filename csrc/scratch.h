// Per-thread scratch buffers that outlive a call. Kernels need temporary buffers of a few
// hundred KiB to a few MiB; allocating them per call means mmap/munmap, page faults and TLB
// shootdowns that stall the other threads. A buffer is reused by later calls on the thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sparse_ops {

enum ScratchSlot {
  kScratchPart = 0,
  kScratchColumns = 1,
  kScratchPack = 2,
  kScratchValues = 3,  // a row chunk's bfloat16 / float16 values widened to float32
  kScratchDecode = 4,  // a bitmap row chunk decoded to CSR (row pointers, column indices)
  kScratchPanel = 5,   // rows of S expanded to a dense float panel (panel_kernels.h)
  kScratchPanelWide = 6,  // an N:M chunk whose slot sums leave int8, as int16 (W8A8)
  kScratchRunSums = 7,    // 128 x each row's weight sum per scale run of a chunk (W8A8 VNNI)
  kScratchUnits = 8,      // a BSR block row's flush units (W8A8)
  kScratchXPlanes = 9,    // x in block fixed point, byte planes (the integer bitmap SpMV)
  kScratchSpmvX = 10,     // a bfloat16 SpMV's x widened to float32 (torch_ops.cpp)
  kScratchSpmvOut = 11,   // its float32 output, before it is narrowed to bfloat16
  kScratchSlots = 12
};

// A 64-byte aligned buffer of at least `bytes` bytes, owned by the calling thread and valid
// until its next call with the same slot. Throws std::bad_alloc.
void* scratch_buffer(ScratchSlot slot, size_t bytes);

// The same buffer, tagged: *kept is true when the slot's last user on this thread asked with
// the same nonzero tag and the buffer was not reallocated (its contents are what that user
// left). Any untagged request of the slot clears its tag. Lets the tasks of one call that
// run on one thread build a per-call operand (a transposed x) once instead of once a task.
void* scratch_buffer(ScratchSlot slot, size_t bytes, uint64_t tag, bool* kept);

// A process-wide unique nonzero tag for one product call.
uint64_t next_call_tag();

}  // namespace sparse_ops
