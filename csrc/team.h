// The kernels run on torch's own intra-op thread team (at::parallel_for: the OpenMP threads
// that run torch's ops), not on a pool of their own.
//
// Why: after each torch op, torch's OpenMP workers keep spinning for the next parallel region
// (libgomp's spin count; `pause` is slow on recent Intel cores, so the spin lasts long). A
// private pool's worker then has to take a core from a spinning thread, and a sparse call
// right after a torch op (always the case in a model) ran slower than on one thread. On the
// same team, the next region finds the spinning threads ready, and the torch op after ours
// finds them ready too.
//
// How: one parallel region per job; every thread of the region claims the indices [0, n) one
// at a time from a shared atomic counter, so a thread the OS descheduled loses its share to
// the others instead of holding the job up (it only has to reach the region's end).
//   - torch.set_num_threads holds: a job runs on min(threads, at::get_num_threads()) threads;
//   - a job started inside a parallel region (a nested call) runs inline on its thread;
//   - fork: as torch's own ops. GNU OpenMP's team does not survive fork(): a child process
//     should call torch.set_num_threads(1) (as torch's DataLoader workers do) or use the
//     spawn start method;
//   - exceptions thrown by a task are rethrown to the caller (the first one).
// This is the only file with ATen/Parallel.h; the per-ISA kernel files stay free of torch.
#pragma once

#include <cstdint>
#include <vector>

namespace sparse_ops {

using TeamFn = void (*)(void* ctx, int64_t i);

// Runs fn(ctx, i) for every i in [0, n) on up to `threads` threads of torch's team (the caller
// included) and returns when all have run.
void team_run(int threads, int64_t n, TeamFn fn, void* ctx);

// Threads in torch's intra-op team (torch.get_num_threads()).
int team_size();

// Testing aid: while on, every thread that runs a task of a job records its OS thread id.
void team_debug(bool on);
// The distinct OS thread ids recorded since team_debug(true), sorted.
std::vector<int64_t> team_threads_seen();

}  // namespace sparse_ops
