// Data checks shared by the drivers: row pointers, and the error that names the tensor at
// fault (std::invalid_argument, a ValueError in Python once the op boundary rethrows it).
// Torch-free.
#pragma once

#include <cstdint>
#include <string>

#include "value_types.h"

namespace sparse_ops {

// "float32", "int16", ...
const char* dt_name(DT dt);

[[noreturn]] void throw_value(const std::string& msg);

// Row pointers of `rows` rows over `count` entries: ptr[0] == 0, non-decreasing,
// ptr[rows] == count. ValueError naming `name` otherwise. O(rows), on every call.
void check_row_pointers(const int32_t* ptr, int64_t rows, int64_t count, const char* name,
                        const char* entries_name);

}  // namespace sparse_ops
