// CUDA splat rasteriser: one 16x16 thread block per tile, one thread per pixel, the maths of
// ext/include/gsvc_splat.h. Binning uses cub (scan, stable radix sort by tile).
#include "render_cuda.h"

#include <cub/cub.cuh>

#include "gsvc_splat.h"

namespace gsvc::cuda {
namespace {

constexpr int kThreads = kTile * kTile;
constexpr int kBlock1d = 256;

__host__ __device__ int64_t tiles_across(int32_t width) { return (static_cast<int64_t>(width) + kTile - 1) / kTile; }
__host__ __device__ int64_t tiles_down(int32_t height) { return (static_cast<int64_t>(height) + kTile - 1) / kTile; }

int blocks_for(int64_t count) { return static_cast<int>((count + kBlock1d - 1) / kBlock1d); }

int end_bit_for(int64_t tiles) {
  int bits = 1;
  while ((int64_t(1) << bits) < tiles + 1) ++bits;
  return bits;
}

__global__ void prepare_kernel(const float* means, const float* chol, int64_t n, int32_t height, int32_t width,
                               float* conics, int32_t* boxes, int64_t* counts) {
  int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (s > n) return;
  if (s == n) {  // the scan turns this into the total
    counts[n] = 0;
    return;
  }
  float mx = means[2 * s], my = means[2 * s + 1];
  float l1 = chol[3 * s], l2 = chol[3 * s + 1], l3 = chol[3 * s + 2];
  Conic q{0, 0, 0, 0, 0};
  PixelBox b{0, -1, 0, -1};
  if (make_conic(mx, my, l1, l2, l3, &q)) b = make_box(mx, my, l1, l2, l3, height, width);
  reinterpret_cast<Conic*>(conics)[s] = q;
  reinterpret_cast<PixelBox*>(boxes)[s] = b;
  counts[s] = box_empty(b) ? 0
                           : static_cast<int64_t>(b.x1 / kTile - b.x0 / kTile + 1) * (b.y1 / kTile - b.y0 / kTile + 1);
}

__global__ void fill_pairs_kernel(const int32_t* boxes, const int64_t* splat_offsets, int64_t n, int32_t width,
                                  int32_t* keys, int64_t* values, int32_t* pair_splat) {
  int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (s >= n) return;
  const PixelBox b = reinterpret_cast<const PixelBox*>(boxes)[s];
  if (box_empty(b)) return;
  const int64_t across = tiles_across(width);
  int64_t pair = splat_offsets[s];
  for (int32_t ty = b.y0 / kTile; ty <= b.y1 / kTile; ++ty)
    for (int32_t tx = b.x0 / kTile; tx <= b.x1 / kTile; ++tx, ++pair) {
      keys[pair] = static_cast<int32_t>(ty * across + tx);
      values[pair] = pair;
      pair_splat[pair] = static_cast<int32_t>(s);
    }
}

__global__ void tile_offsets_kernel(const int32_t* sorted_keys, int64_t pairs, int64_t tiles, int64_t* tile_offsets) {
  int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t > tiles) return;
  int64_t lo = 0, hi = pairs;  // first index whose key >= t
  while (lo < hi) {
    int64_t mid = (lo + hi) / 2;
    if (sorted_keys[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  tile_offsets[t] = lo;
}

__global__ void gather_splats_kernel(const int64_t* tile_pairs, const int32_t* pair_splat, int64_t pairs,
                                     int32_t* tile_splats) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < pairs) tile_splats[i] = pair_splat[tile_pairs[i]];
}

// Shared-memory record of one splat for a batch.
struct SplatRecord {
  Conic q;
  float c0, c1, c2;
};

__device__ void load_batch(SplatRecord* batch, const float* conics, const float* colors, const int32_t* tile_splats,
                           int64_t base, int64_t end, int tid) {
  int64_t j = base + tid;
  if (j < end) {
    int64_t s = tile_splats[j];
    batch[tid].q = reinterpret_cast<const Conic*>(conics)[s];
    batch[tid].c0 = colors[3 * s];
    batch[tid].c1 = colors[3 * s + 1];
    batch[tid].c2 = colors[3 * s + 2];
  }
}

__global__ void forward_kernel(const float* conics, const float* colors, const int64_t* tile_offsets,
                               const int32_t* tile_splats, int32_t height, int32_t width, float* image) {
  __shared__ SplatRecord batch[kThreads];
  const int64_t tile = blockIdx.x, across = tiles_across(width);
  const int32_t px = static_cast<int32_t>((tile % across) * kTile) + threadIdx.x;
  const int32_t py = static_cast<int32_t>((tile / across) * kTile) + threadIdx.y;
  const int tid = threadIdx.y * kTile + threadIdx.x;
  const float fx = px + 0.5f, fy = py + 0.5f;
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f;
  const int64_t begin = tile_offsets[tile], end = tile_offsets[tile + 1];
  for (int64_t base = begin; base < end; base += kThreads) {
    __syncthreads();
    load_batch(batch, conics, colors, tile_splats, base, end, tid);
    __syncthreads();
    const int count = static_cast<int>(min(static_cast<int64_t>(kThreads), end - base));
    for (int k = 0; k < count; ++k) {
      const SplatRecord& r = batch[k];
      const float w = clip_weight(fast_exp(splat_power(r.q, fx - r.q.mx, fy - r.q.my)));
      a0 = fmaf(w, r.c0, a0);
      a1 = fmaf(w, r.c1, a1);
      a2 = fmaf(w, r.c2, a2);
    }
  }
  if (px < width && py < height) {
    const int64_t plane = static_cast<int64_t>(height) * width, at = static_cast<int64_t>(py) * width + px;
    image[at] = a0;
    image[plane + at] = a1;
    image[2 * plane + at] = a2;
  }
}

// Sum of v over the block's 256 threads in a fixed order; the result is valid in thread 0.
__device__ float block_sum(float v, float* scratch, int tid) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  if ((tid & 31) == 0) scratch[tid >> 5] = v;
  __syncthreads();
  float total = 0.0f;
  if (tid == 0)
    for (int k = 0; k < kThreads / 32; ++k) total += scratch[k];
  __syncthreads();
  return total;
}

__global__ void backward_kernel(const float* conics, const float* colors, const int64_t* tile_offsets,
                                const int32_t* tile_splats, const int64_t* tile_pairs, const float* grad_image,
                                int32_t height, int32_t width, bool need_colors, bool need_geometry,
                                float* pair_partials) {
  __shared__ SplatRecord batch[kThreads];
  __shared__ float scratch[kThreads / 32];
  const int64_t tile = blockIdx.x, across = tiles_across(width);
  const int32_t px = static_cast<int32_t>((tile % across) * kTile) + threadIdx.x;
  const int32_t py = static_cast<int32_t>((tile / across) * kTile) + threadIdx.y;
  const int tid = threadIdx.y * kTile + threadIdx.x;
  const float fx = px + 0.5f, fy = py + 0.5f;
  float g0 = 0.0f, g1 = 0.0f, g2 = 0.0f;  // out-of-frame pixels contribute nothing
  if (px < width && py < height) {
    const int64_t plane = static_cast<int64_t>(height) * width, at = static_cast<int64_t>(py) * width + px;
    g0 = grad_image[at];
    g1 = grad_image[plane + at];
    g2 = grad_image[2 * plane + at];
  }
  const int64_t begin = tile_offsets[tile], end = tile_offsets[tile + 1];
  for (int64_t base = begin; base < end; base += kThreads) {
    __syncthreads();
    load_batch(batch, conics, colors, tile_splats, base, end, tid);
    __syncthreads();
    const int count = static_cast<int>(min(static_cast<int64_t>(kThreads), end - base));
    for (int k = 0; k < count; ++k) {
      const SplatRecord& r = batch[k];
      const float dx = fx - r.q.mx, dy = fy - r.q.my;
      const float e = fast_exp(splat_power(r.q, dx, dy));
      const float w = clip_weight(e);
      const float p = (g0 * r.c0 + g1 * r.c1 + g2 * r.c2) * e * clip_weight_slope(e);
      float v[kPartials] = {g0 * w, g1 * w, g2 * w, p * dx, p * dy, p * dx * dx, p * dx * dy, p * dy * dy};
      float* out = pair_partials + tile_pairs[base + k] * kPartials;
      for (int m = 0; m < kPartials; ++m) {
        if ((m < 3 && !need_colors) || (m >= 3 && !need_geometry)) continue;
        const float total = block_sum(v[m], scratch, tid);
        if (tid == 0) out[m] = total;
      }
    }
  }
}

__global__ void reduce_kernel(const float* chol, const float* conics, const int64_t* splat_offsets,
                              const float* pair_partials, int64_t n, bool need_colors, bool need_geometry,
                              float* grad_means, float* grad_chol, float* grad_colors) {
  int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (s >= n) return;
  float sum[kPartials] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t pair = splat_offsets[s]; pair < splat_offsets[s + 1]; ++pair)
    for (int k = 0; k < kPartials; ++k) sum[k] += pair_partials[pair * kPartials + k];
  if (need_colors)
    for (int k = 0; k < 3; ++k) grad_colors[3 * s + k] = sum[k];
  if (!need_geometry) return;
  if (splat_offsets[s] == splat_offsets[s + 1]) {
    grad_means[2 * s] = grad_means[2 * s + 1] = 0.0f;
    grad_chol[3 * s] = grad_chol[3 * s + 1] = grad_chol[3 * s + 2] = 0.0f;
    return;
  }
  geometry_gradients(chol[3 * s], chol[3 * s + 1], chol[3 * s + 2], reinterpret_cast<const Conic*>(conics)[s],
                     sum[3], sum[4], sum[5], sum[6], sum[7], grad_means + 2 * s, grad_chol + 3 * s);
}

}  // namespace

int64_t tile_count(int32_t height, int32_t width) { return tiles_across(width) * tiles_down(height); }

size_t scan_workspace_bytes(int64_t n) {
  size_t bytes = 0;
  cub::DeviceScan::ExclusiveSum(nullptr, bytes, static_cast<int64_t*>(nullptr), static_cast<int64_t*>(nullptr),
                                static_cast<int>(n + 1));
  return bytes;
}

void prepare_splats(const float* means, const float* chol, int64_t n, int32_t height, int32_t width,
                    float* conics, int32_t* boxes, int64_t* splat_offsets, void* workspace,
                    cudaStream_t stream) {
  prepare_kernel<<<blocks_for(n + 1), kBlock1d, 0, stream>>>(means, chol, n, height, width, conics, boxes,
                                                             splat_offsets);
  size_t bytes = scan_workspace_bytes(n);
  cub::DeviceScan::ExclusiveSum(workspace, bytes, splat_offsets, splat_offsets, static_cast<int>(n + 1), stream);
}

size_t sort_workspace_bytes(int64_t pairs) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
                                  static_cast<int64_t*>(nullptr), static_cast<int64_t*>(nullptr),
                                  static_cast<int>(pairs));
  return bytes;
}

void bin_tiles(const int32_t* boxes, const int64_t* splat_offsets, int64_t n, int64_t pairs, int32_t height,
               int32_t width, int32_t* keys_in, int32_t* keys_out, int64_t* values_in, int32_t* pair_splat,
               void* workspace, int64_t* tile_offsets, int32_t* tile_splats, int64_t* tile_pairs,
               cudaStream_t stream) {
  const int64_t tiles = tile_count(height, width);
  if (pairs > 0) {
    fill_pairs_kernel<<<blocks_for(n), kBlock1d, 0, stream>>>(boxes, splat_offsets, n, width, keys_in, values_in,
                                                              pair_splat);
    // Radix sort is stable and values arrive splat-major, so each tile keeps its splats in index order.
    size_t bytes = sort_workspace_bytes(pairs);
    cub::DeviceRadixSort::SortPairs(workspace, bytes, keys_in, keys_out, values_in, tile_pairs,
                                    static_cast<int>(pairs), 0, end_bit_for(tiles), stream);
    gather_splats_kernel<<<blocks_for(pairs), kBlock1d, 0, stream>>>(tile_pairs, pair_splat, pairs, tile_splats);
  }
  tile_offsets_kernel<<<blocks_for(tiles + 1), kBlock1d, 0, stream>>>(keys_out, pairs, tiles, tile_offsets);
}

void forward(const float* conics, const int32_t* /*boxes*/, const float* colors, const int64_t* tile_offsets,
             const int32_t* tile_splats, int32_t height, int32_t width, float* image, cudaStream_t stream) {
  const int64_t tiles = tile_count(height, width);
  forward_kernel<<<static_cast<unsigned>(tiles), dim3(kTile, kTile), 0, stream>>>(conics, colors, tile_offsets,
                                                                                  tile_splats, height, width, image);
}

void backward(const float* conics, const int32_t* /*boxes*/, const float* colors, const int64_t* tile_offsets,
              const int32_t* tile_splats, const int64_t* tile_pairs, const float* grad_image,
              int32_t height, int32_t width, bool need_colors, bool need_geometry, float* pair_partials,
              cudaStream_t stream) {
  const int64_t tiles = tile_count(height, width);
  backward_kernel<<<static_cast<unsigned>(tiles), dim3(kTile, kTile), 0, stream>>>(
      conics, colors, tile_offsets, tile_splats, tile_pairs, grad_image, height, width, need_colors, need_geometry,
      pair_partials);
}

void reduce_gradients(const float* chol, const float* conics, const int64_t* splat_offsets,
                      const float* pair_partials, int64_t n, bool need_colors, bool need_geometry,
                      float* grad_means, float* grad_chol, float* grad_colors, cudaStream_t stream) {
  reduce_kernel<<<blocks_for(n), kBlock1d, 0, stream>>>(chol, conics, splat_offsets, pair_partials, n, need_colors,
                                                        need_geometry, grad_means, grad_chol, grad_colors);
}

}  // namespace gsvc::cuda
