// pybind11 module sparse_ops._C: importing it registers the torch operators (torch_ops.cpp);
// the functions here are the SIMD level and testing aids. No product is reachable from here:
// the kernels are called through torch.ops.sparse_ops.* only.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "kernels.h"
#include "panel.h"
#include "parallel.h"
#include "team.h"

namespace py = pybind11;
using namespace sparse_ops;

namespace sparse_ops {
const char* csr_spmv_choice();  // csr.cpp
}  // namespace sparse_ops

PYBIND11_MODULE(_C, mod) {
  mod.doc() =
      "C++ CPU kernels of sparse-ops (CSR, bitmap, BSR, N:M). Importing it registers the torch "
      "operators torch.ops.sparse_ops.* (torch_ops.cpp); this module holds the SIMD level and "
      "testing aids.";

  mod.def(
      "simd_level", [] { return std::string(active_table().name); },
      "The SIMD level the kernels run at: 'avx512', 'avx2' or 'scalar'.");
  mod.def(
      "_set_simd_level",
      [](const std::string& level) { return std::string(set_simd_level(level.c_str())); },
      py::arg("level"),
      "Testing aid: switch the kernels to 'scalar', 'avx2' or 'avx512' (ValueError if unknown "
      "or unsupported). Returns the level now active.");
  mod.def(
      "_set_tile_bytes", [](int64_t bytes) { set_tile_budget(bytes); }, py::arg("bytes"),
      "Testing aid: the L2 budget for column tiles of the dense operand (0 = default), so that "
      "small inputs take the tiled, packed paths.");
  mod.def(
      "_csr_spmv_choice", [] { return std::string(csr_spmv_choice()); },
      "How the AVX2 CSR SpMV reads x: 'gather', 'loads', 'loads below 128 a row' (gathers "
      "for longer rows; measured at the first AVX2 SpMV, or SPARSE_OPS_CSR_SPMV) or "
      "'undecided'.");
  mod.def(
      "_set_csr_spmv", [](const std::string& how) {
        if (how != "gather" && how != "loads" && how != "auto")
          throw py::value_error("how: expected 'gather', 'loads' or 'auto', got '" + how + "'");
        g_csr_spmv_loads.store(how == "auto" ? -1 : (how == "loads" ? kCsrLoadsAlways : 0));
      }, py::arg("how"), "Testing aid: force the AVX2 CSR SpMV variant ('auto' re-measures).");
  mod.def(
      "_bitmap_vbmi", [] { return g_bitmap_vbmi.load() == 1; },
      "Whether the AVX-512 bitmap SpMV takes the VBMI2 expand kernel for int8 / bfloat16 "
      "values (the CPU has avx512vbmi and avx512vbmi2; SPARSE_OPS_BITMAP_VBMI=0 turns it off).");
  mod.def(
      "_set_bitmap_vbmi", [](bool on) {
        if (on && !cpu_has_vbmi2())
          throw py::value_error("on: this CPU lacks avx512vbmi / avx512vbmi2");
        g_bitmap_vbmi.store(on ? 1 : 0);
      }, py::arg("on"), "Testing aid: turn the VBMI2 bitmap SpMV on or off.");
  mod.def(
      "_bitmap_vnni", [] { return g_bitmap_vnni.load() == 1; },
      "Whether the AVX-512 bitmap SpMV takes the integer kernel for int8 values times a "
      "bfloat16 / float16 x (the CPU has avx512vbmi, avx512vbmi2 and avx512vnni; "
      "SPARSE_OPS_BITMAP_VNNI=0 turns it off).");
  mod.def(
      "_set_bitmap_vnni", [](bool on) {
        if (on && !cpu_has_vbmi2_vnni())
          throw py::value_error("on: this CPU lacks avx512vbmi / avx512vbmi2 / avx512vnni");
        g_bitmap_vnni.store(on ? 1 : 0);
      }, py::arg("on"), "Testing aid: turn the integer (VNNI) bitmap SpMV on or off.");
  mod.def(
      "_nm4_perm", [] { return g_nm4_perm.load() == 1; },
      "Whether the AVX2 2:4 / 1:4 SpMV (int8, bfloat16 values) gathers x by in-lane permutes "
      "(else the byte-shuffle kernels; SPARSE_OPS_NM4_PERM=0 turns it off).");
  mod.def(
      "_set_nm4_perm", [](bool on) { g_nm4_perm.store(on ? 1 : 0); }, py::arg("on"),
      "Testing aid: the AVX2 2:4 / 1:4 SpMV by in-lane permutes (True) or the kernels before.");
  mod.def(
      "_last_path", [] { return std::string(last_path()); },
      "Debug aid: the path the last bitmap or N:M product took: 'bitmap.spmv', 'bitmap.panel' "
      "(load sparse, compute dense), 'bitmap.csr', 'nm.spmv', 'nm.panel', 'nm.slots'.");
  mod.def(
      "_set_panel", [](const std::string& how) {
        try {
          set_panel_mode(how.c_str());
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      }, py::arg("how"),
      "Testing aid: the dense-panel path of bitmap and N:M wide products: 'on' (except for an "
      "x holding inf or NaN, which always takes the sparse kernels), 'off' or "
      "'auto' (measured once per process per layout, N and density bucket; never below "
      "density 0.25; switching to it forgets the measured choices). SPARSE_OPS_PANEL sets it "
      "at start.");
  mod.def(
      "_team_debug", [](bool on) { team_debug(on); }, py::arg("on"),
      "Testing aid: while on, record the OS thread ids of the threads that run the kernels' "
      "tasks (torch's intra-op team); turning it on or off clears the record.");
  mod.def(
      "_team_threads_seen", [] { return team_threads_seen(); },
      "Testing aid: the distinct OS thread ids that ran kernel tasks since _team_debug(True).");
  mod.def(
      "_int8_dot", [] { return std::string(int8_dot_name()); },
      "The integer dot product the W8A8 products run on at the active SIMD level: 'vnni' "
      "(vpdpbusd: AVX-VNNI at the avx2 level, AVX512-VNNI at avx512), 'madd' (AVX2 "
      "vpmaddubsw + vpmaddwd), 'vnni-emulated' (the vnni engine with vpdpbusd emulated, a "
      "testing aid) or 'plain' (scalar loops).");
  mod.def(
      "_set_int8_dot",
      [](const std::string& engine) {
        try {
          return std::string(set_int8_dot(engine.c_str()));
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      },
      py::arg("engine"),
      "Testing aid: the W8A8 dot engine, 'auto' (amx, else vnni where the CPU has it, else "
      "the level's own) or one of _int8_dots(); SPARSE_OPS_INT8_DOT sets it at start. A level "
      "without the engine runs its own. Returns the engine now active.");
  mod.def(
      "_int8_dots", [] { return int8_dots(); },
      "Testing aid: the W8A8 dot engines available at the active SIMD level on this CPU.");
  mod.def(
      "_int8_dots_agree",
      [](const std::string& one, const std::string& other) {
        try {
          return int8_dots_agree(one.c_str(), other.c_str());
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      },
      py::arg("one"), py::arg("other"),
      "Testing aid: whether two W8A8 dot engines of the active level give the same outputs on "
      "the self-check products the AMX engine must pass before it is offered.");
  mod.def(
      "_supported_simd_levels",
      [] {
        int n = 0;
        const char* const* names = supported_levels(&n);
        std::vector<std::string> v(names, names + n);
        return v;
      },
      "Testing aid: the SIMD levels this CPU can run, lowest first.");
}
