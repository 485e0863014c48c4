// Jobs on torch's intra-op thread team (see team.h).
#include "team.h"

#include <ATen/Parallel.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>

namespace sparse_ops {
namespace {

std::atomic<bool> g_debug{false};
std::mutex g_seen_mu;
std::set<int64_t> g_seen;

void record_thread() {
  const int64_t tid = static_cast<int64_t>(::syscall(SYS_gettid));
  std::lock_guard<std::mutex> lk(g_seen_mu);
  g_seen.insert(tid);
}

}  // namespace

int team_size() { return std::max(1, at::get_num_threads()); }

void team_run(int threads, int64_t n, TeamFn fn, void* ctx) {
  if (n <= 0) return;
  const int64_t team = std::min<int64_t>({static_cast<int64_t>(threads),
                                          static_cast<int64_t>(team_size()), n});
  const bool debug = g_debug.load(std::memory_order_relaxed);
  if (team <= 1 || at::in_parallel_region()) {
    if (debug) record_thread();
    for (int64_t i = 0; i < n; ++i) fn(ctx, i);
    return;
  }
  std::atomic<int64_t> next{0};
  // One index per thread of the region (grain 1); each then claims tasks until none is left.
  at::parallel_for(0, team, 1, [&](int64_t, int64_t) {
    bool ran = false;
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n;
         i = next.fetch_add(1, std::memory_order_relaxed)) {
      fn(ctx, i);
      ran = true;
    }
    if (debug && ran) record_thread();
  });
}

void team_debug(bool on) {
  {
    std::lock_guard<std::mutex> lk(g_seen_mu);
    g_seen.clear();
  }
  g_debug.store(on, std::memory_order_relaxed);
}

std::vector<int64_t> team_threads_seen() {
  std::lock_guard<std::mutex> lk(g_seen_mu);
  return std::vector<int64_t>(g_seen.begin(), g_seen.end());
}

}  // namespace sparse_ops
