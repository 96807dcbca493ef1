"""Fixtures for this package's tests."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, Any]:
    # Keep each phase's report on the test item, so a fixture's teardown can
    # tell whether the test failed (the browser tests save a screenshot then).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
