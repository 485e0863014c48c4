// Data checks shared by the drivers (see validate.h).
#include "validate.h"

#include <sstream>
#include <stdexcept>

namespace sparse_ops {

namespace {
// The name a reduced storage type declares (value_types.h), or nullptr.
template <class... S>
const char* reduced_name(DT dt, TypeList<S...>) {
  const char* name = nullptr;
  (void)((dt == S::dt ? (name = S::name, true) : false) || ...);
  return name;
}
}  // namespace

const char* dt_name(DT dt) {
  if (const char* name = reduced_name(dt, ReducedTypes{})) return name;
  switch (dt) {
    case DT::f32:
      return "float32";
    case DT::f64:
      return "float64";
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

void throw_value(const std::string& msg) { throw std::invalid_argument(msg); }

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

}  // namespace sparse_ops
