#!/usr/bin/env bash
# `make run`: set up and start OpenQueue locally on SQLite, from nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '==> %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
    say "Creating the virtualenv in .venv"
    python3 -m venv .venv
fi
say "Installing dependencies (requirements.txt)"
# (The filter hides this machine's pip notices about a missing local mirror.)
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2

mkdir -p var staticfiles
# One secret key for the local install, so every gunicorn worker signs
# sessions and CSRF tokens alike. Never committed (var/ is ignored).
if [ -z "${SECRET_KEY:-}" ]; then
    [ -s var/secret_key ] || .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret_key
    SECRET_KEY=$(cat var/secret_key)
    export SECRET_KEY
fi

say "Migrating the database"
.venv/bin/python manage.py migrate --noinput -v 0

PORT=${PORT:-8000}
.venv/bin/python manage.py bootstrap_demo --base-url "http://127.0.0.1:${PORT}"

say "Serving on http://127.0.0.1:${PORT} (Ctrl-C stops)"
exec .venv/bin/gunicorn openqueue_site.wsgi:application -c gunicorn.conf.py --bind "127.0.0.1:${PORT}"
