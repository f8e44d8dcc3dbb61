# exnode: multi-stage build; the runtime image holds only the installed package and runs as non-root.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto proto
COPY catalog catalog
COPY security security
COPY adapters adapters
COPY node node
RUN python -m venv /opt/exnode && /opt/exnode/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --create-home --home-dir /var/lib/exnode --uid 10001 exnode
COPY --from=build /opt/exnode /opt/exnode
ENV PATH=/opt/exnode/bin:$PATH EXNODE_DATA=/var/lib/exnode/data \
    EXNODE_SERVER_LISTEN=0.0.0.0:50051 EXNODE_SERVER_METRICS_LISTEN=0.0.0.0:9464
USER exnode
WORKDIR /var/lib/exnode
EXPOSE 50051 9464
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import grpc; from grpc_health.v1 import health_pb2, health_pb2_grpc; \
c = grpc.insecure_channel('127.0.0.1:50051'); \
r = health_pb2_grpc.HealthStub(c).Check(health_pb2.HealthCheckRequest(), timeout=2); \
raise SystemExit(r.status != 1)"
CMD ["sh", "-c", "exnode init --data \"$EXNODE_DATA\" && exec exnode serve --data \"$EXNODE_DATA\""]
