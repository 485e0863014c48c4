// Per-thread scratch buffers (see scratch.h).
#include "scratch.h"

#include <cstdlib>
#include <new>

namespace sparse_ops {
namespace {

struct Buffers {
  void* p[kScratchSlots] = {};
  size_t cap[kScratchSlots] = {};
  ~Buffers() {
    for (void* q : p) std::free(q);
  }
};

thread_local Buffers t_buffers;

}  // namespace

void* scratch_buffer(ScratchSlot slot, size_t bytes) {
  Buffers& b = t_buffers;
  if (bytes > b.cap[slot] || !b.p[slot]) {
    const size_t cap = (bytes + bytes / 2 + 4095) / 4096 * 4096;  // grow by 1.5x, whole pages
    void* q = std::aligned_alloc(64, cap > 0 ? cap : 4096);
    if (!q) throw std::bad_alloc();
    std::free(b.p[slot]);
    b.p[slot] = q;
    b.cap[slot] = cap;
  }
  return b.p[slot];
}

}  // namespace sparse_ops
