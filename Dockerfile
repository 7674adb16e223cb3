# accel's images: one parametrised multi-stage build.
#
#   docker build --network host -t accel:py3.11-cpu .                     # the default cell
#   docker build --network host --build-arg VARIANT=cuda --build-arg TORCH_VERSION=2.14.1 -t accel:py3.11-cuda .
#
# Cells and their pins live in docker/matrix.json; `python3 docker/bootstrap.py` builds a cell,
# making the base image and the wheelhouse first when no registry can be reached.
#
# Stages: builder (venv from the wheelhouse) -> runtime (the product: non-root, baked config,
# entrypoint) -> dev (runtime + pytest, for compose's `tests` service).
# Written for the legacy builder too (docker-py): no `RUN --mount`, no heredocs, no syntax line.

ARG PYTHON_VERSION=3.11
# cpu: torch's CPU build (no CUDA libraries). cuda: PyPI's torch, which brings its CUDA runtime
# as nvidia-* wheels, so the host needs only the driver.
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0+cpu
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim-bookworm
# Resolved here, before any FROM: python base images set ENV PYTHON_VERSION to the full
# version (3.11.7), which overrides an ARG of that name inside a stage.
ARG CELL=py${PYTHON_VERSION}-${VARIANT}
ARG WHEELHOUSE=.cache/wheelhouse/${CELL}

# --------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder
# Every image of this file carries it: `docker image prune --filter label=org.accel.managed`
# (what docker/bootstrap.py runs after a build) removes only what accel's builds left behind.
LABEL org.accel.managed=1

ARG CELL
ARG WHEELHOUSE
# 1: drop what torch does not need to train (tests, C++ headers, test binaries) and strip debug
# symbols from its shared libraries. 0: keep the wheels as published.
ARG TRIM=1

# Reproducible installs: with SOURCE_DATE_EPOCH set, pip and compileall write hash-based .pyc
# files (PEP 552: no source mtime inside); a fixed hash seed keeps set constants in .pyc files
# in one order. Inside the build only its presence matters: the layer mtimes and `created`
# fields are set to the commit time when docker/bootstrap.py normalises the built image.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    SOURCE_DATE_EPOCH=315532800 \
    PYTHONHASHSEED=0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# binutils: `strip` for the trim step, builder stage only.
# hadolint ignore=DL3008
RUN set -eux; \
    if [ "$TRIM" = 1 ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends binutils; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/accel/venv

# The cell's lock (docker/lock.py) and its wheelhouse (docker/bootstrap.py wheels, which checks
# every file against the lock before it starts a build).
COPY docker/locks/${CELL}/ /tmp/lock/
COPY ${WHEELHOUSE}/ /tmp/wheels/

# Exactly the locked files, in pip's hash-checking mode, never from an index. Dependencies
# before the accel source, so that editing accel rebuilds only the last layers.
RUN set -eux; \
    python="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; \
    if grep -q '^# unresolved:' /tmp/lock/requirements.txt; then \
        echo "cell ${CELL}: no lock ($(sed -n 's/^# unresolved: //p' /tmp/lock/requirements.txt))" >&2; exit 2; \
    fi; \
    if ! grep -qx "# python: $python" /tmp/lock/requirements.txt; then \
        echo "cell ${CELL}: docker/locks/${CELL}/requirements.txt is not for Python $python" >&2; exit 2; \
    fi; \
    set -- --require-hashes --no-deps --no-index --find-links /tmp/wheels; \
    /opt/accel/venv/bin/pip install "$@" -r /tmp/lock/requirements.txt; \
    /opt/accel/venv/bin/pip install "$@" --prefix /opt/accel/dev -r /tmp/lock/requirements-dev.txt; \
    if [ "$TRIM" = 1 ]; then \
        site="$(/opt/accel/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"; \
        rm -rf "$site/torch/test" "$site/torch/include" "$site/torch/share/cmake" \
            "$site/torch/lib/libtorchbind_test.so" "$site/torch/lib/libjitbackend_test.so" \
            "$site/torch/lib/libbackend_with_compiler.so" "$site/torch/lib/libaoti_custom_ops.so"; \
        find "$site/torch/bin" -mindepth 1 ! -name torch_shm_manager -exec rm -rf '{}' +; \
        # numpy's test suites go, but numpy.testing (which users' tests import) must keep working:
        # numpy < 2.3 imports numpy/_core/tests/_natype.py from it, so that one file stays.
        find "$site/numpy" -depth -type d -name tests ! -path "$site/numpy/_core/tests" -exec rm -rf '{}' +; \
        if [ -d "$site/numpy/_core/tests" ]; then \
            find "$site/numpy/_core/tests" -mindepth 1 ! -name _natype.py -exec rm -rf '{}' +; \
        fi; \
        /opt/accel/venv/bin/python -B -c 'import numpy.testing'; \
        # Only torch's own libraries: numpy.libs and other auditwheel-patched ones break when stripped.
        strip --strip-unneeded "$site"/torch/lib/libtorch*.so "$site"/torch/lib/libc10*.so; \
    fi; \
    rm -rf /tmp/wheels /root/.cache

# accel itself, from this checkout, built offline by the locked build backend (setuptools is in
# the lock) with no build isolation, so no unpinned build dependency is fetched. Then the
# environment's identity: the venv's file manifest and its digest (accel.envlock), which the
# image's labels and `accel env --verify` report.
COPY pyproject.toml README.m[d] LICENS[E] /src/
COPY accel/ /src/accel/
RUN set -eux; \
    [ -e /src/README.md ] || echo "# accel" > /src/README.md; \
    /opt/accel/venv/bin/pip install --no-index --no-deps --no-build-isolation /src; \
    rm -rf /src/build /src/*.egg-info /root/.cache; \
    PYTHONDONTWRITEBYTECODE=1 /opt/accel/venv/bin/python -m accel.envlock seal \
        --venv /opt/accel/venv --cell "$CELL" --lock /tmp/lock/requirements.txt --out /opt/accel/environment

# --------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

ARG PYTHON_VERSION
ARG VARIANT
ARG TORCH_VERSION
ARG CELL
ARG ACCEL_VERSION=0.1.0
ARG VCS_REF=unknown
ARG SOURCE_URL=https://github.com/accel-dev/accel
ARG BASE_IMAGE
# The baked config: a name in docker/configs/. Empty picks cpu-ddp (cpu) or gpu (cuda).
ARG ACCEL_CONFIG=
ARG ACCEL_UID=1000

LABEL org.opencontainers.image.title="accel" \
      org.opencontainers.image.description="accel: PyTorch training on any distributed set-up (${VARIANT}, Python ${PYTHON_VERSION}, torch ${TORCH_VERSION})" \
      org.opencontainers.image.version="${ACCEL_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.accel.variant="${VARIANT}" \
      org.accel.python="${PYTHON_VERSION}" \
      org.accel.torch="${TORCH_VERSION}" \
      org.accel.cell="${CELL}" \
      org.accel.managed=1

ENV VIRTUAL_ENV=/opt/accel/venv \
    PATH=/opt/accel/venv/bin:${PATH} \
    ACCEL_CONFIG_FILE=/etc/accel/config.yaml \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# useradd stamps the day of the build into /etc/shadow: the field is left empty instead (no
# password ageing; the account has no password anyway), and its logs are dropped.
RUN set -eux; \
    groupadd --gid "$ACCEL_UID" accel; \
    useradd --uid "$ACCEL_UID" --gid accel --create-home --shell /bin/bash accel; \
    sed -i -E 's/^(accel:[^:]*):[0-9]*:/\1::/' /etc/shadow; \
    rm -f /etc/shadow- /etc/gshadow- /etc/passwd- /etc/group- /var/log/lastlog /var/log/faillog; \
    install -d -o accel -g accel /output /workspace

COPY --from=builder /opt/accel/venv /opt/accel/venv
COPY --from=builder /opt/accel/environment /opt/accel/environment
COPY docker/configs/ /etc/accel/configs/
COPY docker/entrypoint.sh /usr/local/bin/accel-entrypoint
COPY docker/smoke.py /opt/accel/smoke.py
COPY docker/example/ /opt/accel/example/

RUN set -eux; \
    config="$ACCEL_CONFIG"; \
    if [ -z "$config" ]; then \
        if [ "$VARIANT" = cuda ]; then config=gpu; else config=cpu-ddp; fi; \
    fi; \
    ln -s "configs/$config.yaml" /etc/accel/config.yaml; \
    chmod 0755 /usr/local/bin/accel-entrypoint; \
    PYTHONDONTWRITEBYTECODE=1 python /opt/accel/smoke.py --variant "$VARIANT" --torch "$TORCH_VERSION"; \
    rm -rf /tmp/* /root/.cache /root/.config

USER ${ACCEL_UID}:${ACCEL_UID}
WORKDIR /workspace
ENTRYPOINT ["accel-entrypoint"]
CMD ["/opt/accel/example/train.py", "--output_dir", "/output"]

# --------------------------------------------------------------------------------------------
# The test tools join the venv as a recorded extension: `accel env --verify` says "extended".
FROM runtime AS dev
ARG ACCEL_UID=1000
USER 0
COPY --from=builder /opt/accel/dev/ /opt/accel/venv/
RUN PYTHONDONTWRITEBYTECODE=1 python -m accel.envlock extend dev && PYTHONDONTWRITEBYTECODE=1 python -m pytest --version
USER ${ACCEL_UID}:${ACCEL_UID}
