#!/usr/bin/env bash
# The whole test run: venv, lint, type check, migration check, SQLite leg, PostgreSQL leg,
# then a verification of both JUnit reports. This is what `make test` (and CI) runs.
# Extra arguments are passed to both pytest invocations.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

step() { echo "==> $*" >&2; }
die() { echo "test.sh: ERROR: $*" >&2; exit 1; }

# Remember whether the caller provided a database; we never leak it into the
# SQLite leg or the migration check.
EXTERNAL_DATABASE_URL="${DATABASE_URL:-}"
unset DATABASE_URL

RESULTS="$ROOT/.test-results"
PG_DIR=""
SQLITE_PID=""

cleanup() {
    if [ -n "$SQLITE_PID" ]; then
        kill "$SQLITE_PID" 2>/dev/null || true  # the SQLite leg, when interrupted
        SQLITE_PID=""
    fi
    if [ -n "$PG_DIR" ]; then
        "$ROOT/scripts/pg_throwaway.sh" stop "$PG_DIR" || true
        PG_DIR=""
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# a. virtualenv + dependencies
step "ensuring virtualenv (.venv) and dependencies"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -r requirements-dev.txt

# Browser tests (console/tests/test_browser.py) drive Debian's Chromium:
# Playwright cannot download its own browser here. Without root to install
# it, OPENQUEUE_SKIP_BROWSER_TESTS=1 runs everything else (CI never does).
if [ "${OPENQUEUE_SKIP_BROWSER_TESTS:-}" = "1" ]; then
    step "WARNING: OPENQUEUE_SKIP_BROWSER_TESTS=1: the browser tests are skipped; this run is incomplete"
elif [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        step "installing chromium with apt-get for the browser tests"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2 ||
            die "could not install chromium with apt-get"
    fi
    [ -x /usr/bin/chromium ] || die "/usr/bin/chromium is missing: install Debian's chromium package (as root: apt-get install chromium), or skip the browser tests with OPENQUEUE_SKIP_BROWSER_TESTS=1"
fi

# b. lint
step "lint: ruff check"
.venv/bin/ruff check .
step "lint: ruff format --check"
.venv/bin/ruff format --check .
step "types: mypy (the application code, pyproject.toml)"
.venv/bin/mypy

# c. forgotten migrations
step "checking for missing migrations"
.venv/bin/python manage.py makemigrations --check --dry-run

# c2. the container setup, without a Docker engine: hadolint, compose.yaml
# checks, and the Dockerfile's build and start steps run on the host
step "Docker: scripts/check_docker.sh"
scripts/check_docker.sh

mkdir -p "$RESULTS"
rm -f "$RESULTS"/sqlite.* "$RESULTS"/postgresql.*

# d+e. The two legs run at the same time: much of each is waiting (server
# processes starting, long-polls, subprocesses), and one after the other
# they took over 20 minutes on a slow 2-core machine. Each leg's output goes
# to .test-results/<leg>.log and is printed when both are done.
pg_rc=0
pg_url=""
if [ -n "$EXTERNAL_DATABASE_URL" ]; then
    step "PostgreSQL leg: using DATABASE_URL from the environment"
    pg_url="$EXTERNAL_DATABASE_URL"
else
    step "PostgreSQL leg: starting throwaway cluster"
    PG_DIR="$(mktemp -d /tmp/openqueue-pg.XXXXXX)"
    if ! pg_url="$("$ROOT/scripts/pg_throwaway.sh" start "$PG_DIR")"; then
        echo "test.sh: could not start a throwaway PostgreSQL cluster" >&2
        pg_url=""
        pg_rc=1
    fi
fi

step "SQLite leg and PostgreSQL leg: pytest, both at once (output: .test-results/{sqlite,postgresql}.log)"
sqlite_rc=0
.venv/bin/pytest --junitxml="$RESULTS/sqlite.xml" "$@" >"$RESULTS/sqlite.log" 2>&1 &
SQLITE_PID=$!
if [ -n "$pg_url" ]; then
    DATABASE_URL="$pg_url" .venv/bin/pytest --junitxml="$RESULTS/postgresql.xml" "$@" \
        >"$RESULTS/postgresql.log" 2>&1 || pg_rc=$?
fi
wait "$SQLITE_PID" || sqlite_rc=$?
SQLITE_PID=""
step "SQLite leg: output"
cat "$RESULTS/sqlite.log"
if [ -f "$RESULTS/postgresql.log" ]; then
    step "PostgreSQL leg: output"
    cat "$RESULTS/postgresql.log"
fi
cleanup

# f. verify reports
step "verifying JUnit reports"
verify_rc=0
.venv/bin/python - "$RESULTS" "$sqlite_rc" "$pg_rc" <<'PY' || verify_rc=$?
import os
import sys
import xml.etree.ElementTree as ET

results, sqlite_rc, pg_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
legs = [
    ("SQLite", "sqlite.xml", "sqlite", sqlite_rc),
    ("PostgreSQL", "postgresql.xml", "postgresql", pg_rc),
]
ok = True
for label, fname, vendor, rc in legs:
    path = os.path.join(results, fname)
    problems = []
    if not os.path.exists(path):
        print(f"{label} leg: DID NOT RUN ({fname} missing, pytest exit code {rc})")
        ok = False
        continue
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        print(f"{label} leg: unreadable report {fname}: {exc}")
        ok = False
        continue
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tests = failures = errors = skipped = 0
    vendors = set()
    for s in suites:
        tests += int(s.get("tests", 0))
        failures += int(s.get("failures", 0))
        errors += int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
        for prop in s.iter("property"):
            if prop.get("name") == "db_vendor":
                vendors.add(prop.get("value"))
    passed = tests - failures - errors - skipped
    # JUnit lists each subtest as a test case of its own ("name[label]" beside
    # the bare "name"); pytest's own summary counts them apart. So do we.
    cases = [(c.get("classname"), c.get("name") or "") for s in suites for c in s.iter("testcase")]
    names = set(cases)
    subtests = sum(
        1 for cls, name in cases if "[" in name and (cls, name.split("[", 1)[0]) in names
    )
    passed -= subtests
    if rc != 0:
        problems.append(f"pytest exit code {rc}")
    if tests <= 0:
        problems.append("no tests ran")
    if failures + errors:
        problems.append(f"{failures + errors} failures/errors")
    if vendors != {vendor}:
        problems.append(
            f"db_vendor property is {sorted(vendors) or 'missing'}, expected {vendor!r}"
        )
    status = "OK" if not problems else "FAILED (" + "; ".join(problems) + ")"
    print(
        f"{label} leg: {passed} passed, {failures} failed, {errors} errors, "
        f"{skipped} skipped, {subtests} subtests -- {status}"
    )
    if problems:
        ok = False
sys.exit(0 if ok else 1)
PY

if [ "$sqlite_rc" -ne 0 ] || [ "$pg_rc" -ne 0 ] || [ "$verify_rc" -ne 0 ]; then
    die "test run FAILED (sqlite pytest rc=$sqlite_rc, postgresql pytest rc=$pg_rc, verify rc=$verify_rc)"
fi
step "all checks passed"
