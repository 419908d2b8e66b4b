"""The shell commands the documents give: read from their fenced blocks, run as written against
a fresh platform, or checked against the code where they cannot run here.

One runner serves every document (the README's "Try it", docs/getting-started.md): ``make run``
becomes the platform, ``-m tests.fake_upstream`` the fake model server, and the other commands
run in order in one ``bash -euo pipefail`` script, each followed by ``echo`` so every answer
ends its own line. Only the ports change (the documents' may be taken on a machine running
tests).

The checker (``command_problems``) takes one command and says what in it does not match the
code: a ``curl`` to an operation the OpenAPI schema (or Django's URLs) lacks, a ``manage.py``
command or option that does not exist, a ``make`` target the Makefile lacks, a ``docker`` or
``kubectl`` command naming a file or a compose service that is not there. A program it has no
rule for is a problem too, so no document's command goes unchecked.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from tests.fake_upstream import free_port
from tests.support.processes import READY, REPO_ROOT, ServerProcess, fresh_checkout_env

SHELL_INFO = {"sh", "bash", "shell"}
DOC_PORT = "8000"
FAKE_UPSTREAM = "-m tests.fake_upstream"


# --- reading the documents -------------------------------------------------------------------


def shell_blocks(text: str) -> list[str]:
    """The fenced blocks marked ``sh``, ``bash`` or ``shell``."""
    blocks = re.findall(r"^```(\w*)[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    return [body for info, body in blocks if info in SHELL_INFO]


def commands(block: str) -> list[str]:
    """One entry per command: continuation lines joined, a quoted string spanning lines kept
    whole, blank lines left out."""
    found: list[str] = []
    pending = ""
    for line in block.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quotation still open: the command goes on
            continue
        if pending.strip():
            found.append(pending)
        pending = ""
    assert not pending, f"a quotation is never closed: {pending!r}"
    return found


def without_comment(command: str) -> str:
    return " ".join(shlex.split(command, comments=True))


# --- running them ----------------------------------------------------------------------------


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    platform_output: str
    fake_port: int

    def answers(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.strip()]


def is_platform(command: str) -> bool:
    return without_comment(command) == "make run"


def is_fake_upstream(command: str) -> bool:
    return FAKE_UPSTREAM in command


def is_whole_suite(command: str) -> bool:
    """``make test``: the whole suite is checked (its target exists), never run from a test."""
    return without_comment(command).split()[:2] == ["make", "test"]


def stop_with_ctrl_c(process: ServerProcess) -> None:
    assert process.process is not None
    process.process.send_signal(signal.SIGINT)
    try:
        process.process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def run_on_fresh_platform(document: list[str], tmp_path: Path, **settings: str) -> Ran:
    """Run a document's commands as written against a fresh platform (``make run`` on a new
    checkout, with its own ``var``), the fake upstream standing in for a model."""
    platforms = [command for command in document if is_platform(command)]
    fakes = [command for command in document if is_fake_upstream(command)]
    assert len(platforms) == 1 and len(fakes) == 1, "one `make run` and one fake upstream"
    doc_fake_port = re.search(r"--port (\d+)", fakes[0])
    assert doc_fake_port, fakes[0]
    port, fake_port = free_port(), free_port()

    def localised(command: str) -> str:
        return (
            command.replace(f"127.0.0.1:{DOC_PORT}", f"127.0.0.1:{port}")
            .replace(f"--port {doc_fake_port[1]}", f"--port {fake_port}")
            .replace(f"127.0.0.1:{doc_fake_port[1]}", f"127.0.0.1:{fake_port}")
            .replace(".venv/bin/python", sys.executable)
        )

    env = fresh_checkout_env(tmp_path / "var", **settings)
    platform = ServerProcess(
        "doc-platform", [sys.executable, "manage.py", "runplatform", "--port", str(port)], env
    )
    fake = ServerProcess("doc-fake", ["bash", "-c", f"exec {localised(fakes[0])}"], env)
    rest = [
        localised(command)
        for command in document
        if not (is_platform(command) or is_fake_upstream(command) or is_whole_suite(command))
    ]
    platform.start(lambda: READY in platform.output(), timeout=120)
    fake.start(lambda: "LISTENING" in fake.output(), timeout=30)
    try:
        script = "set -euo pipefail\n" + "\n".join(f"{command}\necho" for command in rest)
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        fake.stop()
        stop_with_ctrl_c(platform)
    return Ran(done.returncode, done.stdout, done.stderr, platform.output(), fake_port)


# --- checking them ---------------------------------------------------------------------------

SEPARATORS = re.compile(r"^[();|&]+$")
KEYWORDS = {"if", "then", "else", "elif", "fi", "while", "until", "do", "done", "!", "{", "}"}
# Programs whose arguments are checked only where they name a file of the repository.
PLAIN_PROGRAMS = {
    "echo", "export", "sleep", "[", "test", "true", "cat", "cp", "mkdir", "chmod", "ls", "grep",
    "openssl", "curl", "tar", "sha256sum", "psql", "pg_dump", "pg_isready", "redis-cli", "git",
    "python3", "apt-get", "nginx",
}  # fmt: skip
REPO_PATH = re.compile(r"^(?:\./)?((?:nginx|deploy|docs|apps|tests|orchestra|bench)/[\w./-]*)$")
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
COMPOSE_FILE = "docker-compose.prod.yml"
COMPOSE_OPTIONS_WITH_VALUE = {"--profile", "-p", "--project-name"}


def simple_commands(command: str) -> Iterator[list[str]]:
    """The simple commands of a command line (those in ``$(...)``, pipes and loops too), each
    without its leading ``VAR=value`` assignments and shell keywords."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    current: list[str] = []
    for token in [*lexer, ";"]:
        if SEPARATORS.match(token):
            words = list(current)
            while words and (words[0] in KEYWORDS or re.match(r"^\w+=", words[0])):
                words.pop(0)
            if words and words[0] != "for":
                yield words
            current = []
        else:
            current.append(token)


def command_problems(command: str) -> list[str]:
    problems: list[str] = []
    for words in simple_commands(command):
        problems += _words_problems(words)
    return problems


def _words_problems(words: list[str]) -> list[str]:
    program, args = words[0], words[1:]
    problems = [
        f"no file {match[1]} in the repository"
        for arg in args
        if (match := REPO_PATH.match(arg)) and not (REPO_ROOT / match[1]).exists()
    ]
    if program == "curl":
        return problems + _curl_problems(args)
    if program == "make":
        return problems + _make_problems(args)
    if program.endswith("python") or program in {"manage.py", "./manage.py"}:
        return problems + _python_problems([program, *args])
    if program == "docker":
        return problems + _docker_problems(args)
    if program == "kubectl":
        return problems  # its files are checked above
    if program in PLAIN_PROGRAMS:
        return problems
    return [*problems, f"no check for the program {program!r}"]


def _curl_problems(args: list[str]) -> list[str]:
    urls = [arg for arg in args if arg.startswith(("http://", "https://"))]
    method = "GET"
    if any(arg in {"-d", "--data", "--data-binary", "-F"} for arg in args):
        method = "POST"
    for flag in ("-X", "--request"):
        if flag in args:
            method = args[args.index(flag) + 1]
    problems = []
    for url in urls:
        path = urlsplit(url).path
        if not operation_exists(method, path):
            problems.append(f"no operation {method} {path}")
    return problems


def operation_exists(method: str, path: str) -> bool:
    """Whether the published schema has the operation, or Django serves the path (the pages
    and endpoints outside the schema: ``/admin/``, ``/metrics``)."""
    matches = [
        methods for template, methods in schema_operations().items() if re.fullmatch(template, path)
    ]
    if matches:  # ``/approvals/request`` also matches ``/approvals/{id}``
        return any(method.lower() in methods for methods in matches)
    from django.urls import Resolver404, resolve

    try:
        resolve(path)
    except Resolver404:
        return False
    return method == "GET"


@cache
def schema_operations() -> dict[str, set[str]]:
    from apps.core.api_reference import openapi_schema

    return {
        re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)): set(item)
        for path, item in openapi_schema()["paths"].items()
    }


def _make_problems(args: list[str]) -> list[str]:
    targets = [arg for arg in args if "=" not in arg and not arg.startswith("-")]
    makefile = (REPO_ROOT / "Makefile").read_text()
    return [
        f"no make target {target}"
        for target in targets
        if not re.search(rf"^{re.escape(target)}:", makefile, flags=re.M)
    ]


def _python_problems(words: list[str]) -> list[str]:
    if "-c" in words:
        try:
            compile(words[words.index("-c") + 1], "<document>", "exec")
        except SyntaxError as error:
            return [f"python -c: {error}"]
        return []
    if "-m" in words:
        module = words[words.index("-m") + 1]
        found = importlib.util.find_spec(module) is not None
        return [] if found else [f"no module {module}"]
    manage = next((i for i, word in enumerate(words) if word.endswith("manage.py")), None)
    if manage is None:
        return [f"no check for {' '.join(words)!r}"]
    return _manage_problems(words[manage + 1 :])


def _manage_problems(args: list[str]) -> list[str]:
    from django.core.management import get_commands, load_command_class

    if not args:
        return ["manage.py without a command"]
    name, options = args[0], args[1:]
    app = get_commands().get(name)
    if app is None:
        return [f"no management command {name}"]
    parser = load_command_class(app, name).create_parser("manage.py", name)
    try:
        parser.parse_args(options)
    except (SystemExit, Exception) as error:  # CommandParser raises CommandError
        return [f"manage.py {name} refuses {options}: {error}"]
    return []


def _docker_problems(args: list[str]) -> list[str]:
    if args[:1] == ["build"]:
        return [] if (REPO_ROOT / "Dockerfile").exists() else ["no Dockerfile"]
    if args[:1] != ["compose"]:
        return [f"no check for docker {' '.join(args[:1])}"]
    args = args[1:]
    problems: list[str] = []
    compose_file = COMPOSE_FILE
    while args and args[0].startswith("-"):  # compose's own options, before the subcommand
        if args[0] == "-f":
            compose_file = args[1]
        elif args[0] == "--env-file":  # made from its example, which must exist
            if not (REPO_ROOT / f"{args[1]}.example").exists():
                problems.append(f"no file {args[1]}.example")
        elif args[0] in COMPOSE_OPTIONS_WITH_VALUE:
            pass
        else:
            args = args[1:]
            continue
        args = args[2:]
    path = REPO_ROOT / compose_file
    if not path.exists():
        return [f"no compose file {compose_file}"]
    import yaml

    services = set(yaml.safe_load(path.read_text())["services"])
    subcommand, rest = (args[0], args[1:]) if args else ("", [])
    if subcommand in {"exec", "run"}:
        while rest and rest[0].startswith("-"):  # the subcommand's options, before the service
            rest = rest[1:]
        if not rest or rest[0] not in services:
            return [f"no compose service {rest[:1]}"]
        return problems + _words_problems(rest[1:]) if rest[1:] else problems
    for arg in rest:
        if "=" in arg:
            arg = arg.partition("=")[0]
        if not arg.startswith("-") and not arg.isdigit() and arg not in services:
            problems.append(f"no compose service {arg}")
    return problems
