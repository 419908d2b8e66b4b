# Production image: the same code runs as web, Celery worker or beat (see docker-compose.prod.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=orchestra.settings.production \
    ORCHESTRA_VAR_DIR=/var/lib/orchestra \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    WEB_WORKERS=2

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN SECRET_KEY=build-only ALLOWED_HOSTS=build python manage.py collectstatic --noinput \
    && useradd --system --uid 1001 orchestra \
    && mkdir -p /var/lib/orchestra /tmp/prometheus \
    && chown orchestra /var/lib/orchestra /tmp/prometheus

USER orchestra
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health').status != 200)"
# uvicorn with one worker per core: measured in bench/, daphne (one process) reaches about 60%
# of the throughput target; the same ASGI application serves HTTP, SSE and WebSockets.
# --no-proxy-headers: the application alone decides who the client is, from TRUSTED_PROXIES
# (apps/accounts/limits.py); uvicorn's own rewriting would believe what a client writes.
CMD ["sh", "-c", "exec uvicorn orchestra.asgi:application --host 0.0.0.0 --port 8000 --workers $WEB_WORKERS --loop uvloop --http httptools --no-proxy-headers --no-access-log --lifespan on"]
