// CUDA splat rasteriser on raw device pointers (no torch types), mirroring ext/cpu/render_cpu.h.
//
// Same layouts and the same pair numbering as the CPU kernels: pairs are numbered splat-major
// (the gradient reduction order); tile lists are tile-major with splats in index order. Every
// reduction runs in a fixed order, so results do not depend on scheduling.
#pragma once

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

namespace gsvc::cuda {

int64_t tile_count(int32_t height, int32_t width);

// Per splat conic [n,5], box [n,4] and tile count; splat_offsets [n+1] becomes the exclusive prefix
// sum of the counts (splat_offsets[n] = pairs). `workspace` must hold scan_workspace_bytes(n) bytes.
size_t scan_workspace_bytes(int64_t n);
void prepare_splats(const float* means, const float* chol, int64_t n, int32_t height, int32_t width,
                    float* conics, int32_t* boxes, int64_t* splat_offsets, void* workspace,
                    cudaStream_t stream);

// Tile-major pair lists from the splat-major numbering. Scratch arrays (all of length pairs):
// keys_in, keys_out (int32), values_in (int64); `workspace` must hold sort_workspace_bytes(pairs).
size_t sort_workspace_bytes(int64_t pairs);
void bin_tiles(const int32_t* boxes, const int64_t* splat_offsets, int64_t n, int64_t pairs, int32_t height,
               int32_t width, int32_t* keys_in, int32_t* keys_out, int64_t* values_in, int32_t* pair_splat,
               void* workspace, int64_t* tile_offsets, int32_t* tile_splats, int64_t* tile_pairs,
               cudaStream_t stream);

void forward(const float* conics, const int32_t* boxes, const float* colors, const int64_t* tile_offsets,
             const int32_t* tile_splats, int32_t height, int32_t width, float* image, cudaStream_t stream);

void backward(const float* conics, const int32_t* boxes, const float* colors, const int64_t* tile_offsets,
              const int32_t* tile_splats, const int64_t* tile_pairs, const float* grad_image,
              int32_t height, int32_t width, bool need_colors, bool need_geometry, float* pair_partials,
              cudaStream_t stream);

void reduce_gradients(const float* chol, const float* conics, const int64_t* splat_offsets,
                      const float* pair_partials, int64_t n, bool need_colors, bool need_geometry,
                      float* grad_means, float* grad_chol, float* grad_colors, cudaStream_t stream);

}  // namespace gsvc::cuda
