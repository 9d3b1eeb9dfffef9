// Splat maths shared by the C++ (ext/cpu) and CUDA (ext/cuda) kernels.
//
// The image model: I(p) = sum_i c_i w_i(p), w_i(p) = exp(-0.5 d^T Sigma_i^-1 d), d = p - mu_i,
// Sigma = L L^T with L = [[l1, 0], [l2, l3]]; w is capped at kWeightMax and dropped (set to 0) below
// kWeightMin. Pixel centres sit at integer + 0.5. gsvc_cli/render/reference.py mirrors every formula
// here; keep the two in step.
//
// Only plain scalars, no torch and no standard-library containers, so that nvcc and a C++17 host
// compiler both accept this file.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define GSVC_HD __host__ __device__ __forceinline__
#else
#define GSVC_HD inline
#endif

namespace gsvc {

constexpr int kTile = 16;                       // tiles are kTile x kTile pixels
constexpr float kWeightMax = 0.999f;            // w is capped here
constexpr float kWeightMin = 1.0f / 255.0f;     // w below this counts as 0
// Mahalanobis radius where w reaches kWeightMin: sqrt(2 ln 255). A hair larger than exact so
// that bounds never miss a pixel the fast exp puts on the kept side of the cut.
constexpr float kCutoffRadius = 3.32905f;
// exp(x) = 2^(x log2e), evaluated as 2^(u + 1) with u = x log2e - 1: u = n + f with n = floor(u)
// and f = u - n in [0, 1), 2^(f + 1) by a degree-5 polynomial (minimax for relative error on
// [0, 1], doubled), times 2^n. The shift by one makes f exact in float for every u <= -1/2 (for
// t = x log2e in (-1/2, 0), 1 + t would round), so the AVX-512 path, whose vreduceps rounds f
// towards -inf, computes the same function as the others bit for bit; u > -1/2 means a weight above
// 1.41, capped at kWeightMax anyway. Relative error (measured over every float argument): at most
// 1.6e-7 for 2^(u + 1), u in [-30, -1]; 8.1e-7 for fast_exp, x in [-20, 0] (5.5e-7 on [-6, 0]).
// The SIMD versions in ext/cpu use the same constants and steps; the CPU kernels fold log2e and
// the -1 into their per-splat terms and call fast_exp2_shifted directly.
constexpr float kLog2e = 1.442695f;
constexpr float kLog2eLo = 1.925963e-08f;  // log2(e) - kLog2e
constexpr float kExpShiftedFloor = -30.0f;  // u is clamped here (w is 0 anyway: 2^-29)
constexpr float kExp2C0 = 2.0f * 0.99999994f;
constexpr float kExp2C1 = 2.0f * 0.6931531f;
constexpr float kExp2C2 = 2.0f * 0.24015361f;
constexpr float kExp2C3 = 2.0f * 0.055826318f;
constexpr float kExp2C4 = 2.0f * 0.00898934f;
constexpr float kExp2C5 = 2.0f * 0.0018775767f;

GSVC_HD float bits_to_float(int32_t bits) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(bits);
#else
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

// 2^(u + 1) (see above).
GSVC_HD float fast_exp2_shifted(float u) {
  u = u < kExpShiftedFloor ? kExpShiftedFloor : u;
  const float n = floorf(u);
  const float f = u - n;
  float p = fmaf(kExp2C5, f, kExp2C4);
  p = fmaf(p, f, kExp2C3);
  p = fmaf(p, f, kExp2C2);
  p = fmaf(p, f, kExp2C1);
  p = fmaf(p, f, kExp2C0);
  return p * bits_to_float((static_cast<int32_t>(n) + 127) << 23);
}

// exp(x) for x <= 0: u = x log2(e) - 1 with log2(e) to 48 bits.
GSVC_HD float fast_exp(float x) { return fast_exp2_shifted(fmaf(x, kLog2e, fmaf(x, kLog2eLo, -1.0f))); }

// The weight from the raw exponential: capped above, dropped below the cut.
GSVC_HD float clip_weight(float e) { return e >= kWeightMin ? (e < kWeightMax ? e : kWeightMax) : 0.0f; }

// d(clip_weight)/de: 1 between the cut and the cap, 0 elsewhere (as torch's clamp/where give).
GSVC_HD float clip_weight_slope(float e) { return (e >= kWeightMin && e <= kWeightMax) ? 1.0f : 0.0f; }

// A splat ready for evaluation: centre and inverse covariance [[ia, ib], [ib, ic]].
struct Conic {
  float mx, my, ia, ib, ic;
};

// Inclusive pixel-index bounds of the splat's cut-off ellipse clipped to the frame; empty when
// x0 > x1 or y0 > y1.
struct PixelBox {
  int32_t x0, x1, y0, y1;
};

GSVC_HD bool box_empty(const PixelBox& b) { return b.x0 > b.x1 || b.y0 > b.y1; }

// Sigma^-1 = L^-T L^-1 written without the cancellation of a*c - b*b:
// with k = l2 / (l1 l3): ia = 1/l1^2 + k^2, ib = -k / l3, ic = 1/l3^2.
// Returns false for a degenerate factor (l1 or l3 zero, or anything non-finite): such a splat is
// invisible.
GSVC_HD bool make_conic(float mx, float my, float l1, float l2, float l3, Conic* out) {
  float r1 = 1.0f / l1;
  float r3 = 1.0f / l3;
  float k = l2 * r1 * r3;
  out->mx = mx;
  out->my = my;
  out->ia = r1 * r1 + k * k;
  out->ib = -k * r3;
  out->ic = r3 * r3;
  float s = out->ia + out->ib + out->ic + mx + my;
  return s - s == 0.0f;  // false for NaN and +-Inf
}

// Lowest and highest pixel index i with |i + 0.5 - centre| <= extent, clipped to [0, size-1].
GSVC_HD void pixel_span(float centre, float extent, int32_t size, int32_t* lo, int32_t* hi) {
  float a = centre - extent - 0.5f;
  float b = centre + extent - 0.5f;
  // Clamp in float before converting so huge or far-away values cannot overflow the int.
  a = a < -1.0f ? -1.0f : (a > static_cast<float>(size) ? static_cast<float>(size) : a);
  b = b < -1.0f ? -1.0f : (b > static_cast<float>(size) ? static_cast<float>(size) : b);
  int32_t ia = static_cast<int32_t>(ceilf(a));
  int32_t ib = static_cast<int32_t>(floorf(b));
  *lo = ia < 0 ? 0 : ia;
  *hi = ib > size - 1 ? size - 1 : ib;
}

// The bounding box of the ellipse d^T Sigma^-1 d = kCutoffRadius^2: half-widths
// R sqrt(Sigma_xx) = R |l1| and R sqrt(Sigma_yy) = R sqrt(l2^2 + l3^2).
GSVC_HD PixelBox make_box(float mx, float my, float l1, float l2, float l3, int32_t height,
                          int32_t width) {
  PixelBox b;
  float ex = kCutoffRadius * fabsf(l1);
  float ey = kCutoffRadius * sqrtf(l2 * l2 + l3 * l3);
  pixel_span(mx, ex, width, &b.x0, &b.x1);
  pixel_span(my, ey, height, &b.y0, &b.y1);
  return b;
}

// The exponent -0.5 d^T Sigma^-1 d at offset (dx, dy) from the centre.
GSVC_HD float splat_power(const Conic& q, float dx, float dy) {
  return -0.5f * (q.ia * dx * dx + 2.0f * q.ib * dx * dy + q.ic * dy * dy);
}

// Per-(tile, splat) partial sums the backward pass collects, in this order. With P = dLoss/d(power):
// colour sums sum g_k w, then sum P dx, sum P dy, sum P dx^2, sum P dx dy, sum P dy^2.
constexpr int kPartials = 8;

// Turn a splat's summed partials into gradients for its centre and Cholesky factor.
// power = -0.5 (ia dx^2 + 2 ib dx dy + ic dy^2), dx = px - mx, so
// dpower/dmx = ia dx + ib dy, dpower/dmy = ib dx + ic dy,
// dpower/dia = -dx^2/2, dpower/dib = -dx dy, dpower/dic = -dy^2/2;
// then the chain through ia(l), ib(l), ic(l) of make_conic.
GSVC_HD void geometry_gradients(float l1, float l2, float l3, const Conic& q, float sx, float sy,
                                float sxx, float sxy, float syy, float* g_mean, float* g_chol) {
  g_mean[0] = q.ia * sx + q.ib * sy;
  g_mean[1] = q.ib * sx + q.ic * sy;
  float g_ia = -0.5f * sxx;
  float g_ib = -sxy;
  float g_ic = -0.5f * syy;
  float r1 = 1.0f / l1;
  float r3 = 1.0f / l3;
  float k = l2 * r1 * r3;
  // d ia/d l = (-2 ia r1, 2 k r1 r3, -2 k^2 r3); d ib/d l = (-ib r1, -r1 r3^2, -2 ib r3);
  // d ic/d l = (0, 0, -2 r3^3).
  g_chol[0] = g_ia * (-2.0f * q.ia * r1) + g_ib * (-q.ib * r1);
  g_chol[1] = g_ia * (2.0f * k * r1 * r3) + g_ib * (-r1 * r3 * r3);
  g_chol[2] = g_ia * (-2.0f * k * k * r3) + g_ib * (-2.0f * q.ib * r3) + g_ic * (-2.0f * r3 * r3 * r3);
}

}  // namespace gsvc
