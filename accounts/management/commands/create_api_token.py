"""``manage.py create_api_token EMAIL``: create the user if needed, print a new token.

Only the raw token goes to stdout, so scripts can capture it::

    TOKEN=$(python manage.py create_api_token worker@example.com --name ci)
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email

from accounts.models import User
from accounts.services import issue_token


class Command(BaseCommand):
    help = "Create a user (if needed) and print a new API token for it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--name", default="cli", help="A label for the token.")
        parser.add_argument(
            "--no-create",
            action="store_true",
            help="Fail instead of creating the user when it does not exist.",
        )

    def handle(self, *args: Any, email: str, name: str, no_create: bool, **options: Any) -> None:
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{email!r} is not a valid email address.") from None
        email = User.objects.normalize_email(email)
        user = User.objects.filter(email=email).first()
        if user is None:
            if no_create:
                raise CommandError(f"No user {email}.")
            user = User.objects.create_user(email)
            self.stderr.write(f"Created user {email} (no password; set one with changepassword).")
        elif not user.is_active:
            raise CommandError(f"User {email} is inactive; its tokens would be refused.")
        issued = issue_token(owner=user, name=name)
        self.stderr.write(f"Issued token {issued.token.prefix}… named {name!r} for {email}.")
        self.stdout.write(issued.raw)
