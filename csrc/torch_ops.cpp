// The op boundary: every product of every layout as a torch operator, from one table.
//
// A layout is one traits struct below (Csr, Bsr, Nm, Bitmap): the names of its structure
// tensors and integer parameters (the schema), the check that turns its tensors into the
// drivers' views (drivers.h), the rows of its products, and how it runs S^T @ d. One template
// per product does the rest, the same for every layout: tensors in, one check (dtypes, shapes,
// devices, parameters before anything is allocated), the output allocated, the driver called
// (which checks the structure's data as it reads it), errors turned into ValueError /
// TypeError naming the argument. `linear` is written once over `spmm`. The schemas
// (TORCH_LIBRARY) and the implementations (TORCH_LIBRARY_IMPL) are registered by one loop over
// the layouts and products.
//
// Every product P also has a twin P_call (see CallProduct) that Python's matmul / linear use.
// CSR and BSR products take, after their parameters, the transposed structure (crow_t, col_t,
// perm_t: optional, computed once by the format, see sparse_ops/csr.py) which S^T @ d reads.
//
// This file and team.cpp are the only ones with torch headers: the kernels and drivers stay
// free of them.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <array>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "drivers.h"
#include "scratch.h"
#include "team.h"
#include "torch_errors.h"
#include "validate.h"

namespace sparse_ops {
namespace {

using at::Tensor;

// ------------------------------------------------------------------ errors (torch_errors.h) and dtypes

DT dt_of(at::ScalarType s) {
  switch (s) {
    case at::kFloat:
      return DT::f32;
    case at::kDouble:
      return DT::f64;
    case at::kBFloat16:
      return DT::bf16;
    case at::kHalf:
      return DT::f16;
    case at::kChar:
      return DT::i8;
    case at::kShort:
      return DT::i16;
    case at::kInt:
      return DT::i32;
    case at::kLong:
      return DT::i64;
    case at::kByte:
      return DT::u8;
    default:
      return DT::other;
  }
}

std::string shape_str(const Tensor& t) {
  std::string s = "(";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + (t.dim() == 1 ? ",)" : ")");
}

std::string describe(const Tensor& t) {
  return std::to_string(t.dim()) + "-D " + std::string(c10::toString(t.scalar_type())) +
         " tensor of shape " + shape_str(t);
}

// A defined, strided CPU tensor (TypeError / ValueError naming it otherwise).
const Tensor& expect_cpu(const Tensor& t, const char* name) {
  if (!t.defined()) type_error(std::string(name) + ": expected a tensor, got None");
  if (t.layout() != c10::kStrided)
    type_error(std::string(name) + ": expected a dense (strided) tensor");
  if (t.device().type() != c10::DeviceType::CPU)
    value_error(std::string(name) + ": the cpp backend takes CPU tensors, got one on " +
                t.device().str());
  return t;
}

// An index / metadata tensor: dtype among `allowed`, `dim` dimensions; a contiguous view.
Tensor index_tensor(const Tensor& t, const char* name, std::initializer_list<DT> allowed,
                    int64_t dim) {
  expect_cpu(t, name);
  const DT dt = dt_of(t.scalar_type());
  bool ok = false;
  std::string names;
  for (DT a : allowed) {
    ok = ok || a == dt;
    names += (names.empty() ? "" : " or ") + std::string(dt_name(a));
  }
  if (!ok) type_error(std::string(name) + ": expected an " + names + " tensor, got " +
                      describe(t));
  if (t.dim() != dim)
    value_error(std::string(name) + ": expected a " + std::to_string(dim) + "-D tensor, got " +
                describe(t));
  return t.contiguous();
}

// The values: float32, float64, bfloat16, float16 or int8 (the integers of a quantized
// matrix: S @ x only), `dim` dimensions, contiguous.
Tensor values_tensor(const Tensor& t, int64_t dim, const char* name = "values") {
  expect_cpu(t, name);
  if (!is_value_dtype(dt_of(t.scalar_type())))
    type_error(std::string(name) + ": expected a float32, float64, bfloat16, float16 or int8 "
               "tensor, got " + describe(t));
  if (t.dim() != dim)
    value_error(std::string(name) + ": expected a " + std::to_string(dim) + "-D tensor, got " +
                describe(t));
  Tensor v = t.is_neg() ? t.resolve_neg() : t;
  return v.contiguous();
}

// A tensor's data; empty tensors may have no storage, and the kernels take a null row pointer
// for a skipped bad index: give them a real, never read address.
void* ptr_of(const Tensor& t) {
  alignas(64) static double empty_storage[8] = {};
  void* p = t.data_ptr();
  return p ? p : static_cast<void*>(empty_storage);
}

Values values_view(const Tensor& v) { return {ptr_of(v), dt_of(v.scalar_type())}; }

// A dense operand of the same dtype as `like` (values, or a), 2-D, in the compute type
// (bfloat16 / float16 are computed in float32: widened here, the result narrowed back).
// Row-strided operands are read in place when `rows_ok`; anything else is copied.
Tensor dense_tensor(const Tensor& t, const char* name, const Tensor& like, const char* like_name,
                    bool rows_ok = true) {
  expect_cpu(t, name);
  if (t.scalar_type() != like.scalar_type())
    type_error(std::string(name) + ": dtype " + std::string(c10::toString(t.scalar_type())) +
               " differs from " + like_name + "'s " +
               std::string(c10::toString(like.scalar_type())));
  if (t.dim() != 2)
    value_error(std::string(name) + ": expected a 2-D tensor, got " + describe(t));
  Tensor d = t;
  if (d.is_neg()) d = d.resolve_neg();
  const DT dt = dt_of(d.scalar_type());
  if (compute_dtype(dt) != dt) d = d.to(at::kFloat);
  const int64_t r = d.size(0), c = d.size(1);
  // A single column must be unit-stride: the SpMV paths read x[k] directly.
  const bool rows = rows_ok && (c <= 1 || d.stride(1) == 1) && (r <= 1 || d.stride(0) >= c) &&
                    (r <= 1 || d.stride(0) >= 1) && (c != 1 || r <= 1 || d.stride(0) == 1);
  if (!rows && !d.is_contiguous()) d = d.contiguous();
  return d;
}

Dense dense_view(const Tensor& t) {
  Dense v;
  v.data = ptr_of(t);
  v.dt = dt_of(t.scalar_type());
  v.rows = t.size(0);
  v.cols = t.size(1);
  v.ld = t.size(0) > 1 ? t.stride(0) : t.size(1);
  return v;
}

// A bfloat16 SpMV, x (K, 1) of unit stride: x widened and the float32 output narrowed here, in
// the calling thread's scratch (convert.cpp), instead of by two aten conversions (which, in a
// model, cost ~50 us of cold dispatcher code a call: convert.cpp). `like`: the tensor whose
// dtype x must have (dense_tensor's check; other cases take dense_tensor and its errors).
struct Bf16Spmv {
  static bool applies(const Tensor& x, const Tensor& like) {
    return x.scalar_type() == at::kBFloat16 && like.scalar_type() == at::kBFloat16 &&
           x.device().is_cpu() && x.dim() == 2 && x.size(1) == 1 &&
           (x.size(0) <= 1 || x.stride(0) == 1) && !x.is_neg();
  }
  Dense x, out;
  Bf16Spmv(const Tensor& x_in, int64_t M) {
    const int64_t K = x_in.size(0);
    float* xs = static_cast<float*>(scratch_buffer(kScratchSpmvX, static_cast<size_t>(K) * 4));
    widen_bf16(ptr_of(x_in), xs, K);
    x = Dense{xs, DT::f32, K, 1, 1, DT::bf16};
    out = Dense{scratch_buffer(kScratchSpmvOut, static_cast<size_t>(M) * 4), DT::f32, M, 1, 1};
  }
  // The (M, 1) bfloat16 result.
  Tensor result(const Tensor& x_in) const {
    Tensor r = at::empty({out.rows, 1}, x_in.options());
    narrow_bf16(out.ptr<float>(), ptr_of(r), out.rows);
    return r;
  }
};

at::ScalarType compute_type(const Tensor& like) {
  return compute_dtype(dt_of(like.scalar_type())) == DT::f64 ? at::kDouble : at::kFloat;
}
Tensor narrowed(const Tensor& out, const Tensor& like) {
  return out.scalar_type() == like.scalar_type() ? out : out.to(like.scalar_type());
}

// lo <= v < hi, else a ValueError naming the parameter: checked before anything is allocated
// or divided by it.
void expect_param(int64_t v, int64_t lo, int64_t hi, const char* name, const char* bound) {
  if (v < lo || v >= hi)
    value_error(std::string(name) + ": need " + std::to_string(lo) + " <= " + name + " < " +
                bound + ", got " + std::to_string(v));
}
constexpr int64_t kI32 = INT32_MAX;  // 2**31 - 1: sizes the kernels index with int32

void expect_rows(const Tensor& d, int64_t rows, const char* name) {
  if (d.size(0) != rows)
    value_error(std::string(name) + ": expected " + std::to_string(rows) +
                " rows (the sparse matrix's), got " + std::to_string(d.size(0)));
}

// Runs a driver, turning its std::invalid_argument into torch's ValueError.
template <class F>
void guarded(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    value_error(e.what());
  }
}

int threads() { return team_size(); }

// ------------------------------------------------------------------ the transposed structure
// (crow_t, col_t, perm_t) of a row-pointer structure over `cols` columns: checked when given
// (types and shapes here; the data by the driver), computed for this call when not.
struct TransposedTensors {
  Tensor crow_t, col_t, perm;
};

TransposedTensors transposed_of(const RowPointers& s, int64_t cols,
                                const c10::optional<Tensor>& crow_t,
                                const c10::optional<Tensor>& col_t,
                                const c10::optional<Tensor>& perm_t) {
  const bool given = crow_t.has_value() || col_t.has_value() || perm_t.has_value();
  if (given) {
    if (!crow_t.has_value() || !col_t.has_value() || !perm_t.has_value())
      value_error("crow_t, col_t, perm_t: give the whole transposed structure or none of it");
    TransposedTensors t{index_tensor(*crow_t, "crow_t", {DT::i32}, 1),
                        index_tensor(*col_t, "col_t", {DT::i32}, 1),
                        index_tensor(*perm_t, "perm_t", {DT::i32}, 1)};
    if (t.crow_t.size(0) != cols + 1)
      value_error("crow_t: expected " + std::to_string(cols + 1) + " entries (num_cols + 1), "
                  "got " + std::to_string(t.crow_t.size(0)));
    if (t.col_t.size(0) != s.count || t.perm.size(0) != s.count)
      value_error("col_t, perm_t: expected " + std::to_string(s.count) + " entries each (the "
                  "structure's), got " + std::to_string(t.col_t.size(0)) + " and " +
                  std::to_string(t.perm.size(0)));
    return t;
  }
  auto opts = at::TensorOptions().dtype(at::kInt);
  TransposedTensors t{at::empty({cols + 1}, opts), at::empty({s.count}, opts),
                      at::empty({s.count}, opts)};
  guarded([&] {
    csr_transpose(s, cols, t.crow_t.data_ptr<int32_t>(),
                  static_cast<int32_t*>(ptr_of(t.col_t)), static_cast<int32_t*>(ptr_of(t.perm)),
                  threads());
  });
  return t;
}

RowPointers transposed_view(const TransposedTensors& t, int64_t cols) {
  return {t.crow_t.data_ptr<int32_t>(), ptr_of(t.col_t), DT::i32, cols, t.col_t.size(0)};
}

// ------------------------------------------------------------------ the layouts
// A traits struct per layout:
//   name, structure[] (schema names of the index tensors), params[] (of the int parameters),
//   transposed (whether the products take crow_t, col_t, perm_t after the parameters);
//   struct View: the structure checked for a product whose dense operand has K rows:
//     view(st, values_or_undefined, p, K) (st: the index tensors; p: the parameters);
//   rows(view), values_dim, check_values(view, values), sddmm_shape(view, a, b);
//   spmm / sddmm: the drivers; spmm_t(view, values, d, num_cols, aux): S^T @ d.
using Params = std::array<int64_t, 2>;
using Aux = std::array<c10::optional<Tensor>, 3>;

void expect_values_count(const Tensor& v, int64_t count, const char* unit) {
  if (v.size(0) != count)
    value_error("values: expected " + std::to_string(count) + " " + unit +
                " (one per stored index), got " + describe(v));
}

struct Csr {
  static constexpr const char* name = "csr";
  static constexpr std::array<const char*, 2> structure{"crow", "col"};
  static constexpr std::array<const char*, 0> params{};
  static constexpr bool transposed = true;
  static constexpr int64_t values_dim = 1;

  struct View {
    RowPointers s;
    Tensor crow, col;
  };
  static void check_params(const Params&) {}
  static View view(const Tensor* st, const Params&, int64_t) {
    View v;
    v.crow = index_tensor(st[0], "crow_indices", {DT::i32}, 1);
    v.col = index_tensor(st[1], "col_indices", {DT::i16, DT::i32}, 1);
    if (v.crow.size(0) < 1)
      value_error("crow_indices: expected shape (M+1,) with M >= 0, got an empty tensor");
    v.s = {v.crow.data_ptr<int32_t>(), ptr_of(v.col), dt_of(v.col.scalar_type()),
           v.crow.size(0) - 1, v.col.size(0)};
    return v;
  }
  static int64_t rows(const View& v) { return v.s.rows; }
  static void check_values(const View& v, const Tensor& values) {
    expect_values_count(values, v.s.count, "values");
  }
  static std::vector<int64_t> sddmm_shape(const View& v, const Tensor&, const Tensor&,
                                          const Params&) {
    return {v.s.count};
  }
  static void spmm(const View& v, const Params&, Values val, const Dense& x, const Dense& out) {
    csr_spmm(v.s, val, x, out, threads());
  }
  static void sddmm(const View& v, const Params&, const Dense& a, const Dense& b,
                    const Dense& out) {
    csr_sddmm(v.s, a, b, out, threads());
  }
  // N > 1: S's forward kernel on the transposed structure, reading the values through perm;
  // N <= 1: a scatter (no transposed structure needed).
  static void spmm_t(const View& v, const Params&, const Tensor& values, const Dense& d,
                     const Dense& out, int64_t num_cols, const Aux& aux) {
    expect_param(num_cols, 0, kI32, "num_cols", "2**31 - 1");
    if (d.cols > 1) {
      const TransposedTensors t = transposed_of(v.s, num_cols, aux[0], aux[1], aux[2]);
      csr_spmm_t_transposed(transposed_view(t, num_cols),
                            static_cast<const int32_t*>(ptr_of(t.perm)),
                            values_view(values), d, out, threads());
      return;
    }
    csr_spmm_t_scatter(v.s, values_view(values), d, out, threads());
  }
};

struct Bsr {
  static constexpr const char* name = "bsr";
  static constexpr std::array<const char*, 2> structure{"crow", "col"};
  static constexpr std::array<const char*, 2> params{"r", "c"};
  static constexpr bool transposed = true;
  static constexpr int64_t values_dim = 3;

  struct View {
    RowPointers s;
    Tensor crow, col;
    int64_t R = 0, C = 0;
  };
  static void check_params(const Params& p) {
    expect_param(p[0], 1, kI32, "r", "2**31 - 1");
    expect_param(p[1], 1, kI32, "c", "2**31 - 1");
  }
  static View view(const Tensor* st, const Params& p, int64_t K) {
    View v;
    v.crow = index_tensor(st[0], "crow_indices", {DT::i32}, 1);
    v.col = index_tensor(st[1], "col_indices", {DT::i32}, 1);
    if (v.crow.size(0) < 1)
      value_error("crow_indices: expected shape (Mb+1,) with Mb >= 0, got an empty tensor");
    v.R = p[0];
    v.C = p[1];
    const int64_t mb = v.crow.size(0) - 1;
    if (mb > 0 && v.R > kI32 / mb)
      value_error("r: " + std::to_string(mb) + " block rows of r = " + std::to_string(v.R) +
                  " exceed 2**31 - 1 rows");
    if (K % v.C != 0)
      value_error("x: " + std::to_string(K) + " rows is not a multiple of the block width C = " +
                  std::to_string(v.C));
    v.s = {v.crow.data_ptr<int32_t>(), ptr_of(v.col), DT::i32, mb, v.col.size(0)};
    return v;
  }
  static int64_t rows(const View& v) { return v.s.rows * v.R; }
  static void check_values(const View& v, const Tensor& values) {
    if (values.size(1) != v.R || values.size(2) != v.C)
      value_error("values: blocks are (" + std::to_string(values.size(1)) + ", " +
                  std::to_string(values.size(2)) + "), but r, c = (" + std::to_string(v.R) +
                  ", " + std::to_string(v.C) + ") were passed");
    expect_values_count(values, v.s.count, "blocks");
  }
  static std::vector<int64_t> sddmm_shape(const View& v, const Tensor&, const Tensor&,
                                          const Params&) {
    return {v.s.count, v.R, v.C};
  }
  static void spmm(const View& v, const Params&, Values val, const Dense& x, const Dense& out) {
    bsr_spmm(v.s, v.R, v.C, val, x, out, threads());
  }
  // W8A8 reads a block's rows 4 columns at a time: C a multiple of 4 (spmm_w8a8 calls a
  // layout's check_w8a8 where it has one)
  static void check_w8a8(const View& v) {
    if (v.C % 4 != 0)
      value_error("c: W8A8 takes blocks whose width is a multiple of 4, got c = " +
                  std::to_string(v.C));
  }
  static void spmm_w8a8(const View& v, const int8_t* val, const W8A8& q, float* out) {
    bsr_spmm_w8a8(v.s, v.R, v.C, val, q, out, threads());
  }
  static void sddmm(const View& v, const Params&, const Dense& a, const Dense& b,
                    const Dense& out) {
    bsr_sddmm(v.s, v.R, v.C, a, b, out, threads());
  }
  // Over the transposed block structure: N > 1 reads each stored block through perm,
  // transposed in place; N <= 1 gathers the blocks transposed (one copy) for the SpMV.
  static void spmm_t(const View& v, const Params&, const Tensor& values, const Dense& d,
                     const Dense& out, int64_t num_cols, const Aux& aux) {
    if (num_cols % v.C != 0)
      value_error("num_cols: " + std::to_string(num_cols) +
                  " is not a multiple of the block width " + std::to_string(v.C));
    const int64_t kb = num_cols / v.C;
    const TransposedTensors t = transposed_of(v.s, kb, aux[0], aux[1], aux[2]);
    const RowPointers tv = transposed_view(t, kb);
    if (d.cols > 1) {
      bsr_spmm_t_transposed(tv, static_cast<const int32_t*>(ptr_of(t.perm)), v.R, v.C,
                            values_view(values), d, out, threads());
      return;
    }
    guarded([&] { check_row_pointers(tv.crow, tv.rows, tv.count, "crow_t", "col_t"); });
    const int32_t* perm = static_cast<const int32_t*>(ptr_of(t.perm));
    for (int64_t q = 0; q < tv.count; ++q)
      if (perm[q] < 0 || perm[q] >= tv.count) value_error("perm_t: entries must lie in [0, nnzb)");
    const Tensor vt = values.index_select(0, t.perm.to(at::kLong)).transpose(1, 2).contiguous();
    bsr_spmm(tv, v.C, v.R, values_view(vt), d, out, threads());
  }
};

struct Nm {
  static constexpr const char* name = "nm";
  static constexpr std::array<const char*, 1> structure{"metadata"};
  static constexpr std::array<const char*, 2> params{"n", "m"};
  static constexpr bool transposed = false;
  static constexpr int64_t values_dim = 2;

  struct View {
    NmStructure s;
    Tensor meta;
    int64_t slots = 0;
  };
  static void check_params(const Params& p) {
    const int64_t n = p[0], m = p[1];
    if (m < 2 || m > 16 || n < 1 || n >= m)
      value_error(std::string(m < 2 || m > 16 ? "m" : "n") + ": need 1 <= n < m <= 16, got n=" +
                  std::to_string(n) + ", m=" + std::to_string(m));
  }
  static int64_t meta_bytes(int64_t slots, int64_t m) {
    const int64_t b = m == 2 ? 1 : (m <= 4 ? 2 : 4);
    return (slots * b + 7) / 8;
  }
  static View view(const Tensor* st, const Params& p, int64_t K) {
    View v;
    expect_param(K, 0, (int64_t{1} << 31) - 16, "K", "2**31 - 16 (columns)");
    v.meta = index_tensor(st[0], "metadata", {DT::u8}, 2);
    v.slots = (K + p[1] - 1) / p[1] * p[0];
    const int64_t mb = meta_bytes(v.slots, p[1]);
    if (v.meta.size(1) != mb)
      value_error("metadata: expected shape (M, " + std::to_string(mb) + ") for " +
                  std::to_string(v.slots) + " slots of K = " + std::to_string(K) + ", got " +
                  describe(v.meta));
    v.s = {static_cast<const uint8_t*>(ptr_of(v.meta)), v.meta.size(0), K, p[0], p[1], mb};
    return v;
  }
  static int64_t rows(const View& v) { return v.s.M; }
  static void check_values(const View& v, const Tensor& values) {
    if (values.size(0) != v.s.M || values.size(1) != v.slots)
      value_error("values: expected shape (" + std::to_string(v.s.M) + ", " +
                  std::to_string(v.slots) + ") (M, ceil(K/m)*n), got " + describe(values));
  }
  static std::vector<int64_t> sddmm_shape(const View& v, const Tensor&, const Tensor&,
                                          const Params&) {
    return {v.s.M, v.slots};
  }
  static void spmm(const View& v, const Params&, Values val, const Dense& x, const Dense& out) {
    nm_spmm(v.s, val, x, out, threads());
  }
  static void sddmm(const View& v, const Params&, const Dense& a, const Dense& b,
                    const Dense& out) {
    nm_sddmm(v.s, a, b, out, threads());
  }
  static void spmm_t(const View& v, const Params&, const Tensor& values, const Dense& d,
                     const Dense& out, int64_t, const Aux&) {
    nm_spmm_t(v.s, values_view(values), d, out, threads());
  }
  static void spmm_w8a8(const View& v, const int8_t* val, const W8A8& q, float* out) {
    nm_spmm_w8a8(v.s, val, q, out, threads());
  }
  static int64_t group_unit(const Params& p) { return p[1]; }  // whole groups of m
  static void spmm_grouped(const View& v, Values val, const float* sc, int64_t ld, int64_t gsize,
                           const Dense& x, const Dense& out) {
    nm_spmm_grouped(v.s, val, sc, ld, gsize, x, out, threads());
  }
};

struct Bitmap {
  static constexpr const char* name = "bitmap";
  static constexpr std::array<const char*, 2> structure{"row_offsets", "bitmap"};
  static constexpr std::array<const char*, 1> params{"nnz"};
  static constexpr bool transposed = false;
  static constexpr int64_t values_dim = 1;

  struct View {
    BitmapStructure s;
    Tensor off, bits;
  };
  static void check_params(const Params& p) { expect_param(p[0], 0, kI32, "nnz", "2**31 - 1"); }
  static View view(const Tensor* st, const Params& p, int64_t K) {
    View v;
    expect_param(K, 0, kI32, "K", "2**31 - 1 (columns)");
    v.off = index_tensor(st[0], "row_offsets", {DT::i32}, 1);
    if (v.off.size(0) < 1)
      value_error("row_offsets: expected shape (M+1,) with M >= 0, got an empty tensor");
    const int64_t M = v.off.size(0) - 1, rb = (K + 63) / 64 * 8;
    if (st[1].defined() && st[1].scalar_type() != at::kByte)
      type_error("bitmap: expected a uint8 tensor, got " + describe(st[1]));
    v.bits = index_tensor(st[1], "bitmap", {DT::u8}, st[1].dim() == 2 ? 2 : st[1].dim());
    if (v.bits.dim() != 2 || v.bits.size(0) != M || v.bits.size(1) != rb)
      value_error("bitmap: expected shape (" + std::to_string(M) + ", " + std::to_string(rb) +
                  ") (M rows of 8 * ceil(K / 64) bytes for K = " + std::to_string(K) +
                  "), got " + describe(v.bits));
    const int32_t last = v.off.data_ptr<int32_t>()[M];
    if (p[0] != last)
      value_error("nnz: " + std::to_string(p[0]) + " differs from row_offsets[M] = " +
                  std::to_string(last));
    v.s = {v.off.data_ptr<int32_t>(), static_cast<const uint8_t*>(ptr_of(v.bits)), M, K, rb,
           p[0]};
    return v;
  }
  static int64_t rows(const View& v) { return v.s.M; }
  static void check_values(const View& v, const Tensor& values) {
    expect_values_count(values, v.s.nnz, "values");
  }
  static std::vector<int64_t> sddmm_shape(const View&, const Tensor&, const Tensor&,
                                          const Params& p) {
    return {p[0]};
  }
  static void spmm(const View& v, const Params&, Values val, const Dense& x, const Dense& out) {
    bitmap_spmm(v.s, val, x, out, threads());
  }
  static void sddmm(const View& v, const Params&, const Dense& a, const Dense& b,
                    const Dense& out) {
    bitmap_sddmm(v.s, a, b, out, threads());
  }
  static void spmm_t(const View& v, const Params&, const Tensor& values, const Dense& d,
                     const Dense& out, int64_t, const Aux&) {
    bitmap_spmm_t(v.s, values_view(values), d, out, threads());
  }
  static void spmm_w8a8(const View& v, const int8_t* val, const W8A8& q, float* out) {
    bitmap_spmm_w8a8(v.s, val, q, out, threads());
  }
  static int64_t group_unit(const Params&) { return 1; }
  static void spmm_grouped(const View& v, Values val, const float* sc, int64_t ld, int64_t gsize,
                           const Dense& x, const Dense& out) {
    bitmap_spmm_grouped(v.s, val, sc, ld, gsize, x, out, threads());
  }
};

// ------------------------------------------------------------------ the products, once
// The arguments of one call, as the schema orders them: structure, the product's dense
// operands, then the parameters and (CSR, BSR) the transposed structure.
template <class F>
struct Call {
  std::array<Tensor, F::structure.size()> st;
  Params p{0, 0};
  Aux aux;
};

// int8 values (a quantized matrix's integers, inference only) multiply a float32, bfloat16
// or float16 x: computed in float32, the result in x's dtype.
bool int8_values(const Tensor& values) { return values.scalar_type() == at::kChar; }
void expect_float_x(const Tensor& x, const char* name) {
  const auto s = x.scalar_type();
  if (s != at::kFloat && s != at::kBFloat16 && s != at::kHalf)
    type_error(std::string(name) + ": int8 values need a float32, bfloat16 or float16 " + name +
               ", got " + describe(x));
}

template <class F>
Tensor spmm(const Call<F>& c, const Tensor& values_in, const Tensor& x_in) {
  F::check_params(c.p);
  const Tensor values = values_tensor(values_in, F::values_dim);
  const bool q = int8_values(values_in);
  if (q) expect_float_x(x_in, "x");
  const Tensor& like = q ? x_in : values_in;
  if (Bf16Spmv::applies(x_in, like)) {
    const auto v = F::view(c.st.data(), c.p, x_in.size(0));
    F::check_values(v, values);
    const Bf16Spmv b(x_in, F::rows(v));
    guarded([&] { F::spmm(v, c.p, values_view(values), b.x, b.out); });
    return b.result(x_in);
  }
  const Tensor x = dense_tensor(x_in, "x", like, q ? "x" : "values");
  const auto v = F::view(c.st.data(), c.p, x.size(0));
  F::check_values(v, values);
  Tensor out = at::empty({F::rows(v), x.size(1)}, x.options().dtype(compute_type(like)));
  Dense xv = dense_view(x);
  xv.src = dt_of(x_in.scalar_type());
  guarded([&] { F::spmm(v, c.p, values_view(values), xv, dense_view(out)); });
  return narrowed(out, like);
}

template <class F>
Tensor spmm_t(const Call<F>& c, const Tensor& values_in, const Tensor& d_in, int64_t num_cols) {
  F::check_params(c.p);
  expect_param(num_cols, 0, (int64_t{1} << 31) - 16, "num_cols", "2**31 - 16");
  // S^T @ d reads the values in the compute type (widened once for reduced storage).
  Tensor values = values_tensor(values_in, F::values_dim);
  if (int8_values(values))
    type_error("values: int8 values are inference only (S @ x); S^T @ d needs float values "
               "(dequantize the matrix first)");
  if (compute_type(values) != values.scalar_type()) values = values.to(compute_type(values));
  const Tensor d = dense_tensor(d_in, "d", values_in, "values");
  const auto v = F::view(c.st.data(), c.p, num_cols);
  F::check_values(v, values);
  expect_rows(d_in, F::rows(v), "d");
  Tensor out = at::empty({num_cols, d.size(1)}, d.options().dtype(compute_type(values)));
  guarded([&] { F::spmm_t(v, c.p, values, dense_view(d), dense_view(out), num_cols, c.aux); });
  return narrowed(out, values_in);
}

template <class F>
Tensor sddmm(const Call<F>& c, const Tensor& a_in, const Tensor& b_in) {
  F::check_params(c.p);
  expect_cpu(a_in, "a");
  if (!is_value_dtype(dt_of(a_in.scalar_type())) || a_in.scalar_type() == at::kChar)
    type_error("a: expected a float32, float64, bfloat16 or float16 tensor, got " +
               describe(a_in));
  const Tensor a = dense_tensor(a_in, "a", a_in, "a", false);
  const Tensor b = dense_tensor(b_in, "b", a_in, "a", false);
  const auto v = F::view(c.st.data(), c.p, b.size(0));
  expect_rows(a_in, F::rows(v), "a");
  if (a.size(1) != b.size(1))
    value_error("b: expected " + std::to_string(a.size(1)) + " columns (a's), got " +
                describe(b_in));
  Tensor out = at::empty(F::sddmm_shape(v, a, b, c.p), a.options());
  Dense o;
  o.data = ptr_of(out);
  o.dt = dt_of(out.scalar_type());
  o.rows = out.numel();
  o.cols = 1;
  o.ld = 1;
  guarded([&] { F::sddmm(v, c.p, dense_view(a), dense_view(b), o); });
  return narrowed(out, a_in);
}

// x @ S^T + bias, x (B, K) row-major → (B, M): at B = 1 the row is the (K, 1) column the SpMV
// reads and the (M, 1) result is the (1, M) row (no copies); for B > 1 x is read transposed
// (strided) and the (M, B) result transposed once.
template <class F>
Tensor linear(const Call<F>& c, const Tensor& values, const Tensor& x,
              const c10::optional<Tensor>& bias) {
  expect_cpu(x, "x");
  if (x.dim() != 2) value_error("x: expected a 2-D (B, in_features) tensor, got " + describe(x));
  const Tensor cols = x.size(0) == 1 ? x.view({x.size(1), 1}) : x.t();
  const Tensor y = spmm<F>(c, values, cols);
  Tensor r = y.size(1) == 1 ? y.view({1, y.size(0)}) : y.t().contiguous();
  if (bias.has_value() && bias->defined()) {
    const Tensor& b = *bias;
    if (b.dim() != 1 || b.size(0) != r.size(1))
      value_error("bias: expected shape (" + std::to_string(r.size(1)) + ",), got a " +
                  describe(b));
    if (b.scalar_type() != r.scalar_type())
      type_error("bias: dtype " + std::string(c10::toString(b.scalar_type())) +
                 " differs from the output's " + std::string(c10::toString(r.scalar_type())));
    r.add_(b);
  }
  return r;
}

// Whether layout L applies group scales inside its products (N:M, bitmap); CSR and BSR take
// one scale a row in grouped_op (group_size >= K: their per-row products, rows then scaled).
template <class L, class = void>
struct HasSpmmGrouped : std::false_type {};
template <class L>
struct HasSpmmGrouped<L, std::void_t<decltype(&L::spmm_grouped)>> : std::true_type {};

// The products of int8 values with group scales along K (N:M and bitmap): out (M, N) = S @ x
// with S[i, j] = values * scales[i, j / group_size], x (K, N) (the SpMV ops: (K, 1) or (K,))
// float32 / bfloat16 / float16, out in x's dtype. scales (M, ceil(K / group_size)) float32 or
// bfloat16; group_size a positive integer (N:M: a multiple of m). N == 1 applies the scales
// in registers; wider products as the panel expands a row, or on the widened values. CSR and
// BSR: one group a row only (group_size >= K), their int8 products then each row scaled.
template <class L>
Tensor grouped_op(const Tensor* st, const Tensor& values_in, const Tensor& scales,
                  const Tensor& x_in, int64_t group_size, const Params& p, bool wide,
                  const Tensor* bias = nullptr) {
  L::check_params(p);
  if (values_in.scalar_type() != at::kChar)
    type_error("values: expected an int8 tensor, got " + describe(values_in));
  const Tensor values = values_tensor(values_in, L::values_dim);
  expect_float_x(x_in, "x");
  const Tensor x1 = x_in.dim() == 1 ? x_in.view({x_in.size(0), 1}) : x_in;
  const bool bf16_spmv = Bf16Spmv::applies(x1, x1);
  const Tensor x = bf16_spmv ? x1 : dense_tensor(x1, "x", x1, "x");
  if (!wide && x.size(1) != 1)
    value_error("x: expected a (K, 1) or (K,) tensor, got " + describe(x_in));
  if constexpr (HasSpmmGrouped<L>::value) {
    const int64_t unit = L::group_unit(p);
    if (group_size < 1 || group_size % unit != 0)
      value_error("group_size: expected a positive multiple of " +
                  (unit > 1 ? "m=" + std::to_string(unit) : std::string("1")) + ", got " +
                  std::to_string(group_size));
  } else if (group_size < std::max<int64_t>(x.size(0), 1)) {
    value_error(std::string("group_size: ") + L::name + " products take one scale a row here " +
                "(group_size >= K = " + std::to_string(x.size(0)) + "), got " +
                std::to_string(group_size) + "; dequantize group scales first");
  }
  typename L::View v = L::view(st, p, x.size(0));
  L::check_values(v, values);
  expect_cpu(scales, "scales");
  if (scales.scalar_type() != at::kFloat && scales.scalar_type() != at::kBFloat16)
    type_error("scales: expected a float32 or bfloat16 tensor, got " + describe(scales));
  const int64_t M = L::rows(v);
  const int64_t groups = std::max<int64_t>((x.size(0) + group_size - 1) / group_size, 1);
  if (scales.dim() != 2 || scales.size(0) != M || scales.size(1) != groups)
    value_error("scales: expected shape (" + std::to_string(M) + ", " + std::to_string(groups) +
                "), got " + describe(scales));
  const Tensor sc = scales.to(at::kFloat).contiguous();
  const float* s = sc.data_ptr<float>();
  Tensor bias_f;
  if (bias && bias->defined()) {
    expect_cpu(*bias, "bias");
    if (bias->scalar_type() != x_in.scalar_type())
      type_error("bias: expected a " + std::string(c10::toString(x_in.scalar_type())) +
                 " tensor (x's dtype), got " + describe(*bias));
    if (bias->dim() != 1 || bias->size(0) != M)
      value_error("bias: expected shape (" + std::to_string(M) + ",), got " + describe(*bias));
    bias_f = bias->to(at::kFloat).contiguous();
  }
  const float* bf = bias_f.defined() ? bias_f.data_ptr<float>() : nullptr;
  // one group a row (group_size >= K): the per-row products (their fastest kernels), then
  // each row times its scale
  const auto run = [&](const Dense& xd, const Dense& od) {
    guarded([&] {
      if constexpr (HasSpmmGrouped<L>::value) {
        if (group_size < xd.rows) {
          L::spmm_grouped(v, values_view(values), s, sc.size(1), group_size, xd, od);
          return;
        }
      }
      L::spmm(v, p, values_view(values), xd, od);
      float* o = od.ptr<float>();
      for (int64_t i = 0; i < M; ++i)
        for (int64_t n = 0; n < od.cols; ++n) o[i * od.ld + n] *= s[i * sc.size(1)];
    });
    if (bf) {  // the bias, in float32 before the output is narrowed
      float* o = od.ptr<float>();
      for (int64_t i = 0; i < M; ++i)
        for (int64_t n = 0; n < od.cols; ++n) o[i * od.ld + n] += bf[i];
    }
  };
  if (bf16_spmv) {
    const Bf16Spmv b(x1, M);
    run(b.x, b.out);
    return b.result(x1);
  }
  Tensor out = at::empty({M, x.size(1)}, x.options().dtype(at::kFloat));
  Dense xv = dense_view(x);
  xv.src = dt_of(x_in.scalar_type());
  run(xv, dense_view(out));
  return narrowed(out, x_in);
}

template <bool Wide>
Tensor nm_grouped_op(const Tensor& metadata, const Tensor& values, const Tensor& scales,
                     const Tensor& x, int64_t group_size, int64_t n, int64_t m) {
  return grouped_op<Nm>(&metadata, values, scales, x, group_size, Params{n, m}, Wide);
}

template <bool Wide>
Tensor bitmap_grouped_op(const Tensor& row_offsets, const Tensor& bitmap, const Tensor& values,
                         const Tensor& scales, const Tensor& x, int64_t group_size,
                         int64_t nnz) {
  const Tensor st[2] = {row_offsets, bitmap};
  return grouped_op<Bitmap>(st, values, scales, x, group_size, Params{nnz, 0}, Wide);
}

// x (B, K) @ S^T (+ bias) -> (B, M) with the grouped products (int8 values, group scales): the
// transposes and the bias done here rather than by three Python-level aten calls (each costs
// ~10-25 us of cold code in a model's decode step). The result is grouped_op's (M, B) output
// transposed (a view); x (..., K) of other ranks gives a contiguous (..., M).
template <class L>
Tensor linear_grouped_op(const Tensor* st, const Tensor& values, const Tensor& scales,
                         const Tensor& x, const std::optional<Tensor>& bias, int64_t group_size,
                         const Params& p) {
  expect_cpu(x, "x");
  if (x.layout() != at::kStrided)
    type_error("x: expected a dense tensor, got layout " + std::string(c10::toString(x.layout())));
  TORCH_CHECK(!(x.requires_grad() && at::GradMode::is_enabled()),
              "x: requires grad, but int8 weights are inference only (no backward); run under "
              "torch.no_grad() or dequantize() the weight");
  if (x.dim() < 1) value_error("x: expected a (..., K) tensor, got " + describe(x));
  // (..., K) as (B, K); the result (..., M) (reshaped here, not by Python-level calls)
  const Tensor x2 = x.dim() == 2 ? x : x.reshape({-1, x.size(-1)});
  const Tensor y = grouped_op<L>(st, values, scales, x2.t(), group_size, p, true,
                                 bias ? &*bias : nullptr).t();
  if (x.dim() == 2) return y;
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end() - 1);
  shape.push_back(y.size(1));
  return y.reshape(shape).contiguous();  // (a copy only where B > 1)
}

Tensor nm_linear_grouped_op(const Tensor& metadata, const Tensor& values, const Tensor& scales,
                            const Tensor& x, const std::optional<Tensor>& bias,
                            int64_t group_size, int64_t n, int64_t m) {
  return linear_grouped_op<Nm>(&metadata, values, scales, x, bias, group_size, Params{n, m});
}

Tensor bitmap_linear_grouped_op(const Tensor& row_offsets, const Tensor& bitmap,
                                const Tensor& values, const Tensor& scales, const Tensor& x,
                                const std::optional<Tensor>& bias, int64_t group_size,
                                int64_t nnz) {
  const Tensor st[2] = {row_offsets, bitmap};
  return linear_grouped_op<Bitmap>(st, values, scales, x, bias, group_size, Params{nnz, 0});
}

Tensor csr_linear_grouped_op(const Tensor& crow, const Tensor& col, const Tensor& values,
                             const Tensor& scales, const Tensor& x,
                             const std::optional<Tensor>& bias, int64_t group_size) {
  const Tensor st[2] = {crow, col};
  return linear_grouped_op<Csr>(st, values, scales, x, bias, group_size, Params{0, 0});
}

Tensor bsr_linear_grouped_op(const Tensor& crow, const Tensor& col, const Tensor& values,
                             const Tensor& scales, const Tensor& x,
                             const std::optional<Tensor>& bias, int64_t group_size, int64_t r,
                             int64_t c) {
  const Tensor st[2] = {crow, col};
  return linear_grouped_op<Bsr>(st, values, scales, x, bias, group_size, Params{r, c});
}

// Whether layout F has a check_w8a8 (a C++17 detection idiom, not a C++20 requires-expression:
// torch before 2.13 compiles extensions as C++17).
template <class F, class = void>
struct HasCheckW8a8 : std::false_type {};
template <class F>
struct HasCheckW8a8<
    F, std::void_t<decltype(F::check_w8a8(std::declval<const typename F::View&>()))>>
    : std::true_type {};

// W8A8 (bitmap, N:M and BSR): out (M, N) float32 = S @ (xq * x_scales[:, None])^T with S's int8
// values scaled per row (group_size 0, scales (M, 1)) or per group of group_size columns (a
// multiple of 4; scales (M, ceil(K / group_size))), float32 or bfloat16 scales; xq (N, K) int8
// in [-127, 127] (the activations quantized per token), x_scales (N,) float32.
template <class F>
Tensor spmm_w8a8(const Call<F>& c, const Tensor& values_in, const Tensor& scales_in,
                 const Tensor& xq_in, const Tensor& xs_in, int64_t group_size) {
  F::check_params(c.p);
  if (values_in.scalar_type() != at::kChar)
    type_error("values: W8A8 takes int8 values, got " + describe(values_in));
  const Tensor values = values_tensor(values_in, F::values_dim);
  expect_cpu(xq_in, "xq");
  if (xq_in.scalar_type() != at::kChar)
    type_error("xq: expected the int8 activations (N, K), got " + describe(xq_in));
  if (xq_in.dim() != 2) value_error("xq: expected a 2-D (N, K) tensor, got " + describe(xq_in));
  const Tensor xq = xq_in.contiguous();
  const int64_t N = xq.size(0), K = xq.size(1);
  expect_cpu(xs_in, "x_scales");
  if (xs_in.scalar_type() != at::kFloat)
    type_error("x_scales: expected a float32 tensor, got " + describe(xs_in));
  if (xs_in.dim() != 1 || xs_in.size(0) != N)
    value_error("x_scales: expected shape (" + std::to_string(N) + ",) (one a token), got " +
                describe(xs_in));
  const Tensor xs = xs_in.contiguous();
  if (group_size < 0 || (group_size > 0 && group_size % 4 != 0))
    value_error("group_size: W8A8 takes 0 (one scale a row) or a positive multiple of 4, got " +
                std::to_string(group_size));
  const auto v = F::view(c.st.data(), c.p, K);
  if constexpr (HasCheckW8a8<F>::value) F::check_w8a8(v);
  F::check_values(v, values);
  const int64_t M = F::rows(v);
  expect_cpu(scales_in, "scales");
  if (scales_in.scalar_type() != at::kFloat && scales_in.scalar_type() != at::kBFloat16)
    type_error("scales: expected a float32 or bfloat16 tensor, got " + describe(scales_in));
  const int64_t groups = group_size == 0 ? 1 : std::max<int64_t>((K + group_size - 1) / group_size, 1);
  if (scales_in.dim() != 2 || scales_in.size(0) != M || scales_in.size(1) != groups)
    value_error("scales: expected shape (" + std::to_string(M) + ", " + std::to_string(groups) +
                "), got " + describe(scales_in));
  const Tensor sc = scales_in.to(at::kFloat).contiguous();
  Tensor out = at::empty({M, N}, xq.options().dtype(at::kFloat));
  if (M == 0 || N == 0) return out;
  W8A8 q;
  q.xq = static_cast<const int8_t*>(ptr_of(xq));
  q.xscale = xs.data_ptr<float>();
  q.N = N;
  q.K = K;
  q.wscale = sc.data_ptr<float>();
  q.ws_ld = groups;
  q.wgroup = group_size;  // 0: one scale a row
  guarded([&] { F::spmm_w8a8(v, static_cast<const int8_t*>(ptr_of(values)), q, out.data_ptr<float>()); });
  return out;
}

// ------------------------------------------------------------------ schemas and boxed kernels
enum class Product { spmm, spmm_t, sddmm, linear };
constexpr std::array<Product, 4> kProducts{Product::spmm, Product::spmm_t, Product::sddmm,
                                           Product::linear};
const char* product_name(Product p) {
  switch (p) {
    case Product::spmm:
      return "spmm";
    case Product::spmm_t:
      return "spmm_t";
    case Product::sddmm:
      return "sddmm";
    default:
      return "linear";
  }
}

// "(Tensor crow, Tensor col, Tensor values, Tensor x, int r, int c, Tensor? crow_t=None, ...)"
template <class F>
std::string schema_args(Product p) {
  std::string s = "(";
  for (const char* n : F::structure) s += std::string("Tensor ") + n + ", ";
  switch (p) {
    case Product::spmm:
      s += "Tensor values, Tensor x";
      break;
    case Product::spmm_t:
      s += "Tensor values, Tensor d, int num_cols";
      break;
    case Product::sddmm:
      s += "Tensor a, Tensor b";
      break;
    case Product::linear:
      s += "Tensor values, Tensor x, Tensor? bias";
      break;
  }
  for (const char* n : F::params) s += std::string(", int ") + n;
  if (F::transposed) s += ", Tensor? crow_t=None, Tensor? col_t=None, Tensor? perm_t=None";
  return s + ") -> Tensor";
}

// Reads the structure, parameters and transposed structure of a call from the stack's
// arguments `args` (`dense` of them between the structure and the parameters).
template <class F>
Call<F> read_call(const c10::ArrayRef<c10::IValue> args, size_t dense) {
  Call<F> c;
  size_t i = 0;
  for (size_t k = 0; k < F::structure.size(); ++k, ++i) {
    if (!args[i].isTensor())
      type_error(std::string(F::structure[k]) + ": expected a tensor, got None");
    c.st[k] = args[i].toTensor();
  }
  i += dense;
  for (size_t k = 0; k < F::params.size(); ++k, ++i) c.p[k] = args[i].toInt();
  if constexpr (F::transposed) {
    for (size_t k = 0; k < 3; ++k, ++i)
      if (i < args.size() && args[i].isTensor()) c.aux[k] = args[i].toTensor();
  }
  return c;
}

template <class F, Product P>
void boxed(const c10::OperatorHandle& op, c10::DispatchKeySet, torch::jit::Stack* stack) {
  const size_t n = op.schema().arguments().size();
  const auto args = torch::jit::last(*stack, n);
  const size_t ns = F::structure.size();
  Tensor out;
  switch (P) {
    case Product::spmm: {
      const Call<F> c = read_call<F>(args, 2);
      out = spmm<F>(c, args[ns].toTensor(), args[ns + 1].toTensor());
      break;
    }
    case Product::spmm_t: {
      const Call<F> c = read_call<F>(args, 3);
      out = spmm_t<F>(c, args[ns].toTensor(), args[ns + 1].toTensor(), args[ns + 2].toInt());
      break;
    }
    case Product::sddmm: {
      const Call<F> c = read_call<F>(args, 2);
      out = sddmm<F>(c, args[ns].toTensor(), args[ns + 1].toTensor());
      break;
    }
    case Product::linear: {
      const Call<F> c = read_call<F>(args, 3);
      out = linear<F>(c, args[ns].toTensor(), args[ns + 1].toTensor(),
                      args[ns + 2].toOptional<Tensor>());
      break;
    }
  }
  torch::jit::drop(*stack, n);
  torch::jit::push(*stack, std::move(out));
}

template <class F>
void boxed_w8a8(const c10::OperatorHandle& op, c10::DispatchKeySet, torch::jit::Stack* stack) {
  const size_t n = op.schema().arguments().size();
  const auto args = torch::jit::last(*stack, n);
  const size_t ns = F::structure.size();
  const Call<F> c = read_call<F>(args, 5);
  Tensor out = spmm_w8a8<F>(c, args[ns].toTensor(), args[ns + 1].toTensor(),
                            args[ns + 2].toTensor(), args[ns + 3].toTensor(),
                            args[ns + 4].toInt());
  torch::jit::drop(*stack, n);
  torch::jit::push(*stack, std::move(out));
}

// "bitmap_spmm_w8a8(Tensor row_offsets, Tensor bitmap, Tensor values, Tensor scales, ...)"
template <class F>
void define_w8a8(torch::Library& m) {
  std::string s = std::string(F::name) + "_spmm_w8a8(";
  for (const char* n : F::structure) s += std::string("Tensor ") + n + ", ";
  s += "Tensor values, Tensor scales, Tensor xq, Tensor x_scales, int group_size";
  for (const char* n : F::params) s += std::string(", int ") + n;
  m.def(torch::schema((s + ") -> Tensor").c_str(), c10::AliasAnalysisKind::FROM_SCHEMA));
}

template <class F>
void impl_w8a8(torch::Library& m) {
  m.impl((std::string(F::name) + "_spmm_w8a8").c_str(),
         torch::CppFunction::makeFromBoxedFunction<&boxed_w8a8<F>>());
}

// ------------------------------------------------------------------ the *_call twins
// Every product P also has an op P_call (CompositeImplicitAutograd) that Python's matmul /
// linear use: when no input needs a gradient it runs P below the autograd layer, skipping
// the Python autograd kernel that torch.library.register_autograd installs on P (about
// 3 us a call, measured: bench.layers "percall"); otherwise it calls P with its autograd.
// Under torch.compile the call decomposes into P, whose fake kernel and autograd formula the
// compiler uses.
bool any_requires_grad(const torch::jit::Stack& stack, size_t first, size_t count) {
  for (size_t i = first; i < first + count; ++i) {
    const c10::IValue& v = stack[i];
    if (v.isTensor() && v.toTensor().requires_grad()) return true;
  }
  return false;
}

class CallProduct final : public c10::OperatorKernel {
 public:
  explicit CallProduct(std::string target) : target_(std::move(target)) {}

  void operator()(const c10::OperatorHandle& op, c10::DispatchKeySet, torch::jit::Stack* stack) {
    std::call_once(found_, [&] {
      handle_.emplace(c10::Dispatcher::singleton().findSchemaOrThrow(target_.c_str(), ""));
    });
    const size_t nargs = op.schema().arguments().size();
    const bool need = at::GradMode::is_enabled() &&
                      any_requires_grad(*stack, stack->size() - nargs, nargs);
    if (need) {
      handle_->callBoxed(stack);
    } else {
      at::AutoDispatchBelowADInplaceOrView guard;
      handle_->callBoxed(stack);
    }
  }

 private:
  std::string target_;  // "sparse_ops::csr_spmm" for sparse_ops::csr_spmm_call
  std::once_flag found_;
  std::optional<c10::OperatorHandle> handle_;
};

// ------------------------------------------------------------------ registration, one table
template <class F>
void define_layout(torch::Library& m) {
  for (Product p : kProducts) {
    const std::string base = std::string(F::name) + "_" + product_name(p);
    const std::string args = schema_args<F>(p);
    m.def(torch::schema((base + args).c_str(), c10::AliasAnalysisKind::FROM_SCHEMA));
    m.def(torch::schema((base + "_call" + args).c_str(), c10::AliasAnalysisKind::FROM_SCHEMA));
  }
}

template <class F, Product P>
void impl_product(torch::Library& m) {
  const std::string base = std::string(F::name) + "_" + product_name(P);
  m.impl(base.c_str(), torch::CppFunction::makeFromBoxedFunction<&boxed<F, P>>());
}

template <class F>
void impl_layout(torch::Library& m) {
  impl_product<F, Product::spmm>(m);
  impl_product<F, Product::spmm_t>(m);
  impl_product<F, Product::sddmm>(m);
  impl_product<F, Product::linear>(m);
}

template <class F>
void impl_calls(torch::Library& m) {
  for (Product p : kProducts) {
    const std::string base = std::string(F::name) + "_" + product_name(p);
    m.impl((base + "_call").c_str(), torch::CppFunction::makeFromBoxedFunctor(
                                         std::make_unique<CallProduct>("sparse_ops::" + base)));
  }
}

// The transposed structure of a row-pointer structure (CSR's entries, BSR's blocks) over
// num_cols (block) columns: (crow_t int32 (num_cols + 1), col_t int32 (nnz), perm_t int32
// (nnz)), the format's data for S^T @ d (sparse_ops/csr.py computes it once).
std::tuple<Tensor, Tensor, Tensor> csr_transpose_op(const Tensor& crow_in, const Tensor& col_in,
                                                    int64_t num_cols) {
  expect_param(num_cols, 0, kI32, "num_cols", "2**31 - 1");
  const Tensor crow = index_tensor(crow_in, "crow_indices", {DT::i32}, 1);
  const Tensor col = index_tensor(col_in, "col_indices", {DT::i16, DT::i32}, 1);
  if (crow.size(0) < 1)
    value_error("crow_indices: expected shape (M+1,) with M >= 0, got an empty tensor");
  const RowPointers s{crow.data_ptr<int32_t>(), ptr_of(col), dt_of(col.scalar_type()),
                      crow.size(0) - 1, col.size(0)};
  const TransposedTensors t = transposed_of(s, num_cols, {}, {}, {});
  return {t.crow_t, t.col_t, t.perm};
}

}  // namespace
}  // namespace sparse_ops

TORCH_LIBRARY(sparse_ops, m) {
  using namespace sparse_ops;
  define_layout<Csr>(m);
  define_layout<Bsr>(m);
  define_layout<Nm>(m);
  define_layout<Bitmap>(m);
  m.def("csr_transpose(Tensor crow, Tensor col, int num_cols) -> (Tensor, Tensor, Tensor)");
  m.def("nm_spmv_grouped(Tensor metadata, Tensor values, Tensor scales, Tensor x, "
        "int group_size, int n, int m) -> Tensor");
  m.def("bitmap_spmv_grouped(Tensor row_offsets, Tensor bitmap, Tensor values, Tensor scales, "
        "Tensor x, int group_size, int nnz) -> Tensor");
  m.def("nm_spmm_grouped(Tensor metadata, Tensor values, Tensor scales, Tensor x, "
        "int group_size, int n, int m) -> Tensor");
  m.def("bitmap_spmm_grouped(Tensor row_offsets, Tensor bitmap, Tensor values, Tensor scales, "
        "Tensor x, int group_size, int nnz) -> Tensor");
  m.def("nm_linear_grouped(Tensor metadata, Tensor values, Tensor scales, Tensor x, "
        "Tensor? bias, int group_size, int n, int m) -> Tensor");
  m.def("bitmap_linear_grouped(Tensor row_offsets, Tensor bitmap, Tensor values, "
        "Tensor scales, Tensor x, Tensor? bias, int group_size, int nnz) -> Tensor");
  m.def("csr_linear_grouped(Tensor crow, Tensor col, Tensor values, Tensor scales, Tensor x, "
        "Tensor? bias, int group_size) -> Tensor");
  m.def("bsr_linear_grouped(Tensor crow, Tensor col, Tensor values, Tensor scales, Tensor x, "
        "Tensor? bias, int group_size, int r, int c) -> Tensor");
  define_w8a8<Nm>(m);
  define_w8a8<Bitmap>(m);
  define_w8a8<Bsr>(m);
}

TORCH_LIBRARY_IMPL(sparse_ops, CompositeImplicitAutograd, m) {
  using namespace sparse_ops;
  impl_calls<Csr>(m);
  impl_calls<Bsr>(m);
  impl_calls<Nm>(m);
  impl_calls<Bitmap>(m);
}

TORCH_LIBRARY_IMPL(sparse_ops, CPU, m) {
  using namespace sparse_ops;
  impl_layout<Csr>(m);
  impl_layout<Bsr>(m);
  impl_layout<Nm>(m);
  impl_layout<Bitmap>(m);
  m.impl("csr_transpose", &csr_transpose_op);
  m.impl("nm_spmv_grouped", &nm_grouped_op<false>);
  m.impl("bitmap_spmv_grouped", &bitmap_grouped_op<false>);
  m.impl("nm_spmm_grouped", &nm_grouped_op<true>);
  m.impl("nm_linear_grouped", &nm_linear_grouped_op);
  m.impl("bitmap_linear_grouped", &bitmap_linear_grouped_op);
  m.impl("csr_linear_grouped", &csr_linear_grouped_op);
  m.impl("bsr_linear_grouped", &bsr_linear_grouped_op);
  m.impl("bitmap_spmm_grouped", &bitmap_grouped_op<true>);
  impl_w8a8<Nm>(m);
  impl_w8a8<Bitmap>(m);
  impl_w8a8<Bsr>(m);
}
