"""The codec: frames -> splats -> bits, and back."""
