# exnode: two stages. The build stage makes a wheel of the repository and installs it with its pinned
# dependencies into a virtualenv; the runtime image holds that virtualenv, the PostgreSQL client tools
# (pg_dump/pg_restore for `exnode backup`/`restore`) and nothing else, and runs as a non-root user.
# tests/e2e/test_container.py repeats the build stage's steps in a local virtualenv (no Docker engine there).
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto proto
COPY catalog catalog
COPY security security
COPY adapters adapters
COPY node node
RUN python -m pip wheel --no-deps --wheel-dir /wheels .
RUN python -m venv /opt/exnode && /opt/exnode/bin/pip install /wheels/exnode-*.whl

FROM python:3.11-slim
# postgresql-client of Debian bookworm is 15: pg_dump must be at least the server's major version
# (ops/compose.yaml runs postgres:15).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/exnode --shell /usr/sbin/nologin exnode \
    && install -d -o exnode -g exnode -m 0700 /var/lib/exnode /var/lib/exnode/data /var/lib/exnode/backups
COPY --from=build /opt/exnode /opt/exnode
COPY ops/container/start.sh ops/container/healthcheck.py /opt/exnode/
ENV PATH=/opt/exnode/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    EXNODE_DATA=/var/lib/exnode/data \
    EXNODE_SERVER_LISTEN=0.0.0.0:50051 EXNODE_SERVER_METRICS_LISTEN=0.0.0.0:9464 \
    EXNODE_CONSOLE_LISTEN=0.0.0.0:8080
USER exnode:exnode
WORKDIR /var/lib/exnode
VOLUME ["/var/lib/exnode/data", "/var/lib/exnode/backups"]
EXPOSE 50051 9464 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/exnode/bin/python", "/opt/exnode/healthcheck.py"]
STOPSIGNAL SIGTERM
CMD ["/opt/exnode/start.sh"]
