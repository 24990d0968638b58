# syntax=docker/dockerfile:1
# Drift Auditor's image: `drift-auditor schedule` (the audits), `serve` (the UI) and `watch`,
# as the Helm chart deploy/helm/drift-auditor and cronjob.yaml run it. Two stages: wheels are
# built in the first, the second installs them and keeps no compiler, no pip cache, no wheels.
#
#   docker build -t drift-auditor:0.1.0 .     # the chart's default image.repository and tag
#
# No kubectl: the auditor talks to the API with the Python client. Neither helm nor kustomize
# either: plain YAML/JSON sources render in this image; for kustomize or Helm sources, build
# FROM this image and add those binaries (found on PATH or in $DRIFT_AUDITOR_TOOLS).

# Pinned by full version (bump deliberately; CI tests ran on 3.11).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY docker/constraints.txt docker/constraints.txt
COPY pyproject.toml README.md ./
COPY auditor ./auditor
# Every runtime dependency at the version the tests ran against (docker/constraints.txt).
RUN pip wheel --wheel-dir /wheels --constraint docker/constraints.txt .

FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/drift-auditor
# git for GitPython (clones and fetches), openssh-client for ssh:// sources with a key.
# Versions are not pinned: Debian replaces a package's version in the archive when it ships a
# security fix, so a pin stops building; the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client \
    && rm -rf /var/lib/apt/lists/*
# The wheels are mounted from the build stage, not copied: no layer keeps them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels drift-auditor==0.1.0
# The default compliance policy pack (cronjob.yaml's config points policies.directory here).
COPY policies /usr/share/drift-auditor/policies
# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify a numeric USER, and
# cronjob.yaml runs as (and sets fsGroup to) the same ids.
RUN groupadd --system --gid 10001 drift-auditor \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/drift-auditor \
       --no-create-home --shell /usr/sbin/nologin drift-auditor \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/drift-auditor
WORKDIR /var/lib/drift-auditor
USER 10001:10001
# serve's port (serve.port); the CronJob listens on nothing.
EXPOSE 8080
ENTRYPOINT ["drift-auditor"]
CMD ["run"]
