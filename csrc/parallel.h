// Work splitting and the threaded driver shared by the entry points (on torch's thread
// team: team.h).
//
// Rows are cut into contiguous chunks of about equal cost (nonzeros, not row counts, via
// binary search on the CSR prefix sums), a few per thread, handed out dynamically. Output
// columns are cut into tiles whose slice of the dense operand (K x tile) fits in L2. Each
// chunk's indices are validated before any kernel reads memory through them: fused with the
// compute when there is a single column tile (the chunk is then hot in cache), otherwise in a
// first parallel pass followed by a barrier.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <limits>
#include <utility>
#include <vector>

#include "kernels.h"
#include "scratch.h"
#include "team.h"

namespace sparse_ops {

// body(i) for every i in [0, n), on up to `threads` threads of torch's team (team.h).
template <class F>
void parallel_for(int threads, int64_t n, F&& body) {
  if (n <= 0) return;
  using Fn = std::remove_reference_t<F>;
  team_run(
      threads, n, [](void* ctx, int64_t i) { (*static_cast<Fn*>(ctx))(i); },
      const_cast<void*>(static_cast<const void*>(&body)));
}

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
// L2 budget for the dense operand's column tile (SPARSE_OPS_TILE_KB overrides, for tuning;
// set_tile_budget(bytes > 0) overrides both, for tests of the tiled paths on small inputs).
int64_t l2_tile_budget();
void set_tile_budget(int64_t bytes);

// The values [v0, v1) of a row chunk in the compute type T: the caller's array when the values
// are stored as T, else (reduced-precision values) widened into the calling thread's scratch
// (L2-resident: the chunk is sized for it), so memory is read in the stored dtype. Returns p
// with p[v] = value v for v in [v0, v1 + kValuePad) (values past the array are 0: vector
// loads may overrun a row).
constexpr int64_t kValuePad = 64;
template <class T>
const T* chunk_values(const Values& stored, int64_t total, int64_t v0, int64_t v1) {
  if constexpr (!std::is_same_v<T, float>) {
    return static_cast<const T*>(stored.data);
  } else {
    if (stored.dt == DT::f32) return static_cast<const T*>(stored.data);
    const int64_t n = v1 - v0, avail = std::min(total, v1 + kValuePad) - v0;
    float* buf = static_cast<float*>(
        scratch_buffer(kScratchValues, static_cast<size_t>(n + kValuePad) * sizeof(float)));
    active_table().widen(stored, v0, buf, avail);
    for (int64_t i = avail; i < n + kValuePad; ++i) buf[i] = 0.0f;
    return buf - v0;
  }
}

// Points a row chunk's args at its values: at N == 1 the SpMV kernels read the stored values
// directly (their own bytes from memory, widened in registers); otherwise the chunk's values
// in the compute type (chunk_values), shared by the N columns.
template <class A>
void set_chunk_values(A& a, const Values& stored, int64_t total, int64_t v0, int64_t v1) {
  using T = std::remove_const_t<std::remove_pointer_t<decltype(a.val)>>;
  a.stored = stored;
  if (a.N == 1)
    a.val = stored.dt == compute_dtype(stored.dt) ? static_cast<const T*>(stored.data) : nullptr;
  else
    a.val = chunk_values<T>(stored, total, v0, v1);
}

// The smallest bad position seen by any thread.
struct FirstBad {
  std::atomic<int64_t> v{std::numeric_limits<int64_t>::max()};
  void record(int64_t p) {
    int64_t cur = v.load(std::memory_order_relaxed);
    while (p < cur && !v.compare_exchange_weak(cur, p, std::memory_order_relaxed)) {
    }
  }
  bool any() const {
    return v.load(std::memory_order_relaxed) != std::numeric_limits<int64_t>::max();
  }
  int64_t get() const { return v.load(std::memory_order_relaxed); }
};

// A column tile of a row-major (rows x ld) operand copied into a contiguous, 64-byte aligned
// (rows x width) buffer. Kernels gather rows of the dense operand at random; with the caller's
// row stride (often a power of two, e.g. 2 KiB for N = 512) a narrow tile maps onto a fraction
// of the cache sets and thrashes L1/L2, while the packed copy uses them all.
template <class T>
class TilePack {
 public:
  TilePack(const T* src, int64_t rows, int64_t ld, int64_t max_width)
      : src_(src),
        rows_(rows),
        ld_(ld),
        buf_(static_cast<T*>(
            scratch_buffer(kScratchPack, static_cast<size_t>(rows * max_width) * sizeof(T)))) {}
  // Copies rows [rows*part/parts, rows*(part+1)/parts) of columns [c0, c1).
  void pack(int64_t c0, int64_t c1, int64_t part, int64_t parts) const {
    const int64_t w = c1 - c0;
    const int64_t r0 = rows_ * part / parts, r1 = rows_ * (part + 1) / parts;
    for (int64_t r = r0; r < r1; ++r)
      std::memcpy(buf_ + r * w, src_ + r * ld_ + c0, static_cast<size_t>(w) * sizeof(T));
  }
  const T* data() const { return buf_; }

 private:
  const T* src_;
  int64_t rows_, ld_;
  T* buf_;  // the calling thread's kScratchPack buffer
};

// The dense operand (rows x ld, row-major) as seen by tile t of `tiles`: the caller's array
// when there is a single tile, else a packed copy of the tile (filled by pack(t, part) for
// part in [0, npack) before the tile is computed).
template <class T>
class TiledOperand {
 public:
  TiledOperand(const T* src, int64_t rows, int64_t ld,
               const std::vector<std::pair<int64_t, int64_t>>& tiles, int threads)
      : src_(src), ld_(ld), tiles_(tiles) {
    if (tiles.size() > 1) {
      int64_t wmax = 0;
      for (const auto& t : tiles) wmax = std::max(wmax, t.second - t.first);
      pack_.reset(new TilePack<T>(src, rows, ld, wmax));
      npack_ = std::max<int64_t>(1, std::min<int64_t>(rows, 4 * static_cast<int64_t>(threads)));
    }
  }
  int64_t npack() const { return npack_; }
  void pack(int64_t t, int64_t part) const {
    pack_->pack(tiles_[t].first, tiles_[t].second, part, npack_);
  }
  const T* data(int64_t t) const { return pack_ ? pack_->data() : src_; }
  int64_t ld(int64_t t) const { return pack_ ? tiles_[t].second - tiles_[t].first : ld_; }
  int64_t col0(int64_t t) const { return pack_ ? tiles_[t].first : 0; }

 private:
  const T* src_;
  int64_t ld_;
  const std::vector<std::pair<int64_t, int64_t>>& tiles_;
  std::unique_ptr<TilePack<T>> pack_;
  int64_t npack_ = 0;
};

// validate(c) -> bool checks chunk c (recording any error in `bad`); compute(t, c) runs
// column tile t on chunk c. A chunk is computed only after it validated; with several tiles,
// nothing is computed unless every chunk validated, and tiles run one after the other (a
// barrier between them) so that tile t may accumulate on what tile t-1 wrote. With several
// tiles and npack > 0, pack(t, part) for part in [0, npack) runs before tile t's compute
// (a barrier between them).
template <class Validate, class Compute, class Pack>
void run_chunks(int threads, int64_t nchunks, int64_t ntiles, const FirstBad& bad,
                Validate&& validate, Compute&& compute, int64_t npack, Pack&& pack) {
  if (threads > nchunks) threads = static_cast<int>(nchunks > 0 ? nchunks : 1);
  if (ntiles <= 1) {
    parallel_for(threads, nchunks, [&](int64_t c) {
      if (validate(c) && ntiles == 1) compute(0, c);
    });
    return;
  }
  parallel_for(threads, nchunks, [&](int64_t c) { validate(c); });
  if (bad.any()) return;
  for (int64_t t = 0; t < ntiles; ++t) {
    if (npack > 0) parallel_for(threads, npack, [&](int64_t q) { pack(t, q); });
    parallel_for(threads, nchunks, [&](int64_t c) { compute(t, c); });
  }
}

template <class Validate, class Compute>
void run_chunks(int threads, int64_t nchunks, int64_t ntiles, const FirstBad& bad,
                Validate&& validate, Compute&& compute) {
  run_chunks(threads, nchunks, ntiles, bad, validate, compute, 0, [](int64_t, int64_t) {});
}

}  // namespace sparse_ops

