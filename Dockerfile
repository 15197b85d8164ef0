# IQTS image: one image, one process per container (iqts api | worker | chat | mcp).
FROM python:3.11-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/iqts/.venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    IQTS_STATE_DIR=/var/lib/iqts-state IQTS_LOG_FORMAT=json
RUN apt-get update && apt-get install -y --no-install-recommends build-essential curl procps \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv==0.13.8 \
    && useradd --system --create-home --home-dir /home/iqts iqts
WORKDIR /opt/iqts
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --all-extras --no-dev --no-install-project
COPY agent agent
COPY tools tools
COPY knowledge knowledge
COPY engine engine
COPY approvals approvals
COPY ui ui
COPY evals evals
RUN uv sync --frozen --all-extras --no-dev && mkdir -p /var/lib/iqts-state && chown iqts /var/lib/iqts-state
USER iqts
ENV PATH=/opt/iqts/.venv/bin:$PATH
EXPOSE 8000 8001
HEALTHCHECK --interval=15s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
CMD ["iqts", "api"]
