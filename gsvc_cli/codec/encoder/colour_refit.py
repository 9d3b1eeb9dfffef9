"""Closed-form colour refit: with centres and covariances fixed, the best colours solve a linear
least-squares problem, so we solve it instead of waiting for gradient descent to find it.

The image is I = W c, with W [H*W, N] the (sparse) splat weights and c [N, 3] the colours. We never
form W: `render` with fixed splats computes W c, and autograd through it computes W^T x (the
gradient of sum(render(c) * x) with respect to c). The normal equations (W^T W + lam I) c = W^T y +
lam c0 are solved per channel with Jacobi-preconditioned conjugate gradients; the small ridge pulls a
splat that covers no pixel back to its previous colour instead of leaving it undetermined. On the
CPU kernels the splats are binned into tiles once per refit (render.cpu.BinnedSplats) rather than
once per product: the same values, 8-15% less time (BENCHMARKS.md).
"""

from __future__ import annotations

import math

import torch

from gsvc_cli.render import check_inputs, render, resolve_backend


def splat_energy(chol: torch.Tensor) -> torch.Tensor:
    """Estimated sum over pixels of w_i(p)^2 for each splat, [N] (pixel units).

    The integral of exp(-d^T Sigma^-1 d) over the plane is pi sqrt(det Sigma) = pi |l1 l3|; the
    weight cap, the 1/255 cut-off and the frame border change it by little except at the edges.
    """
    return math.pi * (chol[:, 0] * chol[:, 2]).abs()


def apply_wt(means: torch.Tensor, chol: torch.Tensor, pixels: torch.Tensor, height: int, width: int,
             backend: str = "auto") -> torch.Tensor:
    """W^T x for an image-shaped x [3, H, W] -> [N, 3], through autograd of the renderer."""
    probe = torch.zeros(means.shape[0], 3, device=means.device, dtype=means.dtype, requires_grad=True)
    with torch.enable_grad():
        out = render(means, chol, probe, height, width, backend=backend)
        (grad,) = torch.autograd.grad(out, probe, grad_outputs=pixels)
    return grad


def _apply_normal(means: torch.Tensor, chol: torch.Tensor, colors: torch.Tensor, height: int,
                  width: int, backend: str) -> torch.Tensor:
    """W^T W c [N, 3] in one forward and one backward pass (the gradient of 0.5 |W c|^2)."""
    probe = colors.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = render(means, chol, probe, height, width, backend=backend)
        (grad,) = torch.autograd.grad(out, probe, grad_outputs=out.detach())
    return grad


@torch.no_grad()
def refit_colours(means: torch.Tensor, chol: torch.Tensor, target: torch.Tensor,
                  colors: torch.Tensor, *, iters: int = 20, ridge: float = 1e-4, tol: float = 1e-10,
                  backend: str = "auto") -> torch.Tensor:
    """Least-squares colours for fixed splat geometry, warm-started from `colors`.

    means [N,2] px, chol [N,3], target [3,H,W] (any range; the clamp is ignored), colors [N,3]
    the starting point. Returns new colours [N,3]. Each iteration costs one render forward and
    backward. `ridge` (relative to the mean splat energy) regularises towards `colors`.
    """
    means, chol = means.detach(), chol.detach()
    c0 = colors.detach().clone()
    n = c0.shape[0]
    if n == 0:
        return c0
    height, width = target.shape[-2:]
    energy = splat_energy(chol)
    lam = ridge * float(energy.mean().clamp(min=1e-6))
    diag = (energy + lam).unsqueeze(1)  # Jacobi preconditioner (estimated diagonal of W^T W)

    if resolve_backend(backend, means.device, means.dtype) == "cpu":
        from gsvc_cli.render.cpu import BinnedSplats

        check_inputs(means, chol, c0, height, width)
        binned = BinnedSplats(means, chol, height, width)

        def normal(c: torch.Tensor) -> torch.Tensor:
            return binned.transpose(binned.render(c)) + lam * c

        wt_target = binned.transpose(target.detach())
    else:
        def normal(c: torch.Tensor) -> torch.Tensor:
            return _apply_normal(means, chol, c, height, width, backend) + lam * c

        wt_target = apply_wt(means, chol, target.detach(), height, width, backend)
    rhs = wt_target + lam * c0
    c = c0.clone()
    r = rhs - normal(c)
    z = r / diag
    p = z.clone()
    rz = (r * z).sum(0)
    rz0 = rz.clone()
    for _ in range(iters):
        if bool((rz <= tol * tol * rz0.clamp(min=1e-30)).all()):
            break
        ap = normal(p)
        denom = (p * ap).sum(0)
        alpha = torch.where(denom > 0, rz / denom.clamp(min=1e-30), torch.zeros_like(rz))
        c += alpha * p
        r -= alpha * ap
        z = r / diag
        rz_new = (r * z).sum(0)
        beta = torch.where(rz > 0, rz_new / rz.clamp(min=1e-30), torch.zeros_like(rz))
        p = z + beta * p
        rz = rz_new
    return c
