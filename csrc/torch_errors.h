// The op boundary's errors: ValueError / TypeError in Python, for every file that defines
// torch operators (torch_ops.cpp, dequant.cpp).
#pragma once

#include <c10/util/Exception.h>

#include <string>

namespace sparse_ops {

[[noreturn]] inline void value_error(const std::string& msg) { TORCH_CHECK_VALUE(false, msg); }
[[noreturn]] inline void type_error(const std::string& msg) { TORCH_CHECK_TYPE(false, msg); }

}  // namespace sparse_ops
