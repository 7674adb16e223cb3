# accel on Alpine (musl libc): stops with the reason while PyTorch publishes no musllinux wheel.
#
#   docker build --network host -f docker/alpine.Dockerfile .
#
# torch ships manylinux (glibc) wheels only and no sdist, so `pip install torch` on musl has
# nothing to install, and a manylinux wheel forced onto musl fails at import (glibc symbols).
# The build probes the index for a musllinux wheel first: the day one appears, this file goes on
# to build the same image as the Debian one (venv, non-root user, baked config, entrypoint).
# Use the python:X-slim-bookworm based images (Dockerfile) meanwhile.
ARG PYTHON_VERSION=3.12
ARG ALPINE_VERSION=3.22
FROM python:${PYTHON_VERSION}-alpine${ALPINE_VERSION}

ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/ash", "-o", "pipefail", "-c"]

RUN set -eux; \
    if ! pip download --only-binary=:all: --no-deps --dest /tmp/probe "torch==${TORCH_VERSION}" >/tmp/probe.log 2>&1; then \
        tail -n 3 /tmp/probe.log >&2; \
        echo "accel: no Alpine image: PyTorch publishes no musllinux wheel (and no sdist) for torch ${TORCH_VERSION}," \
            "so torch cannot be installed on musl libc. Build the Debian image instead: docker build -f Dockerfile ." >&2; \
        exit 1; \
    fi; \
    rm -rf /tmp/probe /tmp/probe.log

COPY docker/requirements.txt /tmp/requirements.txt
RUN set -eux; \
    python -m venv /opt/accel/venv; \
    /opt/accel/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt "torch==${TORCH_VERSION}"

COPY pyproject.toml README.m[d] /src/
COPY accel/ /src/accel/
# setpriv: the entrypoint drops from root to ACCEL_UID with it (busybox has none); the version is
# the Alpine release's own, fixed by ALPINE_VERSION.
# hadolint ignore=DL3018
RUN set -eux; \
    /opt/accel/venv/bin/pip install --no-deps /src; \
    apk add --no-cache setpriv; \
    addgroup -g 1000 accel; \
    adduser -D -u 1000 -G accel accel; \
    install -d -o accel -g accel /output /workspace

ENV PATH=/opt/accel/venv/bin:${PATH} \
    ACCEL_CONFIG_FILE=/etc/accel/config.yaml \
    PYTHONUNBUFFERED=1
COPY docker/configs/cpu-ddp.yaml /etc/accel/config.yaml
COPY docker/entrypoint.sh /usr/local/bin/accel-entrypoint
COPY docker/example/ /opt/accel/example/
COPY docker/smoke.py /opt/accel/smoke.py
RUN python /opt/accel/smoke.py --variant cpu --torch "${TORCH_VERSION}"

USER 1000:1000
WORKDIR /workspace
ENTRYPOINT ["accel-entrypoint"]
CMD ["/opt/accel/example/train.py", "--output_dir", "/output"]
