# A `python:X-slim-bookworm` equivalent for hosts with no registry, made by docker/bootstrap.py.
# Context: a staged CPython install tree in python/ (interpreter, libpython, headers, stdlib;
# no site-packages) taken from a CPython built on Debian bookworm (pyenv). The result has the same
# layout as the official image: /usr/local/bin/python3, pip, LANG=C.UTF-8, CMD python3.
ARG BASE=debian:bookworm-slim
FROM ${BASE}

ARG PYTHON_VERSION
ENV LANG=C.UTF-8 \
    PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHON_VERSION=${PYTHON_VERSION}

# The shared libraries CPython's extension modules link against (ssl, ctypes, sqlite3, lzma,
# bz2, zlib, readline, curses, uuid), as in the official slim image.
# hadolint ignore=DL3008
RUN set -eux; \
    apt-get update; \
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
    rm -rf /var/lib/apt/lists/*

COPY python/ /usr/local/

RUN set -eux; \
    ldconfig; \
    python3 -m ensurepip --default-pip; \
    python3 -m pip --version; \
    for name in pip pip3; do [ -e "/usr/local/bin/$name" ] || ln -s "pip${PYTHON_VERSION%.*}" "/usr/local/bin/$name"; done; \
    find /usr/local/lib -depth -type d -name __pycache__ -path '*/site-packages/*' -exec rm -rf '{}' +; \
    python3 -m compileall -q -j 0 -x '/(test|tests|idle_test|site-packages)/' "/usr/local/lib/python${PYTHON_VERSION%.*}" || true; \
    python3 -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, readline, decimal; print("ok", ssl.OPENSSL_VERSION)'

CMD ["python3"]
