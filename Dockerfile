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
ARG WHEELHOUSE=.cache/wheelhouse/py${PYTHON_VERSION}-${VARIANT}

# --------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder

ARG VARIANT
ARG TORCH_VERSION
# Used only when the wheelhouse is empty (a host with a registry that skipped the bootstrap).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG WHEELHOUSE
# 1: drop what torch does not need to train (tests, C++ headers, test binaries) and strip debug
# symbols from its shared libraries. 0: keep the wheels as published.
ARG TRIM=1

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
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

# The wheelhouse (filled on the host by docker/bootstrap.py) may be absent: the glob keeps COPY
# from failing, and the install below then uses the index instead.
COPY docker/requirements.txt docker/requirements-dev.txt ${WHEELHOUSE}* /tmp/wheels/

# Dependencies before the accel source, so that editing accel rebuilds only the last layers.
RUN set -eux; \
    case "$VARIANT" in \
        cpu|cuda) ;; \
        *) echo "VARIANT must be cpu or cuda, not '$VARIANT'" >&2; exit 2 ;; \
    esac; \
    wheels="$(find /tmp/wheels -maxdepth 1 -name '*.whl' | wc -l)"; \
    if [ "$wheels" -gt 0 ]; then \
        set -- --no-index --find-links /tmp/wheels; \
        echo "installing from the wheelhouse ($wheels wheels)"; \
    elif [ "$VARIANT" = cpu ]; then \
        set -- --extra-index-url "$TORCH_INDEX_URL"; \
    else \
        set --; \
    fi; \
    /opt/accel/venv/bin/pip install "$@" -r /tmp/wheels/requirements.txt "torch==${TORCH_VERSION}"; \
    /opt/accel/venv/bin/pip install "$@" --prefix /opt/accel/dev -r /tmp/wheels/requirements-dev.txt; \
    mkdir -p /opt/accel/build; \
    /opt/accel/venv/bin/pip download "$@" --no-deps --dest /opt/accel/build "setuptools>=69" wheel; \
    if [ "$TRIM" = 1 ]; then \
        site="$(/opt/accel/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"; \
        rm -rf "$site/torch/test" "$site/torch/include" "$site/torch/share/cmake" \
            "$site/torch/lib/libtorchbind_test.so" "$site/torch/lib/libjitbackend_test.so" \
            "$site/torch/lib/libbackend_with_compiler.so" "$site/torch/lib/libaoti_custom_ops.so"; \
        find "$site/torch/bin" -mindepth 1 ! -name torch_shm_manager -exec rm -rf '{}' +; \
        find "$site/numpy" -depth -type d -name tests -exec rm -rf '{}' +; \
        # Only torch's own libraries: numpy.libs and other auditwheel-patched ones break when stripped.
        strip --strip-unneeded "$site"/torch/lib/libtorch*.so "$site"/torch/lib/libc10*.so; \
    fi

# accel itself, from this checkout: built into a wheel offline (setuptools from the wheelhouse).
COPY pyproject.toml README.m[d] LICENS[E] /src/
COPY accel/ /src/accel/
RUN set -eux; \
    [ -e /src/README.md ] || echo "# accel" > /src/README.md; \
    /opt/accel/venv/bin/pip install --no-index --find-links /opt/accel/build --no-deps /src; \
    /opt/accel/venv/bin/python -m compileall -q /opt/accel/venv/lib/python*/site-packages/accel

# --------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

ARG PYTHON_VERSION
ARG VARIANT
ARG TORCH_VERSION
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
      org.accel.torch="${TORCH_VERSION}"

ENV VIRTUAL_ENV=/opt/accel/venv \
    PATH=/opt/accel/venv/bin:${PATH} \
    ACCEL_CONFIG_FILE=/etc/accel/config.yaml \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

RUN set -eux; \
    groupadd --gid "$ACCEL_UID" accel; \
    useradd --uid "$ACCEL_UID" --gid accel --create-home --shell /bin/bash accel; \
    install -d -o accel -g accel /output /workspace

COPY --from=builder /opt/accel/venv /opt/accel/venv
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
    python /opt/accel/smoke.py --variant "$VARIANT" --torch "$TORCH_VERSION"

USER ${ACCEL_UID}:${ACCEL_UID}
WORKDIR /workspace
ENTRYPOINT ["accel-entrypoint"]
CMD ["/opt/accel/example/train.py", "--output_dir", "/output"]

# --------------------------------------------------------------------------------------------
FROM runtime AS dev
COPY --from=builder /opt/accel/dev/ /opt/accel/venv/
RUN python -m pytest --version
