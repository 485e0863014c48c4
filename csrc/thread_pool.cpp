// The kernels' thread pool (see thread_pool.h).
#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SPARSE_OPS_PAUSE() _mm_pause()
#else
#define SPARSE_OPS_PAUSE() \
  do {                     \
  } while (0)
#endif

namespace sparse_ops {
namespace {

using Clock = std::chrono::steady_clock;

// How long an idle worker waits (politely) for the next job before it sleeps.
constexpr int64_t kSpinDefaultUs = 150;

int64_t spin_us() {
  static const int64_t us = [] {
    if (const char* e = std::getenv("SPARSE_OPS_SPIN_US")) {
      const long v = std::strtol(e, nullptr, 10);
      if (v >= 0) return static_cast<int64_t>(v);
    }
    return kSpinDefaultUs;
  }();
  return us;
}

struct Job {
  PoolFn fn = nullptr;
  void* ctx = nullptr;
  int64_t n = 0;
  uint32_t gen = 0;
  int workers = 0;  // how many pool workers may join (threads - 1)
};

class Pool {
 public:
  void run(int threads, int64_t n, PoolFn fn, void* ctx) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock() || n >= (int64_t{1} << 31)) {  // another caller holds the pool
      for (int64_t i = 0; i < n; ++i) fn(ctx, i);
      return;
    }
    // Backing off: a recent job waited for a descheduled worker; run alone for a while.
    if (threads > 1 && backoff_left_ > 0) {
      --backoff_left_;
      for (int64_t i = 0; i < n; ++i) fn(ctx, i);
      return;
    }
    grow(threads - 1);
    const auto t0 = Clock::now();
    Job job;
    {
      std::lock_guard<std::mutex> lk(mu_);
      gen_ = gen_ + 1 == 0 ? 1 : gen_ + 1;
      job = Job{fn, ctx, n, gen_, threads - 1};
      job_ = job;
      error_ = nullptr;
      done_.store(0, std::memory_order_relaxed);
      state_.store(static_cast<uint64_t>(job.gen) << 32, std::memory_order_release);
      published_.store(job.gen, std::memory_order_release);
    }
    work_cv_.notify_all();
    work(job);
    const auto t1 = Clock::now();
    wait_done(n);
    note_wait(t1 - t0, Clock::now() - t1);
    std::exception_ptr err;
    {
      std::lock_guard<std::mutex> lk(mu_);
      err = error_;
      error_ = nullptr;
    }
    if (err) std::rethrow_exception(err);
  }

  int workers() {
    std::lock_guard<std::mutex> lk(mu_);
    return static_cast<int>(threads_.size());
  }

 private:
  void grow(int want) {
    std::lock_guard<std::mutex> lk(mu_);
    while (static_cast<int>(threads_.size()) < want) {
      const int index = static_cast<int>(threads_.size());
      const uint32_t seen = gen_;
      threads_.emplace_back([this, index, seen] { loop(index, seen); });
      threads_.back().detach();  // the pool lives as long as the process
    }
  }

  // Claims and runs indices of `job` until none is left (or a newer job was published).
  void work(const Job& job) {
    for (;;) {
      uint64_t s = state_.load(std::memory_order_acquire);
      if (static_cast<uint32_t>(s >> 32) != job.gen) return;
      const int64_t i = static_cast<int64_t>(s & 0xffffffffu);
      if (i >= job.n) return;
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) continue;
      try {
        job.fn(job.ctx, i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
      if (done_.fetch_add(1, std::memory_order_seq_cst) + 1 == job.n &&
          caller_sleeping_.load(std::memory_order_seq_cst)) {
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_all();
      }
    }
  }

  // Straggler back-off (under busy_). When the caller, done with its own share, waited
  // longer than that share took (and over kStragglerUs), a worker holding a claimed index was
  // descheduled: another process or torch's own threads want the cores. When that happens in
  // 2 of 4 consecutive jobs, the next calls run on the caller alone (8, doubling to 256 while
  // it recurs); a job that waits little clears the back-off. Quiet, the wait is at most about
  // one index's work.
  void note_wait(Clock::duration own, Clock::duration waited) {
    constexpr auto kStragglerUs = std::chrono::microseconds(200);
    const bool straggled = waited > own && waited > kStragglerUs;
    recent_ = (recent_ << 1) | (straggled ? 1u : 0u);
    if (straggled) {
      stragglers_.fetch_add(1, std::memory_order_relaxed);
      // One straggler alone is a hiccup (a virtual CPU paused by its host): back off only
      // when it recurs, 2 of the last 4 jobs.
      if (__builtin_popcount(recent_ & 0xFu) >= 2) {
        backoff_ = backoff_ ? std::min<int64_t>(2 * backoff_, 256) : 8;
        backoff_left_ = backoff_;
      }
    } else if (waited * 4 < own) {
      backoff_ = 0;
    }
  }

 public:
  int64_t stragglers() const { return stragglers_.load(std::memory_order_relaxed); }

 private:
  // The caller waits only for claimed indices still running: spin briefly, then sleep.
  void wait_done(int64_t n) {
    if (done_.load(std::memory_order_acquire) >= n) return;
    const auto until = Clock::now() + std::chrono::microseconds(spin_us() + 30);
    while (Clock::now() < until) {
      for (int k = 0; k < 64; ++k) {
        if (done_.load(std::memory_order_acquire) >= n) return;
        SPARSE_OPS_PAUSE();
      }
    }
    std::unique_lock<std::mutex> lk(mu_);
    caller_sleeping_.store(true, std::memory_order_seq_cst);
    done_cv_.wait(lk, [&] { return done_.load(std::memory_order_seq_cst) >= n; });
    caller_sleeping_.store(false, std::memory_order_relaxed);
  }

  void loop(int index, uint32_t seen) {
    for (;;) {
      const auto until = Clock::now() + std::chrono::microseconds(spin_us());
      // A polite spin: between short bursts of pause, yield the CPU to any runnable thread
      // (torch's own workers, another process), so waiting for the next call costs them
      // nothing while a call that comes soon still finds this worker awake.
      while (published_.load(std::memory_order_acquire) == seen && Clock::now() < until) {
        for (int k = 0; k < 32; ++k) SPARSE_OPS_PAUSE();
        sched_yield();
      }
      Job job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        work_cv_.wait(lk, [&] { return job_.gen != seen; });
        job = job_;
      }
      seen = job.gen;
      if (index < job.workers) work(job);
    }
  }

  std::mutex busy_;  // one caller at a time
  std::mutex mu_;    // guards job_, gen_, threads_, error_
  std::condition_variable work_cv_, done_cv_;
  std::atomic<uint64_t> state_{0};  // (generation << 32) | next unclaimed index
  std::atomic<int64_t> done_{0};
  std::atomic<uint32_t> published_{0};
  std::atomic<bool> caller_sleeping_{false};
  uint32_t gen_ = 0;
  int64_t backoff_ = 0, backoff_left_ = 0;  // guarded by busy_
  uint32_t recent_ = 0;                      // bit j: job j back straggled (busy_)
  std::atomic<int64_t> stragglers_{0};
  Job job_;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

std::atomic<Pool*> g_pool{nullptr};

// In a fork child the workers do not exist and the mutexes may be held by threads that are
// gone: abandon the parent's pool (never touched again) and start empty.
void after_fork_in_child() { g_pool.store(nullptr, std::memory_order_relaxed); }

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return *p;
  static std::once_flag registered;
  std::call_once(registered, [] { pthread_atfork(nullptr, nullptr, after_fork_in_child); });
  static std::mutex create_mu;
  std::lock_guard<std::mutex> lk(create_mu);
  p = g_pool.load(std::memory_order_acquire);
  if (!p) {
    p = new Pool();  // leaked on purpose: detached workers refer to it until exit
    g_pool.store(p, std::memory_order_release);
  }
  return *p;
}

}  // namespace

void pool_run(int threads, int64_t n, PoolFn fn, void* ctx) { pool().run(threads, n, fn, ctx); }

int64_t pool_stragglers() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  return p ? p->stragglers() : 0;
}

int pool_workers() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  return p ? p->workers() : 0;
}

}  // namespace sparse_ops
