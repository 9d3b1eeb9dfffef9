"""Quality metrics: PSNR (per plane, 6:1:1 YUV, RGB), SSIM, MS-SSIM (Y and RGB) and VMAF.

Tensor-level functions for the codec (`psnr`, `ssim`, `ms_ssim`, `block_ssim`, `frame_psnr`) and
the whole-video `evaluate(ref_path, dist_path, metrics, frames, progress) -> EvalResult` that
`gsvc eval` and the RD benchmark call.
"""

from gsvc_cli.metrics.evaluate import DEFAULT_METRICS, METRICS, EvalResult, evaluate, parse_metrics
from gsvc_cli.metrics.psnr import PSNR_CAP, frame_psnr, mse_to_psnr, psnr
from gsvc_cli.metrics.ssim import block_ssim, ms_ssim, ms_ssim_scales, ms_ssim_with_ssim, ssim
from gsvc_cli.metrics.vmaf import VMAF_MODEL, VmafRunner

__all__ = [
    "DEFAULT_METRICS", "METRICS", "PSNR_CAP", "VMAF_MODEL", "EvalResult", "VmafRunner", "block_ssim",
    "evaluate", "frame_psnr", "ms_ssim", "ms_ssim_scales", "ms_ssim_with_ssim", "mse_to_psnr",
    "parse_metrics", "psnr", "ssim",
]
