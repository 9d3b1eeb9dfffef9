# gsvc with CUDA: the codec plus its CUDA kernels, compiled when the image is built.
#   docker build -t gsvc .
#   docker run --gpus all -v "$PWD:/data" gsvc encode /data/in.y4m -o /data/out.gsvc --bpp 0.4
# The devel image carries nvcc, which torch.utils.cpp_extension needs to build ext/cuda. Its CUDA
# major version must match the one torch 2.13.0's PyPI wheel was built with (13.0).
FROM nvidia/cuda:13.0.0-devel-ubuntu24.04

# No GPU is visible during `docker build`, so name the architectures to compile for (CUDA 13
# supports compute capability 7.5 and newer; +PTX lets newer GPUs JIT the last one).
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    TORCH_EXTENSIONS_DIR=/opt/torch_extensions \
    TORCH_CUDA_ARCH_LIST="7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX"

# Versions are left to the base image's release: pinning Ubuntu package versions breaks the build
# as soon as the archive moves on.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-dev python3-venv g++ \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv

WORKDIR /opt/gsvc

# The same two install steps as .ci/run (tests/test_dockerfile.py keeps them in step). The one
# difference is where torch==2.13.0 comes from: CI finds the CPU build on its local disk, while here
# PyPI serves the Linux CUDA build, which is the one this image wants. Torch first, in its own
# layer, so code changes do not download it again.
RUN python3 -m pip install torch==2.13.0
COPY . .
RUN python3 -m pip install -e ".[dev]"

# Compile the kernels now rather than on the user's first run: the CUDA kernels for the GPUs in
# TORCH_CUDA_ARCH_LIST (no GPU is needed to compile them), and the CPU kernels by rendering a tiny
# frame. Both are cached inside the image. The package's bytecode too: an editable install leaves
# none, and every fresh container would compile ~30 modules before its first frame (a quiet
# 1080p `decode --frames 1` took 0.89x the wall time with the bytecode cached).
# hadolint ignore=DL3059
RUN python3 -c "from gsvc_cli.render.cuda import cuda_kernels; cuda_kernels()" \
 && python3 -c "import torch; from gsvc_cli.render import render; render(torch.full((1, 2), 8.0), torch.full((1, 3), 2.0), torch.ones(1, 3), 16, 16)" \
 && python3 -m compileall -q gsvc_cli

WORKDIR /data
ENTRYPOINT ["gsvc"]
CMD ["--help"]
