// int8 SpMV by byte shuffles (W8A16 at N = 1, AVX2): bitmap and 2:4 weights with int8 values
// as stored, x float32. Included after bitmap_kernels.h and nm_kernels.h; the table's bitmap
// SpMV and N:M product enter here (bitmap_spmv_entry, nm_spmm_entry) and fall through to those
// headers wherever these kernels do not apply.
//
// Eight columns at a time: one metadata byte (8 bitmap bits, or 4 slots of 2:4 = 2 groups)
// indexes a 32-byte vpshufb control that moves each stored value byte into the top byte of its
// column's 32-bit lane, every other byte zero. vcvtdq2ps then gives value * 2^24 exactly, so a
// byte costs a broadcast load of the packed values, one shuffle (table operand from L1), one
// convert and one FMA with x from memory. The float-value paths widen the values, permute them
// into place and blend (bitmap: 8 vector µops a byte; 2:4: a decode, two permutes and a blend
// per 8 slots). The 2^24 is taken out of each row's sum (a power of two: exact).
//
// Unset lanes hold +0 and meet every column of x: an inf or NaN there would reach the sum
// (0 * inf), and value * 2^24 * x must not overflow where the reference does not. So these
// kernels run only when every x is finite and below 2^64 in magnitude (x_fits_shuffle, one
// pass over K floats a chunk); otherwise the float paths run, which never read unset columns.
#pragma once

namespace sparse_ops {
namespace ISA_NS {

#if SPARSE_OPS_ISA == 2
// vpshufb controls (each 128-bit half picks from its own copy of the 8 broadcast bytes).
struct I8ShuffleTables {
  // bitmap byte b: lane l takes packed value rank(l) (the set bits of b below l) if bit l is set
  alignas(64) uint8_t bitmap[256][32];
  // 2:4 byte b (slots s = 0..3 at bits 2s, slots 0-1 in columns 0-3, slots 2-3 in 4-7): lane l
  // takes the slot of its group whose position is l % 4; [1] adds 4 to every rank (the odd
  // byte of a pair whose 8 values were broadcast together).
  alignas(64) uint8_t nm24[2][256][32];
};

inline const I8ShuffleTables& i8_shuffle_tables() {
  static const I8ShuffleTables t = [] {
    I8ShuffleTables r;
    std::memset(&r, 0x80, sizeof r);
    for (int b = 0; b < 256; ++b) {
      int rank = 0;
      for (int l = 0; l < 8; ++l)
        if ((b >> l) & 1) r.bitmap[b][4 * l + 3] = static_cast<uint8_t>(rank++);
      for (int l = 0; l < 8; ++l) {
        const int g = l / 4, c = l % 4;
        for (int s = 2 * g; s < 2 * g + 2; ++s) {
          if (((b >> (2 * s)) & 3) != c) continue;
          r.nm24[0][b][4 * l + 3] = static_cast<uint8_t>(s);
          r.nm24[1][b][4 * l + 3] = static_cast<uint8_t>(s + 4);
          break;  // a repeated position: nm24_distinct sends the row elsewhere
        }
      }
    }
    return r;
  }();
  return t;
}

// True when every x[k] is finite and |x[k]| < 2^64: then every term value * 2^24 * x is below
// 2^95 and a row's sum below 2^128 for any K < 2^33.
inline bool x_fits_shuffle(const float* x, int64_t K) {
  const __m256i lim = _mm256_set1_epi32(0x5F7FFFFF), abs = _mm256_set1_epi32(0x7FFFFFFF);
  __m256i bad = _mm256_setzero_si256();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k));
    bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(_mm256_and_si256(v, abs), lim));
  }
  bool ok = _mm256_testz_si256(bad, bad);
  for (; k < K; ++k) {
    uint32_t u;
    std::memcpy(&u, x + k, 4);
    ok = ok && (u & 0x7FFFFFFFu) <= 0x5F7FFFFFu;
  }
  return ok;
}

// The 8 lanes of one byte: v8 holds the packed value bytes (broadcast to every qword), ctl
// its 32-byte control. Lane l = value * 2^24 or +0.
inline __m256 i8_lanes(uint64_t v8, const uint8_t* ctl) {
  const __m256i c = _mm256_load_si256(reinterpret_cast<const __m256i*>(ctl));
  return _mm256_cvtepi32_ps(
      _mm256_shuffle_epi8(_mm256_set1_epi64x(static_cast<long long>(v8)), c));
}

inline uint64_t load8(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// ---------------------------------------------------------------- bitmap
// Guarded as bitmap_spmv_vec: no value read past nnz (the fast path needs p + 64 <= nnz, the
// careful one reads load_bytes), no x past K (bits past K dropped, the row reported), the row
// reported when its popcount is not its span.
inline int64_t bitmap_spmv_i8(const BitmapArgs<float>& a, int64_t r0, int64_t r1) {
  const auto& tb = i8_shuffle_tables().bitmap;
  const uint8_t* __restrict__ val = static_cast<const uint8_t*>(a.stored.data);
  const float* __restrict__ x = a.x;
  const int64_t nw = a.rb / 8, nnz = a.nnz, K = a.K;
  const int64_t safe = nnz - 64, full_words = K / 64;
  const uint64_t last = bm_last_mask(K);
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* row = a.bits + i * a.rb;
    int64_t p = a.row_off[i];
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const bool pad = nw > 0 && (bm_word(row + 8 * (nw - 1)) & ~last) != 0;
    for (int64_t w = 0; w < nw; ++w) {
      const uint64_t word = w == nw - 1 ? bm_word(row + 8 * w) & last : bm_word(row + 8 * w);
      prefetch_stream<64>(val + p);  // at most 64 values a word
      if ((w & 7) == 0) prefetch_stream<64>(row + 8 * w);
      if (!word) continue;
      const float* xw = x + 64 * w;
      const uint32_t lo = static_cast<uint32_t>(word), hi = static_cast<uint32_t>(word >> 32);
      if (__builtin_expect(w < full_words && p <= safe, 1)) {
        const int64_t q1 = p + __builtin_popcount(lo & 0xFFu);
        const int64_t q2 = p + __builtin_popcount(lo & 0xFFFFu);
        const int64_t q3 = p + __builtin_popcount(lo & 0xFFFFFFu);
        const int64_t q4 = p + __builtin_popcount(lo);
        const int64_t q5 = q4 + __builtin_popcount(hi & 0xFFu);
        const int64_t q6 = q4 + __builtin_popcount(hi & 0xFFFFu);
        const int64_t q7 = q4 + __builtin_popcount(hi & 0xFFFFFFu);
        s0 = _mm256_fmadd_ps(i8_lanes(load8(val + p), tb[lo & 0xFFu]), _mm256_loadu_ps(xw), s0);
        s1 = _mm256_fmadd_ps(i8_lanes(load8(val + q1), tb[(lo >> 8) & 0xFFu]),
                             _mm256_loadu_ps(xw + 8), s1);
        s2 = _mm256_fmadd_ps(i8_lanes(load8(val + q2), tb[(lo >> 16) & 0xFFu]),
                             _mm256_loadu_ps(xw + 16), s2);
        s3 = _mm256_fmadd_ps(i8_lanes(load8(val + q3), tb[lo >> 24]), _mm256_loadu_ps(xw + 24),
                             s3);
        s0 = _mm256_fmadd_ps(i8_lanes(load8(val + q4), tb[hi & 0xFFu]),
                             _mm256_loadu_ps(xw + 32), s0);
        s1 = _mm256_fmadd_ps(i8_lanes(load8(val + q5), tb[(hi >> 8) & 0xFFu]),
                             _mm256_loadu_ps(xw + 40), s1);
        s2 = _mm256_fmadd_ps(i8_lanes(load8(val + q6), tb[(hi >> 16) & 0xFFu]),
                             _mm256_loadu_ps(xw + 48), s2);
        s3 = _mm256_fmadd_ps(i8_lanes(load8(val + q7), tb[hi >> 24]), _mm256_loadu_ps(xw + 56),
                             s3);
      } else {  // the array's last values, or the columns past K: careful loads
        __m256* s[4] = {&s0, &s1, &s2, &s3};
        int64_t q = p;
        for (int k = 0; k < 8; ++k) {
          const unsigned b = static_cast<unsigned>(word >> (8 * k)) & 0xFFu;
          if (!b) continue;
          const int64_t left = K - 64 * w - 8 * k;  // >= 1: a bit is set below K
          const __m256 xv = left >= 8 ? _mm256_loadu_ps(xw + 8 * k)
                                      : V<float>::loadn(xw + 8 * k, static_cast<int>(left));
          *s[k & 3] = _mm256_fmadd_ps(i8_lanes(load_bytes(val + q, nnz - q), tb[b]), xv,
                                      *s[k & 3]);
          q += __builtin_popcount(b);
        }
      }
      p += bm_popcount(word);
    }
    if (__builtin_expect(pad || p != a.row_off[i + 1], 0)) return i;
    const __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    a.out[i] = V<float>::hsum(s) * 0x1p-24f;
  }
  return -1;
}

// ---------------------------------------------------------------- 2:4
// All 2-bit positions of a group distinct, for 8 packed metadata bytes (32 slots): a byte's
// slot pairs (bits 0-3, 4-7) must differ. A repeated position (allowed by the format: the
// reference sums both) cannot be expressed by one shuffle.
inline bool nm24_distinct(uint64_t m) {
  const uint64_t t = (m ^ (m >> 2)) & 0x3333333333333333ull;
  return ((t | (t >> 1)) & 0x1111111111111111ull) == 0x1111111111111111ull;
}

// One row slot by slot: value * x[column] for every slot whose column lies below K.
inline float nm24_row_slots(const uint8_t* vrow, const uint8_t* mrow, const float* x, int64_t u0,
                            int64_t Gn, int64_t K) {
  float s = 0.f;
  for (int64_t u = u0; u < Gn; ++u) {
    const int64_t col = (u / 2) * 4 + ((mrow[u / 4] >> (2 * (u % 4))) & 3);
    if (col < K) s += static_cast<float>(static_cast<int8_t>(vrow[u])) * x[col];
  }
  return s;
}

// Rows [r0, r1) of out = S @ x, S 2:4 with int8 values (no group scales), x (K,) unit stride.
inline void nm24_spmv_i8(const NmArgs<float>& a, int64_t r0, int64_t r1) {
  const auto& t0 = i8_shuffle_tables().nm24[0];
  const auto& t1 = i8_shuffle_tables().nm24[1];
  const int64_t Gn = a.G * 2, stride = a.meta_stride, K = a.K;
  const float* __restrict__ x = a.x;
  // whole metadata words (32 slots, 64 columns) while their columns, slots and bytes exist,
  // then single bytes (4 slots, 8 columns), then the row's last slots one by one
  const int64_t words = std::min({K / 64, Gn / 32, stride / 8});
  const int64_t bytes = std::min(K / 8, Gn / 4);
  for (int64_t i = r0; i < r1; ++i) {
    const uint8_t* __restrict__ vrow = static_cast<const uint8_t*>(a.stored.data) + i * Gn;
    const uint8_t* __restrict__ mrow = a.meta + i * stride;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    bool ok = true;
    for (int64_t w = 0; w < words; ++w) {
      const uint64_t m = load8(mrow + 8 * w);
      ok &= nm24_distinct(m);
      prefetch_stream<64>(vrow + 32 * w);
      if ((w & 7) == 0) prefetch_stream<64>(mrow + 8 * w);
      const uint8_t* vw = vrow + 32 * w;
      const float* xw = x + 64 * w;
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {  // 2 bytes, 8 values, 16 columns
        const uint64_t v8 = load8(vw + 8 * q);
        const unsigned b0 = static_cast<unsigned>(m >> (16 * q)) & 0xFFu;
        const unsigned b1 = static_cast<unsigned>(m >> (16 * q + 8)) & 0xFFu;
        if (q & 1) {
          s2 = _mm256_fmadd_ps(i8_lanes(v8, t0[b0]), _mm256_loadu_ps(xw + 16 * q), s2);
          s3 = _mm256_fmadd_ps(i8_lanes(v8, t1[b1]), _mm256_loadu_ps(xw + 16 * q + 8), s3);
        } else {
          s0 = _mm256_fmadd_ps(i8_lanes(v8, t0[b0]), _mm256_loadu_ps(xw + 16 * q), s0);
          s1 = _mm256_fmadd_ps(i8_lanes(v8, t1[b1]), _mm256_loadu_ps(xw + 16 * q + 8), s1);
        }
      }
    }
    for (int64_t j = 8 * words; j < bytes; ++j) {
      const unsigned b = mrow[j];
      ok &= nm24_distinct(b | 0x1111111111111100ull);  // the other bytes' fields pass
      uint32_t v4;
      std::memcpy(&v4, vrow + 4 * j, 4);
      s0 = _mm256_fmadd_ps(i8_lanes(v4, t0[b]), _mm256_loadu_ps(x + 8 * j), s0);
    }
    const float tail = nm24_row_slots(vrow, mrow, x, 4 * bytes, Gn, K);
    if (__builtin_expect(!ok, 0)) {  // a repeated position: the row slot by slot
      a.out[i] = nm24_row_slots(vrow, mrow, x, 0, Gn, K);
      continue;
    }
    const __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    a.out[i] = V<float>::hsum(s) * 0x1p-24f + tail;
  }
}
#endif

// The table's bitmap SpMV: the shuffle kernel for int8 values where it applies.
template <class T>
int64_t bitmap_spmv_entry(const BitmapArgs<T>& a, int64_t r0, int64_t r1) {
#if SPARSE_OPS_ISA == 2
  if constexpr (std::is_same_v<T, float>)
    if (a.stored.dt == DT::i8 && x_fits_shuffle(a.x, a.K)) return bitmap_spmv_i8(a, r0, r1);
#endif
  return bitmap_spmv_rows<T>(a, r0, r1);
}

// The table's N:M product: the shuffle kernel for the 2:4 SpMV with int8 values and one
// scale a row (applied by the caller) where it applies.
template <class T>
void nm_spmm_entry(const NmArgs<T>& a, int64_t r0, int64_t r1, int64_t n0, int64_t n1) {
#if SPARSE_OPS_ISA == 2
  if constexpr (std::is_same_v<T, float>)
    if (a.N == 1 && n0 < n1 && a.stored.dt == DT::i8 && !a.gscale && a.n == 2 && a.m == 4 &&
        a.bits == 2 && x_fits_shuffle(a.x, a.K))
      return nm24_spmv_i8(a, r0, r1);
#endif
  nm_spmm_rows<T>(a, r0, r1, n0, n1);
}

}  // namespace ISA_NS
}  // namespace sparse_ops
