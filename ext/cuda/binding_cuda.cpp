// Thin torch binding for the CUDA kernels (built only when torch has CUDA): checks (shared with the
// CPU binding, gsvc_binding.h), device guard, allocation, stream; no maths here. Mirrors
// ext/cpu/binding.cpp, returning the same tensors.
#include <torch/extension.h>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "gsvc_binding.h"
#include "gsvc_splat.h"
#include "render_cuda.h"

namespace {

std::vector<torch::Tensor> forward(const torch::Tensor& means, const torch::Tensor& chol,
                                   const torch::Tensor& colors, int64_t height, int64_t width) {
  gsvc::binding::check_forward(means, chol, colors, height, width, c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(means.device());  // kernels and allocations on the inputs' GPU
  const int64_t n = means.size(0);
  const auto h = static_cast<int32_t>(height), w = static_cast<int32_t>(width);
  auto stream = c10::cuda::getCurrentCUDAStream(means.device().index()).stream();
  auto opt = means.options();
  auto i32 = opt.dtype(torch::kInt32), i64 = opt.dtype(torch::kInt64), u8 = opt.dtype(torch::kUInt8);
  auto conics = torch::empty({n, 5}, opt);
  auto boxes = torch::empty({n, 4}, i32);
  auto splat_offsets = torch::empty({n + 1}, i64);
  auto scan_space = torch::empty({static_cast<int64_t>(gsvc::cuda::scan_workspace_bytes(n))}, u8);
  gsvc::cuda::prepare_splats(means.data_ptr<float>(), chol.data_ptr<float>(), n, h, w, conics.data_ptr<float>(),
                             boxes.data_ptr<int32_t>(), splat_offsets.data_ptr<int64_t>(), scan_space.data_ptr(),
                             stream);
  const int64_t pairs = splat_offsets[n].item<int64_t>();
  const int64_t tiles = gsvc::cuda::tile_count(h, w);
  auto keys_in = torch::empty({pairs}, i32), keys_out = torch::empty({pairs}, i32);
  auto values_in = torch::empty({pairs}, i64);
  auto pair_splat = torch::empty({pairs}, i32);
  auto sort_space = torch::empty({static_cast<int64_t>(gsvc::cuda::sort_workspace_bytes(pairs))}, u8);
  auto tile_offsets = torch::empty({tiles + 1}, i64);
  auto tile_splats = torch::empty({pairs}, i32);
  auto tile_pairs = torch::empty({pairs}, i64);
  gsvc::cuda::bin_tiles(boxes.data_ptr<int32_t>(), splat_offsets.data_ptr<int64_t>(), n, pairs, h, w,
                        keys_in.data_ptr<int32_t>(), keys_out.data_ptr<int32_t>(), values_in.data_ptr<int64_t>(),
                        pair_splat.data_ptr<int32_t>(), sort_space.data_ptr(), tile_offsets.data_ptr<int64_t>(),
                        tile_splats.data_ptr<int32_t>(), tile_pairs.data_ptr<int64_t>(), stream);
  auto image = torch::empty({3, height, width}, opt);
  gsvc::cuda::forward(conics.data_ptr<float>(), boxes.data_ptr<int32_t>(), colors.data_ptr<float>(),
                      tile_offsets.data_ptr<int64_t>(), tile_splats.data_ptr<int32_t>(), h, w, image.data_ptr<float>(),
                      stream);
  return {image, conics, boxes, splat_offsets, tile_offsets, tile_splats, tile_pairs};
}

std::vector<torch::Tensor> backward(const torch::Tensor& grad_image, const torch::Tensor& chol,
                                    const torch::Tensor& colors, const torch::Tensor& conics,
                                    const torch::Tensor& boxes, const torch::Tensor& splat_offsets,
                                    const torch::Tensor& tile_offsets, const torch::Tensor& tile_splats,
                                    const torch::Tensor& tile_pairs, bool need_colors, bool need_geometry) {
  gsvc::binding::check_backward(grad_image, chol, colors, conics, boxes, splat_offsets, tile_offsets, tile_splats,
                                tile_pairs, c10::DeviceType::CUDA);
  const c10::cuda::CUDAGuard device_guard(chol.device());
  auto g = grad_image.contiguous();
  const int64_t n = chol.size(0);
  const auto h = static_cast<int32_t>(g.size(1)), w = static_cast<int32_t>(g.size(2));
  auto stream = c10::cuda::getCurrentCUDAStream(g.device().index()).stream();
  auto opt = chol.options();
  auto partials = torch::zeros({tile_splats.size(0), gsvc::kPartials}, opt);
  gsvc::cuda::backward(conics.data_ptr<float>(), boxes.data_ptr<int32_t>(), colors.data_ptr<float>(),
                       tile_offsets.data_ptr<int64_t>(), tile_splats.data_ptr<int32_t>(),
                       tile_pairs.data_ptr<int64_t>(), g.data_ptr<float>(), h, w, need_colors, need_geometry,
                       partials.data_ptr<float>(), stream);
  torch::Tensor grad_means, grad_chol, grad_colors;
  if (need_geometry) {
    grad_means = torch::empty({n, 2}, opt);
    grad_chol = torch::empty({n, 3}, opt);
  }
  if (need_colors) grad_colors = torch::empty({n, 3}, opt);
  gsvc::cuda::reduce_gradients(chol.data_ptr<float>(), conics.data_ptr<float>(), splat_offsets.data_ptr<int64_t>(),
                               partials.data_ptr<float>(), n, need_colors, need_geometry,
                               need_geometry ? grad_means.data_ptr<float>() : nullptr,
                               need_geometry ? grad_chol.data_ptr<float>() : nullptr,
                               need_colors ? grad_colors.data_ptr<float>() : nullptr, stream);
  return {grad_means, grad_chol, grad_colors};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "gsvc CUDA splat rasteriser (see ext/cuda/render_cuda.h)";
  m.def("forward", &forward, "render; returns the image and the binning the backward reuses");
  m.def("backward", &backward, "gradients for means, chol, colors");
}
