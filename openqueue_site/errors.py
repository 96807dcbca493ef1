"""The site's 404: an HTML page in the browser's parts, the API's JSON everywhere else."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from api.errors import not_found as api_not_found

# The parts of the site people browse: the console, its sign-in pages and the admin.
BROWSER_PREFIXES = ("/console/", "/accounts/", "/admin/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """An unknown or another tenant's job in the console is a page with the navigation;
    an unknown API route stays ``{"detail": "Not Found"}`` as in the contract."""
    if request.path_info.startswith(BROWSER_PREFIXES):
        return render(request, "console/not_found.html", status=404)
    return api_not_found(request, exception)
