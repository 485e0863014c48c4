// The W8A8 panel product on AVX512-VNNI (EVEX vpdpbusd on 256-bit vectors, AVX512VL: Intel Ice
// Lake / Sapphire Rapids Xeons, AMD Zen 4 and 5), for the AVX-512 level: panel_i8_kernels.h
// compiled with SPARSE_OPS_VNNI = 2. Only that product (panel_i8_vnni_rows) lives here; the
// dispatcher runs it only where the CPU reports avx512vnni (dispatch.cpp, int8_dot_fn).
#include "isa_prelude.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi,bmi2,f16c,popcnt,avx512vnni")
#define SPARSE_OPS_ISA 3
#define SPARSE_OPS_VNNI 2
#define ISA_NS avx512vnni

// clang-format off
#include "simd.h"
#include "panel_i8_kernels.h"
// clang-format on

#pragma GCC pop_options
