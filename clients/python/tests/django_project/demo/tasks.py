from django.db import connection
from django_tasks import task


@task()
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name="reports", priority=50)
def report(name: str, *, pages: int) -> dict:
    return {"name": name, "pages": pages}


@task()
def explode() -> None:
    raise ValueError("the task blew up")


@task()
def uses_db() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]
