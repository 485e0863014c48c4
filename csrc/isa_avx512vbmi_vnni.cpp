// The bitmap SpMV with int8 values and a bfloat16 / float16 x as integer products on AVX-512
// with VBMI2 and VNNI (vpexpandb, vpdpbusd: Intel Ice Lake and later, AMD Zen 4 and 5), for the
// AVX-512 level: spmv_vnni_kernels.h. Only that kernel (bitmap_spmv_vnni_rows) lives here; the
// AVX-512 table's bitmap SpMV runs it only where the CPU reports all three (dispatch.cpp,
// g_bitmap_vnni), so no other code is compiled with instructions Skylake-X or Cascade Lake
// lack.
#include "isa_prelude.h"

#pragma GCC push_options
#pragma GCC target(                                                                         \
    "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi,bmi2,f16c,popcnt,avx512vbmi,avx512vbmi2," \
    "avx512vnni")
#define SPARSE_OPS_ISA 3
#define ISA_NS avx512vbmi_vnni

// clang-format off
#include "simd.h"
#include "bitmap_kernels.h"
#include "spmv_vnni_kernels.h"
// clang-format on

#pragma GCC pop_options
