// Argument checks shared by the torch bindings of every backend (ext/cpu/binding.cpp,
// ext/cuda/binding_cuda.cpp), so that both refuse the same bad inputs with the same messages before
// a kernel reads a raw pointer. Host code only: it uses torch types, and only the bindings (compiled
// by the host C++ compiler, also in a CUDA build) include it; kernels include gsvc_splat.h alone.
#pragma once

#include <torch/extension.h>

#include "gsvc_splat.h"

namespace gsvc::binding {

// Tiles of kTile x kTile pixels covering a height x width image.
inline int64_t tile_count(int64_t height, int64_t width) {
  return ((height + kTile - 1) / kTile) * ((width + kTile - 1) / kTile);
}

// A float32 contiguous [N, cols] tensor on `device` (kCPU or kCUDA).
inline void check_input(const torch::Tensor& t, const char* name, int64_t cols, c10::DeviceType device) {
  TORCH_CHECK(t.device().type() == device, name, " must be a ", c10::DeviceTypeName(device), " tensor, got ",
              t.device());
  TORCH_CHECK(t.scalar_type() == torch::kFloat32, name, " must be float32");
  TORCH_CHECK(t.dim() == 2 && t.size(1) == cols, name, " must have shape [N,", cols, "]");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// bin_splats(means, chol, height, width): shapes, one device, image size and splat count within the
// kernels' int32 indices.
inline void check_geometry(const torch::Tensor& means, const torch::Tensor& chol, int64_t height, int64_t width,
                           c10::DeviceType device) {
  check_input(means, "means", 2, device);
  check_input(chol, "chol", 3, device);
  TORCH_CHECK(means.size(0) == chol.size(0), "splat counts differ");
  TORCH_CHECK(chol.device() == means.device(), "means and chol must be on the same device");
  TORCH_CHECK(height > 0 && width > 0 && height < (1 << 30) && width < (1 << 30), "bad image size");
  TORCH_CHECK(means.size(0) < (int64_t(1) << 31), "too many splats");
}

// forward(means, chol, colors, height, width): the geometry's checks, and colours for every splat.
inline void check_forward(const torch::Tensor& means, const torch::Tensor& chol, const torch::Tensor& colors,
                          int64_t height, int64_t width, c10::DeviceType device) {
  check_geometry(means, chol, height, width, device);
  check_input(colors, "colors", 3, device);
  TORCH_CHECK(means.size(0) == colors.size(0), "splat counts differ");
  TORCH_CHECK(colors.device() == means.device(), "means, chol and colors must be on the same device");
}

// conics [N,5] float32 and boxes [N,4] int32, contiguous and on `like`'s device: a binning's
// per-splat tables, as `maker` (a possessive: "forward's") made them.
inline void check_splat_tables(const torch::Tensor& conics, const torch::Tensor& boxes, int64_t n,
                               const torch::Tensor& like, const char* maker) {
  const auto on_device = [&](const torch::Tensor& t) { return t.device() == like.device() && t.is_contiguous(); };
  TORCH_CHECK(on_device(conics) && conics.scalar_type() == torch::kFloat32 && conics.dim() == 2 &&
                  conics.size(0) == n && conics.size(1) == 5,
              "conics must be ", maker, " float32 [N,5]");
  TORCH_CHECK(on_device(boxes) && boxes.scalar_type() == torch::kInt32 && boxes.dim() == 2 && boxes.size(0) == n &&
                  boxes.size(1) == 4,
              "boxes must be ", maker, " int32 [N,4]");
}

// forward_binned(colors, conics, boxes, tile_offsets, tile_splats, height, width): the binning
// bin_splats made for an image of this size, colours for each of its splats.
inline void check_binned(const torch::Tensor& colors, const torch::Tensor& conics, const torch::Tensor& boxes,
                         const torch::Tensor& tile_offsets, const torch::Tensor& tile_splats, int64_t height,
                         int64_t width, c10::DeviceType device) {
  check_input(colors, "colors", 3, device);
  const int64_t n = colors.size(0);
  const auto on_device = [&](const torch::Tensor& t) { return t.device() == colors.device() && t.is_contiguous(); };
  TORCH_CHECK(height > 0 && width > 0 && height < (1 << 30) && width < (1 << 30), "bad image size");
  check_splat_tables(conics, boxes, n, colors, "bin_splats'");
  TORCH_CHECK(on_device(tile_offsets) && tile_offsets.scalar_type() == torch::kInt64 && tile_offsets.dim() == 1 &&
                  tile_offsets.size(0) == tile_count(height, width) + 1,
              "tile_offsets must be bin_splats' int64 [tiles+1] for an image of this size");
  TORCH_CHECK(on_device(tile_splats) && tile_splats.scalar_type() == torch::kInt32 && tile_splats.dim() == 1,
              "tile_splats must be bin_splats' int32 [P]");
}

// backward(grad_image, chol, colors, conics, boxes, splat_offsets, tile_offsets, tile_splats,
// tile_pairs): the gradient image and the binning must be the ones forward made for these splats.
inline void check_backward(const torch::Tensor& grad_image, const torch::Tensor& chol,
                           const torch::Tensor& colors, const torch::Tensor& conics, const torch::Tensor& boxes,
                           const torch::Tensor& splat_offsets, const torch::Tensor& tile_offsets,
                           const torch::Tensor& tile_splats, const torch::Tensor& tile_pairs,
                           c10::DeviceType device) {
  TORCH_CHECK(grad_image.scalar_type() == torch::kFloat32 && grad_image.dim() == 3 && grad_image.size(0) == 3,
              "grad_image must be float32 [3,H,W]");
  TORCH_CHECK(grad_image.device() == chol.device(), "grad_image must be on the splats' device");
  check_input(chol, "chol", 3, device);
  check_input(colors, "colors", 3, device);
  const int64_t n = chol.size(0);
  TORCH_CHECK(colors.size(0) == n, "splat counts differ");
  const auto on_device = [&](const torch::Tensor& t) { return t.device() == chol.device() && t.is_contiguous(); };
  check_splat_tables(conics, boxes, n, chol, "forward's");
  TORCH_CHECK(on_device(splat_offsets) && splat_offsets.scalar_type() == torch::kInt64 &&
                  splat_offsets.dim() == 1 && splat_offsets.size(0) == n + 1,
              "splat_offsets must be forward's int64 [N+1]");
  TORCH_CHECK(on_device(tile_offsets) && tile_offsets.scalar_type() == torch::kInt64 && tile_offsets.dim() == 1 &&
                  tile_offsets.size(0) == tile_count(grad_image.size(1), grad_image.size(2)) + 1,
              "tile_offsets must be forward's int64 [tiles+1] for an image of grad_image's size");
  TORCH_CHECK(on_device(tile_splats) && on_device(tile_pairs) && tile_splats.scalar_type() == torch::kInt32 &&
                  tile_pairs.scalar_type() == torch::kInt64 && tile_splats.dim() == 1 &&
                  tile_pairs.dim() == 1 && tile_splats.size(0) == tile_pairs.size(0),
              "tile_splats and tile_pairs must be forward's int32 [P] and int64 [P]");
}

}  // namespace gsvc::binding
