// Argument checking shared by the entry points (see validate.h).
#include "validate.h"

#include <thread>
#include <sstream>
#include <stdexcept>

namespace sparse_ops {

const char* dt_name(DT dt) {
  switch (dt) {
    case DT::f32:
      return "float32";
    case DT::f64:
      return "float64";
    case DT::bf16:
      return "bfloat16";
    case DT::f16:
      return "float16";
    case DT::i16:
      return "int16";
    case DT::i32:
      return "int32";
    case DT::i64:
      return "int64";
    case DT::u8:
      return "uint8";
    default:
      return "?";
  }
}

void throw_value(const std::string& msg) { throw py::value_error(msg); }

namespace {

DT classify(const py::array& a) {
  // From the descriptor's kind, size and byte order (no Python calls): native order only.
  const py::dtype d = a.dtype();
  const char order = d.byteorder();
  const bool native = order == '=' || order == '|' ||
                      (order == '<') == (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
  if (!native) return DT::other;
  const char kind = d.kind();
  const py::ssize_t size = d.itemsize();
  if (kind == 'f') return size == 4 ? DT::f32 : (size == 8 ? DT::f64 : DT::other);
  if (kind == 'i')
    return size == 2 ? DT::i16 : (size == 4 ? DT::i32 : (size == 8 ? DT::i64 : DT::other));
  if (kind == 'u') return size == 1 ? DT::u8 : DT::other;
  return DT::other;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  if (s.size() == 1) o << ",";
  o << ")";
  return o.str();
}

std::string dtype_str(const Arr& a) {
  if (a.dt != DT::other) return dt_name(a.dt);
  return a.dtname;
}

}  // namespace

std::string Arr::describe() const {
  std::ostringstream o;
  o << ndim() << "-D " << dtype_str(*this) << " array of shape " << shape_str(shape);
  return o.str();
}

Arr as_array(py::handle h, const char* name, bool writeable) {
  if (!py::isinstance<py::array>(h)) {
    throw py::type_error(std::string(name) + ": expected a numpy array, got " +
                         py::str(py::type::handle_of(h).attr("__name__")).cast<std::string>());
  }
  Arr a;
  const auto arr = py::reinterpret_borrow<py::array>(h);
  a.owner = arr;
  a.name = name;
  a.dt = classify(arr);
  if (a.dt == DT::other) a.dtname = py::str(arr.dtype()).cast<std::string>();
  for (py::ssize_t i = 0; i < arr.ndim(); ++i) a.shape.push_back(arr.shape(i));
  a.ld = arr.ndim() >= 2 ? a.shape.back() : 1;
  const int flags = arr.flags();
  if (!(flags & py::array::c_style))
    throw_value(std::string(name) + ": expected a C-contiguous array, got a non-contiguous " +
                a.describe());
  if (!(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw_value(std::string(name) + ": expected an aligned array, got a misaligned " +
                a.describe());
  if (writeable && !(flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_))
    throw_value(std::string(name) + ": array is read-only");
  a.data = const_cast<void*>(arr.data());
  a.nbytes = static_cast<int64_t>(arr.nbytes());
  return a;
}

namespace {
// The message of a failed expect(): built only on failure (an ostringstream per call costs
// about as much as the rest of a small product's checks).
[[noreturn]] void expect_failed(const Arr& a, DT dt, std::initializer_list<Dim> dims,
                                const char* why) {
  std::ostringstream want;
  want << dims.size() << "-D C-contiguous " << dt_name(dt) << " array of shape (";
  size_t k = 0;
  for (const Dim& d : dims) {
    want << (k ? ", " : "");
    if (d.v >= 0)
      want << d.v;
    else
      want << d.sym;
    ++k;
  }
  want << (dims.size() == 1 ? ",)" : ")");
  if (a.dt != dt) {
    std::string msg = std::string(a.name) + ": expected " + want.str();
    if (why) msg += std::string(" (") + why + ")";
    throw py::type_error(msg + ", got " + a.describe());
  }
  throw_value(std::string(a.name) + ": expected " + want.str() + ", got " + a.describe());
}
}  // namespace

void expect(const Arr& a, DT dt, std::initializer_list<Dim> dims, const char* why) {
  bool ok = a.dt == dt && a.ndim() == static_cast<int64_t>(dims.size());
  size_t k = 0;
  for (const Dim& d : dims) {
    if (ok && d.v >= 0 && a.shape[k] != d.v) ok = false;
    ++k;
  }
  if (!ok) expect_failed(a, dt, dims, why);
}

DT float_dtype(const Arr& a) {
  if (a.dt != DT::f32 && a.dt != DT::f64)
    throw py::type_error(std::string(a.name) + ": expected a float32 or float64 array, got " +
                         a.describe());
  return a.dt;
}

DT value_dtype(const Arr& a) {
  if (a.dt != DT::f32 && a.dt != DT::f64 && a.dt != DT::bf16 && a.dt != DT::f16)
    throw py::type_error(std::string(a.name) +
                         ": expected a float32, float64, bfloat16 or float16 array, got " +
                         a.describe());
  return a.dt;
}

DT index_dtype(const Arr& a, std::initializer_list<DT> allowed) {
  std::string names;
  for (DT d : allowed) {
    if (a.dt == d) return d;
    names += (names.empty() ? "" : " or ") + std::string(dt_name(d));
  }
  throw py::type_error(std::string(a.name) + ": expected an " + names + " array, got " +
                       a.describe());
}

void expect_disjoint(const Arr& out, const Arr& in) {
  if (out.nbytes == 0 || in.nbytes == 0) return;
  const auto o0 = reinterpret_cast<uintptr_t>(out.data), i0 = reinterpret_cast<uintptr_t>(in.data);
  const auto o1 = o0 + static_cast<uintptr_t>(out.nbytes);
  const auto i1 = i0 + static_cast<uintptr_t>(in.nbytes);
  if (o0 < i1 && i0 < o1)
    throw_value(std::string(out.name) + ": overlaps the memory of " + in.name);
}

void check_row_pointers(const int32_t* crow, int64_t rows, int64_t nnz, const char* name,
                        const char* col_name) {
  // Run on every call (an edit through .data or numpy is not seen by torch's version
  // counters): one branch-free pass that vectorises, then the slow path for the message.
  bool bad = crow[0] != 0 || crow[rows] != nnz;
  for (int64_t i = 0; i < rows; ++i) bad |= crow[i + 1] < crow[i];
  if (!bad) return;
  std::ostringstream o;
  if (crow[0] != 0) {
    o << name << ": first value is " << crow[0] << ", expected 0";
    throw_value(o.str());
  }
  for (int64_t i = 0; i < rows; ++i) {
    if (crow[i + 1] < crow[i]) {
      o << name << ": not non-decreasing at row " << i << " (" << name << "[" << i
        << "] = " << crow[i] << " > " << name << "[" << i + 1 << "] = " << crow[i + 1] << ")";
      throw_value(o.str());
    }
  }
  if (crow[rows] != nnz) {
    o << name << ": last value " << crow[rows] << " != len(" << col_name << ") = " << nnz;
    throw_value(o.str());
  }
}

int threads_arg(int64_t num_threads) {
  if (num_threads < 1)
    throw_value("num_threads: need num_threads >= 1, got " + std::to_string(num_threads));
  int64_t cap = 4 * static_cast<int64_t>(std::thread::hardware_concurrency());
  if (cap < 1) cap = 1;
  if (cap > 1024) cap = 1024;
  return static_cast<int>(num_threads < cap ? num_threads : cap);
}

}  // namespace sparse_ops

namespace sparse_ops {

int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

}  // namespace sparse_ops
