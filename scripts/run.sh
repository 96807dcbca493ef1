#!/usr/bin/env bash
# `make run`: set up and start OpenQueue locally on SQLite, from nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'make run: %s\n' "$*" >&2; exit 1; }

PORT=${PORT:-8000}
# Before anything is installed or a token minted: is the port free?
if ! python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$PORT" 2>/dev/null; then
    die "port $PORT on 127.0.0.1 is taken (another OpenQueue?). Start on another one: PORT=8001 make run"
fi

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

.venv/bin/python manage.py bootstrap_demo --base-url "http://127.0.0.1:${PORT}"

say "Serving on http://127.0.0.1:${PORT} (Ctrl-C stops)"
exec .venv/bin/gunicorn openqueue_site.wsgi:application -c gunicorn.conf.py --bind "127.0.0.1:${PORT}"
