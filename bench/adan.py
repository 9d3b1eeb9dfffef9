"""Adan, the adaptive Nesterov momentum optimiser (Xie et al., 2022), written from its update rules.

The published GSVC / GaussianImage recipe fits splats with Adan; torch has no Adan, so this is our
own small implementation of the paper's equations (no weight decay is needed for splats, but the
decoupled form is kept for completeness). Betas follow the usual "keep" convention (0.98, 0.92,
0.99): m = b1 m + (1 - b1) g, and so on.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class Adan(torch.optim.Optimizer):
    """Adan with bias correction.

    Per parameter, with d = g - g_prev (zero on the first step):
        m = b1 m + (1 - b1) g
        v = b2 v + (1 - b2) d
        n = b3 n + (1 - b3) (g + b2 d)^2
        p = (p - lr * (m^ + b2 v^) / (sqrt(n^) + eps)) / (1 + lr * weight_decay)
    where ^ marks the bias-corrected moments.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float, float] = (0.98, 0.92, 0.99), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid Adan hyper-parameters lr={lr} betas={betas} eps={eps}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2, b3 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                    state["n"] = torch.zeros_like(p)
                    state["g_prev"] = g.clone()
                state["step"] += 1
                k = state["step"]
                d = g - state["g_prev"]
                m, v, n = state["m"], state["v"], state["n"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).add_(d, alpha=1 - b2)
                n.mul_(b3).addcmul_(g + b2 * d, g + b2 * d, value=1 - b3)
                bc1, bc2, bc3 = 1 - b1**k, 1 - b2**k, 1 - b3**k
                denom = (n / bc3).sqrt_().add_(eps)
                update = (m / bc1).add_(v, alpha=b2 / bc2).div_(denom)
                p.add_(update, alpha=-lr)
                if wd:
                    p.div_(1 + lr * wd)
                state["g_prev"].copy_(g)
        return loss
