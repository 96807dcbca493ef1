"""The site's URLs: the REST API at the root, the admin, the console and its sign-in."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts.forms import ConsoleLoginForm

urlpatterns = [
    # The REST contract, at the root (contract Part A.2).
    path("", include("api.urls")),
    # Operators.
    path("admin/", admin.site.urls),
    # The console for every user.
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=ConsoleLoginForm
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("console.urls")),
]

handler400 = "api.errors.bad_request"
handler403 = "api.errors.permission_denied"
handler404 = "openqueue_site.errors.not_found"
handler500 = "api.errors.server_error"
