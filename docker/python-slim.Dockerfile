# A `python:X-slim-bookworm` equivalent for hosts with no registry, made by docker/bootstrap.py.
# PYTHON_SOURCE=copy: the context's python/ holds a staged CPython install tree (interpreter,
# libpython, headers, stdlib; no site-packages) of any patch release of the minor version, built
# on Debian bookworm (pyenv). PYTHON_SOURCE=debian: Debian's own python3 package of that minor
# version (bookworm: 3.11), used when the host has no such CPython. The result has the official
# image's layout: /usr/local/bin/python3, pip, LANG=C.UTF-8, CMD python3. The version used is in
# ENV PYTHON_VERSION and in the label org.accel.cpython (set by bootstrap.py).
ARG BASE=debian:bookworm-slim
FROM ${BASE}

ARG PYTHON_MINOR
ARG PYTHON_SOURCE=copy
ARG PYTHON_VERSION=${PYTHON_MINOR}
ENV LANG=C.UTF-8 \
    PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHON_VERSION=${PYTHON_VERSION}

# The shared libraries CPython's extension modules link against (ssl, ctypes, sqlite3, lzma,
# bz2, zlib, readline, curses, uuid), as in the official slim image; or Debian's python3.
# hadolint ignore=DL3008
RUN set -eux; \
    apt-get update; \
    if [ "$PYTHON_SOURCE" = debian ]; then \
        apt-get install -y --no-install-recommends ca-certificates netbase tzdata \
            "python${PYTHON_MINOR}" "python${PYTHON_MINOR}-venv" python3-pip; \
    else \
        apt-get install -y --no-install-recommends \
            ca-certificates \
            libbz2-1.0 \
            libffi8 \
            liblzma5 \
            libncursesw6 \
            libreadline8 \
            libsqlite3-0 \
            libssl3 \
            libuuid1 \
            netbase \
            tzdata \
            zlib1g \
        ; \
    fi; \
    rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /var/log/alternatives.log /var/cache/ldconfig/aux-cache

COPY python/ /usr/local/

RUN set -eux; \
    if [ "$PYTHON_SOURCE" = debian ]; then \
        for name in python3 python; do ln -s "/usr/bin/python${PYTHON_MINOR}" "/usr/local/bin/$name"; done; \
        ln -s /usr/bin/pip3 /usr/local/bin/pip3; ln -s /usr/bin/pip3 /usr/local/bin/pip; \
    else \
        ldconfig; \
        python3 -m ensurepip --default-pip; \
        for name in pip pip3; do [ -e "/usr/local/bin/$name" ] || ln -s "pip${PYTHON_MINOR}" "/usr/local/bin/$name"; done; \
        find /usr/local/lib -depth -type d -name __pycache__ -path '*/site-packages/*' -exec rm -rf '{}' +; \
        python3 -m compileall -q -j 0 -x '/(test|tests|idle_test|site-packages)/' "/usr/local/lib/python${PYTHON_MINOR}" || true; \
    fi; \
    rm -rf /var/cache/ldconfig/aux-cache /root/.cache; \
    python3 -m pip --version; \
    python3 -c 'import platform, ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, decimal; print("CPython", platform.python_version(), ssl.OPENSSL_VERSION)'

CMD ["python3"]
