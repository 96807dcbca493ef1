from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from accounts import console as token_console
from accounts.forms import ConsoleLoginForm
from accounts.views import ProvisionView
from queues import console, views
from queues.metrics import metrics_view

public = {"authentication_classes": [], "permission_classes": [AllowAny]}

urlpatterns = [
    # The REST contract, at the root (contract Part A.2).
    path("jobs", views.JobsView.as_view(), name="jobs"),
    path("jobs/batch", views.BatchView.as_view(), name="jobs-batch"),
    path("jobs/<str:job_id>", views.JobStatusView.as_view(), name="job-status"),
    path("jobs/<str:job_id>/detail", views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<str:job_id>/cancel", views.CancelView.as_view(), name="job-cancel"),
    path("jobs/<str:job_id>/ack", views.AckView.as_view(), name="job-ack"),
    path("jobs/<str:job_id>/nack", views.NackView.as_view(), name="job-nack"),
    path("jobs/<str:job_id>/heartbeat", views.HeartbeatView.as_view(), name="job-heartbeat"),
    path("queues/<str:queue_name>/lease", views.LeaseView.as_view(), name="queue-lease"),
    # The batch API (issue 5): paths no contract route can match.
    path(
        "queues/<str:queue_name>/lease/batch",
        views.BatchLeaseView.as_view(),
        name="queue-lease-batch",
    ),
    path("leases/ack", views.BatchAckView.as_view(), name="leases-ack"),
    path("leases/nack", views.BatchNackView.as_view(), name="leases-nack"),
    path("dashboard/queues", views.QueueStatsView.as_view(), name="queue-stats"),
    path("admin/provision", ProvisionView.as_view(), name="provision"),
    path("health", views.HealthView.as_view(), name="health"),
    path("ready", views.ReadyView.as_view(), name="ready"),
    path("metrics", metrics_view, name="metrics"),
    # OpenAPI and Swagger UI, served locally (drf-spectacular-sidecar, no CDN).
    path("openapi.json", SpectacularJSONAPIView.as_view(**public), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi", **public), name="docs"),
    # Operators.
    path("admin/", admin.site.urls),
    # The console for every user (server-rendered; Django's session login).
    path("", RedirectView.as_view(url="/console/"), name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=ConsoleLoginForm
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("console/", console.queue_list, name="console-queues"),
    path("console/jobs/", console.job_list, name="console-jobs"),
    path("console/jobs/<uuid:job_id>/", console.job_detail, name="console-job"),
    path("console/jobs/<uuid:job_id>/requeue/", console.job_requeue, name="console-job-requeue"),
    path("console/jobs/<uuid:job_id>/cancel/", console.job_cancel, name="console-job-cancel"),
    path("console/dlq/", console.dlq_list, name="console-dlq"),
    path("console/dlq/action/", console.dlq_action, name="console-dlq-action"),
    path("console/tokens/", token_console.token_list, name="console-tokens"),
    path(
        "console/tokens/<int:token_id>/revoke/",
        token_console.token_revoke,
        name="console-token-revoke",
    ),
]

handler400 = "openqueue_site.api.bad_request"
handler403 = "openqueue_site.api.permission_denied"
handler404 = "openqueue_site.api.not_found"
handler500 = "openqueue_site.api.server_error"
