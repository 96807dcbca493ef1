"""Every route of the REST API, at the root path (contract Part A.2 and A.4).

openqueue_site/middleware.py reads this list to know which paths are the
API's (they skip the browser-only middleware), so a route added here is
an API route everywhere at once.
"""

from django.urls import path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from api import probes, queue_control, schedules, views
from api.provision import ProvisionView

public = {"authentication_classes": [], "permission_classes": [AllowAny]}

urlpatterns = [
    path("jobs", views.JobsView.as_view(), name="jobs"),
    path("jobs/batch", views.BatchView.as_view(), name="jobs-batch"),
    path("jobs/<str:job_id>", views.JobStatusView.as_view(), name="job-status"),
    path("jobs/<str:job_id>/detail", views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<str:job_id>/cancel", views.CancelView.as_view(), name="job-cancel"),
    path("jobs/<str:job_id>/ack", views.AckView.as_view(), name="job-ack"),
    path("jobs/<str:job_id>/nack", views.NackView.as_view(), name="job-nack"),
    path("jobs/<str:job_id>/heartbeat", views.HeartbeatView.as_view(), name="job-heartbeat"),
    path("queues/<str:queue_name>/lease", views.LeaseView.as_view(), name="queue-lease"),
    # The batch API: paths no contract route can match.
    path(
        "queues/<str:queue_name>/lease/batch",
        views.BatchLeaseView.as_view(),
        name="queue-lease-batch",
    ),
    path("leases/ack", views.BatchAckView.as_view(), name="leases-ack"),
    path("leases/nack", views.BatchNackView.as_view(), name="leases-nack"),
    path("dashboard/queues", views.QueueStatsView.as_view(), name="queue-stats"),
    # Queue control, attempts and schedules (contract A.4).
    path("queues", queue_control.QueuesView.as_view(), name="queues"),
    path("queues/<str:queue_name>", queue_control.QueueView.as_view(), name="queue"),
    path(
        "queues/<str:queue_name>/purge",
        queue_control.QueuePurgeView.as_view(),
        name="queue-purge",
    ),
    path(
        "jobs/<str:job_id>/attempts",
        queue_control.JobAttemptsView.as_view(),
        name="job-attempts",
    ),
    path("schedules", schedules.SchedulesView.as_view(), name="schedules"),
    path("schedules/<str:name>", schedules.ScheduleView.as_view(), name="schedule"),
    path(
        "schedules/<str:name>/trigger",
        schedules.ScheduleTriggerView.as_view(),
        name="schedule-trigger",
    ),
    path("admin/provision", ProvisionView.as_view(), name="provision"),
    path("health", probes.HealthView.as_view(), name="health"),
    path("ready", probes.ReadyView.as_view(), name="ready"),
    path("metrics", probes.metrics_view, name="metrics"),
    # OpenAPI and Swagger UI, served locally (drf-spectacular-sidecar, no CDN).
    path("openapi.json", SpectacularJSONAPIView.as_view(**public), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi", **public), name="docs"),
]
