"""Chunked encoding, outside the encoder: plan chunks at cuts / every --gop frames (plan), keep
finished chunks in the work folder .OUT.gsvc.parts/ (parts), encode chunks anywhere and join them
in frame order (encode). Where chunks run is a runner's business (encode.SerialRunner,
gsvc_cli.parallel.ray_runtime.RayRunner)."""
