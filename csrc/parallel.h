// Work splitting and the OpenMP driver shared by the entry points.
//
// Rows are cut into contiguous chunks of about equal cost (nonzeros, not row counts, via
// binary search on the CSR prefix sums), a few per thread, handed out dynamically. Output
// columns are cut into tiles whose slice of the dense operand (K x tile) fits in L2. Each
// chunk's indices are validated before any kernel reads memory through them: fused with the
// compute when there is a single column tile (the chunk is then hot in cache), otherwise in a
// first parallel pass followed by a barrier.
#pragma once

#include <omp.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace sparse_ops {

// Threads worth using for `work` multiply-adds (tiny problems run on one thread).
int threads_for(int requested, double work);

// parts+1 row boundaries over [0, rows): cost of row i = w_row + w_nz * (ptr[i+1] - ptr[i]).
std::vector<int64_t> split_by_prefix(const int32_t* ptr, int64_t rows, int64_t parts,
                                     int64_t w_row, int64_t w_nz);
std::vector<int64_t> split_even(int64_t rows, int64_t parts);

// Number of row chunks: a few per thread, and small enough that one chunk's index bytes stay
// in L2 between validation and compute.
int64_t chunk_count(int threads, int64_t rows, int64_t index_bytes);

// Column tiles [n0, n1) covering [0, N) of at most `tile` columns; with N == 0, one empty tile
// if keep_empty (kernels that must still write zeros, e.g. SDDMM), else none.
std::vector<std::pair<int64_t, int64_t>> col_tiles(int64_t N, int64_t tile, bool keep_empty);
// Tile width so that K rows x tile columns of `elem`-byte values take about budget bytes.
int64_t tile_cols(int64_t K, int64_t N, int64_t elem, int64_t budget_bytes);
// L2 budget for the dense operand's column tile (SPARSE_OPS_TILE_KB overrides, for tuning).
int64_t l2_tile_budget();

// The smallest bad position seen by any thread.
struct FirstBad {
  std::atomic<int64_t> v{std::numeric_limits<int64_t>::max()};
  void record(int64_t p) {
    int64_t cur = v.load(std::memory_order_relaxed);
    while (p < cur && !v.compare_exchange_weak(cur, p, std::memory_order_relaxed)) {
    }
  }
  bool any() const { return v.load(std::memory_order_relaxed) != std::numeric_limits<int64_t>::max(); }
  int64_t get() const { return v.load(std::memory_order_relaxed); }
};

// validate(c) -> bool checks chunk c (recording any error in `bad`); compute(t, c) runs
// column tile t on chunk c. A chunk is computed only after it validated; with several tiles,
// nothing is computed unless every chunk validated, and tiles run one after the other (a
// barrier between them) so that tile t may accumulate on what tile t-1 wrote.
template <class Validate, class Compute>
void run_chunks(int threads, int64_t nchunks, int64_t ntiles, const FirstBad& bad,
                Validate&& validate, Compute&& compute) {
  if (threads > nchunks) threads = static_cast<int>(nchunks > 0 ? nchunks : 1);
  if (ntiles <= 1) {
    if (threads <= 1) {
      for (int64_t c = 0; c < nchunks; ++c)
        if (validate(c) && ntiles == 1) compute(0, c);
      return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t c = 0; c < nchunks; ++c)
      if (validate(c) && ntiles == 1) compute(0, c);
    return;
  }
  if (threads <= 1) {
    for (int64_t c = 0; c < nchunks; ++c) validate(c);
    if (bad.any()) return;
    for (int64_t t = 0; t < ntiles; ++t)
      for (int64_t c = 0; c < nchunks; ++c) compute(t, c);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < nchunks; ++c) validate(c);
    if (!bad.any()) {
      for (int64_t t = 0; t < ntiles; ++t) {
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < nchunks; ++c) compute(t, c);
      }
    }
  }
}

}  // namespace sparse_ops
