// The kernels compiled for AVX-512 (F, BW, VL, DQ) + FMA; table: sparse_ops::avx512::table().
#include "isa_prelude.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi,bmi2,f16c,popcnt")
#define SPARSE_OPS_ISA 3
#define ISA_NS avx512
#define ISA_NAME "avx512"

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
#include "panel_amx_kernels.h"
#include "isa_table.h"
// clang-format on

#pragma GCC pop_options
