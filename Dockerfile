# A first working image; the operations work completes it (compose, healthcheck tuning).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OPENQUEUE_ENV=prod

RUN groupadd --system openqueue && useradd --system --gid openqueue --home /app openqueue
WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# collectstatic needs a key to import settings; the real one comes at run time.
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput -v 0 \
    && mkdir -p /app/var && chown -R openqueue:openqueue /app/var

USER openqueue
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"
CMD ["gunicorn", "openqueue_site.wsgi:application", "-c", "gunicorn.conf.py"]
