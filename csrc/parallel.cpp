// Work splitting helpers (see parallel.h).
#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>

namespace sparse_ops {

int threads_for(int requested, double work) {
  // Below ~64k multiply-adds a fork/join costs more than it saves.
  constexpr double kPerThread = 32768.0;
  const double useful = work / kPerThread;
  if (useful < 2.0) return 1;
  return useful < requested ? static_cast<int>(useful) : requested;
}

std::vector<int64_t> split_by_prefix(const int32_t* ptr, int64_t rows, int64_t parts,
                                     int64_t w_row, int64_t w_nz) {
  if (parts < 1) parts = 1;
  std::vector<int64_t> b(static_cast<size_t>(parts) + 1, rows);
  b[0] = 0;
  auto cost = [&](int64_t i) { return w_row * i + w_nz * static_cast<int64_t>(ptr[i]); };
  const int64_t total = cost(rows);
  for (int64_t k = 1; k < parts; ++k) {
    const int64_t target = total / parts * k + (total % parts) * k / parts;
    int64_t lo = b[k - 1], hi = rows;  // first i in [lo, rows] with cost(i) >= target
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (cost(mid) < target)
        lo = mid + 1;
      else
        hi = mid;
    }
    b[k] = lo;
  }
  return b;
}

std::vector<int64_t> split_even(int64_t rows, int64_t parts) {
  if (parts < 1) parts = 1;
  std::vector<int64_t> b(static_cast<size_t>(parts) + 1);
  for (int64_t k = 0; k <= parts; ++k) b[k] = rows / parts * k + (rows % parts) * k / parts;
  return b;
}

int64_t chunk_count(int threads, int64_t rows, int64_t index_bytes) {
  constexpr int64_t kChunkBytes = 256 * 1024;
  int64_t c = threads > 1 ? 4 * static_cast<int64_t>(threads) : 1;
  c = std::max(c, index_bytes / kChunkBytes);
  c = std::min(c, rows);
  return std::max<int64_t>(c, 1);
}

std::vector<std::pair<int64_t, int64_t>> col_tiles(int64_t N, int64_t tile, bool keep_empty) {
  std::vector<std::pair<int64_t, int64_t>> t;
  if (N == 0) {
    if (keep_empty) t.emplace_back(0, 0);
    return t;
  }
  if (tile < 1) tile = N;
  const int64_t n = (N + tile - 1) / tile;
  // Equal widths rounded up to a multiple of 16 columns (a vector) where possible.
  int64_t w = (N + n - 1) / n;
  if (w < N) w = std::min(N, (w + 15) / 16 * 16);
  for (int64_t s = 0; s < N; s += w) t.emplace_back(s, std::min(N, s + w));
  return t;
}

int64_t tile_cols(int64_t K, int64_t N, int64_t elem, int64_t budget_bytes) {
  if (K < 1) return N;
  int64_t row_bytes = budget_bytes / K;
  row_bytes = std::max<int64_t>(256, row_bytes / 256 * 256);  // >= 4 cache lines per x row
  const int64_t t = row_bytes / elem;
  return t >= N ? N : t;
}

namespace {
std::atomic<int64_t> g_tile_budget_override{0};
}

int64_t l2_tile_budget() {
  const int64_t o = g_tile_budget_override.load(std::memory_order_relaxed);
  if (o > 0) return o;
  static const int64_t b = [] {
    if (const char* e = std::getenv("SPARSE_OPS_TILE_KB")) {
      const long v = std::strtol(e, nullptr, 10);
      if (v > 0) return static_cast<int64_t>(v) * 1024;
    }
    return static_cast<int64_t>(1024 * 1024);
  }();
  return b;
}

void set_tile_budget(int64_t bytes) { g_tile_budget_override.store(bytes > 0 ? bytes : 0); }

}  // namespace sparse_ops
