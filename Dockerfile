# The OpenQueue image: gunicorn serving the API, admin and static files (whitenoise).
# compose.yaml runs it as web, migrate and maintenance; scripts/check_docker.sh runs
# these build and start steps on the host in CI, where no Docker engine exists.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OPENQUEUE_ENV=prod

# A fixed numeric id, so orchestrators can check "not root" (runAsNonRoot) and
# volumes can be prepared for it.
RUN groupadd --system --gid 10001 openqueue \
    && useradd --system --no-log-init --uid 10001 --gid openqueue --home-dir /app openqueue
WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# Static files are collected (and compressed) into the image; whitenoise serves
# them. collectstatic needs a key to import settings; the real one comes at run time.
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput -v 0
# The code stays root-owned and read-only for the app; only var/ is writable.
RUN mkdir -p /app/var && chown openqueue:openqueue /app/var

USER 10001:10001
EXPOSE 8000
# GET /health with a Host header from ALLOWED_HOSTS, or Django would answer 400.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "scripts/docker_healthcheck.py"]
CMD ["gunicorn", "openqueue_site.wsgi:application", "-c", "gunicorn.conf.py"]
