"""The native CPU rasteriser against the torch reference: values, gradients, determinism, edge cases."""

from __future__ import annotations

import hashlib
import math
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import kodak_crop, random_splats

from gsvc_cli.render import RenderError, render, resolve_backend
from gsvc_cli.render.build import cpu_kernels
from gsvc_cli.render.reference import render_reference


def fitted_like_splats(image: torch.Tensor, n: int, seed: int):
    """Splats placed like a fitted frame's: denser where the image has detail, sized by local density."""
    g = torch.Generator().manual_seed(seed)
    _, h, w = image.shape
    gray = image.mean(0)
    detail = torch.zeros(h, w)
    detail[:-1, :-1] = (gray[1:, :-1] - gray[:-1, :-1]).abs() + (gray[:-1, 1:] - gray[:-1, :-1]).abs()
    prob = (0.3 + 0.7 * detail / detail.mean().clamp(min=1e-8)).flatten()
    prob = prob / prob.sum()
    idx = torch.multinomial(prob, n, replacement=True, generator=g)
    means = torch.stack([(idx % w).float(), (idx // w).float()], 1) + torch.rand(n, 2, generator=g)
    sigma = (0.6 / (n * prob[idx]).sqrt()).clamp(min=0.5)
    aspect = torch.exp(0.4 * torch.randn(n, generator=g))
    chol = torch.stack([sigma * aspect, 0.3 * sigma * torch.randn(n, generator=g), sigma / aspect], 1)
    colors = image[:, idx // w, idx % w].t() / (2 * math.pi * 0.36)
    return means, chol, colors.contiguous()


def real_image(height: int, width: int) -> torch.Tensor:
    """A crop of Kodak 23 (the parrots) at x 200, y 100 of the original."""
    return kodak_crop(200, 100, width, height)


def relative_error(value: torch.Tensor, expected: torch.Tensor) -> float:
    scale = float(expected.abs().max()) or 1.0
    return float((value - expected).abs().max()) / scale


def gradients(backend: str, means, chol, colors, height, width, grad_out, which=(True, True, True)):
    params = [t.detach().clone().requires_grad_(w) for t, w in zip((means, chol, colors), which, strict=True)]
    if backend == "reference":
        out = render_reference(*params, height, width)
    else:
        out = render(*params, height, width, backend=backend)
    out.backward(grad_out)
    return out.detach(), [p.grad for p in params]


@pytest.fixture(scope="module", autouse=True)
def kernels():
    return cpu_kernels()  # builds once; a failed build fails every test here with its error


@pytest.mark.parametrize(("height", "width", "n", "seed"),
                         [(16, 16, 40, 0), (37, 53, 300, 1), (70, 41, 900, 2)])
def test_forward_matches_reference_on_random_splats(height, width, n, seed):
    means, chol, colors = random_splats(n, height, width, seed)
    out = render(means, chol, colors, height, width, backend="cpu")
    ref = render_reference(means, chol, colors, height, width)
    assert out.shape == (3, height, width) and out.dtype == torch.float32
    assert float((out - ref).abs().max()) <= 1e-5 * float(ref.max() - ref.min())


def test_forward_matches_reference_on_fitted_like_splats():
    image = real_image(64, 96)
    means, chol, colors = fitted_like_splats(image, 600, seed=3)
    out = render(means, chol, colors, 64, 96, backend="cpu")
    ref = render_reference(means, chol, colors, 64, 96)
    assert float((out - ref).abs().max()) <= 1e-5 * float(ref.max() - ref.min())
    # The splats really do paint (a rough, unfitted version of) the picture: the test is not vacuous.
    assert float(torch.corrcoef(torch.stack([ref.flatten(), image.flatten()]))[0, 1]) > 0.2


@pytest.mark.parametrize("kind", ["random", "fitted"])
def test_every_gradient_matches_reference_autograd(kind):
    if kind == "random":
        height, width = 29, 45
        means, chol, colors = random_splats(250, height, width, seed=4)
    else:
        height, width = 48, 64
        means, chol, colors = fitted_like_splats(real_image(height, width), 400, seed=5)
    grad_out = torch.randn(3, height, width, generator=torch.Generator().manual_seed(6))
    _, native = gradients("cpu", means, chol, colors, height, width, grad_out)
    _, ref = gradients("reference", means, chol, colors, height, width, grad_out)
    for name, a, b in zip(("means", "chol", "colors"), native, ref, strict=True):
        assert relative_error(a, b) <= 1e-4, name


@pytest.mark.parametrize("which", [(False, False, True), (True, False, False), (False, True, False),
                                   (True, True, False)])
def test_partial_gradients_match_and_skip_the_rest(which):
    height, width = 33, 31
    means, chol, colors = random_splats(120, height, width, seed=7)
    grad_out = torch.randn(3, height, width, generator=torch.Generator().manual_seed(8))
    _, native = gradients("cpu", means, chol, colors, height, width, grad_out, which)
    _, ref = gradients("reference", means, chol, colors, height, width, grad_out, which)
    for wanted, a, b in zip(which, native, ref, strict=True):
        if wanted:
            assert relative_error(a, b) <= 1e-4
        else:
            assert a is None


def test_gradcheck_reference_in_float64():
    # The reference is the oracle for every native gradient test, so check it against finite
    # differences itself. Splats are placed so no pixel sits on the cap or the 1/255 cut.
    means = torch.tensor([[2.3, 3.1], [4.6, 2.2], [3.4, 4.4]], dtype=torch.float64, requires_grad=True)
    chol = torch.tensor([[1.3, 0.4, 0.9], [0.8, -0.3, 1.6], [1.1, 0.2, 1.2]], dtype=torch.float64,
                        requires_grad=True)
    colors = torch.tensor([[0.2, 0.5, 0.9], [0.7, 0.1, 0.3], [0.4, 0.8, 0.6]], dtype=torch.float64,
                          requires_grad=True)
    assert torch.autograd.gradcheck(lambda m, c, k: render_reference(m, c, k, 6, 7), (means, chol, colors),
                                     eps=1e-6, atol=1e-6, rtol=1e-4)
    # ...and the native float32 gradients agree with it on the same case.
    grad_out = torch.randn(3, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    _, ref = gradients("reference", means, chol, colors, 6, 7, grad_out)
    _, native = gradients("cpu", means.float(), chol.float(), colors.float(), 6, 7, grad_out.float())
    for a, b in zip(native, ref, strict=True):
        assert relative_error(a.double(), b) <= 1e-4


def test_fast_exp_is_accurate_to_1e6():
    x = torch.linspace(-20, 0, 200_001)
    y = cpu_kernels().fast_exp(x)
    exact = torch.exp(x.double())
    assert float(((y.double() - exact) / exact).abs().max()) <= 1e-6


_DETERMINISM_SCRIPT = textwrap.dedent("""
    import hashlib, sys, torch
    sys.path.insert(0, {tests!r})
    from helpers import random_splats
    from gsvc_cli.render import render
    torch.set_num_threads(int(sys.argv[1]))
    means, chol, colors = random_splats(3000, 130, 150, seed=10, max_sigma=12.0)
    params = [t.requires_grad_() for t in (means, chol, colors)]
    out = render(*params, 130, 150, backend="cpu")
    out.backward(torch.randn(3, 130, 150, generator=torch.Generator().manual_seed(11)))
    digest = hashlib.sha256()
    for t in [out.detach()] + [p.grad for p in params]:
        digest.update(t.numpy().tobytes())
    print(digest.hexdigest())
""")


def test_results_identical_bit_for_bit_across_thread_counts_and_runs(tmp_path):
    script = tmp_path / "determinism.py"
    script.write_text(_DETERMINISM_SCRIPT.format(tests=str(Path(__file__).parent)))
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    digests = [subprocess.run([sys.executable, str(script), str(threads)], env=env, capture_output=True,
                              text=True, check=True).stdout.strip() for threads in (1, 2, 2)]
    assert len(digests[0]) == 64
    assert digests[0] == digests[1] == digests[2]


def test_zero_splats_give_a_black_image_and_empty_gradients():
    empty = [torch.zeros(0, k, requires_grad=True) for k in (2, 3, 3)]
    out = render(*empty, 20, 24, backend="cpu")
    assert out.shape == (3, 20, 24) and not out.any()
    out.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in empty)


def test_splats_far_outside_the_frame_are_culled():
    means = torch.tensor([[-1e6, 5.0], [5.0, 3e7], [-40.0, -40.0], [1e30, -1e30]])
    chol = torch.tensor([[2.0, 0.0, 2.0]] * 4)
    colors = torch.ones(4, 3)
    _, kernels_out = means, cpu_kernels().forward(means, chol, colors, 16, 16)
    assert int(kernels_out[3][-1]) == 0  # no (tile, splat) pairs at all
    out, grads = gradients("cpu", means, chol, colors, 16, 16, torch.ones(3, 16, 16))
    assert not out.any()
    assert all(not g.any() for g in grads)


def test_near_singular_and_huge_covariances_stay_finite_and_match():
    means = torch.tensor([[8.5, 8.5], [3.2, 9.7], [12.0, 4.0], [6.0, 6.0], [10.0, 10.0]])
    chol = torch.tensor([[1e-7, 0.0, 3.0],       # a line segment one pixel column wide
                         [4.0, 40.0, 1e-6],      # very thin and tilted
                         [1e-30, 1e-30, 1e-30],  # degenerate: invisible
                         [0.0, 1.0, 2.0],        # exactly singular: invisible
                         [1e5, 3e4, 1e5]])       # larger than the frame: covers it evenly
    colors = torch.rand(5, 3, generator=torch.Generator().manual_seed(12))
    grad_out = torch.randn(3, 19, 21, generator=torch.Generator().manual_seed(13))
    out, grads = gradients("cpu", means, chol, colors, 19, 21, grad_out)
    ref, ref_grads = gradients("reference", means, chol, colors, 19, 21, grad_out)
    assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)
    assert float((out - ref).abs().max()) <= 1e-5 * float(ref.max() - ref.min())
    assert relative_error(grads[2], ref_grads[2]) <= 1e-4
    assert not grads[2][2:4].any()  # degenerate splats touch nothing


@pytest.mark.parametrize("field", ["means", "chol", "colors"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_inputs_raise_a_clear_error(field, bad):
    means, chol, colors = random_splats(10, 8, 8, seed=14)
    tensors = {"means": means, "chol": chol, "colors": colors}
    tensors[field][7, 1] = bad
    with pytest.raises(RenderError, match=f"{field} holds NaN or Inf .*splat 7"):
        render(tensors["means"], tensors["chol"], tensors["colors"], 8, 8, backend="cpu")
    with pytest.raises(ValueError):  # RenderError is a ValueError too
        render(tensors["means"], tensors["chol"], tensors["colors"], 8, 8)


def test_bad_shapes_and_sizes_raise_a_clear_error():
    means, chol, colors = random_splats(4, 8, 8, seed=15)
    with pytest.raises(RenderError, match=r"chol must have shape \[N,3\]"):
        render(means, chol[:, :2], colors, 8, 8)
    with pytest.raises(RenderError, match="image size"):
        render(means, chol, colors, 0, 8)


def test_one_pixel_image():
    means, chol, colors = random_splats(20, 1, 1, seed=16, max_sigma=3.0)
    grad_out = torch.full((3, 1, 1), 2.0)
    out, grads = gradients("cpu", means, chol, colors, 1, 1, grad_out)
    ref, ref_grads = gradients("reference", means, chol, colors, 1, 1, grad_out)
    assert float((out - ref).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))
    for a, b in zip(grads, ref_grads, strict=True):
        assert relative_error(a, b) <= 1e-4


def test_backend_selection_and_overrides(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("GSVC_RENDER_BACKEND", raising=False)
    assert resolve_backend("auto", cpu, torch.float32) == "cpu"
    assert resolve_backend("auto", cpu, torch.float64) == "reference"
    assert resolve_backend("reference", cpu, torch.float32) == "reference"
    monkeypatch.setenv("GSVC_RENDER_BACKEND", "reference")
    assert resolve_backend("auto", cpu, torch.float32) == "reference"
    assert resolve_backend("cpu", cpu, torch.float32) == "cpu"  # an explicit argument wins
    monkeypatch.setenv("GSVC_RENDER_BACKEND", "gpu-please")
    with pytest.raises(RenderError, match="GSVC_RENDER_BACKEND"):
        resolve_backend("auto", cpu, torch.float32)
    with pytest.raises(RenderError, match="float32 CPU"):
        resolve_backend("cpu", cpu, torch.float64)
    with pytest.raises(RenderError, match="CUDA tensors"):
        resolve_backend("cuda", cpu, torch.float32)
    # float64 through "auto" goes to the reference and keeps its dtype.
    means, chol, colors = random_splats(5, 6, 6, seed=17)
    monkeypatch.delenv("GSVC_RENDER_BACKEND")
    assert render(means.double(), chol.double(), colors.double(), 6, 6).dtype == torch.float64


def test_4k_frame_with_500k_splats_fits_in_memory():
    height, width, n = 2160, 3840, 500_000
    g = torch.Generator().manual_seed(18)
    means = torch.rand(n, 2, generator=g) * torch.tensor([float(width), float(height)])
    sigma = 0.5 + torch.rand(n, generator=g).pow(4) * 12  # mostly small, a few large
    chol = torch.stack([sigma, 0.2 * sigma * torch.randn(n, generator=g), sigma], 1)
    params = [means.requires_grad_(), chol.requires_grad_(), torch.rand(n, 3, generator=g).requires_grad_()]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out = render(*params, height, width, backend="cpu")
    out.backward(torch.ones_like(out))
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    assert out.shape == (3, height, width) and torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in params)
    assert peak_gib < 8.0, f"peak RSS {peak_gib:.1f} GiB (before: {before / 2**20:.1f} GiB)"
    # Spot-check a crop against the reference: splats are shifted into the crop's frame.
    y0, x0, h, w = 1000, 2000, 24, 40
    near = ((means[:, 0] - x0 - w / 2).abs() < w / 2 + 60) & ((means[:, 1] - y0 - h / 2).abs() < h / 2 + 60)
    shifted = means.detach()[near] - torch.tensor([float(x0), float(y0)])
    crop_ref = render_reference(shifted, chol.detach()[near], params[2].detach()[near], h, w)
    crop = out.detach()[:, y0:y0 + h, x0:x0 + w]
    assert float((crop - crop_ref).abs().max()) <= 1e-5 * float(crop_ref.max() - crop_ref.min())


def test_native_and_reference_agree_and_the_output_depends_on_the_splats():
    # Guard against a silently constant (or input-independent) output in either backend: two splat
    # sets give two clearly different images, and each backend's image is the other's.
    native, reference = [], []
    for seed in (19, 20):
        splats = random_splats(50, 16, 16, seed=seed)
        native.append(render(*splats, 16, 16, backend="cpu"))
        reference.append(render_reference(*splats, 16, 16))
    for a, b in zip(native, reference, strict=True):
        assert float((a - b).abs().max()) <= 1e-5 * float(b.max() - b.min())
    for images in (native, reference):
        assert hashlib.sha256(images[0].numpy().tobytes()).digest() != hashlib.sha256(
            images[1].numpy().tobytes()).digest()
        assert float((images[0] - images[1]).abs().max()) > 0.5


def test_auto_falls_back_to_the_reference_with_one_warning_when_the_build_fails(monkeypatch, caplog):
    import gsvc_cli.render as render_module
    import gsvc_cli.render.build as build

    def broken() -> None:
        raise RuntimeError("no compiler")

    monkeypatch.setattr(build, "cpu_kernels", broken)
    monkeypatch.setattr(render_module, "_warned", set())
    monkeypatch.delenv("GSVC_RENDER_BACKEND", raising=False)
    means, chol, colors = random_splats(30, 12, 14, seed=21)
    with caplog.at_level("WARNING", logger="gsvc_cli.render"):
        out = render(means, chol, colors, 12, 14)
        render(means, chol, colors, 12, 14)
    assert torch.equal(out, render_reference(means, chol, colors, 12, 14))
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "no compiler" in warnings[0].getMessage()
    with pytest.raises(RenderError, match="cpu backend failed to build"):
        render(means, chol, colors, 12, 14, backend="cpu")


def test_the_binding_refuses_what_the_kernels_cannot_read():
    # The checks of ext/include/gsvc_binding.h (shared with the CUDA binding), called directly: the
    # Python wrapper checks shapes too, but a kernel must never read a raw pointer past a tensor's end.
    kernels = cpu_kernels()
    means, chol, colors = random_splats(6, 12, 20, seed=22)
    image, *binning = kernels.forward(means, chol, colors, 12, 20)
    grads = kernels.backward(torch.ones(3, 12, 20), chol, colors, *binning, True, True)
    assert [tuple(g.shape) for g in grads] == [(6, 2), (6, 3), (6, 3)]
    with pytest.raises(RuntimeError, match="bad image size"):
        kernels.forward(means, chol, colors, 0, 20)
    with pytest.raises(RuntimeError, match="splat counts differ"):
        kernels.forward(means, chol[:5].contiguous(), colors, 12, 20)
    with pytest.raises(RuntimeError, match="must be float32"):
        kernels.forward(means.double(), chol, colors, 12, 20)
    with pytest.raises(RuntimeError, match="means must be a CPU tensor, got meta"):
        kernels.forward(means.to("meta"), chol, colors, 12, 20)
    # backward with a gradient image of another size than forward's binning
    with pytest.raises(RuntimeError, match="tile_offsets must be forward's"):
        kernels.backward(torch.ones(3, 40, 20), chol, colors, *binning, True, True)
    with pytest.raises(RuntimeError, match=r"grad_image must be float32 \[3,H,W\]"):
        kernels.backward(torch.ones(12, 20), chol, colors, *binning, True, True)
    with pytest.raises(RuntimeError, match="conics must be forward's"):
        kernels.backward(torch.ones(3, 12, 20), chol, colors, binning[0][:3], *binning[1:], True, True)
    with pytest.raises(RuntimeError, match="tile_splats and tile_pairs"):
        kernels.backward(torch.ones(3, 12, 20), chol, colors, *binning[:4], binning[4][:-1], binning[5], True,
                         True)
    # the binning alone and a render from it (colour refits): the same image, the same refusals
    conics, boxes, _, tile_offsets, tile_splats, _ = kernels.bin_splats(means, chol, 12, 20)
    rendered = kernels.forward_binned(colors, conics, boxes, tile_offsets, tile_splats, 12, 20)
    assert torch.equal(rendered, image)
    with pytest.raises(RuntimeError, match="conics must be bin_splats'"):
        kernels.forward_binned(colors, conics[:3], boxes, tile_offsets, tile_splats, 12, 20)
    with pytest.raises(RuntimeError, match="tile_offsets must be bin_splats'"):
        kernels.forward_binned(colors, conics, boxes, tile_offsets, tile_splats, 40, 20)
    with pytest.raises(RuntimeError, match="splat counts differ"):
        kernels.bin_splats(means, chol[:5].contiguous(), 12, 20)
