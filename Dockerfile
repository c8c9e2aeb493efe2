# syntax=docker/dockerfile:1
# The SeisLens API: the serving install only (FastAPI, ONNX Runtime, FAISS, segyio —
# no torch), with the default bundle copied to /bundles/default.
#
#   docker build -t seislens .                            # CPU (target "serve", the default)
#   docker build --target gpu -t seislens:gpu .           # onnxruntime-gpu + faiss-gpu (CUDA 12)
#   docker build --target cluster -t seislens:cluster .   # + the cluster extra (Ray)
#   docker run -p 8000:8000 seislens
#
# artifacts/default must exist (`seislens bundle build --preset default`).
# Every target runs as the unprivileged user `seislens` (uid 10001), never root; it owns
# /bundles, where the service writes its lease files (bundle/leases/).

FROM python:3.11-slim AS serve

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg

# libgomp: the OpenMP runtime FAISS uses
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 seislens

WORKDIR /opt/seislens
COPY pyproject.toml README.md ./
COPY seislens/ seislens/
COPY data/*.py data/
COPY models/ models/
COPY index/ index/
COPY training/ training/
COPY service/ service/
RUN pip install ".[serve]" \
    && python -c "import importlib.util as u, sys; sys.exit('torch is installed; the serving image must not have it' if u.find_spec('torch') else 0)" \
    && python -c "import seislens.service.app, seislens.index.library"

COPY --chown=seislens:seislens artifacts/default/ /bundles/default/
RUN chown seislens:seislens /bundles

# SEISLENS_BUNDLE_ROOT: /v1/admin/reload only loads bundles under /bundles.
# SEISLENS_ADMIN_TOKEN is unset: the admin routes stay disabled until it is given.
ENV SEISLENS_BUNDLE=/bundles/default \
    SEISLENS_BUNDLE_ROOT=/bundles \
    SEISLENS_PREFER_GPU=false

USER seislens
WORKDIR /home/seislens
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
CMD ["seislens", "serve", "--bundle", "/bundles/default", "--host", "0.0.0.0", "--port", "8000"]


# The GPU variant: the `gpu` extra (onnxruntime-gpu, faiss-gpu-cu12) in place of the CPU
# packages, which provide the same modules and must not sit beside them. CUDA 12 and
# cuDNN 9 come from NVIDIA's pip wheels (onnxruntime-gpu's cuda/cudnn extras); the
# host needs only the driver (NVIDIA Container Toolkit). The service says in its log
# and in GET /v1/bundle whether the CUDA provider and the GPU index really work.
FROM serve AS gpu

USER root
WORKDIR /opt/seislens
RUN pip uninstall -y onnxruntime faiss-cpu \
    && pip install ".[gpu]" "onnxruntime-gpu[cuda,cudnn]>=1.21" \
    && python -c "import onnxruntime, faiss; print(onnxruntime.get_available_providers())"

ENV SEISLENS_PREFER_GPU=true \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LD_LIBRARY_PATH=/usr/local/lib/python3.11/site-packages/nvidia/cudnn/lib:/usr/local/lib/python3.11/site-packages/nvidia/cublas/lib:/usr/local/lib/python3.11/site-packages/nvidia/cuda_runtime/lib:/usr/local/lib/python3.11/site-packages/nvidia/cufft/lib:/usr/local/lib/python3.11/site-packages/nvidia/curand/lib:/usr/local/lib/python3.11/site-packages/nvidia/cuda_nvrtc/lib

USER seislens
WORKDIR /home/seislens


# The cluster variant: the serving image plus the `cluster` extra (ray[data,serve],
# which brings pyarrow), still without torch. The nodes of docker-compose's `cluster`
# profile run it (a Ray head, workers, and the `seislens index build --engine ray`
# driver), and so can `seislens serve --engine ray`. Ray keeps its session files in
# /tmp/ray and its object store in /dev/shm (give the container shm: compose's shm_size).
FROM serve AS cluster

USER root
WORKDIR /opt/seislens
RUN pip install ".[serve,cluster]" \
    && python -c "import importlib.util as u, sys; sys.exit('torch is installed; the cluster image must not have it' if u.find_spec('torch') else 0)" \
    && python -c "import ray, ray.data, ray.serve, pyarrow.fs, seislens.index.ray_build, seislens.service.ray_serve"

ENV RAY_USAGE_STATS_ENABLED=0 \
    OMP_NUM_THREADS=1

USER seislens
WORKDIR /home/seislens


# The default target (a build without --target builds the last stage): the CPU API.
FROM serve AS default
