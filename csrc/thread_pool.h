// The kernels' own thread pool: a caller and up to threads-1 persistent workers claim the
// indices [0, n) of a job one at a time from a shared counter.
//
// Why not OpenMP: a GNU OpenMP team ends with a barrier that waits for every thread of the
// team to arrive, including one that the OS has not scheduled yet. Beside a busy process
// that is a scheduler time slice (~4-8 ms) per call; and a second OpenMP runtime beside
// torch's spins after each region, taxing the next torch op; and libgomp does not survive
// fork. Here:
//   - the caller never waits for a thread that has not started: it waits only for indices
//     that were claimed and are still running, and sleeps (not spins) while it waits, so a
//     preempted worker gets the core back;
//   - idle workers wait politely (bursts of pause, each followed by sched_yield) for up to
//     SPARSE_OPS_SPIN_US (default 150 us), then sleep on a condition variable: a runnable
//     thread (torch's next op) takes the core at once, and a call that follows soon does not
//     pay a futex wake-up (20-40 us on this VM: more than a small layer's work);
//   - when callers keep waiting for a worker the OS descheduled (2 of 4 jobs: a busy
//     machine, not a one-off hiccup), the next calls run on the caller alone for a while
//     (8 calls, doubling to 256 while it recurs), so a loaded machine does not make every
//     call wait a time slice;
//   - a second caller (another Python thread) while a job runs does its job on its own
//     thread instead of queueing behind the first;
//   - after fork() the child gets a fresh, empty pool (pthread_atfork): kernels in a fork
//     child run with as many threads as they are asked for.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace sparse_ops {

using PoolFn = void (*)(void* ctx, int64_t i);

// Runs fn(ctx, i) for every i in [0, n) on up to `threads` threads (the caller included) and
// returns when all have run. Rethrows the first exception a call threw.
void pool_run(int threads, int64_t n, PoolFn fn, void* ctx);

// Jobs so far that waited for a descheduled worker (each starts a back-off: see
// thread_pool.cpp); for benchmarks and tests.
int64_t pool_stragglers();

// Workers currently alive in this process's pool (for tests).
int pool_workers();

template <class F>
void parallel_for(int threads, int64_t n, F&& body) {
  if (n <= 0) return;
  if (threads <= 1 || n == 1) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  using Fn = std::remove_reference_t<F>;
  pool_run(
      threads, n, [](void* ctx, int64_t i) { (*static_cast<Fn*>(ctx))(i); },
      const_cast<void*>(static_cast<const void*>(&body)));
}

}  // namespace sparse_ops
