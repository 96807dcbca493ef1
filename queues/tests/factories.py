"""factory-boy factories; traits give jobs in each state."""

from __future__ import annotations

import uuid
from datetime import timedelta

import factory
from django.utils import timezone

from accounts.models import User
from queues.models import DeadReason, Job, JobStatus


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["email"]

    email = factory.Sequence(lambda n: f"tenant{n}@example.com")
    is_active = True


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    owner = factory.SubFactory(UserFactory)
    queue_name = "default"
    payload = factory.Sequence(lambda n: {"n": n})
    status = JobStatus.PENDING
    created_at = factory.LazyFunction(timezone.now)
    run_at = factory.LazyAttribute(lambda o: o.created_at)
    updated_at = factory.LazyAttribute(lambda o: o.created_at)

    class Params:
        leased = factory.Trait(
            status=JobStatus.PROCESSING,
            lease_token=factory.LazyFunction(uuid.uuid4),
            locked_by="worker-1",
            locked_until=factory.LazyFunction(lambda: timezone.now() + timedelta(seconds=30)),
            started_at=factory.LazyFunction(timezone.now),
        )
        expired = factory.Trait(
            status=JobStatus.PROCESSING,
            lease_token=factory.LazyFunction(uuid.uuid4),
            locked_by="worker-1",
            locked_until=factory.LazyFunction(lambda: timezone.now() - timedelta(seconds=1)),
            started_at=factory.LazyFunction(lambda: timezone.now() - timedelta(seconds=31)),
        )
        completed = factory.Trait(
            status=JobStatus.COMPLETED,
            started_at=factory.LazyFunction(timezone.now),
            finished_at=factory.LazyFunction(timezone.now),
        )
        dead = factory.Trait(
            status=JobStatus.DEAD,
            dead_reason=DeadReason.MAX_RETRIES_EXHAUSTED,
            error_text="boom",
            dead_at=factory.LazyFunction(timezone.now),
            finished_at=factory.LazyFunction(timezone.now),
        )
