// The W8A8 panel product on AMX-INT8 (tdpbssd on tiles: Intel Sapphire Rapids and later
// Xeons), for the AVX-512 level: panel_amx_kernels.h with the tile instructions
// (SPARSE_OPS_AMX), and panel_i8_kernels.h with vpdpbusd (SPARSE_OPS_VNNI = 2) for the BSR
// block heights the tiles do not take. Only that product (panel_i8_amx_rows) lives here; the
// dispatcher runs it only where amx_runs() (dispatch.cpp: the CPU has AMX-TILE and AMX-INT8,
// the OS granted the tile state, and this compiler could emit the instructions: amx_built()).
#include "isa_prelude.h"

// gcc 11 and clang 12 know the AMX instructions; an older compiler builds the rest of the
// project without them (amx_built() false: the engine is never offered).
#if (defined(__clang__) && __clang_major__ >= 12) || \
    (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11)
#define SPARSE_OPS_AMX_BUILT 1
#else
#define SPARSE_OPS_AMX_BUILT 0
#endif

namespace sparse_ops {
bool amx_built() { return SPARSE_OPS_AMX_BUILT != 0; }
}  // namespace sparse_ops

#if SPARSE_OPS_AMX_BUILT
#pragma GCC push_options
#pragma GCC target( \
    "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi,bmi2,f16c,popcnt,avx512vnni,amx-tile,amx-int8")
#define SPARSE_OPS_ISA 3
#define SPARSE_OPS_VNNI 2
#define SPARSE_OPS_AMX 1
#define ISA_NS amx

// clang-format off
#include "simd.h"
#include "panel_i8_kernels.h"
#include "panel_amx_kernels.h"
// clang-format on

#pragma GCC pop_options
#else
namespace sparse_ops {
namespace amx {
void panel_i8_amx_rows(const PanelArgs&, int64_t, int64_t) { std::abort(); }  // never offered
}  // namespace amx
}  // namespace sparse_ops
#endif
