// Per-thread scratch buffers (see scratch.h).
#include "scratch.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace sparse_ops {
namespace {

struct Buffers {
  void* p[kScratchSlots] = {};
  size_t cap[kScratchSlots] = {};
  uint64_t tag[kScratchSlots] = {};
  ~Buffers() {
    for (void* q : p) std::free(q);
  }
};

thread_local Buffers t_buffers;

void* grow(Buffers& b, ScratchSlot slot, size_t bytes) {
  if (bytes > b.cap[slot] || !b.p[slot]) {
    b.tag[slot] = 0;
    const size_t cap = (bytes + bytes / 2 + 4095) / 4096 * 4096;  // grow by 1.5x, whole pages
    void* q = std::aligned_alloc(64, cap > 0 ? cap : 4096);
    if (!q) throw std::bad_alloc();
    std::free(b.p[slot]);
    b.p[slot] = q;
    b.cap[slot] = cap;
  }
  return b.p[slot];
}

}  // namespace

void* scratch_buffer(ScratchSlot slot, size_t bytes) {
  Buffers& b = t_buffers;
  void* p = grow(b, slot, bytes);
  b.tag[slot] = 0;
  return p;
}

void* scratch_buffer(ScratchSlot slot, size_t bytes, uint64_t tag, bool* kept) {
  Buffers& b = t_buffers;
  void* p = grow(b, slot, bytes);  // clears the tag when it reallocates
  *kept = tag != 0 && b.tag[slot] == tag;
  b.tag[slot] = tag;
  return p;
}

uint64_t next_call_tag() {
  static std::atomic<uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace sparse_ops
