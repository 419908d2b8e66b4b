# syntax=docker/dockerfile:1
# Production image: the same code runs as web, Celery worker or beat (docker-compose.prod.yml,
# deploy/kubernetes). Two stages: `build` installs the requirements into a virtualenv and
# collects the static files; `runtime` is the slim image with that virtualenv, the code and the
# collected files, running as an unprivileged user. /srv/static is where the compose file's
# migrate step copies the collected files for nginx (a volume there starts owned by that user).
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN SECRET_KEY=build-only ALLOWED_HOSTS=build ORCHESTRA_VAR_DIR=/tmp/orchestra \
    DJANGO_SETTINGS_MODULE=orchestra.settings.production STATIC_ROOT=/app/staticfiles \
    python manage.py collectstatic --noinput

FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=orchestra.settings.production \
    ORCHESTRA_VAR_DIR=/var/lib/orchestra \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    WEB_WORKERS=2

RUN useradd --system --uid 1001 --home-dir /app --shell /usr/sbin/nologin orchestra \
    && mkdir -p /var/lib/orchestra/media /var/lib/orchestra/backups /tmp/prometheus /srv/static \
    && chown -R orchestra /var/lib/orchestra /tmp/prometheus /srv/static
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app

USER orchestra
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "orchestra.healthcheck"]
# uvicorn with one worker per core: measured in bench/, daphne (one process) reaches about 60%
# of the throughput target; the same ASGI application serves HTTP, SSE and WebSockets. granian
# served more /v1 requests in most runs but holds 156 KiB per idle WebSocket to uvicorn's 29.
# --no-proxy-headers: the application alone decides who the client is, from TRUSTED_PROXIES
# (apps/accounts/limits.py); uvicorn's own rewriting would believe what a client writes.
# --ws-per-message-deflate false: the compression a browser offers kept two zlib contexts per
# WebSocket, 35 KiB of an idle connection's 65 (bench/README.md); the messages are small JSON.
CMD ["sh", "-c", "exec uvicorn orchestra.asgi:application --host 0.0.0.0 --port 8000 --workers $WEB_WORKERS --loop uvloop --http httptools --no-proxy-headers --no-access-log --lifespan on --ws-per-message-deflate false"]
