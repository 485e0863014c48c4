// The bitmap SpMV with int8 or bfloat16 values on AVX-512 with VBMI and VBMI2 (byte and word
// permutes and expands: Intel Ice Lake and later, AMD Zen 4 and 5), for the AVX-512 level:
// spmv_vbmi_kernels.h. Only that kernel (bitmap_spmv_vbmi_rows) lives here; the AVX-512
// table's bitmap SpMV runs it only where the CPU reports both (spmv_shuffle_kernels.h,
// bitmap_spmv_entry), so no other code is compiled with instructions Skylake-X lacks.
#include "isa_prelude.h"

#pragma GCC push_options
#pragma GCC target( \
    "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi,bmi2,f16c,popcnt,avx512vbmi,avx512vbmi2")
#define SPARSE_OPS_ISA 3
#define ISA_NS avx512vbmi

// clang-format off
#include "simd.h"
#include "bitmap_kernels.h"
#include "spmv_vbmi_kernels.h"
// clang-format on

#pragma GCC pop_options
