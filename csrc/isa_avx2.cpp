// The kernels compiled for AVX2 + FMA; its table is sparse_ops::avx2::table().
#include "isa_prelude.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2,f16c,popcnt")
#define SPARSE_OPS_ISA 2
#define ISA_NS avx2
#define ISA_NAME "avx2"

// clang-format off
#include "simd.h"
#include "dot_kernels.h"
#include "csr_kernels.h"
#include "bsr_kernels.h"
#include "nm_kernels.h"
#include "bitmap_kernels.h"
#include "spmv_shuffle_kernels.h"
#include "widen_kernels.h"
#include "panel_kernels.h"
#include "panel_i8_kernels.h"
#include "isa_table.h"
// clang-format on

#pragma GCC pop_options
