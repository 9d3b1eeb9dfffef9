"""Pictures for people: the splats of a frame drawn as ellipses, and labelled side-by-side frames.

`gsvc demo` writes both into its output folder and `gsvc decode --show-splats` draws the splats of
any file, because a codec made of Gaussians is easier to understand by looking at them than from a
table. Drawing uses Pillow (anti-aliased lines and a built-in font, no font files needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from gsvc_cli.atomic import atomic_output
from gsvc_cli.codec.splats import Splats
from gsvc_cli.video import Frame, VideoInfo
from gsvc_cli.video.colour import yuv_to_rgb

if TYPE_CHECKING:
    from gsvc_cli.codec.decoder import DecodedImage

ELLIPSE_SIGMA = 1.0  # outlines are the 1-sigma contours: where a splat falls to 61% of its peak
ELLIPSE_POINTS = 24
MIN_WIDTH = 640  # small frames are enlarged (nearest neighbour) to at least this width to be seen
LABEL_HEIGHT = 22
BACKGROUND = (24, 24, 24)


def rgb_array(frame: Frame) -> np.ndarray:
    """[H, W, 3] uint8 RGB of a frame (its own matrix and range)."""
    rgb = frame.to_rgb_float()
    return (rgb * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def decoded_rgb(image: torch.Tensor | np.ndarray, info: VideoInfo) -> np.ndarray:
    """[H, W, 3] uint8 RGB of a decoded YUV 4:4:4 image (code value / peak, as rendered)."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image)
    rgb = yuv_to_rgb(image.detach().float(), info.color_matrix, info.color_range, info.fmt.bits)
    return (rgb * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def _font(size: int = 14) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable built-in font
    except TypeError:
        return ImageFont.load_default()


def _scale_for(width: int) -> int:
    return max(1, -(-MIN_WIDTH // max(1, width)))  # 320 -> 2x, 176 -> 4x, 1280 -> 1x


def splat_picture(rgb: np.ndarray, splats: Splats, title: str = "") -> Image.Image:
    """The frame, dimmed, with every splat's 1-sigma ellipse drawn over it (larger splats first, in
    yellow; centres as dots), enlarged for small frames, with `title` written above."""
    height, width = rgb.shape[:2]
    scale = _scale_for(width)
    base = Image.fromarray(rgb).resize((width * scale, height * scale), Image.Resampling.NEAREST)
    base = Image.blend(base, Image.new("RGB", base.size, (0, 0, 0)), 0.45)
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    means = splats.means.detach().double().cpu().numpy()
    chol = splats.chol.detach().double().cpu().numpy()
    t = np.linspace(0.0, 2.0 * np.pi, ELLIPSE_POINTS, endpoint=False)
    circle = np.stack((np.cos(t), np.sin(t)))  # [2, P]
    # L = [[l1, 0], [l2, l3]]: the 1-sigma contour is mean + L @ (cos t, sin t)
    area = np.abs(chol[:, 0] * chol[:, 2])
    for k in np.argsort(-area):
        l1, l2, l3 = chol[k]
        xs = means[k, 0] + ELLIPSE_SIGMA * l1 * circle[0]
        ys = means[k, 1] + ELLIPSE_SIGMA * (l2 * circle[0] + l3 * circle[1])
        points = [(float(x * scale), float(y * scale)) for x, y in zip(xs, ys, strict=True)]
        draw.polygon(points, outline=(255, 214, 10, 140))
    for x, y in means:
        cx, cy = x * scale, y * scale
        draw.point((cx, cy), fill=(255, 60, 30, 255))
    picture = Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")
    return _with_labels([(picture, title)])


def side_by_side(panels: Sequence[tuple[np.ndarray, str]]) -> Image.Image:
    """Frames ([H, W, 3] uint8, same size) next to each other, each labelled underneath."""
    if not panels:
        raise ValueError("side_by_side needs at least one panel")
    height, width = panels[0][0].shape[:2]
    scale = _scale_for(width * len(panels)) if width * len(panels) < MIN_WIDTH else 1
    images = [(Image.fromarray(rgb).resize((width * scale, height * scale), Image.Resampling.NEAREST), label)
              for rgb, label in panels]
    return _with_labels(images)


def _with_labels(images: Sequence[tuple[Image.Image, str]]) -> Image.Image:
    """Images in a row with a gap, each label in a band underneath (above for one image)."""
    gap = 4
    w, h = images[0][0].size
    font = _font()
    canvas = Image.new("RGB", (len(images) * w + (len(images) - 1) * gap, h + LABEL_HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, (image, label) in enumerate(images):
        x = i * (w + gap)
        canvas.paste(image, (x, LABEL_HEIGHT if len(images) == 1 else 0))
        text_y = 3 if len(images) == 1 else h + 3
        draw.text((x + 6, text_y), label, fill=(240, 240, 240), font=font)
    return canvas


def save_png(image: Image.Image, path: Path, overwrite: bool = False) -> None:
    """Write a PNG atomically (refusing an existing file unless overwrite)."""
    with atomic_output(Path(path), overwrite) as tmp:
        image.save(tmp, format="PNG")


def write_splat_picture(source: Path, decoded: DecodedImage, path: Path, overwrite: bool = False) -> None:
    """`gsvc decode --show-splats`: the splats of one decoded frame of `source`, drawn into a PNG."""
    from gsvc_cli.codec.bitstream.container import GsvcReader
    from gsvc_cli.codec.decoder import video_info

    with GsvcReader(source) as reader:
        info = video_info(reader.header)
    assert decoded.splats is not None
    title = (f"{Path(source).name}, frame {decoded.index} ({decoded.frame_type}): "
             f"{decoded.n_splats} splats, 1-sigma ellipses")
    save_png(splat_picture(decoded_rgb(decoded.image, info), decoded.splats, title), path, overwrite)
