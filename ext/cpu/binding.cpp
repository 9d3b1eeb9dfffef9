// Thin torch binding for the CPU kernels: checks (shared with the CUDA binding, gsvc_binding.h),
// allocation, thread count; no maths here.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include "gsvc_binding.h"
#include "gsvc_splat.h"
#include "render_cpu.h"

namespace {

// Returns [conics [N,5], boxes [N,4] int32, splat_offsets [N+1] int64, tile_offsets [T+1] int64,
//          tile_splats [P] int32, tile_pairs [P] int64]: the binning forward and backward use.
std::vector<torch::Tensor> bin_splats(const torch::Tensor& means, const torch::Tensor& chol, int64_t height,
                                      int64_t width) {
  gsvc::binding::check_geometry(means, chol, height, width, c10::DeviceType::CPU);
  const int threads = at::get_num_threads();
  const int64_t n = means.size(0);
  const auto h = static_cast<int32_t>(height), w = static_cast<int32_t>(width);
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  auto i32 = torch::TensorOptions().dtype(torch::kInt32);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  auto conics = torch::empty({n, 5}, f32);
  auto boxes = torch::empty({n, 4}, i32);
  auto splat_offsets = torch::empty({n + 1}, i64);
  gsvc::cpu::prepare_splats(means.data_ptr<float>(), chol.data_ptr<float>(), n, h, w, conics.data_ptr<float>(),
                            boxes.data_ptr<int32_t>(), splat_offsets.data_ptr<int64_t>(), threads);
  const int64_t pairs = splat_offsets.data_ptr<int64_t>()[n];
  const int64_t tiles = gsvc::cpu::tile_count(h, w);
  auto tile_offsets = torch::empty({tiles + 1}, i64);
  auto tile_splats = torch::empty({pairs}, i32);
  auto tile_pairs = torch::empty({pairs}, i64);
  gsvc::cpu::bin_tiles(boxes.data_ptr<int32_t>(), splat_offsets.data_ptr<int64_t>(), n, h, w,
                       tile_offsets.data_ptr<int64_t>(), tile_splats.data_ptr<int32_t>(),
                       tile_pairs.data_ptr<int64_t>(), threads);
  return {conics, boxes, splat_offsets, tile_offsets, tile_splats, tile_pairs};
}

// image [3,H,W] of splats binned by bin_splats with these colours.
torch::Tensor forward_binned(const torch::Tensor& colors, const torch::Tensor& conics, const torch::Tensor& boxes,
                             const torch::Tensor& tile_offsets, const torch::Tensor& tile_splats, int64_t height,
                             int64_t width) {
  gsvc::binding::check_binned(colors, conics, boxes, tile_offsets, tile_splats, height, width,
                              c10::DeviceType::CPU);
  auto image = torch::empty({3, height, width}, torch::TensorOptions().dtype(torch::kFloat32));
  gsvc::cpu::forward(conics.data_ptr<float>(), boxes.data_ptr<int32_t>(), colors.data_ptr<float>(),
                     tile_offsets.data_ptr<int64_t>(), tile_splats.data_ptr<int32_t>(),
                     static_cast<int32_t>(height), static_cast<int32_t>(width), image.data_ptr<float>(),
                     at::get_num_threads());
  return image;
}

// Returns [image [3,H,W], conics [N,5], boxes [N,4] int32, splat_offsets [N+1] int64,
//          tile_offsets [T+1] int64, tile_splats [P] int32, tile_pairs [P] int64].
std::vector<torch::Tensor> forward(const torch::Tensor& means, const torch::Tensor& chol,
                                   const torch::Tensor& colors, int64_t height, int64_t width) {
  gsvc::binding::check_forward(means, chol, colors, height, width, c10::DeviceType::CPU);
  auto binning = bin_splats(means, chol, height, width);
  auto image = forward_binned(colors, binning[0], binning[1], binning[3], binning[4], height, width);
  binning.insert(binning.begin(), image);
  return binning;
}

// Returns [grad_means [N,2], grad_chol [N,3], grad_colors [N,3]]; an output not asked for is an
// undefined tensor.
std::vector<torch::Tensor> backward(const torch::Tensor& grad_image, const torch::Tensor& chol,
                                    const torch::Tensor& colors, const torch::Tensor& conics,
                                    const torch::Tensor& boxes, const torch::Tensor& splat_offsets,
                                    const torch::Tensor& tile_offsets, const torch::Tensor& tile_splats,
                                    const torch::Tensor& tile_pairs, bool need_colors, bool need_geometry) {
  gsvc::binding::check_backward(grad_image, chol, colors, conics, boxes, splat_offsets, tile_offsets, tile_splats,
                                tile_pairs, c10::DeviceType::CPU);
  auto g = grad_image.contiguous();
  const int threads = at::get_num_threads();
  const int64_t n = chol.size(0);
  const auto h = static_cast<int32_t>(g.size(1)), w = static_cast<int32_t>(g.size(2));
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  auto partials = torch::zeros({tile_splats.size(0), gsvc::kPartials}, f32);
  gsvc::cpu::backward(conics.data_ptr<float>(), boxes.data_ptr<int32_t>(), colors.data_ptr<float>(),
                      tile_offsets.data_ptr<int64_t>(), tile_splats.data_ptr<int32_t>(),
                      tile_pairs.data_ptr<int64_t>(), g.data_ptr<float>(), h, w, need_colors, need_geometry,
                      partials.data_ptr<float>(), threads);
  torch::Tensor grad_means, grad_chol, grad_colors;
  if (need_geometry) {
    grad_means = torch::empty({n, 2}, f32);
    grad_chol = torch::empty({n, 3}, f32);
  }
  if (need_colors) grad_colors = torch::empty({n, 3}, f32);
  gsvc::cpu::reduce_gradients(chol.data_ptr<float>(), conics.data_ptr<float>(), splat_offsets.data_ptr<int64_t>(),
                              partials.data_ptr<float>(), n, need_colors, need_geometry,
                              need_geometry ? grad_means.data_ptr<float>() : nullptr,
                              need_geometry ? grad_chol.data_ptr<float>() : nullptr,
                              need_colors ? grad_colors.data_ptr<float>() : nullptr, threads);
  return {grad_means, grad_chol, grad_colors};
}

torch::Tensor fast_exp(const torch::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32, "x must be a float32 CPU tensor");
  auto xc = x.contiguous();
  auto y = torch::empty_like(xc);
  gsvc::cpu::fast_exp_array(xc.data_ptr<float>(), y.data_ptr<float>(), xc.numel());
  return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "gsvc CPU splat rasteriser (see ext/cpu/render_cpu.h)";
  m.def("forward", &forward, "render; returns the image and the binning the backward reuses");
  m.def("backward", &backward, "gradients for means, chol, colors");
  m.def("bin_splats", &bin_splats, "the tile binning of forward alone, for products with fixed splat geometry");
  m.def("forward_binned", &forward_binned, "render splats binned by bin_splats with new colours");
  m.def("fast_exp", &fast_exp, "the kernels' exp, for accuracy tests");
  m.def("simd", &gsvc::cpu::simd_name, "SIMD path compiled in");
}
