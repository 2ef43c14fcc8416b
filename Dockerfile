# winback: one image for one process (SQLite) or N replicas (PostgreSQL).
#   docker build -t winback .
#   docker run -v $PWD/config:/config:ro -v winback-data:/data -e SF_PASSWORD=... winback
# The install steps below are exercised by deploy/check-image-steps.sh (no Docker needed).
# The wheel is installed without its `sandbox` extra: the image carries no faker, lark or trustme
# (`winback demo` and `winback sandbox` say so; every production command works).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY connectors ./connectors
COPY sandbox ./sandbox
COPY config ./config
RUN python -m pip install --no-cache-dir --upgrade pip \
 && python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin winback \
 && mkdir -p /data /config && chown winback:winback /data
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER winback
WORKDIR /home/winback
# SQLite ledger on the data volume unless WINBACK_DATABASE_URL names PostgreSQL.
ENV WINBACK_DATABASE_URL=sqlite:////data/winback.db \
    LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["winback"]
CMD ["run", "/config/winback.yaml"]
