// Which wide-product path a bitmap or N:M SpMM takes ("load sparse, compute dense": the
// dense-panel kernels of panel_kernels.h, or the layout's own sparse kernels), and a record of
// the path each product took, so that tests and users can see it (_C._last_path()).
#pragma once

#include <chrono>
#include <cstdint>

#include <memory>

#include "drivers.h"
#include "kernels.h"
#include "parallel.h"

namespace sparse_ops {

// The path of the last product (e.g. "bitmap.panel", "nm.slots"): a static string.
void note_path(const char* name);
const char* last_path();

// How a wide SpMM of N columns at `density` (stored / M*K) of a bitmap or N:M matrix runs:
// 1 on the dense panel, 0 on the layout's own kernels, -1 not decided yet. SPARSE_OPS_PANEL=
// on|off (or _set_panel) forces it; under auto, N == 1 never takes the panel, densities below
// 0.25 (4x the stored multiply-adds) never do, and the rest is measured once per process for
// each (layout, N bucket, density bucket) by run_wide, then cached.
int panel_decision(PanelLayout kind, int64_t N, double density);
void panel_decide(PanelLayout kind, int64_t N, double density, bool panel);
// Testing aid: "auto", "on" or "off" (the environment's choice until changed); "auto" also
// forgets the measured choices.
void set_panel_mode(const char* mode);

// Row chunks for the panel product of M rows: a few a thread, whole panels where M allows.
inline int64_t panel_chunks(int64_t M, int threads) {
  const int64_t panels = (M + kPanelRows - 1) / kPanelRows;
  return std::max<int64_t>(1, std::min<int64_t>(panels, 8 * static_cast<int64_t>(threads)));
}

// The panel product over row chunks [bounds[c], bounds[c + 1]): each chunk is expanded and
// computed only if check(c) (which records what it finds) passes just before. Float panels,
// or int8 ones on the chosen dot engine where pa holds W8A8 operands (pa.xq4).
template <class Check>
void panel_run(const PanelArgs& pa, const std::vector<int64_t>& bounds, int threads,
               Check&& check) {
  const KernelTable& tab = active_table();
  const PanelSpmmFn run = pa.xq4 ? int8_dot_fn(tab) : tab.panel_spmm;
  parallel_for(threads, static_cast<int64_t>(bounds.size()) - 1, [&](int64_t c) {
    if (check(c)) run(pa, bounds[c], bounds[c + 1]);
  });
}

// The activations of a W8A8 product in quads (PanelArgs::xq4): ceil(K / 64) * 16 rows of ldq =
// 4 * (N rounded up to 16) bytes, zeros past K and past N. Threads over quad rows. Throws
// std::invalid_argument naming xq if an entry is -128 (the kernels' |w| * (x with w's sign)
// products need x in [-127, 127]).
struct PackedQuads {
  std::unique_ptr<int8_t[]> data;
  int64_t ldq = 0;
};
PackedQuads pack_quads(const int8_t* xq, int64_t N, int64_t K, int threads);

// pa's W8A8 fields from q (pa.K set): q's activations packed (pack_quads, on `threads`), out,
// N, the scales. The returned quads back pa.xq4: keep them for the product.
PackedQuads set_w8a8(PanelArgs& pa, const W8A8& q, float* out, int threads);

// Whether two W8A8 engines (rows functions of KernelTable::panel_i8) give the same outputs on
// small exact products (bitmap panels per row and in groups of 32, BSR 32 x 32 blocks; unit
// scales, so every output is an integer). amx_runs checks the AMX engine against vpdpbusd so
// once before offering it: a CPU or OS whose tiles behave otherwise keeps vpdpbusd. Call only
// with engines this CPU runs.
bool w8a8_engines_agree(PanelSpmmFn one, PanelSpmmFn other);

// Whether every x[k, c] (K x N, row stride ldx) is finite. The panel multiplies the zeros of
// S's unstored entries too, and 0 * inf is NaN where the sparse products (which never touch an
// unstored entry) give a number: an x with an inf or NaN takes the sparse kernels.
bool all_finite(const float* x, int64_t K, int64_t N, int64_t ldx);

// Runs panel() or sparse() (each computes the whole product) as decided above; an undecided
// bucket times both on this call's operands (each once to warm, then once timed) and keeps
// the faster. An x that is not all finite always takes sparse() (forced "on" included) and
// decides nothing. Records the path taken (last_path).
template <class Panel, class Sparse>
void run_wide(PanelLayout kind, int64_t N, double density, const float* x, int64_t K,
              int64_t ldx, Panel&& panel, Sparse&& sparse, const char* panel_name,
              const char* sparse_name) {
  int d = panel_decision(kind, N, density);
  if (d != 0 && !all_finite(x, K, N, ldx)) d = 0;
  if (d < 0) {
    using clock = std::chrono::steady_clock;
    const auto timed = [](auto& f) {
      const auto t0 = clock::now();
      f();
      return std::chrono::duration<double>(clock::now() - t0).count();
    };
    sparse();
    panel();
    const double ts = timed(sparse), tp = timed(panel);
    d = tp < ts ? 1 : 0;
    panel_decide(kind, N, density, d == 1);
    note_path(d ? panel_name : sparse_name);
    if (!d) sparse();  // every call of the bucket returns the kept path's rounding
    return;
  }
  if (d)
    panel();
  else
    sparse();
  note_path(d ? panel_name : sparse_name);
}


}  // namespace sparse_ops
