"""Where chunks run besides this process: a Ray runtime (local, loopback-only, or a cluster)."""
