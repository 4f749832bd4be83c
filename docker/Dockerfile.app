# Minhu's app: one image for every process, chosen by the command (docker/entrypoint.sh):
#   actions | web | bot | deliverer | sweeper | migrate
# Build from the repository root:
#   docker build -f docker/Dockerfile.app --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t minhu-app .
# The `ca` secret is optional: where pip reaches PyPI only through a TLS proxy it carries that proxy's CA,
# mounted for the pip step only and never stored in a layer. BASE_IMAGE: any Debian 12 image with Python
# 3.11 (`python3.11` on PATH with venv); the official one by default.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=180
WORKDIR /src
# Dependencies first (a layer that changes only with pyproject.toml), then the code.
COPY pyproject.toml README.md ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca REQUESTS_CA_BUNDLE=/run/secrets/ca; fi \
    && python3.11 -m venv /opt/venv \
    && python3.11 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
       > /tmp/requirements.txt \
    && /opt/venv/bin/pip install -q -r /tmp/requirements.txt

FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MINHU_DATA_DIR=/data MINHU_DASHBOARD_HOST=0.0.0.0 MINHU_DASHBOARD_PORT=8080 MINHU_ACTION_PORT=5055 \
    MINHU_HEALTH_PORT=9100
RUN useradd --system --uid 10001 --create-home --home-dir /home/minhu minhu \
    && mkdir -p /data && chown minhu:minhu /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code runs from /app (PYTHONPATH), read-only to the user that runs it.
COPY pyproject.toml ./
COPY tickets tickets
COPY app app
COPY minhu minhu
COPY actions actions
COPY bot bot
COPY dashboard dashboard
COPY docker/entrypoint.sh /usr/local/bin/minhu-entrypoint
COPY docker/roles.py docker/roles.py
USER minhu
VOLUME ["/data"]
EXPOSE 5055 8080 9100
# Liveness: the /healthz of the process this container runs (docker/entrypoint.sh health; compose asks
# /readyz where start order depends on it).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["minhu-entrypoint", "health"]
ENTRYPOINT ["minhu-entrypoint"]
CMD ["web"]
