"""openqueue-client: the first-party Python client of the OpenQueue HTTP job queue.

    from openqueue_client import Client

    with Client("http://localhost:8000", token) as client:
        client.enqueue("emails", {"to": "ada@example.com"})

``Client`` and ``AsyncClient`` speak every route; ``Worker`` runs a handler
for each leased job; ``openqueue_client.django`` is a backend for Django's
tasks API.
"""

__version__ = "0.1.0"

from openqueue_client._core import RetryPolicy
from openqueue_client.aio import AsyncClient
from openqueue_client.client import Client
from openqueue_client.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    OpenQueueError,
    PayloadTooLargeError,
    Permanent,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    TransportError,
    ValidationError,
)
from openqueue_client.models import (
    Attempt,
    Enqueued,
    ItemResult,
    Job,
    JobList,
    Lease,
    NewJob,
    Provisioned,
    Queue,
    QueueStats,
    Schedule,
)
from openqueue_client.worker import Worker

__all__ = [
    "APIError",
    "AsyncClient",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Enqueued",
    "ItemResult",
    "Job",
    "JobList",
    "Lease",
    "NewJob",
    "NotFoundError",
    "OpenQueueError",
    "PayloadTooLargeError",
    "Permanent",
    "PermissionDeniedError",
    "Provisioned",
    "Queue",
    "QueueStats",
    "RateLimitError",
    "RetryPolicy",
    "Schedule",
    "ServerError",
    "ServiceUnavailableError",
    "TransportError",
    "ValidationError",
    "Worker",
]
