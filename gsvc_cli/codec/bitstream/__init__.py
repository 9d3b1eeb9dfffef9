"""What the .gsvc format fixes, in integers only: quantisation, entropy coding, frame payloads and
the container. The decoder and the encoder share this and nothing else of each other. A change here
changes files: bump the format version, update docs/FORMAT.md and regenerate the golden file."""
