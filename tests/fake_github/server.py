"""``FakeGitHub``: GitHub's REST API, in a thread, for one test.

It answers ``GET /user``, ``GET /repos/{o}/{r}``, issues (list with ``state``/``labels`` and
``page``/``per_page`` and a ``Link`` header, get, create, update, comments listed and created,
labels added), pull requests (list, get, create) and what publishing a change needs: a branch's
ref (``GET git/ref/heads/{b}``, ``POST git/refs``), a file's contents (``GET contents/{path}?ref=``)
and commits through the contents API (``PUT`` and ``DELETE contents/{path}`` with ``branch`` and
``sha``), with GitHub's headers (``X-RateLimit-*``, ``X-OAuth-Scopes``) and errors (401 ``Bad
credentials``, 404 ``Not Found``, 409 on a stale ``sha``, 422 ``Validation Failed`` with
``errors``). Each branch keeps its files in memory: ``branch_files`` reads them, ``pull_files``
gives a pull request's change (its head's files that differ from its base's) and
``pull_set_state`` merges or closes one. A test arranges the next answer with ``fail_next`` (a
status, headers and body) and reads ``requests``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


def _sha(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


@dataclass
class Branch:
    """A branch: its head commit's sha and its files (path -> text)."""

    sha: str
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class State:
    token: str
    login: str = "octocat"
    scopes: str | None = "repo, read:org"
    rate_limit: int = 5000
    remaining: int = 4999
    reset: int = field(default_factory=lambda: int(time.time()) + 3600)
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    pulls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    branches: dict[str, dict[str, Branch]] = field(default_factory=dict)
    commits: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # sha -> files
    failures: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Handler(BaseHTTPRequestHandler):
    server: FakeGitHubServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def state(self) -> State:
        return self.server.state

    def do_GET(self) -> None:
        self.handle_call("GET")

    def do_POST(self) -> None:
        self.handle_call("POST")

    def do_PATCH(self) -> None:
        self.handle_call("PATCH")

    def do_PUT(self) -> None:
        self.handle_call("PUT")

    def do_DELETE(self) -> None:
        self.handle_call("DELETE")

    def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        sent = {
            "X-RateLimit-Limit": str(self.state.rate_limit),
            "X-RateLimit-Remaining": str(self.state.remaining),
            "X-RateLimit-Reset": str(self.state.reset),
            "X-RateLimit-Used": str(self.state.rate_limit - self.state.remaining),
            **(headers or {}),
        }
        for name, value in sent.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def error(self, status: int, message: str, **extra: Any) -> None:
        body = {"message": message, "documentation_url": "https://docs.github.com/rest", **extra}
        self.answer(status, body)

    def handle_call(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with self.state.lock:
            self.state.requests.append(
                Recorded(method, url.path, parse_qs(url.query), dict(self.headers), body)
            )
            failure = self.state.failures.pop(0) if self.state.failures else None
        if failure:
            status, headers, payload = failure
            self.answer(status, payload, headers)
            return
        if (
            self.headers.get("Authorization") != f"token {self.state.token}"
            and self.headers.get("Authorization") != f"Bearer {self.state.token}"
        ):
            self.error(401, "Bad credentials")
            return
        with self.state.lock:
            self.state.remaining = max(0, self.state.remaining - 1)
            self.route(method, url.path, parse_qs(url.query), body)

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> None:
        if path == "/user" and method == "GET":
            headers = {"X-OAuth-Scopes": self.state.scopes} if self.state.scopes is not None else {}
            user = self.user()
            self.answer(200, {**user, "name": "The Octocat", "type": "User"}, headers)
            return
        match = re.fullmatch(r"/repos/([^/]+)/([^/]+)(/.*)?", path)
        if not match or f"{match[1]}/{match[2]}" not in self.state.repos:
            self.error(404, "Not Found")
            return
        full, rest = f"{match[1]}/{match[2]}", match[3] or ""
        if rest == "" and method == "GET":
            self.answer(200, self.state.repos[full])
        elif rest == "/issues" and method == "GET":
            self.listed(path, query, self.issues_filtered(full, query))
        elif rest == "/issues" and method == "POST":
            self.issue_create(full, body or {})
        elif found := re.fullmatch(r"/issues/(\d+)", rest):
            self.issue(full, int(found[1]), method, body or {})
        elif (found := re.fullmatch(r"/issues/(\d+)/comments", rest)) and method == "POST":
            self.comment_create(full, int(found[1]), body or {})
        elif (found := re.fullmatch(r"/issues/(\d+)/comments", rest)) and method == "GET":
            issues = [i for i in self.state.issues.get(full, []) if i["number"] == int(found[1])]
            if not issues:
                self.error(404, "Not Found")
            else:
                self.listed(path, query, self.state.comments.get((full, int(found[1])), []))
        elif (found := re.fullmatch(r"/issues/(\d+)/labels", rest)) and method == "POST":
            self.labels_add(full, int(found[1]), body)
        elif (found := re.fullmatch(r"/git/ref/heads/(.+)", rest)) and method == "GET":
            self.ref_get(full, unquote(found[1]))
        elif rest == "/git/refs" and method == "POST":
            self.ref_create(full, body or {})
        elif found := re.fullmatch(r"/contents/(.+)", rest):
            self.contents(full, unquote(found[1]), method, query, body or {})
        elif rest == "/pulls" and method == "GET":
            state = query.get("state", ["open"])[0]
            pulls = [p for p in self.state.pulls.get(full, []) if state in ("all", p["state"])]
            self.listed(path, query, pulls)
        elif rest == "/pulls" and method == "POST":
            self.pull_create(full, body or {})
        elif (found := re.fullmatch(r"/pulls/(\d+)", rest)) and method == "GET":
            pulls = [p for p in self.state.pulls.get(full, []) if p["number"] == int(found[1])]
            self.answer(200, pulls[0]) if pulls else self.error(404, "Not Found")
        else:
            self.error(404, "Not Found")

    def user(self) -> dict[str, Any]:
        return {
            "login": self.state.login,
            "id": 1,
            "html_url": f"https://github.com/{self.state.login}",
        }

    def listed(self, path: str, query: dict[str, list[str]], items: list[dict[str, Any]]) -> None:
        page = int(query.get("page", ["1"])[0])
        per_page = int(query.get("per_page", ["30"])[0])
        last = max(1, -(-len(items) // per_page))
        chosen = items[(page - 1) * per_page : page * per_page]
        host = self.server.url

        def link(number: int, rel: str) -> str:
            return f'<{host}{path}?per_page={per_page}&page={number}>; rel="{rel}"'

        links = []
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        self.answer(200, chosen, {"Link": ", ".join(links)} if links else {})

    def issues_filtered(self, full: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        state = query.get("state", ["open"])[0]
        labels = [x for x in query.get("labels", [""])[0].split(",") if x]
        found = []
        for issue in self.state.issues.get(full, []):
            names = {label["name"] for label in issue["labels"]}
            if state in ("all", issue["state"]) and all(label in names for label in labels):
                found.append(issue)
        return found

    def issue_create(self, full: str, body: dict[str, Any]) -> None:
        if not body.get("title"):
            self.error(
                422,
                "Validation Failed",
                errors=[{"resource": "Issue", "field": "title", "code": "missing_field"}],
            )
            return
        issues = self.state.issues.setdefault(full, [])
        number = len(issues) + len(self.state.pulls.get(full, [])) + 1
        issue = self.issue_shape(full, number, body["title"], body.get("body") or "",
                                 body.get("labels") or [])  # fmt: skip
        issues.append(issue)
        self.answer(201, issue)

    def issue_shape(self, full: str, number: int, title: str, body: str, labels: list[str]):
        return {
            "id": 1000 + number,
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "state_reason": None,
            "labels": [{"name": name, "color": "ededed"} for name in labels],
            "assignees": [],
            "user": self.user(),
            "comments": 0,
            "html_url": f"https://github.com/{full}/issues/{number}",
            "created_at": _now(),
            "updated_at": _now(),
            "closed_at": None,
        }

    def issue(self, full: str, number: int, method: str, body: dict[str, Any]) -> None:
        issues = [i for i in self.state.issues.get(full, []) if i["number"] == number]
        if not issues:
            self.error(404, "Not Found")
            return
        issue = issues[0]
        if method == "PATCH":
            if body.get("state") not in (None, "open", "closed"):
                invalid = {"resource": "Issue", "field": "state", "code": "invalid"}
                self.error(422, "Validation Failed", errors=[invalid])
                return
            for name in ("title", "body", "state", "state_reason"):
                if name in body:
                    issue[name] = body[name]
            if "labels" in body:
                issue["labels"] = [{"name": name, "color": "ededed"} for name in body["labels"]]
            issue["closed_at"] = _now() if issue["state"] == "closed" else None
            issue["updated_at"] = _now()
        self.answer(200, issue)

    def comment_create(self, full: str, number: int, body: dict[str, Any]) -> None:
        issues = [i for i in self.state.issues.get(full, []) if i["number"] == number]
        if not issues:
            self.error(404, "Not Found")
            return
        comments = self.state.comments.setdefault((full, number), [])
        comment = {
            "id": 5000 + len(comments),
            "body": body.get("body", ""),
            "user": self.user(),
            "html_url": f"https://github.com/{full}/issues/{number}#issuecomment-{len(comments)}",
            "created_at": _now(),
        }
        comments.append(comment)
        issues[0]["comments"] += 1
        self.answer(201, comment)

    def pull_create(self, full: str, body: dict[str, Any]) -> None:
        branches = self.state.branches.get(full, {})
        if body.get("head") not in branches or body.get("base") not in branches:
            invalid = {"resource": "PullRequest", "field": "head", "code": "invalid"}
            self.error(422, "Validation Failed", errors=[invalid])
            return
        pulls = self.state.pulls.setdefault(full, [])
        number = len(self.state.issues.get(full, [])) + len(pulls) + 1
        pull = {
            "id": 2000 + number,
            "number": number,
            "title": body.get("title", ""),
            "body": body.get("body") or "",
            "state": "open",
            "draft": bool(body.get("draft")),
            "merged": False,
            "head": {"ref": body["head"], "sha": branches[body["head"]].sha},
            "base": {"ref": body["base"], "sha": branches[body["base"]].sha},
            "labels": [],
            "user": self.user(),
            "html_url": f"https://github.com/{full}/pull/{number}",
            "created_at": _now(),
            "updated_at": _now(),
            "merged_at": None,
            "closed_at": None,
        }
        pulls.append(pull)
        self.answer(201, pull)

    def labels_add(self, full: str, number: int, body: Any) -> None:
        names = body.get("labels", []) if isinstance(body, dict) else body or []
        found = [
            item
            for item in self.state.issues.get(full, []) + self.state.pulls.get(full, [])
            if item["number"] == number
        ]
        if not found:
            self.error(404, "Not Found")
            return
        item = found[0]
        known = {label["name"] for label in item["labels"]}
        item["labels"] += [{"name": n, "color": "ededed"} for n in names if n not in known]
        self.answer(200, item["labels"])

    # --- refs and contents ------------------------------------------------------------------

    def ref_shape(self, full: str, name: str) -> dict[str, Any]:
        sha = self.state.branches[full][name].sha
        return {
            "ref": f"refs/heads/{name}",
            "node_id": f"REF_{sha[:8]}",
            "url": f"{self.server.url}/repos/{full}/git/refs/heads/{name}",
            "object": {"type": "commit", "sha": sha, "url": f"{self.server.url}/commits/{sha}"},
        }

    def ref_get(self, full: str, name: str) -> None:
        if name not in self.state.branches[full]:
            self.error(404, "Not Found")
            return
        self.answer(200, self.ref_shape(full, name))

    def ref_create(self, full: str, body: dict[str, Any]) -> None:
        ref, sha = str(body.get("ref", "")), body.get("sha")
        branches = self.state.branches[full]
        if not ref.startswith("refs/") or ref.count("/") < 2:
            self.error(422, "Reference name must start with 'refs/' and have at least two slashes.")
            return
        name = ref.removeprefix("refs/heads/")
        if name in branches:
            self.error(422, "Reference already exists")
            return
        files = self.state.commits[full].get(str(sha))
        if files is None:
            self.error(422, "Object does not exist")
            return
        branches[name] = Branch(sha=str(sha), files=dict(files))
        self.answer(201, self.ref_shape(full, name))

    def contents(
        self, full: str, path: str, method: str, query: dict[str, list[str]], body: dict[str, Any]
    ) -> None:
        branches = self.state.branches[full]
        default = self.state.repos[full]["default_branch"]
        given = query.get("ref", [""])[0] if method == "GET" else body.get("branch")
        name = str(given or default).removeprefix("refs/heads/")
        if method == "GET" and name in self.state.commits[full]:
            branch = Branch(sha=name, files=self.state.commits[full][name])  # a commit's sha
        elif name in branches:
            branch = branches[name]
        else:
            self.error(404, f"No commit found for the ref {name}")
            return
        current = branch.files.get(path)
        blob = _sha("blob", path, current) if current is not None else None
        if method == "GET":
            if current is None:
                self.error(404, "Not Found")
                return
            data = current.encode()
            encoded = base64.encodebytes(data).decode()
            self.answer(200, {**self.content_shape(full, path, current, blob), "size": len(data),
                              "encoding": "base64", "content": encoded})  # fmt: skip
            return
        if method not in ("PUT", "DELETE") or not body.get("message"):
            invalid = {"resource": "Contents", "field": "message", "code": "missing_field"}
            self.error(422, "Validation Failed", errors=[invalid])
            return
        if current is not None and body.get("sha") is None:
            self.error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
            return
        if current is not None and body.get("sha") != blob:
            self.error(409, f"{path} does not match {body.get('sha')}")
            return
        if method == "DELETE":
            if current is None:
                self.error(404, "Not Found")
                return
            del branch.files[path]
            branch.sha = _sha("commit", branch.sha, body["message"], path)
            self.state.commits[full][branch.sha] = dict(branch.files)
            self.answer(200, {"content": None, "commit": {"sha": branch.sha}})
            return
        try:
            text = base64.b64decode(body.get("content", ""), validate=True).decode()
        except ValueError:
            self.error(422, "content is not valid Base64")
            return
        branch.files[path] = text
        branch.sha = _sha("commit", branch.sha, body["message"], path, text)
        self.state.commits[full][branch.sha] = dict(branch.files)
        new_blob = _sha("blob", path, text)
        self.answer(
            201 if current is None else 200,
            {"content": self.content_shape(full, path, text, new_blob),
             "commit": {"sha": branch.sha, "message": body["message"]}},
        )  # fmt: skip

    def content_shape(self, full: str, path: str, text: str, blob: str | None) -> dict[str, Any]:
        return {
            "type": "file",
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": blob,
            "size": len(text.encode()),
            "html_url": f"https://github.com/{full}/blob/main/{path}",
        }


class FakeGitHubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: State) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeGitHub:
    """Start with ``start()``, stop with ``stop()``; ``url`` is the API root."""

    def __init__(self, token: str) -> None:
        self.state = State(token=token)
        self.server = FakeGitHubServer(self.state)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> FakeGitHub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_repo(
        self,
        owner: str,
        name: str,
        branches: tuple[str, ...] = ("main",),
        files: dict[str, str] | None = None,
    ) -> None:
        """A repository whose branches (``main`` the default) all hold ``files``."""
        full = f"{owner}/{name}"
        self.state.repos[full] = {
            "id": len(self.state.repos) + 1,
            "name": name,
            "full_name": full,
            "owner": {"login": owner, "id": 2},
            "private": False,
            "description": "A repository of the fake GitHub",
            "default_branch": "main",
            "html_url": f"https://github.com/{full}",
            "open_issues_count": 0,
        }
        sha = _sha("commit", full, json.dumps(files or {}, sort_keys=True))
        self.state.commits[full] = {sha: dict(files or {})}
        self.state.branches[full] = {
            branch: Branch(sha=sha, files=dict(files or {})) for branch in branches
        }

    def add_issue(
        self, full: str, title: str, body: str = "", comments: tuple[str, ...] = ()
    ) -> int:
        """An issue with its comments, as if people had written them; its number."""
        issues = self.state.issues.setdefault(full, [])
        number = len(issues) + len(self.state.pulls.get(full, [])) + 1
        handler = Handler.__new__(Handler)
        handler.server = self.server
        issue = handler.issue_shape(full, number, title, body, [])
        issue["comments"] = len(comments)
        issues.append(issue)
        self.state.comments[(full, number)] = [
            {"id": 7000 + i, "body": text, "user": {"login": f"user{i}", "id": 10 + i},
             "html_url": f"https://github.com/{full}/issues/{number}#issuecomment-{i}",
             "created_at": _now()}
            for i, text in enumerate(comments)
        ]  # fmt: skip
        return number

    def branch_files(self, full: str, branch: str) -> dict[str, str] | None:
        """The files of a branch (None: no such branch)."""
        found = self.state.branches.get(full, {}).get(branch)
        return dict(found.files) if found else None

    def pull(self, full: str, number: int) -> dict[str, Any]:
        return next(p for p in self.state.pulls.get(full, []) if p["number"] == number)

    def pull_files(self, full: str, number: int) -> dict[str, tuple[str | None, str | None]]:
        """The pull request's change: each path whose text differs between its base and head,
        with (base text, head text); None where a side has no such file."""
        pull = self.pull(full, number)
        base = self.state.branches[full][pull["base"]["ref"]].files
        head = self.state.branches[full][pull["head"]["ref"]].files
        return {
            path: (base.get(path), head.get(path))
            for path in sorted(set(base) | set(head))
            if base.get(path) != head.get(path)
        }

    def pull_set_state(self, full: str, number: int, state: str) -> None:
        """Merge (``merged``) or close (``closed``) a pull request, as a person would."""
        pull = self.pull(full, number)
        with self.state.lock:
            pull["state"] = "closed"
            pull["closed_at"] = _now()
            if state == "merged":
                pull["merged"] = True
                pull["merged_at"] = _now()

    def fail_next(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.state.failures.append((status, headers or {}, body))

    @property
    def requests(self) -> list[Recorded]:
        return self.state.requests
