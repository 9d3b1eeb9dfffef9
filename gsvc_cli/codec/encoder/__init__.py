"""What the encoder is free to change without touching the format: the GOP loop and I/P decisions
(gop), rate control and its searches (rate_control), presets (presets), and the fitting that turns
a frame into splats (fitting for I-frames, inter_fit for P-frames, with init, densify and
colour_refit as their tools). The decoder never imports anything from here."""
