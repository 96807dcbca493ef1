"""The package as a user gets it: build the wheel, install it into a fresh venv, run the README.

The README's producer and worker are taken from the README itself, so
the examples users copy are the ones that were run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from queues.models import Job

pytestmark = [pytest.mark.live_server, pytest.mark.django_db(transaction=True)]

PACKAGE = Path(__file__).resolve().parent.parent


def readme_block(heading: str, language: str) -> str:
    """The first ``language`` code block after ``heading`` in the package's README."""
    readme = (PACKAGE / "README.md").read_text()
    after = readme.split(f"## {heading}\n", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", after, re.DOTALL).group(1)


def test_the_wheel_installs_into_a_fresh_venv_and_the_readme_examples_run(tmp_path, server, token):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path, PACKAGE],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("openqueue_client-*.whl")
    subprocess.run([sys.executable, "-m", "venv", tmp_path / "venv"], check=True, timeout=120)
    bin_dir = tmp_path / "venv" / "bin"
    subprocess.run([bin_dir / "pip", "install", "-q", wheel], check=True, timeout=300)

    env = {**os.environ, "OPENQUEUE_URL": server.url, "OPENQUEUE_TOKEN": token}
    env.pop("PYTHONPATH", None)

    def run(*command: object) -> str:
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    # The installed copy, not this checkout's editable one.
    where = run(
        bin_dir / "python", "-c", "import openqueue_client; print(openqueue_client.__file__)"
    )
    assert str(tmp_path / "venv") in where
    assert "openqueue-worker 0.1.0" in run(bin_dir / "openqueue-worker", "--version")

    (tmp_path / "producer.py").write_text(readme_block("A producer in ten lines", "python"))
    produced = run(bin_dir / "python", "producer.py")
    assert "enqueued" in produced and "pending" in produced

    (tmp_path / "jobs.py").write_text(readme_block("A worker in ten lines", "python"))
    command = readme_block("A worker in ten lines", "bash").splitlines()[2].split("#")[0].split()
    assert command[:2] == ["openqueue-worker", "--queue"] and "--burst" in command
    worked = run(bin_dir / command[0], *command[1:])
    assert worked.count(" acked") == 4  # the single job and the batch of three
    assert set(Job.objects.filter(queue_name="emails").values_list("status", flat=True)) == {
        "completed"
    }
