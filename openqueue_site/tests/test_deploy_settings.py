"""Production settings: check --deploy is clean, no SECRET_KEY no start, no default credentials."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "k3y-" + "Zq8rT1vXw9yB2nC4mD6fG8hJ0kL2pQ4sU6wY8aE0iO2uA4" * 2


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "OPENQUEUE_ENV": "prod", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY=STRONG_KEY)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_is_clean_with_hsts_and_https_redirect_on():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY=STRONG_KEY,
        OPENQUEUE_HSTS_SECONDS="31536000",
        OPENQUEUE_HSTS_INCLUDE_SUBDOMAINS="true",
        OPENQUEUE_HSTS_PRELOAD="true",
        OPENQUEUE_SSL_REDIRECT="true",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_fails_with_a_weak_secret_key():
    result = manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY="short")
    assert result.returncode != 0 and "security.W009" in result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    result = manage("check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when OPENQUEUE_ENV=prod" in result.stderr


def test_production_refuses_to_start_with_debug_on():
    result = manage("check", SECRET_KEY=STRONG_KEY, DEBUG="true")
    assert result.returncode != 0 and "DEBUG must be off" in result.stderr


def test_production_settings_mark_cookies_secure_and_set_security_headers():
    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.SECURE_CONTENT_TYPE_NOSNIFF, s.X_FRAME_OPTIONS, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_PROXY_SSL_HEADER)"
    )
    result = manage(
        "shell",
        "-c",
        code,
        SECRET_KEY=STRONG_KEY,
        OPENQUEUE_HSTS_SECONDS="600",
        OPENQUEUE_PROXY_SSL_HEADER="X-Forwarded-Proto",
    )
    assert result.stdout.split("\n")[-2] == (
        "True True True True DENY 600 ('HTTP_X_FORWARDED_PROTO', 'https')"
    ), result.stderr


@pytest.mark.django_db
def test_responses_carry_nosniff_frame_and_referrer_headers(client):
    response = client.get("/health")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


# A literal password/secret/token assignment in code or configuration: the
# repo must hold no default credential that a deployment could inherit.
CREDENTIAL = re.compile(
    r"""(?imx)
    (password|passwd|secret(_key)?|api_key|token)["']?\s*[:=]\s*
    ["'][^"'$\{\s]{4,}["']\s*(,|\#.*)?$
    """
)
SCANNED = {".py", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".env", ".example", ".sh", ""}
# Tests, their fixtures and the benchmark's own throwaway servers use
# throwaway values on purpose; none of them is ever deployed.
SKIPPED_DIRS = {
    ".venv",
    ".git",
    "node_modules",
    "staticfiles",
    "var",
    "__pycache__",
    "tests",
    "bench",
}
SKIPPED_FILES = {"conftest.py"}


@pytest.mark.parametrize(
    "line",
    ['ADMIN_SECRET = "hunter22"', '    "password": "admin1234",', "POSTGRES_PASSWORD: 'openqueue'"],
)
def test_credential_pattern_catches_literal_defaults(line):
    assert CREDENTIAL.search(line)


@pytest.mark.parametrize(
    "line",
    ['SECRET_KEY = env_str("SECRET_KEY")', 'SECRET_KEY = "dev-" + secrets.token_urlsafe(48)'],
)
def test_credential_pattern_ignores_values_read_from_the_environment(line):
    assert not CREDENTIAL.search(line)


def test_no_default_credentials_in_the_repository():
    offenders = []
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        if not path.is_file() or SKIPPED_DIRS & parts or path.name in SKIPPED_FILES:
            continue
        if path.suffix not in SCANNED and path.name not in {"Dockerfile", ".env.example"}:
            continue
        text = path.read_text(errors="ignore")
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in CREDENTIAL.finditer(text)]
    assert offenders == []


@pytest.mark.parametrize(
    ("env", "public"),
    [
        ({}, "False"),
        ({"OPENQUEUE_METRICS_PUBLIC": "true"}, "True"),
        ({"OPENQUEUE_ENV": "dev"}, "True"),
    ],
)
def test_metrics_are_not_public_in_production_unless_said_so(env, public):
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.OPENQUEUE_METRICS_PUBLIC)",
        SECRET_KEY=STRONG_KEY,
        **env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == public
