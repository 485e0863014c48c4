// W8A8 on AMX-INT8 (tdpbssd): the int8 panel design of panel_i8_kernels.h with the dot
// products in tiles. Rows of S expand, KC columns at a time, into the same int8 panel (48 rows,
// row stride KC bytes, L1); the tile engine multiplies 16 rows of it (an A tile: 16 rows x
// kstep bytes) with the activations in quads (a B tile: kstep / 4 quad rows x 16 tokens x 4
// bytes, exactly the layout pack_quads writes and tdpbssd reads) into 16 x 16 int32
// accumulators (C tiles). tdpbssd multiplies signed by signed bytes: no +128 offset and no
// weight sums as on vpdpbusd. Three C tiles hold a panel's 48 rows for 16 tokens; each k step
// loads one B tile and three A tiles. Each run of columns sharing a weight scale ends with the
// C tiles stored (16 x 16 int32, 1 KiB each, L1) and flushed into the float output as
// float(acc) * w_scale[row] * x_scale[token] (AVX-512, 16 tokens a vector).
//
// kstep (the A tile's bytes a row, the B tile's quad rows x 4) is 64, or with group scales the
// largest power of two dividing the group size, up to 64, so that no tile crosses a run.
// Runs start at multiples of kstep; one that ends at K is rounded up to kstep: the quads are
// zero there (pack_quads pads K to a multiple of 64 and N to a multiple of 16) and the panel
// columns past K hold zeros or, for N:M, stale bytes, which times zero add nothing (integers:
// no NaN). Likewise rows past the panel's nr and tokens past N are computed and not flushed.
// Exactness as in panel_i8_kernels.h: a run is at most 960 columns, |acc| <= 960 * 128 * 127
// < 2^24, exact in float.
//
// BSR (blocks of R x C, R a multiple of 16) needs no panel: the A tiles are read from the
// stored blocks (row stride C), one flush per unit of blocks (panel_i8_kernels.h, I8Unit);
// other block heights run on the fallback engine (Fallback: vpdpbusd, or its emulation).
//
// The tile instructions come from a policy: AmxTiles (isa_amx.cpp, SPARSE_OPS_AMX set) issues
// them; AmxEmulatedTiles performs each one's definition in plain loops on thread-local tiles,
// so that everything but the instructions runs and is tested on any AVX-512 CPU ("amx-emulated").
#pragma once

namespace sparse_ops {
namespace ISA_NS {

#if SPARSE_OPS_ISA >= 3
// The 64-byte operand of ldtilecfg (palette 1).
struct alignas(64) AmxConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
// Tiles 0..2: C (rows 16, 64 bytes: 16 int32); 3..5: A (16 rows x kstep bytes); 6: B
// (kstep / 4 rows x 64 bytes).
constexpr int kAmxB = 6;
inline AmxConfig amx_config(int kstep) {
  AmxConfig c;
  for (int t = 0; t < 3; ++t) {
    c.rows[t] = 16;
    c.colsb[t] = 64;
    c.rows[3 + t] = 16;
    c.colsb[3 + t] = static_cast<uint16_t>(kstep);
  }
  c.rows[kAmxB] = static_cast<uint8_t>(kstep / 4);
  c.colsb[kAmxB] = 64;
  return c;
}

// The definitions of ldtilecfg / tilezero / tileloadd / tdpbssd / tilestored on tiles held in
// thread-local memory (rows and bytes as configured; bytes past them read as zero).
struct AmxEmulatedTiles {
  struct State {
    AmxConfig cfg;
    alignas(64) int8_t t[8][16][64];
  };
  static State& st() {
    thread_local State s;
    return s;
  }
  static void configure(const AmxConfig& c) {
    st().cfg = c;
    std::memset(st().t, 0, sizeof(st().t));
  }
  static void release() {}
  template <int T>
  static void zero() {
    std::memset(st().t[T], 0, sizeof(st().t[T]));
  }
  template <int T>
  static void load(const void* p, int64_t stride) {
    State& s = st();
    std::memset(s.t[T], 0, sizeof(s.t[T]));
    for (int r = 0; r < s.cfg.rows[T]; ++r)
      std::memcpy(s.t[T][r], static_cast<const int8_t*>(p) + r * stride, s.cfg.colsb[T]);
  }
  template <int C, int A, int B>
  static void dp() {
    State& s = st();
    for (int m = 0; m < s.cfg.rows[C]; ++m)
      for (int n = 0; n < s.cfg.colsb[C] / 4; ++n) {
        int32_t acc;
        std::memcpy(&acc, s.t[C][m] + 4 * n, 4);
        for (int k = 0; k < s.cfg.colsb[A] / 4; ++k)
          for (int j = 0; j < 4; ++j)
            acc += static_cast<int32_t>(s.t[A][m][4 * k + j]) * s.t[B][k][4 * n + j];
        std::memcpy(s.t[C][m] + 4 * n, &acc, 4);
      }
  }
  template <int T>
  static void store(void* p, int64_t stride) {
    State& s = st();
    for (int r = 0; r < s.cfg.rows[T]; ++r)
      std::memcpy(static_cast<int8_t*>(p) + r * stride, s.t[T][r], s.cfg.colsb[T]);
  }
};

#ifdef SPARSE_OPS_AMX
// The instructions. gcc's tile intrinsics paste the tile number into the assembly text
// (#dst): each needs a literal, hence the cases.
#define SPARSE_OPS_TILE_CASES(OP) \
  if constexpr (T == 0) OP(0);     \
  else if constexpr (T == 1) OP(1); \
  else if constexpr (T == 2) OP(2); \
  else if constexpr (T == 3) OP(3); \
  else if constexpr (T == 4) OP(4); \
  else if constexpr (T == 5) OP(5); \
  else if constexpr (T == 6) OP(6); \
  else OP(7)
struct AmxTiles {
  static void configure(const AmxConfig& c) { _tile_loadconfig(&c); }
  static void release() { _tile_release(); }
  template <int T>
  static void zero() {
#define SPARSE_OPS_OP(t) _tile_zero(t)
    SPARSE_OPS_TILE_CASES(SPARSE_OPS_OP);
#undef SPARSE_OPS_OP
  }
  template <int T>
  static void load(const void* p, int64_t stride) {
#define SPARSE_OPS_OP(t) _tile_loadd(t, p, stride)
    SPARSE_OPS_TILE_CASES(SPARSE_OPS_OP);
#undef SPARSE_OPS_OP
  }
  template <int C, int A, int B>
  static void dp() {
    static_assert(B == kAmxB && A == C + 3 && C >= 0 && C < 3, "the tiles amx_run uses");
    if constexpr (C == 0)
      _tile_dpbssd(0, 3, 6);
    else if constexpr (C == 1)
      _tile_dpbssd(1, 4, 6);
    else
      _tile_dpbssd(2, 5, 6);
  }
  template <int T>
  static void store(void* p, int64_t stride) {
#define SPARSE_OPS_OP(t) _tile_stored(t, p, stride)
    SPARSE_OPS_TILE_CASES(SPARSE_OPS_OP);
#undef SPARSE_OPS_OP
  }
};
#undef SPARSE_OPS_TILE_CASES
#endif

// The tile step: 64, or the largest power of two dividing the group size (up to 64); with
// blocks (c > 0), also one dividing the block width.
inline int amx_kstep(int64_t wgroup, int64_t K, int64_t c = 0) {
  int64_t s = 64;
  if (wgroup < K) s = std::min<int64_t>(s, wgroup & -wgroup);
  if (c > 0) s = std::min<int64_t>(s, c & -c);
  return static_cast<int>(s);
}

// The C tiles 0 .. NT-1 (rows 16 i .. 16 i + 15) over the pieces of one run: pieces(f) calls
// f(a, lda, xq, nk) for each piece, a its A operand (16 NT rows, lda apart), xq the quad row
// of its first column (16 tokens), nk its k steps. Then stored into acc[NT][16][16].
template <class Tiles, int NT, class Pieces>
inline void amx_run(Pieces&& pieces, int64_t ldq, int kstep, int32_t* acc) {
  Tiles::template zero<0>();
  if constexpr (NT > 1) Tiles::template zero<1>();
  if constexpr (NT > 2) Tiles::template zero<2>();
  pieces([&](const int8_t* a, int64_t lda, const int8_t* xq, int64_t nk) {
    for (int64_t kk = 0; kk < nk; ++kk) {
      Tiles::template load<kAmxB>(xq + kk * (kstep / 4) * ldq, ldq);
      const int8_t* ak = a + kk * kstep;
      Tiles::template load<3>(ak, lda);
      Tiles::template dp<0, 3, kAmxB>();
      if constexpr (NT > 1) {
        Tiles::template load<4>(ak + 16 * lda, lda);
        Tiles::template dp<1, 4, kAmxB>();
      }
      if constexpr (NT > 2) {
        Tiles::template load<5>(ak + 32 * lda, lda);
        Tiles::template dp<2, 5, kAmxB>();
      }
    }
  });
  Tiles::template store<0>(acc, 64);
  if constexpr (NT > 1) Tiles::template store<1>(acc + 256, 64);
  if constexpr (NT > 2) Tiles::template store<2>(acc + 512, 64);
}

// y[r, t] (+)= float(acc[r, t]) * ws[r * ws_ld] * xs[t] for rows r < nr, tokens t < rem
// (acc rows of 16 int32, y rows ldy apart).
inline void amx_flush(const int32_t* acc, int64_t nr, int rem, const float* ws, int64_t ws_ld,
                      const float* xs, float* y, int64_t ldy, bool first) {
  const __mmask16 m = static_cast<__mmask16>(rem >= 16 ? 0xFFFFu : (1u << rem) - 1u);
  const __m512 xv = _mm512_maskz_loadu_ps(m, xs);
  for (int64_t r = 0; r < nr; ++r) {
    const __m512 s = _mm512_mul_ps(_mm512_set1_ps(ws[r * ws_ld]), xv);
    const __m512 p = _mm512_cvtepi32_ps(_mm512_loadu_si512(acc + 16 * r));
    float* yr = y + r * ldy;
    const __m512 o = first ? _mm512_mul_ps(p, s)
                           : _mm512_fmadd_ps(p, s, _mm512_maskz_loadu_ps(m, yr));
    _mm512_mask_storeu_ps(yr, m, o);
  }
}

// f(nt) for nt = 1, 2, 3 (an integral_constant).
template <class F>
inline void with_nt(int64_t nt, F&& f) {
  if (nt >= 3)
    f(std::integral_constant<int, 3>{});
  else if (nt == 2)
    f(std::integral_constant<int, 2>{});
  else
    f(std::integral_constant<int, 1>{});
}

// BSR on tiles: out rows [r0, r1) (whole block rows), blocks R x C with R a multiple of 16.
template <class Tiles>
void bsr_amx_rows(const PanelArgs& a, int64_t r0, int64_t r1, int kstep) {
  const int64_t R = a.R, C = a.C, N = a.N;
  const int8_t* val = static_cast<const int8_t*>(a.stored.data);
  alignas(64) int32_t acc[3 * 256];
  for_bsr_block_rows(a, r0, r1, [&](int64_t i0, int64_t p0, int64_t p1, float* yb) {
    // flush units as in bsr_i8_rows: runs of whole blocks with one scale a row, else each
    // block's scale runs
    int64_t nu = 0;
    const I8Unit* units = bsr_i8_units(a, p0, p1, &nu);
    for (int64_t c = 0; c < N; c += 16) {
      const int rem = static_cast<int>(std::min<int64_t>(16, N - c));
      for (int64_t j = 0; j < nu; ++j) {
        const I8Unit u = units[j];
        for (int64_t rt = 0; rt < R / 16; rt += 3) {
          const int64_t nt = std::min<int64_t>(3, R / 16 - rt);
          with_nt(nt, [&](auto ntc) {
            amx_run<Tiles, decltype(ntc)::value>(
                [&](auto&& f) {
                  for (int64_t p = u.p0; p < u.p1; ++p)
                    f(val + (p * R + 16 * rt) * C + u.o0, C,
                      a.xq4 + ((static_cast<int64_t>(a.bcol[p]) * C + u.o0) / 4) * a.ldq + 4 * c,
                      (u.o1 - u.o0) / kstep);
                },
                a.ldq, kstep, acc);
          });
          for (int64_t i = 0; i < nt; ++i) {
            const int64_t r = 16 * (rt + i);
            amx_flush(acc + 256 * i, 16, rem, a.wscale + (i0 + r) * a.ws_ld + u.g, a.ws_ld,
                      a.xscale + c, yb + r * N + c, N, j == 0);
          }
        }
      }
    }
  });
}

// out rows [r0, r1), every column: W8A8 on AMX tiles (see the top of the file). Fallback:
// the rows function of BSR matrices whose block height is not a multiple of 16.
template <class Tiles>
void panel_amx_rows(const PanelArgs& a, int64_t r0, int64_t r1, PanelSpmmFn fallback) {
  if (a.layout == PanelLayout::bsr && (a.R % 16 != 0 || a.C % 4 != 0))
    return fallback(a, r0, r1);
  const int64_t K = a.K, N = a.N;
  const int kstep = amx_kstep(a.wgroup, K, a.layout == PanelLayout::bsr ? a.C : 0);
  const AmxConfig cfg = amx_config(kstep);
  Tiles::configure(cfg);
  if (a.layout == PanelLayout::bsr) {
    bsr_amx_rows<Tiles>(a, r0, r1, kstep);
    Tiles::release();
    return;
  }
  // twice the float panels' chunk where it stays <= 512 (48 x 512 bytes: half of a 48 KiB L1)
  int64_t KC = panel_kc(a.layout == PanelLayout::nm ? a.m : 64);
  while (2 * KC <= 512) KC *= 2;
  const int64_t ps = KC;
  alignas(64) int32_t acc[3 * 256];
  for_i8_panels(a, r0, r1, KC, [&](const int8_t* panel, int64_t i0, int64_t nr, int64_t k0,
                                   int64_t kw) {
    float* yb = a.out + i0 * N;
    const int64_t nt = (nr + 15) / 16;
    // token blocks outside, runs inside (the output tile stays in L1 across the runs)
    for (int64_t c = 0; c < N; c += 16) {
      const int rem = static_cast<int>(std::min<int64_t>(16, N - c));
      for_scale_runs(a, k0, kw, [&](int64_t s0, int64_t s1, int64_t g) {
        const int64_t nk = (s1 - s0 + kstep - 1) / kstep;
        const int8_t* xq = a.xq4 + (s0 / 4) * a.ldq + 4 * c;
        const int8_t* pk = panel + (s0 - k0);
        with_nt(nt, [&](auto ntc) {
          amx_run<Tiles, decltype(ntc)::value>([&](auto&& f) { f(pk, ps, xq, nk); }, a.ldq,
                                               kstep, acc);
        });
        for (int64_t i = 0; i < nt; ++i)
          amx_flush(acc + 256 * i, std::min<int64_t>(16, nr - 16 * i), rem,
                    a.wscale + (i0 + 16 * i) * a.ws_ld + g, a.ws_ld, a.xscale + c,
                    yb + 16 * i * N + c, N, s0 == 0);
      });
    }
  });
  Tiles::release();
}

// The AVX-512 table's "amx-emulated" engine (BSR of other block heights: emulated vpdpbusd).
inline void panel_i8_amx_emulated_rows(const PanelArgs& a, int64_t r0, int64_t r1) {
  panel_amx_rows<AmxEmulatedTiles>(a, r0, r1, &panel_i8_rows<kDotEmulated>);
}
#endif

#ifdef SPARSE_OPS_AMX
// The entry of isa_amx.cpp (kernels.h): tdpbssd, BSR of other block heights on vpdpbusd.
void panel_i8_amx_rows(const PanelArgs& a, int64_t r0, int64_t r1) {
  panel_amx_rows<AmxTiles>(a, r0, r1, &panel_i8_rows<kDotVnni>);
}
#endif

}  // namespace ISA_NS
}  // namespace sparse_ops
