# syntax=docker/dockerfile:1
# One image for every service: the module to run is the argument, e.g.
#   docker run IMAGE services.intake
# and each Kubernetes Deployment sets `args: [services.<name>]`.
#
# Two stages: the builder generates gen/ from protos/ and installs the package
# into /opt/venv; the runtime gets that venv and nothing else (no compiler, no
# protoc, no pip cache, no sources). It runs as uid 10001 and writes only to
# /tmp and $SENDMESH_VAR_DIR, so it runs with a read-only root filesystem.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src

# Code generation tools in a venv of their own, which stays in this stage.
# Same pins as the dev extra of pyproject.toml (a test keeps them in step).
RUN python -m venv /opt/codegen \
 && /opt/codegen/bin/pip install \
      "grpcio-tools==1.85.1" "mypy-protobuf==5.1.0" "googleapis-common-protos>=1.70"

# Dependencies first, from pyproject.toml alone, so a code change reuses this layer.
COPY pyproject.toml README.md ./
RUN python -m venv /opt/venv \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt

# gen/ is built here, never copied from the build context: one home, one command.
COPY protos protos
COPY scripts/protos.sh scripts/protos.sh
RUN PYTHON=/opt/codegen/bin/python bash scripts/protos.sh gen

COPY cli cli
COPY services services
COPY shared shared
# Not editable: the code lives in site-packages, byte-compiled at install time,
# so nothing is written next to it at run time.
RUN /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/python -c "import services.intake, shared.runtime, sendmesh.bus.v1.envelope_pb2"


FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SENDMESH_VAR_DIR=/var/lib/sendmesh \
    SENDMESH_GRPC_HOST=0.0.0.0 \
    SENDMESH_METRICS_HOST=0.0.0.0 \
    SENDMESH_LOG_FORMAT=json

# A numeric uid, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 sendmesh \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin sendmesh \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/sendmesh

COPY --from=builder /opt/venv /opt/venv

WORKDIR /var/lib/sendmesh
USER 10001:10001
# gRPC 50051-50059 and /metrics 9101-9109, one pair per service (cli/mesh.py).
EXPOSE 50051-50059 9101-9109
# No HEALTHCHECK: Kubernetes ignores it; the Deployments probe gRPC health
# ("" for readiness, "liveness" for liveness) on each service's port.
ENTRYPOINT ["python", "-m"]
CMD ["services.intake"]
