// The W8A8 panel product on AMX-INT8 (tdpbssd on tiles: Intel Sapphire Rapids and later
// Xeons), for the AVX-512 level: panel_amx_kernels.h with the tile instructions
// (SPARSE_OPS_AMX), and panel_i8_kernels.h with vpdpbusd (SPARSE_OPS_VNNI = 2) for the BSR
// block heights the tiles do not take. Only that product (panel_i8_amx_rows) lives here; the
// dispatcher runs it only where amx_runs() (dispatch.cpp: the CPU has AMX-TILE and AMX-INT8,
// the OS granted the tile state).
#include "isa_prelude.h"

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
