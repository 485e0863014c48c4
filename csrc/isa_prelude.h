// Everything an isa_*.cpp needs from the standard library and the shared declarations. It is
// included BEFORE the `#pragma GCC target` line so that no standard-library inline function is
// compiled for a wider ISA than the default build (those would be merged across the three
// translation units at link time and could run on a CPU without that ISA).
#pragma once

// gcc 12's intrinsic headers start some vectors from _mm*_undefined_*(), which trips
// -W(maybe-)uninitialized once inlined; the warning points into the header: silence it here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

#include "kernels.h"
#include "scratch.h"
