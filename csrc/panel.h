// Which wide-product path a bitmap or N:M SpMM takes ("load sparse, compute dense": the
// dense-panel kernels of panel_kernels.h, or the layout's own sparse kernels), and a record of
// the path each product took, so that tests and users can see it (_C._last_path()).
#pragma once

#include <chrono>
#include <cstdint>

#include "kernels.h"

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

// Runs panel() or sparse() (each computes the whole product) as decided above; an undecided
// bucket times both on this call's operands (each once to warm, then once timed) and keeps
// the faster. Records the path taken (last_path).
template <class Panel, class Sparse>
void run_wide(PanelLayout kind, int64_t N, double density, Panel&& panel, Sparse&& sparse,
              const char* panel_name, const char* sparse_name) {
  int d = panel_decision(kind, N, density);
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
    if (!d) sparse();  // the output of the path kept (both are correct; keeps them apart)
    return;
  }
  if (d)
    panel();
  else
    sparse();
  note_path(d ? panel_name : sparse_name);
}


}  // namespace sparse_ops
