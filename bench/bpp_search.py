"""How a --bpp encode lands: every pass of the search (quality, steered or not, bpp, I/P pattern).

    python bench/bpp_search.py CLIP BPP [--preset fast] [--out /tmp/bpp.gsvc] [--search-passes N]

Prints one line per pass and the result against the target; the file is what `gsvc encode CLIP
--bpp BPP` would write. Runs the real encoder (several whole encodes). --search-passes caps the
constant-quality passes below BPP_SEARCH_PASSES, to try the steered passes from a reference that
is a few percent off (where a constant-quality pass happens to land, they never run).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

from gsvc_cli.codec.encoder import gop
from gsvc_cli.codec.encoder.gop import EncoderSettings, EncodeSummary, encode_video
from gsvc_cli.codec.encoder.rate_control import RateTarget
from gsvc_cli.progress import ProgressEvent
from gsvc_cli.video import Frame, open_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("bpp", type=float)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bpp_search.gsvc"))
    parser.add_argument("--search-passes", type=int, default=gop.BPP_SEARCH_PASSES)
    args = parser.parse_args()
    gop.BPP_SEARCH_PASSES = args.search_passes
    with open_video(args.clip) as reader:
        info = reader.info

    def frames() -> Iterator[Frame]:
        with open_video(args.clip) as reader:
            yield from reader

    one_pass = gop._encode_pass

    def off(summary: EncodeSummary) -> float:
        return 100 * (summary.bpp / args.bpp - 1)

    def logged_pass(*a, **k) -> EncodeSummary:  # type: ignore[no-untyped-def]
        summary = one_pass(*a, **k)
        pattern = "".join(f.frame_type for f in summary.frames)
        print(f"  -> {summary.bpp:.4f} bpp ({off(summary):+.2f}%) {pattern}", flush=True)
        return summary

    def on_event(event: ProgressEvent) -> None:
        if event.stage == "pass":
            steered = f" steered, scale {event.info['scale']:.4f}" if event.info.get("steered") else ""
            print(f"pass {event.done}: quality {event.info['quality']:.3f}{steered}", flush=True)

    gop._encode_pass = logged_pass
    start = time.perf_counter()
    summary = encode_video(frames, info, args.out, EncoderSettings(RateTarget(bpp=args.bpp), args.preset),
                           frame_count=info.frame_count, overwrite=True, progress=on_event)
    print(f"{args.clip.name}: target {args.bpp} bpp -> {summary.bpp:.4f} ({off(summary):+.2f}%), "
          f"{summary.passes} passes, {time.perf_counter() - start:.0f} s, "
          f"PSNR-YUV {summary.mean_psnr:.2f} dB")


if __name__ == "__main__":
    main()
