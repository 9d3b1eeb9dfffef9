// CPU splat rasteriser on raw pointers (no torch types): tile binning, forward, backward.
//
// Layouts (all row-major, float32 unless stated):
//   means [n,2] (x, y) pixels; chol [n,3] (l1, l2, l3); colors [n,3];
//   conics [n,5] (mx, my, ia, ib, ic); boxes [n,4] int32 (x0, x1, y0, y1) inclusive pixel bounds;
//   image / grad_image [3,height,width].
// A "pair" is one (tile, splat) overlap. Pairs are numbered splat-major (splat 0's tiles first,
// each splat's tiles row by row), which is the order gradients are reduced in; tile_splats lists
// them tile-major (per tile, splats in index order), which is the order tiles are rendered in.
#pragma once

#include <stdint.h>

namespace gsvc::cpu {

// Name of the SIMD path compiled in: "avx512", "avx2" or "scalar".
const char* simd_name();

int64_t tile_count(int32_t height, int32_t width);

// Per splat: conic, pixel box (empty for culled or degenerate splats) and its number of tiles.
// Writes splat_offsets[0..n] as the exclusive prefix sum of those counts; splat_offsets[n] is the
// number of pairs.
void prepare_splats(const float* means, const float* chol, int64_t n, int32_t height, int32_t width,
                    float* conics, int32_t* boxes, int64_t* splat_offsets, int threads);

// Tile-major pair lists: tile t owns entries tile_offsets[t] .. tile_offsets[t+1]-1 of tile_splats
// (splat index) and tile_pairs (that pair's splat-major number). tile_offsets has tile_count+1 entries.
void bin_tiles(const int32_t* boxes, const int64_t* splat_offsets, int64_t n, int32_t height,
               int32_t width, int64_t* tile_offsets, int32_t* tile_splats, int64_t* tile_pairs,
               int threads);

// image = sum of splats (overwrites image); with clamp01, each value clamped to [0, 1] as it is
// stored (std::min(std::max(v, 0), 1), as a pass over the image afterwards would give).
void forward(const float* conics, const int32_t* boxes, const float* colors, const int64_t* tile_offsets,
             const int32_t* tile_splats, int32_t height, int32_t width, float* image, int threads,
             bool clamp01 = false);

// Per pair, the kPartials sums of gsvc_splat.h, written to pair_partials[pair * kPartials ...].
// Colour sums are skipped (left untouched) when !need_colors, geometry sums when !need_geometry.
void backward(const float* conics, const int32_t* boxes, const float* colors, const int64_t* tile_offsets,
              const int32_t* tile_splats, const int64_t* tile_pairs, const float* grad_image,
              int32_t height, int32_t width, bool need_colors, bool need_geometry, float* pair_partials,
              int threads);

// Sum each splat's pair partials in pair order (fixed, whatever the thread count) and chain them to
// grad_means [n,2], grad_chol [n,3], grad_colors [n,3]. Outputs whose need flag is false are skipped.
void reduce_gradients(const float* chol, const float* conics, const int64_t* splat_offsets,
                      const float* pair_partials, int64_t n, bool need_colors, bool need_geometry,
                      float* grad_means, float* grad_chol, float* grad_colors, int threads);

// y = gsvc::fast_exp(x) through the SIMD path (for tests of its accuracy).
void fast_exp_array(const float* x, float* y, int64_t n);

}  // namespace gsvc::cpu
