"""Read the Dockerfile and compose.yaml for scripts/check_docker.sh.

Subcommands:

- ``check``: validate compose.yaml and the Dockerfile's structure (what the
  issue asks of them); exit 1 listing every problem;
- ``context DEST``: copy the build context to DEST, honouring .dockerignore;
- ``env``: the Dockerfile's ENV values as ``KEY='value'`` lines for ``set -a; .``;
- ``build-steps``: the Dockerfile's ``RUN`` steps that run manage.py, one per line;
- ``cmd`` / ``healthcheck``: the CMD / HEALTHCHECK command, one argument per line;
- ``compose-command SERVICE [--one-pass]``: a compose service's command, one
  argument per line (``--one-pass`` drops ``--loop``).

Standard library plus PyYAML (a dependency of drf-spectacular).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "maintenance")
SECRETS = ("POSTGRES_PASSWORD", "SECRET_KEY")


def instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per Dockerfile instruction, continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    return result


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        raise SystemExit(f"not an exec-form command: {args}")
    return value


def env() -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, args in instructions():
        if keyword == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                values[key] = value
    return values


def build_steps() -> list[str]:
    steps: list[str] = []
    copied = False
    for keyword, args in instructions():
        if keyword == "COPY" and args.split() == [".", "."]:
            copied = True
        elif keyword == "RUN" and copied and "manage.py" in args:
            steps.append(args)
    return steps


def cmd() -> list[str]:
    (args,) = [args for keyword, args in instructions() if keyword == "CMD"]
    return exec_form(args)


def healthcheck() -> list[str]:
    (args,) = [args for keyword, args in instructions() if keyword == "HEALTHCHECK"]
    _, _, command = args.partition(" CMD ")
    return exec_form(command)


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def check() -> list[str]:
    problems: list[str] = []
    steps = instructions()
    keywords = [keyword for keyword, _ in steps]

    def index(keyword: str, predicate: Any = lambda args: True) -> int:
        for i, (kw, args) in enumerate(steps):
            if kw == keyword and predicate(args):
                return i
        problems.append(f"Dockerfile: no {keyword} instruction of the expected kind")
        return -1

    if steps[0] != ("FROM", "python:3.11-slim"):
        problems.append(f"Dockerfile: must start FROM python:3.11-slim, not {steps[0]}")
    deps = index("COPY", lambda a: a.split() == ["requirements.txt", "."])
    install = index("RUN", lambda a: "pip install" in a and "requirements.txt" in a)
    code = index("COPY", lambda a: a.split() == [".", "."])
    collect = index("RUN", lambda a: "collectstatic" in a)
    user = index("USER")
    if not -1 < deps < install < code < collect:
        problems.append(
            "Dockerfile: want COPY requirements.txt, pip install, COPY . ., collectstatic"
        )
    if user > -1:
        name = steps[user][1].split(":")[0]
        if name in {"root", "0"}:
            problems.append("Dockerfile: USER must not be root")
        if user < collect or "CMD" not in keywords or user > keywords.index("CMD"):
            problems.append("Dockerfile: USER belongs after the build steps, before CMD")
    if "HEALTHCHECK" not in keywords:
        problems.append("Dockerfile: no HEALTHCHECK")
    elif "healthcheck" not in " ".join(healthcheck()):
        problems.append("Dockerfile: HEALTHCHECK should run scripts/docker_healthcheck.py")
    if "CMD" not in keywords or cmd()[:1] != ["gunicorn"] or "gunicorn.conf.py" not in cmd():
        problems.append("Dockerfile: CMD must be gunicorn -c gunicorn.conf.py")
    if "whitenoise" not in (ROOT / "requirements.txt").read_text():
        problems.append("requirements.txt: whitenoise missing (it serves the static files)")
    ignored = (ROOT / ".dockerignore").read_text().split()
    for must in (".env", ".venv", ".git"):
        if must not in ignored:
            problems.append(f".dockerignore: {must} must not reach the image")

    text = (ROOT / "compose.yaml").read_text()
    spec = compose()
    services = spec.get("services", {})
    for name in ("db", *APP_SERVICES):
        if name not in services:
            problems.append(f"compose.yaml: no {name} service")
    if problems:
        return problems
    db = services["db"]
    if not str(db.get("image", "")).startswith("postgres:15"):
        problems.append("compose.yaml: db must use postgres:15")
    volumes = [str(v).split(":")[0] for v in db.get("volumes", [])]
    if not volumes or not all(v in (spec.get("volumes") or {}) for v in volumes):
        problems.append("compose.yaml: db needs a named volume declared under volumes:")
    if not db.get("healthcheck", {}).get("test"):
        problems.append("compose.yaml: db needs a healthcheck")
    for name in APP_SERVICES:
        service = services[name]
        if service.get("env_file") != ".env":
            problems.append(f"compose.yaml: {name} must read env_file .env")
        if "DATABASE_URL" not in service.get("environment", {}):
            problems.append(f"compose.yaml: {name} has no DATABASE_URL")
        if service["depends_on"].get("db", {}).get("condition") != "service_healthy":
            problems.append(f"compose.yaml: {name} must wait for a healthy db")
    if "migrate" not in services["migrate"].get("command", []):
        problems.append("compose.yaml: migrate must run manage.py migrate")
    for name in ("web", "maintenance"):
        condition = services[name]["depends_on"].get("migrate", {}).get("condition")
        if condition != "service_completed_successfully":
            problems.append(f"compose.yaml: {name} must wait for migrate to complete successfully")
    command = services["maintenance"].get("command", [])
    if "run_maintenance" not in command or "--loop" not in command:
        problems.append("compose.yaml: maintenance must run run_maintenance --loop")
    # No default credentials: every use of a secret must be ${VAR:?message}.
    for secret in SECRETS:
        uses = text.count("${" + secret)
        required = text.count("${" + secret + ":?")
        if uses == 0 or uses != required:
            problems.append(f"compose.yaml: every ${{{secret}}} must be ${{{secret}:?...}}")
    return problems


def copy_context(dest: Path) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        return any(
            fnmatch.fnmatch(rel, p) or (p.startswith("**/") and fnmatch.fnmatch(name, p[3:]))
            for p in patterns
        )

    for folder, dirs, files in os.walk(ROOT):
        rel_folder = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if rel_folder == "." else rel_folder + "/"
        dirs[:] = [d for d in dirs if not ignored(prefix + d)]
        (dest / prefix).mkdir(parents=True, exist_ok=True)
        for name in files:
            if not ignored(prefix + name):
                shutil.copy2(Path(folder) / name, dest / prefix / name, follow_symlinks=True)


def main(argv: list[str]) -> int:
    match argv:
        case ["check"]:
            problems = check()
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        case ["context", dest]:
            copy_context(Path(dest))
        case ["env"]:
            for key, value in env().items():
                print(f"{key}={shlex.quote(value)}")
        case ["build-steps"]:
            print("\n".join(build_steps()))
        case ["cmd"]:
            print("\n".join(cmd()))
        case ["healthcheck"]:
            print("\n".join(healthcheck()))
        case ["compose-command", service, *flags]:
            command = list(compose()["services"][service]["command"])
            if "--one-pass" in flags:
                command = [arg for arg in command if arg != "--loop"]
            print("\n".join(command))
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
