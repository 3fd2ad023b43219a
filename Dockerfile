# NormScope: the dashboard, the REST API and the training workers in one image.
#
#   docker build -t normscope .                      # CPU torch (default, ~1 GB smaller)
#   docker build -t normscope:cuda \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#   docker build -t normscope:ray --build-arg EXTRAS="[ray]" .  # for a Ray cluster
#
# Two stages: the build stage holds pip's work (wheels, build backends) so the runtime stage
# carries only the virtual environment and the project's source.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

# Torch comes from PyTorch's own index: the default CPU build keeps the image small; pass the
# index of a CUDA build (cu126, cu128, ...) for a GPU image. Installed before the project so pip
# never resolves the bare `torch` requirement to PyPI's multi-GB CUDA wheel.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv \
    && pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

# The source lives at the same path in both stages: the editable install records that path,
# and the frontend/ folder is served from beside the app package.
WORKDIR /opt/normscope
COPY pyproject.toml README.md ./
COPY normcore ./normcore
COPY app ./app
COPY frontend ./frontend
COPY docs/claims-results ./docs/claims-results
# EXTRAS="[ray]" adds Ray for the cluster profile of docker-compose.yml (a head and workers).
ARG EXTRAS=""
RUN pip install -e ".${EXTRAS}"


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="NormScope" \
      org.opencontainers.image.description="See what normalization does inside a neural network" \
      org.opencontainers.image.licenses="MIT"

# The 'fashion' data set is read from Debian's package (never downloaded at run time). Its
# version is whatever the base image's Debian release ships, hence no pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends dataset-fashion-mnist \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid so a bind-mounted data dir can be chowned to it on the host.
RUN groupadd --system --gid 10001 normscope \
    && useradd --system --uid 10001 --gid normscope --home-dir /home/normscope \
       --create-home --shell /usr/sbin/nologin normscope \
    && mkdir -p /data \
    && chown normscope:normscope /data

COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/normscope /opt/normscope

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NORMSCOPE_DATA_DIR=/data

# Runs, frames and the SQLite store: keep them across container upgrades.
VOLUME ["/data"]

USER 10001:10001
WORKDIR /home/normscope
EXPOSE 8000

# /healthz needs no token; slim images have no curl, so Python's urllib does the probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Binding 0.0.0.0 exposes the API beyond the container, so `serve` refuses to start without
# NORMSCOPE_TOKEN (compose reads it from .env). Arguments after the image name are appended,
# e.g. `docker run normscope --port 9000`.
ENTRYPOINT ["normscope", "serve", "--host", "0.0.0.0"]
CMD ["--port", "8000"]
