"""``manage.py bootstrap_demo``: the local demo account that ``make run`` prints.

First run: creates ``demo@example.com`` as a staff superuser with a random
password and prints it (there is no default password anywhere). Every run:
issues a fresh API token and prints it with a curl example.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from accounts.models import User
from accounts.services import issue_token


class Command(BaseCommand):
    help = "Create the local demo user on first run and print a fresh API token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", default="demo@example.com")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, email: str, base_url: str, **options: Any) -> None:
        user = User.objects.filter(email=email).first()
        password = None
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser(email, password)
        issued = issue_token(owner=user, name=f"make run {timezone.now():%Y-%m-%d %H:%M:%S}")
        out = self.stdout.write
        out("")
        out("OpenQueue is starting on " + base_url)
        out(f"  Log in:       {base_url}/accounts/login/  (console: queues, dead letters, tokens)")
        out(f"  Admin:        {base_url}/admin/  (staff: all tenants' jobs)")
        out(f"  Email:        {email}")
        if password:
            out(f"  Password:     {password}   (shown once; change it in the admin)")
        else:
            out(
                "  Password:     set on first run "
                f"(reset: .venv/bin/python manage.py changepassword {email})"
            )
        out(f"  API docs:     {base_url}/docs")
        out(f"  API token:    {issued.raw}")
        out("")
        out("Try it:")
        out(f"  curl -s -X POST {base_url}/jobs -H 'Authorization: Bearer {issued.raw}' \\")
        out(
            '       -H \'Content-Type: application/json\' -d \'{"queue_name": "emails", '
            '"payload": {"to": "a@example.com"}}\''
        )
        out(
            f"  curl -s -X POST {base_url}/queues/emails/lease "
            f"-H 'Authorization: Bearer {issued.raw}' \\"
        )
        out("       -H 'Content-Type: application/json' -d '{\"worker_id\": \"me\"}'")
        out("  # ...then, with the job id and lease token from that answer, say it is done:")
        out(
            f"  curl -s -X POST {base_url}/jobs/JOB_ID/ack "
            f"-H 'Authorization: Bearer {issued.raw}' \\"
        )
        out("       -H 'Content-Type: application/json' -d '{\"lease_token\": \"LEASE_TOKEN\"}'")
        out("")
