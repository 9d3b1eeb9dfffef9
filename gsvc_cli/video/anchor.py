"""libx264 at a given bpp: the honest yardstick `gsvc demo` puts next to gsvc's own result.

x264 is driven by CRF, not by size, so the CRF is searched (bisection over fractional CRF; a few
frames of a small clip encode in milliseconds) for the largest stream that does not exceed the
target bpp. bpp counts the H.264 elementary stream without x264's encoder-settings SEI (NAL
type 6, a text of x264's options that a decoder ignores), as the project's RD benchmark does.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from gsvc_cli.atomic import atomic_output
from gsvc_cli.video.frame import Frame
from gsvc_cli.video.info import VideoInfo
from gsvc_cli.video.pyav_reader import _planes_of

SEARCH_STEPS = 9  # bisection steps over CRF 0..51: lands within ~0.1 CRF
X264_PRESET = "medium"


@dataclass
class AnchorResult:
    """The chosen x264 stream: its CRF, bpp (SEI excluded), stream bytes and decoded frames."""

    crf: float
    bpp: float
    stream: bytes
    frames: list[Frame]


def _nal_bytes_without_sei(data: bytes) -> int:
    """Bytes of an Annex B stream, less its SEI NAL units (start codes of SEIs included)."""
    total = len(data)
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        if s < len(data) and data[s] & 0x1F == 6:
            begin = s - 4 if s >= 4 and data[s - 4] == 0 else s - 3
            while end > s and data[end - 1] == 0:  # the next start code's leading zero byte
                end -= 1
            total -= end - begin
    return total


def _encode(frames: list[Frame], info: VideoInfo, crf: float) -> bytes:
    """The Annex B H.264 stream of `frames` (yuv420p, High profile) at `crf`."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = info.width, info.height, "yuv420p"
    ctx.time_base = Fraction(1) / info.fps
    ctx.framerate = info.fps
    ctx.options = {"preset": X264_PRESET, "crf": f"{crf:.2f}", "profile": "high"}
    out = bytearray()
    for k, frame in enumerate(frames):
        av_frame = av.VideoFrame.from_ndarray(
            np.concatenate([p.reshape(-1) for p in frame.planes]).reshape(-1, info.width),
            format="yuv420p")
        av_frame.pts = k
        for packet in ctx.encode(av_frame):
            out += bytes(packet)
    for packet in ctx.encode(None):
        out += bytes(packet)
    return bytes(out)


def _decode(stream: bytes, info: VideoInfo) -> list[Frame]:
    ctx = av.CodecContext.create("h264", "r")
    decoded = []
    for packet in ctx.parse(stream) + ctx.parse(None):
        decoded.extend(ctx.decode(packet))
    decoded.extend(ctx.decode(None))
    return [Frame(_planes_of(f, "yuv420p"), "yuv420p", info.color_matrix, info.color_range, k)
            for k, f in enumerate(decoded)]


def x264_at_bpp(frames: list[Frame], info: VideoInfo, target_bpp: float) -> AnchorResult:
    """libx264 (preset medium, yuv420p) at the largest size not above `target_bpp` (or the smallest
    it can make, CRF 51, when even that is above). Frames are converted to yuv420p first."""
    yuv = info.with_(pix_fmt="yuv420p")
    frames = [f.convert(yuv) for f in frames]
    pixels = info.width * info.height * len(frames)

    def bpp_of(stream: bytes) -> float:
        return 8.0 * _nal_bytes_without_sei(stream) / pixels

    lo, hi = 0.0, 51.0  # bpp falls as CRF rises; hi always gives a stream within the target
    crf, stream = hi, _encode(frames, yuv, hi)
    if bpp_of(stream) <= target_bpp:
        for _ in range(SEARCH_STEPS):
            mid = (lo + hi) / 2.0
            trial = _encode(frames, yuv, mid)
            if bpp_of(trial) <= target_bpp:
                hi, crf, stream = mid, mid, trial
            else:
                lo = mid
    return AnchorResult(crf, bpp_of(stream), stream, _decode(stream, yuv))


def write_stream(stream: bytes, path: Path, overwrite: bool = False) -> None:
    """Save an H.264 elementary stream (.264) atomically."""
    with atomic_output(path, overwrite) as tmp:
        tmp.write_bytes(stream)
