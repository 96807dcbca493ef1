"""What a newcomer meets first: `make run` and what it prints (issue 11, item 9)."""

from __future__ import annotations

import socket
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from accounts.models import ApiToken

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_with_its_port_taken_stops_before_doing_anything():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = subprocess.run(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in result.stderr
    assert "PORT=8001 make run" in result.stderr
    # It said so first: nothing installed, migrated or minted.
    assert "Installing" not in result.stderr and "Migrating" not in result.stderr


@pytest.mark.django_db
def test_the_demo_printout_works_outside_the_venv_and_finishes_its_job():
    first, again = StringIO(), StringIO()
    call_command("bootstrap_demo", email="new@example.com", stdout=first)
    call_command("bootstrap_demo", email="new@example.com", stdout=again)

    text = again.getvalue()
    assert ".venv/bin/python manage.py changepassword new@example.com" in text
    assert "/jobs/JOB_ID/ack" in text and "LEASE_TOKEN" in text  # the example acks what it leased
    token = next(line.split()[-1] for line in text.splitlines() if "API token:" in line)
    assert ApiToken.objects.filter(prefix=token[:12], revoked_at=None).exists()
