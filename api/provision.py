"""``POST /admin/provision``: create a user if needed and issue an API token."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.services import provision_user
from api.errors import PayloadTooLarge, RequestValidationError
from api.parsing import is_small_body, parse_json_body, validate_all
from api.schemas import (
    EMAIL_MAX_LENGTH,
    DetailOut,
    ProvisionOut,
    ProvisionRequest,
    ValidationErrorOut,
)
from ratelimits.buckets import auth_failures
from ratelimits.clients import client_address


class NotConfigured(exceptions.APIException):
    status_code = 503
    default_detail = "Admin provisioning is not configured on this server."


class ProvisionView(APIView):
    """Provisioning for automation (the hosted dashboard, scripts).

    Guarded by the ``X-Admin-Secret`` header, compared in constant time.
    Existing tokens stay valid unless ``rotate`` is true.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    http_method_names = ["post"]

    @extend_schema(
        operation_id="provision",
        request=ProvisionRequest,
        parameters=[OpenApiParameter("X-Admin-Secret", str, OpenApiParameter.HEADER)],
        responses={
            200: ProvisionOut,
            403: DetailOut,
            405: DetailOut,
            413: DetailOut,
            422: ValidationErrorOut,
            429: DetailOut,
            503: DetailOut,
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        if not is_small_body(request._request):
            # Read before the secret is checked, so never big (api/parsing.py).
            raise PayloadTooLarge(
                "Request body",
                "OPENQUEUE_PREAUTH_BODY_BYTES",
                settings.OPENQUEUE_PREAUTH_BODY_BYTES,
            )
        (body,) = validate_all((ProvisionRequest, parse_json_body(request._request), "body"))
        try:
            if len(body.email) > EMAIL_MAX_LENGTH:  # the users.email column
                raise DjangoValidationError("too long")
            validate_email(body.email)
        except DjangoValidationError:
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ["body", "email"],
                        "msg": "Value error, not a valid email address",
                        "input": body.email,
                    }
                ]
            ) from None
        if not settings.ADMIN_SECRET:
            raise NotConfigured()
        # Every try spends from the address's budget for the secret before it
        # is compared (429 past it); a right secret gives its try back.
        address = client_address(request)
        auth_failures.try_secret(address)
        sent = request.headers.get("X-Admin-Secret", "")
        if not hmac.compare_digest(sent.encode("utf-8"), settings.ADMIN_SECRET.encode("utf-8")):
            raise exceptions.PermissionDenied("Invalid or missing X-Admin-Secret header.")
        auth_failures.secret_was_right(address)
        result = provision_user(email=body.email, rotate=body.rotate)
        return Response(
            # The email as sent (contract §3.4), even where the stored one is normalized.
            {"token": result.raw_token, "email": body.email, "created": result.created}
        )
