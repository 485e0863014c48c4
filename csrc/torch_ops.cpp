// The CPU kernels as torch operators: TORCH_LIBRARY(sparse_ops) schemas and their CPU
// implementations on at::Tensor. The fakes and the autograd formulas are registered from
// Python (sparse_ops/fake.py, sparse_ops/autograd.py); this file only validates, allocates
// and calls the entry points of entry_points.h. It is the only source file that includes
// torch headers: the per-ISA kernel files stay free of them.
//
// Every call checks its integer parameters before anything is allocated or divided by them,
// and the entry points check the structure on every call (O(rows) here and there, the
// indices chunk by chunk inside the products): an in-place edit that torch does not count
// (`.data`, numpy, a raw pointer) is caught like any other. What is cached per structure is
// only the transposed structure of S^T @ d (TransposeCache below), keyed by the tensors'
// identity, data pointer, size and version counter; it is rebuilt when they change, and its
// own indices are checked again on every call.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/TensorImpl.h>
#include <c10/util/Exception.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "entry_points.h"
#include "validate.h"

namespace sparse_ops {
namespace {

// ------------------------------------------------------------------ tensors as Arr views
DT dt_of(at::ScalarType s) {
  switch (s) {
    case at::kFloat:
      return DT::f32;
    case at::kDouble:
      return DT::f64;
    case at::kShort:
      return DT::i16;
    case at::kInt:
      return DT::i32;
    case at::kLong:
      return DT::i64;
    case at::kByte:
      return DT::u8;
    case at::kBFloat16:
      return DT::bf16;
    case at::kHalf:
      return DT::f16;
    default:
      return DT::other;
  }
}

[[noreturn]] void throw_value_error(const std::string& msg) { TORCH_CHECK_VALUE(false, msg); }
[[noreturn]] void throw_type_error(const std::string& msg) { TORCH_CHECK_TYPE(false, msg); }

// How an argument may be laid out in memory.
enum class Layout {
  kContiguous,  // any non-contiguous tensor is copied
  kRows,        // 2-D with unit column stride and any row stride (no copy); else copied
};

// `t` as an Arr. Non-CPU tensors raise; negative/conjugate views are resolved (a copy);
// a layout the kernels cannot read is copied into `t` (which then owns the copy).
Arr view_of(at::Tensor& t, const char* name, Layout layout = Layout::kContiguous) {
  if (!t.defined()) throw_type_error(std::string(name) + ": expected a tensor, got None");
  if (t.device().type() != c10::DeviceType::CPU)
    throw_value_error(std::string(name) + ": the cpp backend takes CPU tensors, got one on " +
                      t.device().str());
  if (t.layout() != c10::kStrided)
    throw_type_error(std::string(name) + ": expected a dense (strided) tensor");
  if (t.is_neg()) t = t.resolve_neg();
  if (t.is_conj()) t = t.resolve_conj();
  bool rows_ok = false;
  if (layout == Layout::kRows && t.dim() == 2) {
    const int64_t r = t.size(0), c = t.size(1);
    // A single column must be unit-stride: the SpMV paths read x[k] directly.
    rows_ok = (c <= 1 || t.stride(1) == 1) && (r <= 1 || t.stride(0) >= c) &&
              (r <= 1 || t.stride(0) >= 1) && (c != 1 || r <= 1 || t.stride(0) == 1);
  }
  if (!rows_ok && !t.is_contiguous()) t = t.contiguous();
  Arr a;
  a.name = name;
  a.dt = dt_of(t.scalar_type());
  if (a.dt == DT::other) a.dtname = c10::toString(t.scalar_type());
  a.shape.assign(t.sizes().begin(), t.sizes().end());
  // Empty tensors may have no storage; the kernels compare row pointers derived from the
  // data pointer against null (a skipped bad index), so give them a real, unread address.
  alignas(64) static double empty_storage[8] = {};
  a.data = t.data_ptr() ? t.data_ptr() : static_cast<void*>(empty_storage);
  const int64_t es = static_cast<int64_t>(t.element_size());
  if (reinterpret_cast<uintptr_t>(a.data) % static_cast<uintptr_t>(es) != 0)
    throw_value_error(std::string(name) + ": misaligned data");
  if (t.dim() >= 2) {
    const int64_t r = t.size(0), c = t.size(t.dim() - 1);
    a.ld = (rows_ok && r > 1) ? t.stride(0) : (t.dim() == 2 ? c : t.numel() / (r ? r : 1));
  } else {
    a.ld = 1;
  }
  // Bytes spanned (for the overlap check): the last element's offset + 1.
  int64_t span = t.numel() ? 1 : 0;
  for (int64_t d = 0; d < t.dim() && t.numel(); ++d) span += (t.size(d) - 1) * t.stride(d);
  a.nbytes = span * es;
  return a;
}

// Runs an entry point, turning its exceptions into torch's ValueError / TypeError.
template <class F>
void guarded(F&& f) {
  try {
    f();
  } catch (const py::type_error& e) {
    throw_type_error(e.what());
  } catch (const py::value_error& e) {
    throw_value_error(e.what());
  } catch (const std::invalid_argument& e) {
    throw_value_error(e.what());
  }
}

bool is_float(const at::Tensor& t) {
  return t.defined() && (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
}
bool is_half(const at::Tensor& t) {
  return t.defined() && (t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf);
}

// bfloat16 / float16 operands are computed in float32 and the result rounded back.
at::Tensor widened(const at::Tensor& t) { return is_half(t) ? t.to(at::kFloat) : t; }
at::ScalarType compute_type(const at::Tensor& t) {
  return is_float(t) ? t.scalar_type() : at::kFloat;
}
at::Tensor narrowed(const at::Tensor& out, const at::Tensor& like) {
  return is_half(like) ? out.to(like.scalar_type()) : out;
}

// Dense operands take the dtype of the values (or of a); checked before any widening.
void same_dtype(const at::Tensor& ref, const char* ref_name, const at::Tensor& t,
                const char* name) {
  if (ref.defined() && t.defined() && ref.scalar_type() != t.scalar_type())
    throw_type_error(std::string(name) + ": dtype " + c10::toString(t.scalar_type()) +
                     " differs from " + ref_name + "'s " + c10::toString(ref.scalar_type()));
}

int torch_threads() { return std::max(1, at::get_num_threads()); }

// ------------------------------------------------------------------ the transpose cache
// One structure's transpose: weak references to its tensors (so the addresses cannot be
// reused while an entry names them), their data pointers, sizes and versions, the integer
// parameters it depended on, and the transposed structure.
struct Entry {
  std::vector<c10::weak_intrusive_ptr<c10::TensorImpl>> refs;
  std::vector<const void*> data;
  std::vector<int64_t> numel, version;
  std::vector<int64_t> params;
  std::vector<at::Tensor> transposed;  // crow_t, col_t, perm (CSR/BSR)
};

class TransposeCache {
 public:
  void clear() {
    std::lock_guard<std::mutex> lk(mu_);
    entries_.clear();
  }

  size_t size() {
    std::lock_guard<std::mutex> lk(mu_);
    return entries_.size();
  }

  // The transposed structure recorded for these tensors, or an empty vector.
  std::vector<at::Tensor> transposed(const std::vector<at::Tensor>& ts,
                                     const std::vector<int64_t>& params) {
    std::lock_guard<std::mutex> lk(mu_);
    Entry* e = find_locked(ts, params);
    return e ? e->transposed : std::vector<at::Tensor>{};
  }

  void set_transposed(const std::vector<at::Tensor>& ts, const std::vector<int64_t>& params,
                      const std::vector<at::Tensor>& t) {
    std::lock_guard<std::mutex> lk(mu_);
    if (Entry* e = insert_locked(ts, params)) e->transposed = t;
  }

 private:
  static constexpr size_t kMax = 4096;

  // Inference tensors carry no version counter: they are validated on every call.
  static bool cacheable(const at::Tensor& t) { return t.defined() && !t.is_inference(); }

  static bool matches(const Entry& e, const std::vector<at::Tensor>& ts,
                      const std::vector<int64_t>& params) {
    if (e.refs.size() != ts.size() || e.params != params) return false;
    for (size_t i = 0; i < ts.size(); ++i) {
      const at::Tensor& t = ts[i];
      if (!cacheable(t)) return false;
      if (e.refs[i]._unsafe_get_target() != t.unsafeGetTensorImpl()) return false;
      if (e.refs[i].expired()) return false;
      if (e.data[i] != t.data_ptr() || e.numel[i] != t.numel() ||
          e.version[i] != static_cast<int64_t>(t._version()))
        return false;
    }
    return true;
  }

  // Entries are found by the first tensor's TensorImpl (a hash lookup, whatever the number
  // of weights), then compared in full.
  Entry* find_locked(const std::vector<at::Tensor>& ts, const std::vector<int64_t>& params) {
    if (ts.empty() || !ts[0].defined()) return nullptr;
    auto range = entries_.equal_range(ts[0].unsafeGetTensorImpl());
    for (auto it = range.first; it != range.second; ++it)
      if (matches(it->second, ts, params)) return &it->second;
    return nullptr;
  }

  Entry* insert_locked(const std::vector<at::Tensor>& ts, const std::vector<int64_t>& params) {
    if (Entry* e = find_locked(ts, params)) return e;
    if (ts.empty()) return nullptr;
    for (const at::Tensor& t : ts)
      if (!cacheable(t)) return nullptr;
    if (entries_.size() >= kMax) prune_locked();
    Entry e;
    for (const at::Tensor& t : ts) {
      e.refs.emplace_back(t.getIntrusivePtr());
      e.data.push_back(t.data_ptr());
      e.numel.push_back(t.numel());
      e.version.push_back(static_cast<int64_t>(t._version()));
    }
    e.params = params;
    return &entries_.emplace(ts[0].unsafeGetTensorImpl(), std::move(e))->second;
  }

  // Drops stale entries (a tensor gone, or modified since: it can never match again),
  // then everything if that was not enough (a process holding over 4096 live structures).
  void prune_locked() {
    for (auto it = entries_.begin(); it != entries_.end();) {
      bool stale = false;
      for (size_t i = 0; i < it->second.refs.size() && !stale; ++i) {
        const auto& r = it->second.refs[i];
        if (r.expired()) {
          stale = true;
        } else {
          const auto strong = r.lock();
          stale = static_cast<int64_t>(strong->version_counter().current_version()) !=
                  it->second.version[i];
        }
      }
      it = stale ? entries_.erase(it) : std::next(it);
    }
    if (entries_.size() >= kMax) entries_.clear();
  }

  std::mutex mu_;
  // Keyed by the first structure tensor's TensorImpl; nodes are stable, so Entry* stays valid
  // until the entry is erased (under mu_).
  std::unordered_multimap<const c10::TensorImpl*, Entry> entries_;
};

TransposeCache& cache() {
  static TransposeCache* c = new TransposeCache();  // leaked: used until exit
  return *c;
}

// ------------------------------------------------------------------ integer parameters
// lo <= v < hi, else a ValueError naming the parameter: checked before anything is allocated
// or divided by it.
void expect_param(int64_t v, int64_t lo, int64_t hi, const char* name, const char* bound) {
  if (v < lo || v >= hi)
    throw_value_error(std::string(name) + ": need " + std::to_string(lo) + " <= " + name +
                      " < " + bound + ", got " + std::to_string(v));
}
constexpr int64_t kI32 = INT32_MAX;  // 2**31 - 1: sizes the kernels index with int32
void expect_block(int64_t r, int64_t c) {
  expect_param(r, 1, kI32, "r", "2**31 - 1");
  expect_param(c, 1, kI32, "c", "2**31 - 1");
}
void expect_num_cols(int64_t num_cols, int64_t hi = kI32, const char* bound = "2**31 - 1") {
  expect_param(num_cols, 0, hi, "num_cols", bound);
}
// Mb * r output rows (Mb = len(crow) - 1) must fit the kernels' row indices.
void expect_block_rows(const at::Tensor& crow, int64_t r) {
  const int64_t mb = crow.defined() && crow.dim() == 1 && crow.numel() >= 1 ? crow.numel() - 1 : 0;
  if (mb > 0 && r > kI32 / mb)
    throw_value_error("r: " + std::to_string(mb) + " block rows of r = " + std::to_string(r) +
                      " exceed 2**31 - 1 rows");
}
void expect_nnz(int64_t nnz) { expect_param(nnz, 0, kI32, "nnz", "2**31 - 1"); }
void expect_nm(int64_t n, int64_t m) {
  if (m < 2 || m > 16 || n < 1 || n >= m)
    throw_value_error(std::string(m < 2 || m > 16 ? "m" : "n") +
                      ": need 1 <= n < m <= 16, got n=" + std::to_string(n) +
                      ", m=" + std::to_string(m));
}

// ------------------------------------------------------------------ CSR
int64_t rows_of(const at::Tensor& crow, int64_t per = 1) {
  return crow.defined() && crow.dim() == 1 && crow.numel() >= 1 ? (crow.numel() - 1) * per : 0;
}
int64_t size_or0(const at::Tensor& t, int64_t d) {
  return t.defined() && t.dim() > d ? t.size(d) : 0;
}

at::Tensor csr_spmm_op(const at::Tensor& crow_in, const at::Tensor& col_in,
                       const at::Tensor& values, const at::Tensor& x_in) {
  same_dtype(values, "values", x_in, "x");
  // Half-precision values stay as stored (read at 2 bytes, widened per row chunk in C++).
  at::Tensor crow = crow_in, col = col_in, val = values, x = widened(x_in);
  const Arr a_crow = view_of(crow, "crow_indices"), a_col = view_of(col, "col_indices");
  const Arr a_val = view_of(val, "values"), a_x = view_of(x, "x", Layout::kRows);
  at::Tensor out = at::empty({rows_of(crow), size_or0(x, 1)}, x.options().dtype(compute_type(x)));
  const Arr a_out = view_of(out, "out");
  guarded([&] { csr_spmm_arrs(a_crow, a_col, a_val, a_x, a_out, torch_threads()); });
  return narrowed(out, values);
}

at::Tensor csr_sddmm_op(const at::Tensor& crow_in, const at::Tensor& col_in,
                        const at::Tensor& a_in, const at::Tensor& b_in) {
  same_dtype(a_in, "a", b_in, "b");
  at::Tensor crow = crow_in, col = col_in, a = widened(a_in), b = widened(b_in);
  const Arr a_crow = view_of(crow, "crow_indices"), a_col = view_of(col, "col_indices");
  const Arr a_a = view_of(a, "a"), a_b = view_of(b, "b");
  at::Tensor out = at::empty({size_or0(col, 0)}, a.options().dtype(compute_type(a)));
  const Arr a_out = view_of(out, "out");
  guarded([&] { csr_sddmm_arrs(a_crow, a_col, a_a, a_b, a_out, torch_threads()); });
  return narrowed(out, a_in);
}

// The transposed structure of a CSR (or BSR block) structure with `num_cols` (block)
// columns: (crow_t, col_t, perm), computed once per structure and cached beside its
// validation.
std::vector<at::Tensor> transposed_structure(const at::Tensor& crow_in, const at::Tensor& col_in,
                                             int64_t num_cols, int64_t kind) {
  at::Tensor crow = crow_in, col = col_in;
  const std::vector<at::Tensor> key{crow_in, col_in};
  const std::vector<int64_t> params{num_cols, kind};
  {
    auto hit = cache().transposed(key, params);
    if (!hit.empty()) return hit;
  }
  const Arr a_crow = view_of(crow, "crow_indices"), a_col = view_of(col, "col_indices");
  guarded([&] { csr_transpose_check(a_crow, a_col, num_cols); });
  const int64_t nnz = col.numel();
  at::Tensor crow_t = at::empty({num_cols + 1}, crow.options().dtype(at::kInt));
  at::Tensor col_t = at::empty({nnz}, crow.options().dtype(at::kInt));
  at::Tensor perm = at::empty({nnz}, crow.options().dtype(at::kLong));
  guarded([&] {
    csr_transpose_arrs(a_crow, a_col, num_cols, crow_t.data_ptr<int32_t>(),
                       col_t.data_ptr<int32_t>(), perm.data_ptr<int64_t>(), torch_threads());
  });
  // The permutation is kept as int32 only (nnz < 2**31): 4 bytes a nonzero in the cache, and
  // half the index bytes a product reads. t[2] and t[3] are the same tensor.
  const at::Tensor perm32 = perm.to(at::kInt);
  std::vector<at::Tensor> t{crow_t, col_t, perm32, perm32};
  cache().set_transposed(key, params, t);
  return t;
}

void expect_rows(const at::Tensor& d, int64_t rows, const char* name) {
  if (!d.defined() || d.dim() != 2)
    throw_value_error(std::string(name) + ": expected a 2-D tensor");
  if (d.size(0) != rows)
    throw_value_error(std::string(name) + ": expected " + std::to_string(rows) +
                      " rows (the sparse matrix's), got " + std::to_string(d.size(0)));
}

// S^T @ d without a permuted copy of the values (a random gather of nnz values, ~7 ns each,
// every call): for N > 1 the cached transposed structure read through its permutation; for
// N <= 1 a scatter into the output (no cached transpose needed).
at::Tensor csr_spmm_t_op(const at::Tensor& crow_in, const at::Tensor& col_in,
                         const at::Tensor& values, const at::Tensor& d_in, int64_t num_cols) {
  expect_num_cols(num_cols);
  same_dtype(values, "values", d_in, "d");
  expect_rows(d_in, rows_of(crow_in), "d");
  at::Tensor crow = crow_in, col = col_in, val = widened(values), d = widened(d_in);
  if (!val.defined() || val.dim() != 1 || val.numel() != size_or0(col, 0))
    throw_value_error("values: expected shape (nnz,) matching col_indices");
  at::Tensor out = at::empty({num_cols, d.size(1)}, d.options().dtype(compute_type(d)));
  if (d.size(1) > 1) {
    // The cached transposed structure, reading the values through its permutation: the
    // forward kernel's speed, no permuted copy of the values.
    const auto t = transposed_structure(crow_in, col_in, num_cols, 0);
    at::Tensor crow_t = t[0], col_t = t[1], perm = t[3];
    const Arr a_crow = view_of(crow_t, "crow_indices"), a_col = view_of(col_t, "col_indices");
    const Arr a_perm = view_of(perm, "perm"), a_val = view_of(val, "values");
    const Arr a_d = view_of(d, "d", Layout::kRows), a_out = view_of(out, "out");
    guarded([&] {
      csr_spmm_perm_arrs(a_crow, a_col, a_perm, a_val, a_d, a_out, torch_threads());
    });
    return narrowed(out, d_in);
  }
  const Arr a_crow = view_of(crow, "crow_indices"), a_col = view_of(col, "col_indices");
  const Arr a_val = view_of(val, "values"), a_d = view_of(d, "d", Layout::kRows);
  const Arr a_out = view_of(out, "out");
  guarded([&] { csr_spmm_t_arrs(a_crow, a_col, a_val, a_d, a_out, torch_threads()); });
  return narrowed(out, d_in);
}

// ------------------------------------------------------------------ BSR
void expect_blocks(const at::Tensor& values, int64_t r, int64_t c, const char* name) {
  if (!values.defined() || values.dim() != 3)
    throw_value_error(std::string(name) + ": expected a 3-D (nnzb, R, C) tensor of blocks");
  if (values.size(1) != r || values.size(2) != c)
    throw_value_error(std::string(name) + ": blocks are (" + std::to_string(values.size(1)) +
                      ", " + std::to_string(values.size(2)) + "), but r, c = (" +
                      std::to_string(r) + ", " + std::to_string(c) + ") were passed");
}

at::Tensor bsr_spmm_op(const at::Tensor& crow_in, const at::Tensor& col_in,
                       const at::Tensor& values, const at::Tensor& x_in, int64_t r, int64_t c) {
  expect_block(r, c);
  expect_block_rows(crow_in, r);
  expect_blocks(values, r, c, "values");
  same_dtype(values, "values", x_in, "x");
  at::Tensor crow = crow_in, col = col_in, val = values, x = widened(x_in);
  const Arr a_crow = view_of(crow, "crow_indices"), a_col = view_of(col, "col_indices");
  const Arr a_val = view_of(val, "values"), a_x = view_of(x, "x", Layout::kRows);
  at::Tensor out =
      at::empty({rows_of(crow, r), size_or0(x, 1)}, x.options().dtype(compute_type(x)));
  const Arr a_out = view_of(out, "out");
  guarded([&] { bsr_spmm_arrs(a_crow, a_col, a_val, a_x, a_out, torch_threads()); });
  return narrowed(out, values);
}

at::Tensor bsr_sddmm_op(const at::Tensor& crow_in, const at::Tensor& col_in,
                        const at::Tensor& a_in, const at::Tensor& b_in, int64_t r, int64_t c) {
  expect_block(r, c);
  expect_block_rows(crow_in, r);
  same_dtype(a_in, "a", b_in, "b");
  at::Tensor crow = crow_in, col = col_in, a = widened(a_in), b = widened(b_in);
  const Arr a_crow = view_of(crow, "crow_indices"), a_col = view_of(col, "col_indices");
  const Arr a_a = view_of(a, "a"), a_b = view_of(b, "b");
  at::Tensor out = at::empty({size_or0(col, 0), r, c}, a.options().dtype(compute_type(a)));
  const Arr a_out = view_of(out, "out");
  guarded([&] { bsr_sddmm_arrs(a_crow, a_col, a_a, a_b, a_out, torch_threads()); });
  return narrowed(out, a_in);
}

at::Tensor bsr_spmm_t_op(const at::Tensor& crow, const at::Tensor& col, const at::Tensor& values,
                         const at::Tensor& d_in, int64_t num_cols, int64_t r, int64_t c) {
  expect_block(r, c);
  expect_block_rows(crow, r);
  expect_num_cols(num_cols);
  expect_blocks(values, r, c, "values");
  if (values.size(0) != size_or0(col, 0))
    throw_value_error("values: expected one block per block column index");
  if (num_cols % c != 0)
    throw_value_error("num_cols: " + std::to_string(num_cols) +
                      " is not a multiple of the block width " + std::to_string(c));
  {  // the layout's index rule (int32 block columns) before the transpose, which takes int16
    at::Tensor crow_v = crow, col_v = col;
    const Arr a_crow = view_of(crow_v, "crow_indices"), a_col = view_of(col_v, "col_indices");
    guarded([&] { bsr_check_indices(a_crow, a_col); });
  }
  same_dtype(values, "values", d_in, "d");
  expect_rows(d_in, rows_of(crow, r), "d");
  const auto t = transposed_structure(crow, col, num_cols / c, 1);
  at::Tensor d = widened(d_in), crow_t = t[0], col_t = t[1];
  if (d.size(1) > 1) {  // read the stored blocks through the permutation, transposed in place
    at::Tensor val = widened(values), perm = t[2];
    const Arr a_crow = view_of(crow_t, "crow_indices"), a_col = view_of(col_t, "col_indices");
    const Arr a_perm = view_of(perm, "perm"), a_val = view_of(val, "values");
    const Arr a_d = view_of(d, "d", Layout::kRows);
    at::Tensor out = at::empty({num_cols, d.size(1)}, d.options().dtype(compute_type(d)));
    const Arr a_out = view_of(out, "out");
    guarded([&] { bsr_spmm_perm_arrs(a_crow, a_col, a_perm, a_val, a_d, a_out, torch_threads()); });
    return narrowed(out, d_in);
  }
  at::Tensor val_t =
      widened(values).index_select(0, t[2].to(at::kLong)).transpose(1, 2).contiguous();
  const Arr a_crow = view_of(crow_t, "crow_indices"), a_col = view_of(col_t, "col_indices");
  const Arr a_val = view_of(val_t, "values"), a_d = view_of(d, "d", Layout::kRows);
  at::Tensor out = at::empty({num_cols, d.size(1)}, d.options().dtype(compute_type(d)));
  const Arr a_out = view_of(out, "out");
  guarded([&] { bsr_spmm_arrs(a_crow, a_col, a_val, a_d, a_out, torch_threads()); });
  return narrowed(out, d_in);
}

// ------------------------------------------------------------------ N:M
at::Tensor nm_spmm_op(const at::Tensor& meta_in, const at::Tensor& values, const at::Tensor& x_in,
                      int64_t n, int64_t m) {
  expect_nm(n, m);
  same_dtype(values, "values", x_in, "x");
  at::Tensor meta = meta_in, val = values, x = widened(x_in);
  const Arr a_meta = view_of(meta, "metadata"), a_val = view_of(val, "values");
  const Arr a_x = view_of(x, "x", Layout::kRows);
  at::Tensor out =
      at::empty({size_or0(val, 0), size_or0(x, 1)}, x.options().dtype(compute_type(x)));
  const Arr a_out = view_of(out, "out");
  guarded([&] { nm_spmm_arrs(a_val, a_meta, a_x, a_out, n, m, torch_threads()); });
  return narrowed(out, values);
}

at::Tensor nm_spmm_t_op(const at::Tensor& meta_in, const at::Tensor& values,
                        const at::Tensor& d_in, int64_t num_cols, int64_t n, int64_t m) {
  expect_nm(n, m);
  expect_num_cols(num_cols, (int64_t{1} << 31) - 16, "2**31 - 16");
  same_dtype(values, "values", d_in, "d");
  at::Tensor meta = meta_in, val = widened(values), d = widened(d_in);
  const Arr a_meta = view_of(meta, "metadata"), a_val = view_of(val, "values");
  const Arr a_d = view_of(d, "d");
  at::Tensor out = at::empty({num_cols, size_or0(d, 1)}, d.options().dtype(compute_type(d)));
  const Arr a_out = view_of(out, "out");
  guarded([&] { nm_spmm_t_arrs(a_val, a_meta, a_d, a_out, n, m, torch_threads()); });
  return narrowed(out, d_in);
}

at::Tensor nm_sddmm_op(const at::Tensor& meta_in, const at::Tensor& a_in, const at::Tensor& b_in,
                       int64_t n, int64_t m) {
  expect_nm(n, m);
  same_dtype(a_in, "a", b_in, "b");
  at::Tensor meta = meta_in, a = widened(a_in), b = widened(b_in);
  const Arr a_meta = view_of(meta, "metadata"), a_a = view_of(a, "a"), a_b = view_of(b, "b");
  const int64_t K = size_or0(b, 0);
  expect_param(K, 0, (int64_t{1} << 31) - 16, "b", "2**31 - 16 rows");
  const int64_t slots = (K + m - 1) / m * n;
  at::Tensor out = at::empty({size_or0(a, 0), slots}, a.options().dtype(compute_type(a)));
  const Arr a_out = view_of(out, "out");
  guarded([&] { nm_sddmm_arrs(a_meta, a_a, a_b, a_out, n, m, torch_threads()); });
  return narrowed(out, a_in);
}

// ------------------------------------------------------------------ bitmap
at::Tensor bitmap_spmm_op(const at::Tensor& off_in, const at::Tensor& bits_in,
                          const at::Tensor& values, const at::Tensor& x_in, int64_t nnz) {
  expect_nnz(nnz);
  same_dtype(values, "values", x_in, "x");
  at::Tensor off = off_in, bits = bits_in, val = values, x = widened(x_in);
  const Arr a_off = view_of(off, "row_offsets"), a_bits = view_of(bits, "bitmap");
  const Arr a_val = view_of(val, "values"), a_x = view_of(x, "x", Layout::kRows);
  at::Tensor out = at::empty({rows_of(off), size_or0(x, 1)}, x.options().dtype(compute_type(x)));
  const Arr a_out = view_of(out, "out");
  guarded([&] { bitmap_spmm_arrs(a_off, a_bits, a_val, a_x, a_out, nnz, torch_threads()); });
  return narrowed(out, values);
}

at::Tensor bitmap_spmm_t_op(const at::Tensor& off_in, const at::Tensor& bits_in,
                            const at::Tensor& values, const at::Tensor& d_in, int64_t num_cols,
                            int64_t nnz) {
  expect_num_cols(num_cols);
  expect_nnz(nnz);
  same_dtype(values, "values", d_in, "d");
  expect_rows(d_in, rows_of(off_in), "d");
  at::Tensor off = off_in, bits = bits_in, val = widened(values), d = widened(d_in);
  const Arr a_off = view_of(off, "row_offsets"), a_bits = view_of(bits, "bitmap");
  const Arr a_val = view_of(val, "values"), a_d = view_of(d, "d", Layout::kRows);
  at::Tensor out = at::empty({num_cols, d.size(1)}, d.options().dtype(compute_type(d)));
  const Arr a_out = view_of(out, "out");
  guarded([&] {
    bitmap_spmm_t_arrs(a_off, a_bits, a_val, a_d, a_out, num_cols, nnz, torch_threads());
  });
  return narrowed(out, d_in);
}

at::Tensor bitmap_sddmm_op(const at::Tensor& off_in, const at::Tensor& bits_in,
                           const at::Tensor& a_in, const at::Tensor& b_in, int64_t nnz) {
  expect_nnz(nnz);
  same_dtype(a_in, "a", b_in, "b");
  at::Tensor off = off_in, bits = bits_in, a = widened(a_in), b = widened(b_in);
  const Arr a_off = view_of(off, "row_offsets"), a_bits = view_of(bits, "bitmap");
  const Arr a_a = view_of(a, "a"), a_b = view_of(b, "b");
  at::Tensor out = at::empty({nnz}, a.options().dtype(compute_type(a)));
  const Arr a_out = view_of(out, "out");
  guarded([&] { bitmap_sddmm_arrs(a_off, a_bits, a_a, a_b, a_out, nnz, torch_threads()); });
  return narrowed(out, a_in);
}

// ------------------------------------------------------------------ linear: x @ S^T
// x (B, K) row-major → (B, M). At B = 1 the row is the (K, 1) column the SpMV reads, and
// the (M, 1) result is the (1, M) row: no copies. For B > 1 the activations are transposed
// once into a (K, B) operand and the (M, B) result back.
at::Tensor as_columns(const at::Tensor& x) {
  if (!x.defined() || x.dim() != 2)
    throw_value_error("x: expected a 2-D (B, in_features) tensor");
  return x.size(0) == 1 ? x.view({x.size(1), 1}) : x.t();
}
at::Tensor as_rows(const at::Tensor& y, const c10::optional<at::Tensor>& bias) {
  at::Tensor r = y.size(1) == 1 ? y.view({1, y.size(0)}) : y.t().contiguous();
  if (bias.has_value() && bias->defined()) {
    const at::Tensor& b = *bias;
    if (b.dim() != 1 || b.size(0) != r.size(1))
      throw_value_error("bias: expected shape (" + std::to_string(r.size(1)) + ",), got a " +
                        std::to_string(b.dim()) + "-D tensor");
    same_dtype(r, "the output", b, "bias");
    r.add_(b);
  }
  return r;
}

at::Tensor csr_linear_op(const at::Tensor& crow, const at::Tensor& col, const at::Tensor& values,
                         const at::Tensor& x, const c10::optional<at::Tensor>& bias) {
  return as_rows(csr_spmm_op(crow, col, values, as_columns(x)), bias);
}
at::Tensor bsr_linear_op(const at::Tensor& crow, const at::Tensor& col, const at::Tensor& values,
                         const at::Tensor& x, const c10::optional<at::Tensor>& bias, int64_t r,
                         int64_t c) {
  return as_rows(bsr_spmm_op(crow, col, values, as_columns(x), r, c), bias);
}
at::Tensor nm_linear_op(const at::Tensor& meta, const at::Tensor& values, const at::Tensor& x,
                        const c10::optional<at::Tensor>& bias, int64_t n, int64_t m) {
  return as_rows(nm_spmm_op(meta, values, as_columns(x), n, m), bias);
}

at::Tensor bitmap_linear_op(const at::Tensor& off, const at::Tensor& bits,
                            const at::Tensor& values, const at::Tensor& x,
                            const c10::optional<at::Tensor>& bias, int64_t nnz) {
  return as_rows(bitmap_spmm_op(off, bits, values, as_columns(x), nnz), bias);
}

// ------------------------------------------------------------------ the *_call entry ops
// Every product P also has an op P_call (CompositeImplicitAutograd) that Python's matmul /
// linear use: when no input needs a gradient it runs P below the autograd layer, skipping
// the Python autograd kernel that torch.library.register_autograd installs on P (about
// 3-4 us a call); otherwise it calls P with its autograd. Under torch.compile the call
// decomposes into P, whose fake kernel and autograd formula the compiler uses.
bool any_requires_grad(const torch::jit::Stack& stack, size_t first, size_t count) {
  for (size_t i = first; i < first + count; ++i) {
    const c10::IValue& v = stack[i];
    if (v.isTensor() && v.toTensor().requires_grad()) return true;
  }
  return false;
}

// The boxed kernel of one P_call: finds its product P by name on first use (std::call_once:
// no lock or lookup on later calls).
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

}  // namespace

// Testing aids (bound in bindings.cpp).
size_t transpose_cache_size() { return cache().size(); }
void transpose_cache_clear() { cache().clear(); }

}  // namespace sparse_ops

namespace {

// Each product's name and the rest of its schema; every product P is also defined as P_call.
const char* const kSchemas[][2] = {
    {"csr_spmm", "(Tensor crow, Tensor col, Tensor values, Tensor x) -> Tensor"},
    {"csr_spmm_t", "(Tensor crow, Tensor col, Tensor values, Tensor d, int num_cols) -> Tensor"},
    {"csr_sddmm", "(Tensor crow, Tensor col, Tensor a, Tensor b) -> Tensor"},
    {"csr_linear", "(Tensor crow, Tensor col, Tensor values, Tensor x, Tensor? bias) -> Tensor"},
    {"bsr_spmm", "(Tensor crow, Tensor col, Tensor values, Tensor x, int r, int c) -> Tensor"},
    {"bsr_spmm_t",
     "(Tensor crow, Tensor col, Tensor values, Tensor d, int num_cols, int r, int c) -> Tensor"},
    {"bsr_sddmm", "(Tensor crow, Tensor col, Tensor a, Tensor b, int r, int c) -> Tensor"},
    {"bsr_linear",
     "(Tensor crow, Tensor col, Tensor values, Tensor x, Tensor? bias, int r, int c) -> Tensor"},
    {"nm_spmm", "(Tensor metadata, Tensor values, Tensor x, int n, int m) -> Tensor"},
    {"nm_spmm_t",
     "(Tensor metadata, Tensor values, Tensor d, int num_cols, int n, int m) -> Tensor"},
    {"nm_sddmm", "(Tensor metadata, Tensor a, Tensor b, int n, int m) -> Tensor"},
    {"nm_linear",
     "(Tensor metadata, Tensor values, Tensor x, Tensor? bias, int n, int m) -> Tensor"},
    {"bitmap_spmm",
     "(Tensor row_offsets, Tensor bitmap, Tensor values, Tensor x, int nnz) -> Tensor"},
    {"bitmap_spmm_t",
     "(Tensor row_offsets, Tensor bitmap, Tensor values, Tensor d, int num_cols, int nnz) -> "
     "Tensor"},
    {"bitmap_sddmm", "(Tensor row_offsets, Tensor bitmap, Tensor a, Tensor b, int nnz) -> Tensor"},
    {"bitmap_linear",
     "(Tensor row_offsets, Tensor bitmap, Tensor values, Tensor x, Tensor? bias, int nnz) -> "
     "Tensor"},
};

}  // namespace

TORCH_LIBRARY(sparse_ops, m) {
  for (const auto& s : kSchemas) {
    m.def(torch::schema((std::string(s[0]) + s[1]).c_str(), c10::AliasAnalysisKind::FROM_SCHEMA));
    m.def(torch::schema((std::string(s[0]) + "_call" + s[1]).c_str(),
                        c10::AliasAnalysisKind::FROM_SCHEMA));
  }
}

TORCH_LIBRARY_IMPL(sparse_ops, CompositeImplicitAutograd, m) {
  for (const auto& s : kSchemas) {
    const std::string name = std::string(s[0]) + "_call";
    m.impl(name.c_str(), torch::CppFunction::makeFromBoxedFunctor(std::make_unique<sparse_ops::CallProduct>(
                             std::string("sparse_ops::") + s[0])));
  }
}

TORCH_LIBRARY_IMPL(sparse_ops, CPU, m) {
  using namespace sparse_ops;
  m.impl("csr_spmm", &csr_spmm_op);
  m.impl("csr_spmm_t", &csr_spmm_t_op);
  m.impl("csr_sddmm", &csr_sddmm_op);
  m.impl("csr_linear", &csr_linear_op);
  m.impl("bsr_spmm", &bsr_spmm_op);
  m.impl("bsr_spmm_t", &bsr_spmm_t_op);
  m.impl("bsr_sddmm", &bsr_sddmm_op);
  m.impl("bsr_linear", &bsr_linear_op);
  m.impl("nm_spmm", &nm_spmm_op);
  m.impl("nm_spmm_t", &nm_spmm_t_op);
  m.impl("nm_sddmm", &nm_sddmm_op);
  m.impl("nm_linear", &nm_linear_op);
  m.impl("bitmap_spmm", &bitmap_spmm_op);
  m.impl("bitmap_spmm_t", &bitmap_spmm_t_op);
  m.impl("bitmap_sddmm", &bitmap_sddmm_op);
  m.impl("bitmap_linear", &bitmap_linear_op);
}
