// CPU splat rasteriser: OpenMP across 16x16 tiles, SIMD across the pixels of a tile row.
#include "render_cpu.h"

#include <algorithm>
#include <vector>

#include "gsvc_splat.h"
#include "simd.h"

namespace gsvc::cpu {
namespace {

using simd::Vec;
constexpr int kL = Vec::kLanes;
constexpr int kPix = kTile * kTile;
static_assert(kTile % kL == 0, "a tile row must hold whole vectors");

int64_t tiles_across(int32_t width) { return (static_cast<int64_t>(width) + kTile - 1) / kTile; }
int64_t tiles_down(int32_t height) { return (static_cast<int64_t>(height) + kTile - 1) / kTile; }

struct TileBox {
  int64_t tx0, tx1, ty0, ty1;  // inclusive; only valid for a non-empty pixel box
};

TileBox tile_box(const PixelBox& b) { return {b.x0 / kTile, b.x1 / kTile, b.y0 / kTile, b.y1 / kTile}; }

const Conic& conic_at(const float* conics, int64_t s) { return *reinterpret_cast<const Conic*>(conics + 5 * s); }
const PixelBox& box_at(const int32_t* boxes, int64_t s) { return *reinterpret_cast<const PixelBox*>(boxes + 4 * s); }

// Splats in a tile are in index order, not memory-local: fetch a few pairs ahead.
constexpr int64_t kPrefetch = 8;
inline void prefetch_splat(const float* conics, const int32_t* boxes, const float* colors, int64_t s) {
  __builtin_prefetch(conics + 5 * s);
  __builtin_prefetch(boxes + 4 * s);
  __builtin_prefetch(colors + 3 * s);
}

// The conic's coefficients as the kernels use them, in base 2: -ia log2e / 2, -ib log2e,
// -ic log2e / 2, so that the exponent -(ia dx^2 + 2 ib dx dy + ic dy^2) / 2 times log2e is
// (-ia log2e / 2) dx^2 + (-ib log2e) dx dy + (-ic log2e / 2) dy^2, and w = fast_exp2_shifted of
// that minus one.
struct HalfConic {
  float ia, ib, ic;
};
inline HalfConic half_conic(const Conic& q) {
  constexpr float kHalfLog2e = -0.5f * kLog2e;
  return {kHalfLog2e * q.ia, -kLog2e * q.ib, kHalfLog2e * q.ic};
}

// Pixel-centre x of every lane of each vector in a tile row, relative to the tile's left edge.
struct RowLanes {
  Vec x[kTile / kL];
  RowLanes() {
    for (int h = 0; h < kTile / kL; ++h) x[h] = simd::add(simd::iota(), simd::set1(h * kL + 0.5f));
  }
};

}  // namespace

const char* simd_name() { return GSVC_SIMD_NAME; }

int64_t tile_count(int32_t height, int32_t width) { return tiles_across(width) * tiles_down(height); }

void prepare_splats(const float* means, const float* chol, int64_t n, int32_t height, int32_t width,
                    float* conics, int32_t* boxes, int64_t* splat_offsets, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t s = 0; s < n; ++s) {
    float mx = means[2 * s], my = means[2 * s + 1];
    float l1 = chol[3 * s], l2 = chol[3 * s + 1], l3 = chol[3 * s + 2];
    Conic q;
    PixelBox b{0, -1, 0, -1};
    if (make_conic(mx, my, l1, l2, l3, &q)) b = make_box(mx, my, l1, l2, l3, height, width);
    reinterpret_cast<Conic*>(conics)[s] = q;
    reinterpret_cast<PixelBox*>(boxes)[s] = b;
    int64_t count = 0;
    if (!box_empty(b)) {
      TileBox t = tile_box(b);
      count = (t.tx1 - t.tx0 + 1) * (t.ty1 - t.ty0 + 1);
    }
    splat_offsets[s + 1] = count;
  }
  splat_offsets[0] = 0;
  for (int64_t s = 0; s < n; ++s) splat_offsets[s + 1] += splat_offsets[s];
}

void bin_tiles(const int32_t* boxes, const int64_t* splat_offsets, int64_t n, int32_t height,
               int32_t width, int64_t* tile_offsets, int32_t* tile_splats, int64_t* tile_pairs,
               int threads) {
  // A counting sort by tile over contiguous chunks of splats, one chunk per thread. Chunk c's pairs
  // for tile t go after those of chunks < c, so every tile lists its splats in index order and the
  // result is the same for any number of chunks (and thus threads).
  const int64_t across = tiles_across(width);
  const int64_t tiles = tile_count(height, width);
  const int chunks = std::max(1, threads);
  std::vector<int64_t> cursor(static_cast<size_t>(chunks) * tiles, 0);
  auto for_each_pair = [&](int c, auto&& visit) {
    const int64_t s0 = n * c / chunks, s1 = n * (c + 1) / chunks;
    for (int64_t s = s0; s < s1; ++s) {
      const PixelBox& b = box_at(boxes, s);
      if (box_empty(b)) continue;
      const TileBox t = tile_box(b);
      int64_t pair = splat_offsets[s];
      for (int64_t ty = t.ty0; ty <= t.ty1; ++ty)
        for (int64_t tx = t.tx0; tx <= t.tx1; ++tx, ++pair) visit(s, ty * across + tx, pair);
    }
  };
#pragma omp parallel for schedule(static, 1) num_threads(chunks)
  for (int c = 0; c < chunks; ++c) {
    int64_t* count = cursor.data() + static_cast<int64_t>(c) * tiles;
    for_each_pair(c, [&](int64_t, int64_t tile, int64_t) { ++count[tile]; });
  }
  // Exclusive prefix over (tile, chunk): cursor[c][t] becomes where chunk c starts writing tile t.
  int64_t total = 0;
  for (int64_t t = 0; t < tiles; ++t) {
    tile_offsets[t] = total;
    for (int c = 0; c < chunks; ++c) {
      int64_t& slot = cursor[static_cast<int64_t>(c) * tiles + t];
      const int64_t count = slot;
      slot = total;
      total += count;
    }
  }
  tile_offsets[tiles] = total;
#pragma omp parallel for schedule(static, 1) num_threads(chunks)
  for (int c = 0; c < chunks; ++c) {
    int64_t* next = cursor.data() + static_cast<int64_t>(c) * tiles;
    for_each_pair(c, [&](int64_t s, int64_t tile, int64_t pair) {
      const int64_t at = next[tile]++;
      tile_splats[at] = static_cast<int32_t>(s);
      tile_pairs[at] = pair;
    });
  }
}

void forward(const float* conics, const int32_t* boxes, const float* colors, const int64_t* tile_offsets,
             const int32_t* tile_splats, int32_t height, int32_t width, float* image, int threads,
             bool clamp01) {
  // Per tile, first each splat's x terms go to a small scratch and its index to the list of every
  // (row, vector of the row) it covers; then each vector of each row sums its list in registers and
  // is stored once. Every pixel still adds its splats in the tile's order, from 0, with the same
  // expressions as a splat-major loop over a tile accumulator, so the image is the same bit for bit.
  constexpr int kH = kTile / kL;  // vectors per tile row
  const int64_t across = tiles_across(width);
  const int64_t tiles = tile_count(height, width);
  const int64_t plane = static_cast<int64_t>(height) * width;
#pragma omp parallel num_threads(threads)
  {
    // The exponent as fast_exp2_shifted takes it, power log2e - 1, with log2e folded into the
    // terms (see half_conic) and the -1 into quad_y.
    struct Terms {  // one splat of the tile
      Vec quad_x[kH], cross_x[kH];  // (-ia dx^2 / 2, -ib dx) log2e, per vector of the row
      float dy[kTile], quad_y[kTile];  // per row of the tile: y - my and -ic dy^2 log2e / 2 - 1
      float c0, c1, c2;
    };
    std::vector<Terms> terms;
    std::vector<int32_t> lists;   // kTile * kH lists of terms indices, `count` apart
    int32_t lengths[kTile * kH];  // their lengths
    alignas(64) float edge[kL];
    const RowLanes lanes;
    const Vec w_min = simd::set1(kWeightMin), w_max = simd::set1(kWeightMax), zero = simd::set1(0.0f);
    const Vec one = simd::set1(1.0f);
    // The clipped weight of splat u at the pixel centres of vector h of tile row r.
    auto weight = [&](const Terms& u, int h, int r) {
      const Vec shifted = simd::add(simd::fma(u.cross_x[h], simd::set1(u.dy[r]), u.quad_x[h]),
                                    simd::set1(u.quad_y[r]));
      return simd::clip(simd::exp2_shifted(shifted), w_min, w_max);
    };
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; ++t) {
      const int32_t x_base = static_cast<int32_t>((t % across) * kTile);
      const int32_t y_base = static_cast<int32_t>((t / across) * kTile);
      const int64_t j0 = tile_offsets[t], count = tile_offsets[t + 1] - j0;
      if (static_cast<int64_t>(terms.size()) < count) {
        terms.resize(static_cast<size_t>(count));
        lists.resize(static_cast<size_t>(count) * kTile * kH);
      }
      std::fill(lengths, lengths + kTile * kH, 0);
      for (int64_t i = 0; i < count; ++i) {
        if (i + kPrefetch < count) prefetch_splat(conics, boxes, colors, tile_splats[j0 + i + kPrefetch]);
        const int64_t s = tile_splats[j0 + i];
        const Conic& q = conic_at(conics, s);
        const PixelBox& b = box_at(boxes, s);
        Terms& u = terms[static_cast<size_t>(i)];
        u.c0 = colors[3 * s];
        u.c1 = colors[3 * s + 1];
        u.c2 = colors[3 * s + 2];
        const HalfConic k = half_conic(q);
        for (int r = 0; r < kTile; ++r) {
          const float dy = static_cast<float>(y_base + r) + 0.5f - q.my;
          u.dy[r] = dy;
          u.quad_y[r] = k.ic * dy * dy - 1.0f;
        }
        const int32_t r0 = std::max(b.y0, y_base) - y_base, r1 = std::min(b.y1, y_base + kTile - 1) - y_base;
        const Vec half_ia = simd::set1(k.ia), neg_ib = simd::set1(k.ib);
        for (int h = 0; h < kH; ++h) {
          const int32_t x_lo = x_base + h * kL;
          if (x_lo > b.x1 || x_lo + kL - 1 < b.x0) continue;
          const Vec dx = simd::sub(lanes.x[h], simd::set1(q.mx - static_cast<float>(x_base)));
          u.quad_x[h] = simd::mul(simd::mul(half_ia, dx), dx);  // -ia dx^2 log2e / 2
          u.cross_x[h] = simd::mul(neg_ib, dx);                 // -ib dx log2e
          for (int32_t r = r0; r <= r1; ++r) {
            int32_t& length = lengths[r * kH + h];
            lists[static_cast<size_t>((r * kH + h) * count + length++)] = static_cast<int32_t>(i);
          }
        }
      }
      const int32_t rows = std::min(kTile, height - y_base), cols = std::min(kTile, width - x_base);
      for (int32_t r = 0; r < rows; ++r) {
        float* out = image + static_cast<int64_t>(y_base + r) * width + x_base;
        for (int h = 0; h < kH; ++h) {
          const int32_t* list = lists.data() + static_cast<size_t>((r * kH + h) * count);
          const int32_t length = lengths[r * kH + h];
          Vec a0 = zero, a1 = zero, a2 = zero;
          for (int32_t k = 0; k < length; ++k) {
            const Terms& u = terms[static_cast<size_t>(list[k])];
            const Vec w = weight(u, h, r);
            a0 = simd::fma(w, simd::set1(u.c0), a0);
            a1 = simd::fma(w, simd::set1(u.c1), a1);
            a2 = simd::fma(w, simd::set1(u.c2), a2);
          }
          Vec sums[3] = {a0, a1, a2};
          if (clamp01)  // std::min(std::max(v, 0), 1) lane-wise: max/min return their second operand on NaN
            for (Vec& s : sums) s = simd::min(one, simd::max(zero, s));
          for (int c = 0; c < 3; ++c) {
            if (cols == kTile) {
              simd::storeu(out + c * plane + h * kL, sums[c]);
            } else if (h * kL < cols) {
              simd::store(edge, sums[c]);
              std::copy(edge, edge + std::min(kL, cols - h * kL), out + c * plane + h * kL);
            }
          }
        }
      }
    }
  }
}

namespace {

template <bool kColors, bool kGeometry>
void backward_impl(const float* conics, const int32_t* boxes, const float* colors, const int64_t* tile_offsets,
                   const int32_t* tile_splats, const int64_t* tile_pairs, const float* grad_image,
                   int32_t height, int32_t width, float* pair_partials, int threads) {
  const int64_t across = tiles_across(width);
  const int64_t tiles = tile_count(height, width);
  const int64_t plane = static_cast<int64_t>(height) * width;
#pragma omp parallel num_threads(threads)
  {
    alignas(64) float grad[3][kPix];
    const RowLanes lanes;
    const Vec w_min = simd::set1(kWeightMin), w_max = simd::set1(kWeightMax), zero = simd::set1(0.0f);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; ++t) {
      if (tile_offsets[t] == tile_offsets[t + 1]) continue;
      const int32_t x_base = static_cast<int32_t>((t % across) * kTile);
      const int32_t y_base = static_cast<int32_t>((t / across) * kTile);
      // Out-of-frame pixels of an edge tile get zero gradient, so they contribute nothing.
      std::fill(&grad[0][0], &grad[0][0] + 3 * kPix, 0.0f);
      const int32_t rows = std::min(kTile, height - y_base), cols = std::min(kTile, width - x_base);
      for (int k = 0; k < 3; ++k)
        for (int32_t r = 0; r < rows; ++r) {
          const float* src = grad_image + k * plane + static_cast<int64_t>(y_base + r) * width + x_base;
          std::copy(src, src + cols, &grad[k][r * kTile]);
        }
      for (int64_t j = tile_offsets[t]; j < tile_offsets[t + 1]; ++j) {
        if (j + kPrefetch < tile_offsets[t + 1]) prefetch_splat(conics, boxes, colors, tile_splats[j + kPrefetch]);
        const int64_t s = tile_splats[j];
        const Conic& q = conic_at(conics, s);
        const PixelBox& b = box_at(boxes, s);
        const int32_t y0 = std::max(b.y0, y_base), y1 = std::min(b.y1, y_base + kTile - 1);
        const Vec c0 = simd::set1(colors[3 * s]), c1 = simd::set1(colors[3 * s + 1]),
                  c2 = simd::set1(colors[3 * s + 2]);
        const HalfConic k = half_conic(q);
        const Vec half_ia = simd::set1(k.ia), neg_ib = simd::set1(k.ib);
        Vec sc0 = zero, sc1 = zero, sc2 = zero;
        Vec sx = zero, sy = zero, sxx = zero, sxy = zero, syy = zero;
        for (int h = 0; h < kTile / kL; ++h) {
          const int32_t x_lo = x_base + h * kL;
          if (x_lo > b.x1 || x_lo + kL - 1 < b.x0) continue;
          const Vec dx = simd::sub(lanes.x[h], simd::set1(q.mx - static_cast<float>(x_base)));
          const Vec quad_x = simd::mul(simd::mul(half_ia, dx), dx);
          const Vec cross_x = simd::mul(neg_ib, dx);
          for (int32_t y = y0; y <= y1; ++y) {
            const float dy_s = static_cast<float>(y) + 0.5f - q.my;
            const Vec dy = simd::set1(dy_s);
            // The same exponent and exp as the forward's, so e is its e bit for bit.
            const Vec shifted = simd::add(simd::fma(cross_x, dy, quad_x), simd::set1(k.ic * dy_s * dy_s - 1.0f));
            const Vec e = simd::exp2_shifted(shifted);
            const int at = (y - y_base) * kTile + h * kL;
            const Vec g0 = simd::load(&grad[0][at]), g1 = simd::load(&grad[1][at]),
                      g2 = simd::load(&grad[2][at]);
            if constexpr (kColors) {
              const Vec w = simd::keep_ge(simd::min(e, w_max), e, w_min);
              sc0 = simd::fma(g0, w, sc0);
              sc1 = simd::fma(g1, w, sc1);
              sc2 = simd::fma(g2, w, sc2);
            }
            if constexpr (kGeometry) {
              // dLoss/dpower = (g . c) dw/dpower = (g . c) e between the cut and the cap.
              const Vec gw = simd::fma(g2, c2, simd::fma(g1, c1, simd::mul(g0, c0)));
              const Vec p = simd::keep_in(simd::mul(gw, e), e, w_min, w_max);
              const Vec px = simd::mul(p, dx);
              sx = simd::add(sx, px);
              sxx = simd::fma(px, dx, sxx);
              sy = simd::fma(p, dy, sy);
              sxy = simd::fma(px, dy, sxy);
              syy = simd::fma(simd::mul(p, dy), dy, syy);
            }
          }
        }
        float* out = pair_partials + tile_pairs[j] * kPartials;
        if constexpr (kColors) {
          out[0] = simd::hsum(sc0);
          out[1] = simd::hsum(sc1);
          out[2] = simd::hsum(sc2);
        }
        if constexpr (kGeometry) {
          out[3] = simd::hsum(sx);
          out[4] = simd::hsum(sy);
          out[5] = simd::hsum(sxx);
          out[6] = simd::hsum(sxy);
          out[7] = simd::hsum(syy);
        }
      }
    }
  }
}

}  // namespace

void backward(const float* conics, const int32_t* boxes, const float* colors, const int64_t* tile_offsets,
              const int32_t* tile_splats, const int64_t* tile_pairs, const float* grad_image,
              int32_t height, int32_t width, bool need_colors, bool need_geometry, float* pair_partials,
              int threads) {
  if (need_colors && need_geometry)
    backward_impl<true, true>(conics, boxes, colors, tile_offsets, tile_splats, tile_pairs, grad_image, height,
                              width, pair_partials, threads);
  else if (need_colors)
    backward_impl<true, false>(conics, boxes, colors, tile_offsets, tile_splats, tile_pairs, grad_image,
                               height, width, pair_partials, threads);
  else if (need_geometry)
    backward_impl<false, true>(conics, boxes, colors, tile_offsets, tile_splats, tile_pairs, grad_image,
                               height, width, pair_partials, threads);
}

void reduce_gradients(const float* chol, const float* conics, const int64_t* splat_offsets,
                      const float* pair_partials, int64_t n, bool need_colors, bool need_geometry,
                      float* grad_means, float* grad_chol, float* grad_colors, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t s = 0; s < n; ++s) {
    double sum[kPartials] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t pair = splat_offsets[s]; pair < splat_offsets[s + 1]; ++pair)
      for (int k = 0; k < kPartials; ++k) sum[k] += pair_partials[pair * kPartials + k];
    if (need_colors)
      for (int k = 0; k < 3; ++k) grad_colors[3 * s + k] = static_cast<float>(sum[k]);
    if (need_geometry) {
      if (splat_offsets[s] == splat_offsets[s + 1]) {  // culled or degenerate: no pixel depends on it
        grad_means[2 * s] = grad_means[2 * s + 1] = 0.0f;
        grad_chol[3 * s] = grad_chol[3 * s + 1] = grad_chol[3 * s + 2] = 0.0f;
        continue;
      }
      geometry_gradients(chol[3 * s], chol[3 * s + 1], chol[3 * s + 2], conic_at(conics, s),
                         static_cast<float>(sum[3]), static_cast<float>(sum[4]), static_cast<float>(sum[5]),
                         static_cast<float>(sum[6]), static_cast<float>(sum[7]), grad_means + 2 * s,
                         grad_chol + 3 * s);
    }
  }
}

void fast_exp_array(const float* x, float* y, int64_t n) {
  alignas(64) float buf[kL];
  for (int64_t i = 0; i < n; i += kL) {
    const int64_t m = std::min<int64_t>(kL, n - i);
    std::fill(buf, buf + kL, 0.0f);
    std::copy(x + i, x + i + m, buf);
    simd::store(buf, simd::exp(simd::load(buf)));
    std::copy(buf, buf + m, y + i);
  }
}

}  // namespace gsvc::cpu
