# rocketchat-omnichannel-exporter: multi-stage build.
#   docker build -t rocketchat-omnichannel-exporter:0.1.0 .
# The builder makes the wheel and installs it with its dependencies into /opt/venv; the final
# stage is the same slim Python with only that venv added. Both stages must use the same base:
# the venv's interpreter is a symlink to the base image's /usr/local/bin/python3.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The commit built, for --version and build_info (the context has no .git):
#   docker build --build-arg SOURCE_REVISION="$(git rev-parse HEAD)" ...
ARG SOURCE_REVISION=
ENV SOURCE_REVISION=${SOURCE_REVISION}
# Only what the wheel is built from (see also .dockerignore). setup.py stamps the revision and
# the build date into the wheel.
COPY pyproject.toml README.md setup.py ./
COPY exporter ./exporter
# The venv's modules are compiled here, checked by hash rather than by file time (COPY may
# not keep mtimes), so the read-only final image never tries to write .pyc files.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && /opt/venv/bin/pip install --no-compile /tmp/wheels/*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/venv/lib \
 && /opt/venv/bin/rocketchat-omnichannel-exporter --version

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rocketchat-omnichannel-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Rocket.Chat Omnichannel agent availability" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/rocketchat-omnichannel-exporter/rocketchat-omnichannel-exporter" \
      org.opencontainers.image.documentation="https://github.com/rocketchat-omnichannel-exporter/rocketchat-omnichannel-exporter#readme" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# No package manager for Python at run time: the exporter needs neither pip nor setuptools.
RUN python -m pip uninstall --yes pip setuptools wheel
COPY --from=builder /opt/venv /opt/venv
# Nothing is written at run time: no .pyc (compiled in the builder), no stdout buffering, and
# TMPDIR is the only writable mount (an emptyDir at /tmp in Kubernetes).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp
# A numeric, unprivileged user and group that exist in no base image ("nonroot" in distroless),
# so Kubernetes can verify runAsNonRoot without a passwd entry.
USER 65532:65532
WORKDIR /tmp
EXPOSE 9875
ENTRYPOINT ["rocketchat-omnichannel-exporter"]
CMD ["--config.file=/etc/rocketchat-omnichannel-exporter/config.yaml"]
