# exnode: two stages. The build stage makes a wheel of the repository and installs it with its pinned
# dependencies into a virtualenv; the runtime image holds that virtualenv, the PostgreSQL client tools
# (pg_dump/pg_restore for `exnode backup`/`restore`) and nothing else, and runs as a non-root user.
# BASE: any Debian bookworm image with Python 3.11 and its venv module. CI cannot reach an image registry
# and passes a base it made from Debian's packages (ops/container/local-base.sh, tests/e2e/test_image.py);
# tests/e2e/test_container.py also repeats the build stage's steps in a local virtualenv.
ARG BASE=python:3.11-slim
# hadolint ignore=DL3006
FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto proto
COPY catalog catalog
COPY security security
COPY adapters adapters
COPY node node
# A wheelhouse (ops/container/wheelhouse.sh) replaces the package index where none can be reached.
COPY ops/container/wheelhouse /wheelhouse
RUN python3 -m venv /opt/exnode \
    && if ls /wheelhouse/*.whl >/dev/null 2>&1; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelhouse; fi \
    && /opt/exnode/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/exnode/bin/pip install /wheels/exnode-*.whl

# hadolint ignore=DL3006
FROM ${BASE}
# postgresql-client of Debian bookworm is 15: pg_dump must be at least the server's major version
# (ops/compose.yaml runs postgres:15). Pinned (hadolint DL3008) to bookworm-security's version: a newer
# security release makes this pin fail the build, on purpose — bump it then.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-15=15.20-0+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 exnode \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/exnode --shell /usr/sbin/nologin exnode \
    && install -d -o exnode -g exnode -m 0700 /var/lib/exnode /var/lib/exnode/data /var/lib/exnode/backups
COPY --from=build /opt/exnode /opt/exnode
COPY ops/container/start.sh ops/container/healthcheck.py /opt/exnode/
ENV PATH=/opt/exnode/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    EXNODE_DATA=/var/lib/exnode/data \
    EXNODE_SERVER_LISTEN=0.0.0.0:50051 EXNODE_SERVER_METRICS_LISTEN=0.0.0.0:9464 \
    EXNODE_CONSOLE_LISTEN=0.0.0.0:8080
# numeric, so that the host (and Kubernetes' runAsNonRoot) can tell it is not root
USER 10001:10001
WORKDIR /var/lib/exnode
VOLUME ["/var/lib/exnode/data", "/var/lib/exnode/backups"]
EXPOSE 50051 9464 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/exnode/bin/python", "/opt/exnode/healthcheck.py"]
STOPSIGNAL SIGTERM
CMD ["/opt/exnode/start.sh"]
