// The dense-panel choice and the path record (panel.h).
#include "panel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace sparse_ops {
namespace {

// 0 auto, 1 on, 2 off
int mode_of(const char* s) {
  if (!s || std::strcmp(s, "auto") == 0) return 0;
  if (std::strcmp(s, "on") == 0) return 1;
  if (std::strcmp(s, "off") == 0) return 2;
  return -1;
}

std::atomic<int>& mode() {
  static std::atomic<int> m{[] {
    const int v = mode_of(std::getenv("SPARSE_OPS_PANEL"));
    return v < 0 ? 0 : v;
  }()};
  return m;
}

std::atomic<const char*> g_last{"none"};

// Choices per (layout, N bucket: floor(log2 N) up to 10, density bucket: tenths): -1 unknown.
std::atomic<int8_t> g_choice[2][11][11];
void reset_choices() {
  for (auto& a : g_choice)
    for (auto& b : a)
      for (auto& c : b) c.store(-1, std::memory_order_relaxed);
}
const bool g_choice_ready = (reset_choices(), true);

std::atomic<int8_t>& slot(PanelLayout kind, int64_t N, double density) {
  int nb = 0;
  while (nb < 10 && (int64_t{2} << nb) <= N) ++nb;
  int db = static_cast<int>(density * 10);
  db = db < 0 ? 0 : (db > 10 ? 10 : db);
  return g_choice[static_cast<int>(kind)][nb][db];
}
}  // namespace

int panel_decision(PanelLayout kind, int64_t N, double density) {
  if (N < 2) return 0;  // N == 1 has its own SpMV kernels
  switch (mode().load(std::memory_order_relaxed)) {
    case 1:
      return 1;
    case 2:
      return 0;
    default:
      if (density < 0.25) return 0;
      return slot(kind, N, density).load(std::memory_order_relaxed);
  }
}

void panel_decide(PanelLayout kind, int64_t N, double density, bool panel) {
  slot(kind, N, density).store(panel ? 1 : 0, std::memory_order_relaxed);
}

void set_panel_mode(const char* m) {
  const int v = mode_of(m);
  if (v < 0)
    throw std::invalid_argument(std::string("mode: expected 'auto', 'on' or 'off', got '") + m +
                                "'");
  mode().store(v, std::memory_order_relaxed);
  if (v == 0) reset_choices();
}

bool all_finite(const float* x, int64_t K, int64_t N, int64_t ldx) {
  for (int64_t k = 0; k < K; ++k) {
    const float* row = x + k * ldx;
    uint32_t bad = 0;  // exponent all ones: inf or NaN (a loop the compiler vectorises)
    for (int64_t c = 0; c < N; ++c) {
      uint32_t u;
      std::memcpy(&u, row + c, 4);
      bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    if (bad) return false;
  }
  return true;
}

PackedQuads pack_quads(const int8_t* xq, int64_t N, int64_t K, int threads) {
  PackedQuads p;
  // rows past K up to a multiple of 64 columns and tokens past N up to a multiple of 16 are
  // zeros: the AMX engine's tiles read whole 64-column steps of 16 tokens
  const int64_t Kq = (K + 3) / 4, Kp = (K + 63) / 64 * 16, Np = (N + 15) / 16 * 16;
  p.ldq = 4 * Np;
  p.data.reset(new int8_t[static_cast<size_t>(std::max<int64_t>(1, Kp * p.ldq))]);
  int8_t* dst = p.data.get();
  if (Kp > Kq)
    std::memset(dst + Kq * p.ldq, 0, static_cast<size_t>((Kp - Kq) * p.ldq));
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(Kq, 16 * int64_t{threads}));
  const auto cuts = split_even(Kq, chunks);
  std::atomic<bool> bad{false};
  parallel_for(threads, chunks, [&](int64_t c) {
    uint32_t hit = 0;
    for (int64_t q = cuts[c]; q < cuts[c + 1]; ++q) {
      int8_t* row = dst + q * p.ldq;
      const int64_t take = std::min<int64_t>(4, K - 4 * q);
      for (int64_t t = 0; t < N; ++t) {
        uint32_t w = 0;
        std::memcpy(&w, xq + t * K + 4 * q, static_cast<size_t>(take));
        // a byte equal to 0x80 (-128): a zero byte of w ^ 0x80808080 (the SWAR zero test,
        // nonzero iff some byte is zero; the zero padding of a short quad becomes 0x80, not 0)
        const uint32_t e = w ^ 0x80808080u;
        hit |= (e - 0x01010101u) & ~e & 0x80808080u;
        std::memcpy(row + 4 * t, &w, 4);
      }
      std::memset(row + 4 * N, 0, static_cast<size_t>(p.ldq - 4 * N));
    }
    if (hit) bad.store(true, std::memory_order_relaxed);
  });
  if (bad.load())
    throw std::invalid_argument(
        "xq: holds -128; quantized activations must lie in [-127, 127] (symmetric int8)");
  return p;
}

PackedQuads set_w8a8(PanelArgs& pa, const W8A8& q, float* out, int threads) {
  PackedQuads p = pack_quads(q.xq, q.N, pa.K, threads);
  pa.out = out;
  pa.N = q.N;
  pa.xq4 = p.data.get();
  pa.ldq = p.ldq;
  pa.xscale = q.xscale;
  pa.wscale = q.wscale;
  pa.ws_ld = q.ws_ld;
  pa.wgroup = q.wgroup >= pa.K || q.wgroup <= 0 ? std::max<int64_t>(pa.K, 1) : q.wgroup;
  return p;
}

void note_path(const char* name) { g_last.store(name, std::memory_order_relaxed); }
const char* last_path() { return g_last.load(std::memory_order_relaxed); }

}  // namespace sparse_ops
