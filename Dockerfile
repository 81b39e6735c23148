# Two stages: build a virtualenv with the service, copy it into a slim runtime.
# BASE_IMAGE must provide python3 (3.11) with venv; both stages use it, so the
# virtualenv's interpreter path is the same in each.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Optional: docker/extra-ca.pem, a CA bundle for hosts behind a TLS-inspecting proxy
# (give the whole bundle, e.g. the host's /etc/ssl/certs/ca-certificates.crt).
COPY docker/ /tmp/docker/
RUN python3 -m venv /opt/venv \
 && if [ -f /tmp/docker/extra-ca.pem ]; then \
      /opt/venv/bin/pip config --site set global.cert /tmp/docker/extra-ca.pem; fi \
 && /opt/venv/bin/pip install --upgrade pip
# Dependencies first (a layer that survives code changes), then the package itself.
COPY pyproject.toml README.md /src/
# the transformers extra (KerasHub): the shipped dates-transformer is built from its layers
RUN mkdir -p /src/service && touch /src/service/__init__.py && /opt/venv/bin/pip install '/src[transformers]'
# keras-hub pulls in tensorflow-text, which pulls in the full `tensorflow` wheel: its files
# land in the same tensorflow/ directory over tensorflow-cpu's (a libtensorflow_cc of
# 1.1 GB with CUDA kernels in place of the CPU build's). Serving reads neither package:
# remove both and put tensorflow-cpu's own files back.
RUN /opt/venv/bin/pip uninstall -y -q tensorflow-text tensorflow \
 && /opt/venv/bin/pip install -q --no-deps --force-reinstall \
      "tensorflow-cpu==$(/opt/venv/bin/pip show tensorflow-cpu | sed -n 's/^Version: //p')"
COPY service /src/service
# (drop the stub's build dir: setuptools would keep its files, they look newer)
RUN rm -rf /src/build /src/*.egg-info \
 && /opt/venv/bin/pip install --no-deps --force-reinstall /src && rm -f /opt/venv/pip.conf
# What serving never reads (docs/deploying.md has the size of each): TensorFlow's C++
# headers, libclang (TensorFlow's build-time code generator), pip itself, the packages'
# own test suites, hf_xet (huggingface_hub's optional download accelerator), and the
# symbol tables of TensorFlow's shared libraries (`strip --strip-unneeded` keeps what
# dynamic linking uses; binutils only in this stage). Not the libraries that auditwheel
# vendored (numpy.libs, ...): strip breaks their patched ELF headers.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends binutils >/dev/null \
 && site=/opt/venv/lib/python3.11/site-packages \
 && rm -rf "$site"/tensorflow/include "$site"/clang "$site"/libclang-* "$site"/hf_xet* \
 && find "$site" -depth -type d -name tests -path '*/site-packages/*/*' -exec rm -rf {} + \
 && /opt/venv/bin/pip uninstall -y -q pip \
 && find "$site"/tensorflow -type f -name '*.so*' -exec strip --strip-unneeded {} +

FROM ${BASE_IMAGE}
RUN (getent passwd 1000 >/dev/null || useradd --uid 1000 --create-home --shell /usr/sbin/nologin app) \
 && mkdir -p /app && chown 1000:1000 /app
COPY --from=build /opt/venv /opt/venv
COPY model_store /app/model_store
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    SERVICE_HOST=0.0.0.0 \
    SERVICE_PORT=8000 \
    SERVICE_MODEL_STORE=/app/model_store \
    SERVICE_DEFAULT_MODEL=reverse
USER 1000
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
# one uvicorn worker per container: scale with replicas
CMD ["python", "-m", "service", "serve"]
