// A minimal float vector for the tile kernels: AVX-512 (16 lanes, one tile row), AVX2+FMA
// (8 lanes) or plain scalar (1 lane), picked at compile time. The kernels are written once against
// this interface, so every width computes the same maths (including gsvc::fast_exp's constants).
#pragma once

#include "gsvc_splat.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace gsvc::simd {

#if defined(__AVX512F__) && !defined(GSVC_NO_AVX512)
#define GSVC_SIMD_NAME "avx512"
struct Vec {
  __m512 v;
  static constexpr int kLanes = 16;
};
inline Vec set1(float a) { return {_mm512_set1_ps(a)}; }
inline Vec load(const float* p) { return {_mm512_load_ps(p)}; }
inline void store(float* p, Vec a) { _mm512_store_ps(p, a.v); }
inline void storeu(float* p, Vec a) { _mm512_storeu_ps(p, a.v); }
inline Vec iota() { return {_mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)}; }
inline Vec add(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
inline Vec sub(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline Vec mul(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec min(Vec a, Vec b) { return {_mm512_min_ps(a.v, b.v)}; }
inline Vec max(Vec a, Vec b) { return {_mm512_max_ps(a.v, b.v)}; }
// value where test >= lo, else 0
inline Vec keep_ge(Vec value, Vec test, Vec lo) {
  return {_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(test.v, lo.v, _CMP_GE_OQ), value.v)};
}
// value where lo <= test <= hi, else 0
inline Vec keep_in(Vec value, Vec test, Vec lo, Vec hi) {
  __mmask16 m = _mm512_cmp_ps_mask(test.v, lo.v, _CMP_GE_OQ) & _mm512_cmp_ps_mask(test.v, hi.v, _CMP_LE_OQ);
  return {_mm512_maskz_mov_ps(m, value.v)};
}
inline float hsum(Vec a) { return _mm512_reduce_add_ps(a.v); }
inline Vec floor(Vec a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)}; }
inline Vec pow2i(Vec n) {  // 2^n for integral n in float range
  __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(e, 23))};
}
// a 2^n for integral n: equal to mul(a, pow2i(n)) wherever 2^n is a normal float, in one
// instruction instead of four.
inline Vec scale2i(Vec a, Vec n) { return {_mm512_scalef_ps(a.v, n.v)}; }
// fast_exp2_shifted: vreduceps gives f = u - floor(u) and vscalefps applies floor(u) itself, so no
// clamp is needed (far below kExpShiftedFloor the result underflows, or is a NaN for -inf, and the
// cut drops such weights anyway; above it the result equals the other widths').
#define GSVC_SIMD_EXP2_NATIVE 1
inline Vec frac(Vec t) { return {_mm512_reduce_ps(t.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)}; }
// The clipped weight of clip_weight(e): min(e, hi) where e >= lo, else 0.
inline Vec clip(Vec e, Vec lo, Vec hi) {
  return {_mm512_maskz_min_ps(_mm512_cmp_ps_mask(e.v, lo.v, _CMP_GE_OQ), e.v, hi.v)};
}

#elif defined(__AVX2__) && defined(__FMA__)
#define GSVC_SIMD_NAME "avx2"
struct Vec {
  __m256 v;
  static constexpr int kLanes = 8;
};
inline Vec set1(float a) { return {_mm256_set1_ps(a)}; }
inline Vec load(const float* p) { return {_mm256_load_ps(p)}; }
inline void store(float* p, Vec a) { _mm256_store_ps(p, a.v); }
inline void storeu(float* p, Vec a) { _mm256_storeu_ps(p, a.v); }
inline Vec iota() { return {_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7)}; }
inline Vec add(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
inline Vec sub(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline Vec mul(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec min(Vec a, Vec b) { return {_mm256_min_ps(a.v, b.v)}; }
inline Vec max(Vec a, Vec b) { return {_mm256_max_ps(a.v, b.v)}; }
inline Vec keep_ge(Vec value, Vec test, Vec lo) {
  return {_mm256_and_ps(value.v, _mm256_cmp_ps(test.v, lo.v, _CMP_GE_OQ))};
}
inline Vec keep_in(Vec value, Vec test, Vec lo, Vec hi) {
  __m256 m = _mm256_and_ps(_mm256_cmp_ps(test.v, lo.v, _CMP_GE_OQ), _mm256_cmp_ps(test.v, hi.v, _CMP_LE_OQ));
  return {_mm256_and_ps(value.v, m)};
}
inline float hsum(Vec a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline Vec floor(Vec a) { return {_mm256_floor_ps(a.v)}; }
inline Vec pow2i(Vec n) {
  __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(e, 23))};
}
inline Vec scale2i(Vec a, Vec n) { return mul(a, pow2i(n)); }

#else
#define GSVC_SIMD_NAME "scalar"
struct Vec {
  float v;
  static constexpr int kLanes = 1;
};
inline Vec set1(float a) { return {a}; }
inline Vec load(const float* p) { return {*p}; }
inline void store(float* p, Vec a) { *p = a.v; }
inline void storeu(float* p, Vec a) { *p = a.v; }
inline Vec iota() { return {0.0f}; }
inline Vec add(Vec a, Vec b) { return {a.v + b.v}; }
inline Vec sub(Vec a, Vec b) { return {a.v - b.v}; }
inline Vec mul(Vec a, Vec b) { return {a.v * b.v}; }
inline Vec fma(Vec a, Vec b, Vec c) { return {fmaf(a.v, b.v, c.v)}; }
inline Vec min(Vec a, Vec b) { return {a.v < b.v ? a.v : b.v}; }
inline Vec max(Vec a, Vec b) { return {a.v > b.v ? a.v : b.v}; }
inline Vec keep_ge(Vec value, Vec test, Vec lo) { return {test.v >= lo.v ? value.v : 0.0f}; }
inline Vec keep_in(Vec value, Vec test, Vec lo, Vec hi) {
  return {(test.v >= lo.v && test.v <= hi.v) ? value.v : 0.0f};
}
inline float hsum(Vec a) { return a.v; }
inline Vec floor(Vec a) { return {floorf(a.v)}; }
inline Vec pow2i(Vec n) { return {gsvc::bits_to_float((static_cast<int32_t>(n.v) + 127) << 23)}; }
inline Vec scale2i(Vec a, Vec n) { return mul(a, pow2i(n)); }
#endif

// The polynomial of gsvc::fast_exp2_shifted at f in [0, 1).
inline Vec exp2_poly(Vec f) {
  Vec p = fma(set1(kExp2C5), f, set1(kExp2C4));
  p = fma(p, f, set1(kExp2C3));
  p = fma(p, f, set1(kExp2C2));
  p = fma(p, f, set1(kExp2C1));
  return fma(p, f, set1(kExp2C0));
}

// gsvc::fast_exp2_shifted (2^(u + 1)), lane-wise, with the same reduction and polynomial.
#if defined(GSVC_SIMD_EXP2_NATIVE)
inline Vec exp2_shifted(Vec u) { return scale2i(exp2_poly(frac(u)), u); }
#else
inline Vec exp2_shifted(Vec u) {
  u = max(u, set1(kExpShiftedFloor));
  const Vec n = floor(u);
  return mul(exp2_poly(sub(u, n)), pow2i(n));  // n >= -30 as u >= kExpShiftedFloor
}
// The clipped weight of clip_weight(e): min(e, hi) where e >= lo, else 0.
inline Vec clip(Vec e, Vec lo, Vec hi) { return keep_ge(min(e, hi), e, lo); }
#endif

// gsvc::fast_exp, lane-wise.
inline Vec exp(Vec x) {
  return exp2_shifted(fma(x, set1(kLog2e), fma(x, set1(kLog2eLo), set1(-1.0f))));
}

}  // namespace gsvc::simd
