// Argument checking for the entry points: numpy arrays (type, dtype, ndim, shape, contiguity,
// alignment, writeability, overlap), CSR row pointers and thread counts. Every failure throws
// with a message naming the argument: py::type_error (TypeError) for a wrong type or dtype,
// py::value_error (ValueError) for everything else.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace sparse_ops {

namespace py = pybind11;

enum class DT { f32, f64, bf16, f16, i16, i32, i64, u8, other };

const char* dt_name(DT dt);

// A validated view of an array argument: a numpy array (as_array) or a torch tensor
// (torch_ops.cpp). Built while the GIL is held; read without it.
struct Arr {
  py::object owner;     // the numpy array, if any (keeps it alive)
  std::string dtname;   // the dtype's name when dt is DT::other
  const char* name = "";
  DT dt = DT::other;
  std::vector<int64_t> shape;
  void* data = nullptr;
  int64_t nbytes = 0;
  int64_t ld = 0;       // row stride in elements (2-D; the row length when contiguous)

  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  int64_t dim(size_t i) const { return shape[i]; }
  template <class T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
  std::string describe() const;  // "2-D float32 array of shape (4, 5)"
};

// The array behind a Python object. TypeError if it is not a numpy.ndarray; ValueError if it
// is not C-contiguous or not aligned, or (writeable) is read-only.
Arr as_array(py::handle h, const char* name, bool writeable = false);

// One expected dimension: v >= 0 a fixed size; v < 0 any size, printed as sym.
struct Dim {
  int64_t v;
  const char* sym;
  Dim(int64_t value) : v(value), sym(nullptr) {}  // NOLINT: implicit on purpose
  Dim(const char* symbol) : v(-1), sym(symbol) {}  // NOLINT
};

// dtype must be `dt` (TypeError), ndim/shape must match (ValueError). `why` (may be null) is
// appended to the dtype message, e.g. "the dtype of values".
void expect(const Arr& a, DT dt, std::initializer_list<Dim> dims, const char* why = nullptr);
// The value dtype of a float operand: float32 or float64, else TypeError.
DT float_dtype(const Arr& a);
// The dtype of an SpMM's values: float32, float64, bfloat16 or float16, else TypeError.
// Half-precision values are computed in float32 (compute_dtype).
DT value_dtype(const Arr& a);
inline DT compute_dtype(DT values) {
  return values == DT::bf16 || values == DT::f16 ? DT::f32 : values;
}
// The dtype of an index array among `allowed`, else TypeError.
DT index_dtype(const Arr& a, std::initializer_list<DT> allowed);
// ValueError if the memory of `out` overlaps the memory of `in`.
void expect_disjoint(const Arr& out, const Arr& in);

// CSR row pointers of `rows` rows over `nnz` entries: crow[0] == 0, non-decreasing,
// crow[rows] == nnz. ValueError naming `name` otherwise.
void check_row_pointers(const int32_t* crow, int64_t rows, int64_t nnz, const char* name,
                        const char* col_name);

// Threads for calls that take no thread count (the number of CPUs).
int default_threads();

// num_threads >= 1 (ValueError otherwise), clamped to a sane maximum.
int threads_arg(int64_t num_threads);

[[noreturn]] void throw_value(const std::string& msg);

}  // namespace sparse_ops

namespace sparse_ops {

// Calls f(T{}) with T = float or double for a float dtype.
template <class F>
void with_float(DT dt, F&& f) {
  if (dt == DT::f32)
    f(float{});
  else
    f(double{});
}

// Calls f(I{}) with I = int16_t or int32_t for an index dtype.
template <class F>
void with_index(DT dt, F&& f) {
  if (dt == DT::i16)
    f(int16_t{});
  else
    f(int32_t{});
}

}  // namespace sparse_ops
