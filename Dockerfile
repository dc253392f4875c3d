# One image for all six Tradewire services: `docker run tradewire:latest run <service> --nats URL`.
FROM python:3.11-slim AS build

ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install --no-cache-dir uv==0.13.8

WORKDIR /src
# Third-party dependencies first: this layer is rebuilt only when the lock or a pyproject changes.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/backtest/pyproject.toml libs/backtest/
COPY services/datafeed/pyproject.toml services/datafeed/
COPY services/signals/pyproject.toml services/signals/
COPY services/risk/pyproject.toml services/risk/
COPY services/execution/pyproject.toml services/execution/
COPY services/ledger/pyproject.toml services/ledger/
COPY services/notifier/pyproject.toml services/notifier/
RUN uv sync --frozen --no-dev --no-install-workspace --no-editable

# Then the workspace packages themselves, installed (not linked) so /src is not needed at runtime.
COPY libs/ libs/
COPY services/ services/
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN useradd --system --no-log-init --uid 10001 --user-group --create-home tradewire \
    && mkdir -p /app/var \
    && chown tradewire:tradewire /app/var

WORKDIR /app
COPY --from=build /app/.venv /app/.venv
# The default configuration (config/tradewire.toml) and the demo dataset it replays.
COPY config/ /app/config/
COPY data/ /app/data/

USER 10001:10001
EXPOSE 8101-8106
ENTRYPOINT ["tradewire"]
CMD ["run", "datafeed"]
