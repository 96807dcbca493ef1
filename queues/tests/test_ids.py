import threading

from queues.ids import uuid7


def test_uuid7_ids_increase_in_creation_order_even_within_a_millisecond():
    ids = [uuid7() for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {7}


def test_uuid7_ids_are_unique_across_threads():
    found: list = []

    def make() -> None:
        found.extend(uuid7() for _ in range(2_000))

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 8_000
