// The kernels compiled for the default target: portable C++ "vectors" of W lanes, which the
// compiler may vectorise for x86-64 SSE2. Its table is sparse_ops::scalar::table().
#include "isa_prelude.h"

#pragma GCC push_options

#define SPARSE_OPS_ISA 1
#define ISA_NS scalar
#define ISA_NAME "scalar"

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
