// Builds the KernelTable of one SIMD level. Included last by each isa_*.cpp, inside its
// `#pragma GCC target` region, after simd.h and the kernel headers.
#pragma once

namespace sparse_ops {
namespace ISA_NS {

template <class T>
TypedKernels<T> typed_kernels() {
  TypedKernels<T> k{};
  k.csr16 = {&csr_spmm_rows<T, int16_t>, &csr_sddmm_rows<T, int16_t>,
             &csr_spmm_t_rows<T, int16_t>};
  k.csr32 = {&csr_spmm_rows<T, int32_t>, &csr_sddmm_rows<T, int32_t>,
             &csr_spmm_t_rows<T, int32_t>};
  k.bsr_spmm = &bsr_spmm_rows<T>;
  k.bsr_sddmm = &bsr_sddmm_rows<T>;
  k.nm_spmm = &nm_spmm_entry<T>;
  k.nm_spmm_t = &nm_spmm_t_rows<T>;
  k.nm_sddmm = &nm_sddmm_rows<T>;
  k.bitmap_spmv = &bitmap_spmv_entry<T>;
  k.bitmap_spmm_t = &bitmap_spmm_t_cols<T>;
  return k;
}

const KernelTable& table() {
  // the vector levels: the VNNI engine emulated, and vpdpbusd from its own translation unit
#if SPARSE_OPS_ISA >= 2
  constexpr PanelSpmmFn emulated = &panel_i8_rows<kDotEmulated>;
#else
  constexpr PanelSpmmFn emulated = nullptr;
#endif
#if SPARSE_OPS_ISA == 3
  constexpr PanelSpmmFn vnni = &avx512vnni::panel_i8_vnni_rows;
#elif SPARSE_OPS_ISA == 2
  constexpr PanelSpmmFn vnni = &avxvnni::panel_i8_vnni_rows;
#else
  constexpr PanelSpmmFn vnni = nullptr;
#endif
  // AMX-INT8 (AVX-512 level only): its emulation here, tdpbssd from isa_amx.cpp
#if SPARSE_OPS_ISA == 3
  constexpr PanelSpmmFn amx_emulated = &panel_i8_amx_emulated_rows;
  constexpr PanelSpmmFn amx = &amx::panel_i8_amx_rows;
#else
  constexpr PanelSpmmFn amx_emulated = nullptr, amx = nullptr;
#endif
  static const KernelTable t{ISA_NAME, typed_kernels<float>(), typed_kernels<double>(),
                             &first_bad_index<int16_t>, &first_bad_index<int32_t>,
                             &widen_values, &dequant_runs_rows, &bitmap_decode_rows<int16_t>,
                             &bitmap_decode_rows<int32_t>, &bitmap_check_rows,
                             &panel_spmm_rows,
                             {&panel_i8_rows<kDotOwn>, emulated, vnni, amx_emulated, amx}};
  return t;
}

}  // namespace ISA_NS
}  // namespace sparse_ops
