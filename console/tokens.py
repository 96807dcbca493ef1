"""API tokens in the console: list, create (the secret is shown once), revoke.

Only the signed-in user's own tokens are ever looked up, so another user's
token is a 404. Issuing and revoking go through accounts/services.py.
"""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts.models import ApiToken, User
from accounts.services import issue_token, revoke_token
from openqueue_site import audit

# The session key that carries a new token's secret from the POST to the GET that shows it.
_NEW_TOKEN = "_".join(("openqueue", "new", "token"))  # a session key, not a secret


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "e.g. billing-worker", "autocomplete": "off"}),
    )


@login_required
@never_cache  # the page that shows a new secret must not be kept by any cache
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        issued = issue_token(owner=cast(User, request.user), name=form.cleaned_data["name"])
        audit.record(
            request, action="created", model=ApiToken, count=1, obj=issued.token, kind="added"
        )
        # Post/redirect/get: reloading the page that shows the secret must not
        # issue a second token. The secret waits in the session for the one
        # GET that shows it, and is gone from there as soon as it is shown.
        request.session[_NEW_TOKEN] = {"id": issued.token.pk, "secret": issued.raw}
        return HttpResponseRedirect(reverse("console-tokens"))
    created = request.session.pop(_NEW_TOKEN, None) if request.method == "GET" else None
    if created is not None:
        token = ApiToken.objects.filter(pk=created["id"], owner_id=request.user.pk).first()
        if token is not None:
            base_url = request.build_absolute_uri("/").rstrip("/")
            return render(
                request,
                "console/token_created.html",
                {"token": token, "secret": created["secret"], "base_url": base_url},
            )
    tokens = ApiToken.objects.filter(owner_id=request.user.pk).order_by("revoked_at", "-created_at")
    return render(request, "console/token_list.html", {"form": form, "tokens": tokens})


@login_required
@require_http_methods(["GET", "POST"])
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    """GET asks for confirmation; POST revokes."""
    token = get_object_or_404(ApiToken, pk=token_id, owner=request.user)
    if request.method == "GET":
        return render(request, "console/token_revoke.html", {"token": token})
    if revoke_token(token=token):
        audit.record(request, action="revoked", model=ApiToken, count=1, obj=token)
        messages.success(request, f"Token “{token.name}” revoked. It no longer works.")
    else:
        messages.warning(request, f"Token “{token.name}” was already revoked.")
    return HttpResponseRedirect(reverse("console-tokens"))
