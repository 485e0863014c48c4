// The dense-panel choice and the path record (panel.h).
#include "panel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

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

bool w8a8_engines_agree(PanelSpmmFn one, PanelSpmmFn other) {
  // Small products whose every output is an exact integer (unit scales): both engines must
  // give the same bits. Bitmap panels (50 rows: a 48-row panel and a short one;
  // K = 700: a 512-column chunk, a tail past K), per row and in groups of 32 (tile step 32),
  // 21 tokens (a short token tile); BSR 32 x 32 blocks read as tiles.
  uint32_t st = 12345u;
  const auto rnd = [&st] {
    st = st * 1664525u + 1013904223u;
    return st >> 8;
  };
  const int64_t N = 21;
  std::vector<int8_t> xq(static_cast<size_t>(N * 700));
  for (auto& v : xq) v = static_cast<int8_t>(static_cast<int>(rnd() % 255) - 127);
  const std::vector<float> xs(N, 1.0f);
  // activations x (N, K), unit scales; weight scales ws of ld columns, groups of g (0: rows)
  const auto operands = [&](const int8_t* x, int64_t K, const float* ws, int64_t ld,
                            int64_t g) {
    W8A8 q;
    q.xq = x;
    q.xscale = xs.data();
    q.N = N;
    q.K = K;
    q.wscale = ws;
    q.ws_ld = ld;
    q.wgroup = g;
    return q;
  };
  const auto same = [&](PanelArgs pa, const W8A8& q) {
    const int64_t M = pa.M;
    std::vector<float> a(static_cast<size_t>(M * N)), b(a.size(), -1.0f);
    const PackedQuads pq = set_w8a8(pa, q, a.data(), 1);
    one(pa, 0, M);
    pa.out = b.data();
    other(pa, 0, M);
    return std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  {  // bitmap, half the bits set
    const int64_t M = 50, K = 700, rb = 8 * ((K + 63) / 64);
    std::vector<uint8_t> bits(static_cast<size_t>(M * rb), 0);
    std::vector<int32_t> off(static_cast<size_t>(M + 1), 0);
    for (int64_t i = 0; i < M; ++i) {
      int32_t c = 0;
      for (int64_t k = 0; k < K; ++k)
        if (rnd() & 1) {
          bits[static_cast<size_t>(i * rb + k / 8)] |= static_cast<uint8_t>(1u << (k % 8));
          ++c;
        }
      off[static_cast<size_t>(i + 1)] = off[static_cast<size_t>(i)] + c;
    }
    std::vector<int8_t> val(static_cast<size_t>(off[M]) + 64);
    for (auto& v : val) v = static_cast<int8_t>(static_cast<int>(rnd() % 256) - 128);
    const std::vector<float> ws(static_cast<size_t>(M * ((K + 31) / 32)), 1.0f);
    PanelArgs pa{PanelLayout::bitmap};
    pa.off = off.data();
    pa.bits = bits.data();
    pa.rb = rb;
    pa.nnz = off[M];
    pa.stored = {val.data(), DT::i8};
    pa.M = M;
    pa.K = K;
    for (int64_t g : {int64_t{0}, int64_t{32}})
      if (!same(pa, operands(xq.data(), K, ws.data(), g ? (K + 31) / 32 : 1, g))) return false;
  }
  {  // BSR, 32 x 32 blocks, every block stored
    const int64_t R = 32, C = 32, M = 64, K = 128, nb = (M / R) * (K / C);
    std::vector<int32_t> crow{0, 4, 8}, bcol{0, 1, 2, 3, 0, 1, 2, 3};
    std::vector<int8_t> val(static_cast<size_t>(nb * R * C));
    for (auto& v : val) v = static_cast<int8_t>(static_cast<int>(rnd() % 256) - 128);
    const std::vector<float> ws(static_cast<size_t>(M), 1.0f);
    std::vector<int8_t> xk(static_cast<size_t>(N * K));
    for (int64_t t = 0; t < N; ++t)
      std::memcpy(xk.data() + t * K, xq.data() + t * 700, static_cast<size_t>(K));
    PanelArgs pa{PanelLayout::bsr};
    pa.crow = crow.data();
    pa.bcol = bcol.data();
    pa.R = R;
    pa.C = C;
    pa.stored = {val.data(), DT::i8};
    pa.M = M;
    pa.K = K;
    if (!same(pa, operands(xk.data(), K, ws.data(), 1, 0))) return false;
  }
  return true;
}

void note_path(const char* name) { g_last.store(name, std::memory_order_relaxed); }
const char* last_path() { return g_last.load(std::memory_order_relaxed); }

}  // namespace sparse_ops
