// The W8A8 panel product on AVX-VNNI (VEX vpdpbusd: Intel Alder Lake and later client cores,
// Sapphire Rapids, AMD Zen 5), for the AVX2 level: panel_i8_kernels.h compiled with
// SPARSE_OPS_VNNI = 1. Only that product (panel_i8_vnni_rows) lives here; the dispatcher runs
// it only where the CPU reports avxvnni (dispatch.cpp, int8_dot_fn).
#include "isa_prelude.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2,f16c,popcnt,avxvnni")
#define SPARSE_OPS_ISA 2
#define SPARSE_OPS_VNNI 1
#define ISA_NS avxvnni

// clang-format off
#include "simd.h"
#include "panel_i8_kernels.h"
// clang-format on

#pragma GCC pop_options
