"""A local stand-in for the Hugging Face Hub's HTTP API, for tests.

It stores model, dataset and space repositories in memory, one snapshot of files per commit,
and serves the part of the Hub API that the unmodified clients of huggingface_hub, datasets and
transformers call to upload and to download: creating a repository, repository info (with
``sha``, ``siblings`` and the card's ``cardData``), the tree listing, ``paths-info``,
``preupload``, the NDJSON commit, YAML validation, ``resolve`` (GET, HEAD and byte ranges) and
the Git LFS batch API (basic transfer: one PUT, then verify). Errors carry the Hub's
``X-Error-Code`` headers (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``), which the
clients turn into their own exceptions.

``preupload`` decides as the Hub does: ``lfs`` for a path that the repository's
``.gitattributes`` routes to LFS (a new repository gets the Hub's default patterns:
``*.parquet``, ``*.safetensors``, ...), for binary content and for files over 10 MB; ``regular``
(inline in the commit, base64) otherwise. Answering ``regular`` for everything would break
``datasets.Dataset.push_to_hub``, which deletes each Parquet shard's temporary file once
``preupload_lfs_files`` returns and so needs the shard's bytes uploaded by then. The stand-in
has no Xet storage: clients run with ``HF_HUB_DISABLE_XET=1`` (see conftest's ``hub_env``) and
so upload LFS files through the LFS batch API, as when ``hf_xet`` is not installed. Downloads
never involve Xet: no answer carries Xet headers or hashes.

Every request is recorded in ``requests`` as a ``Request`` (method, path, authorization header,
body, all headers); a request
the stand-in does not serve is answered 404 with a body naming it and recorded in ``unserved``,
so that a test can name what a client asked for. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import datetime as _dt
import fnmatch
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
#: The patterns of the ``.gitattributes`` the Hub commits into a new repository (abridged), all ``filter=lfs``.
DEFAULT_LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz "
    "*.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar "
    "*.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents* *.flac *.mp3 *.ogg *.wav *.jpg *.jpeg *.png *.webp"
).split()
#: Larger files go to LFS whatever their name, as on the Hub.
REGULAR_MAX_BYTES = 10 * 1024 * 1024
_REPO = r"(?P<repo>[^/?]+/[^/?]+?)"
_API = r"^/api/(?P<kind>models|datasets|spaces)/" + _REPO
_REV = r"(?P<rev>[^/]+)"


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob: a regular file's ``oid`` (and ETag) on the Hub."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer file committed in place of an LFS file's content."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class Blob:
    """A file's content; ``lfs`` when it was committed as an LFS object."""

    content: bytes
    lfs: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def oid(self) -> str:
        """The git oid: of the content for a regular file, of the pointer for an LFS file."""
        return git_blob_oid(lfs_pointer(self.sha256, len(self.content)) if self.lfs else self.content)

    def entry(self, path: str) -> dict:
        """The file's entry in a tree listing or ``paths-info``."""
        entry = {"type": "file", "oid": self.oid, "size": len(self.content), "path": path}
        if self.lfs:
            pointer = lfs_pointer(self.sha256, len(self.content))
            entry["lfs"] = {"oid": self.sha256, "size": len(self.content), "pointerSize": len(pointer)}
        return entry


@dataclass
class Commit:
    oid: str
    title: str
    date: str
    parent: str | None
    files: dict[str, Blob]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def commit(self, title: str, files: dict[str, Blob], parent: str | None) -> Commit:
        state = [self.repo_type, self.repo_id, parent, title, len(self.commits),
                 sorted((p, b.oid) for p, b in files.items())]
        commit = Commit(hashlib.sha1(json.dumps(state).encode()).hexdigest(), title, _now(), parent, dict(files))
        self.commits[commit.oid] = commit
        return commit


def lfs_patterns(files: dict[str, Blob]) -> list[str]:
    """The patterns that ``.gitattributes`` in ``files`` routes to LFS (``filter=lfs``)."""
    text = files[".gitattributes"].content.decode() if ".gitattributes" in files else ""
    return [line.split()[0] for line in text.splitlines() if line.strip() and "filter=lfs" in line.split()[1:]]


def goes_to_lfs(path: str, size: int, sample: bytes, patterns: list[str]) -> bool:
    """The Hub's choice: LFS for a path matching a pattern, binary content or a file over 10 MB."""
    name = path.rsplit("/", 1)[-1]
    matched = any(
        fnmatch.fnmatchcase(path, p.replace("**/", "*")) if "/" in p else fnmatch.fnmatchcase(name, p) for p in patterns
    )
    return matched or size > REGULAR_MAX_BYTES or b"\0" in sample


class Request(NamedTuple):
    """One request the stand-in received."""

    method: str
    path: str
    auth: str | None
    body: bytes
    headers: dict[str, str]  # names in lower case


class HubError(Exception):
    """An error answer: HTTP status, message, the Hub's ``X-Error-Code`` and the commit it refers to."""

    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.commit = status, message, code, commit


class HubStandIn:
    """The stand-in's state and its HTTP server: ``start()`` it, then point ``HF_ENDPOINT`` at ``endpoint``."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 → content, uploaded through the LFS batch API
        self.requests: list[Request] = []
        self.unserved: list[str] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # -- server ------------------------------------------------------------------------------

    def start(self) -> "HubStandIn":
        stand_in = self

        class Handler(_Handler):
            hub = stand_in

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- state, for the tests' own assertions ------------------------------------------------

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """The files of ``repo_id`` at ``revision``: ``{path: content}``."""
        with self._lock:
            snapshot = self._snapshot(self._repo(repo_type, repo_id, "test"), revision)
            return {p: b.content for p, b in snapshot.files.items()}

    def lfs_files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> list[str]:
        """The paths of ``repo_id`` at ``revision`` that were committed as LFS files."""
        with self._lock:
            snapshot = self._snapshot(self._repo(repo_type, repo_id, "test"), revision)
            return sorted(p for p, b in snapshot.files.items() if b.lfs)

    def history(self, repo_id: str, repo_type: str = "model") -> list[str]:
        """The commit titles of ``main``, oldest first."""
        with self._lock:
            repo = self._repo(repo_type, repo_id, "test")
            titles, oid = [], repo.branches["main"]
            while oid is not None:
                titles.append(repo.commits[oid].title)
                oid = repo.commits[oid].parent
            return titles[::-1]

    # -- lookups -----------------------------------------------------------------------------

    def _repo(self, repo_type: str, repo_id: str, auth: str | None, *, write: bool = False) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not auth):
            raise HubError(404 if repo is None else 401, f"Repository {repo_type}s/{repo_id} not found", "RepoNotFound")
        if write and not auth:
            raise HubError(401, "Writing needs a token (Authorization: Bearer ...)")
        return repo

    @staticmethod
    def _snapshot(repo: Repo, revision: str) -> Commit:
        oid = repo.branches.get(revision) or (revision if revision in repo.commits else None)
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[oid]

    # -- routes ------------------------------------------------------------------------------

    def create_repo(self, body: dict, auth: str | None, **_: Any) -> tuple[int, Any]:
        if not auth:
            raise HubError(401, "Creating a repository needs a token")
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIXES or not body.get("name") or not body.get("organization"):
            raise HubError(400, f"Bad repository type, name or organization: {body}")
        repo_id = f"{body['organization']}/{body['name']}"
        url = f"{self.endpoint}/{URL_PREFIXES[repo_type]}{repo_id}"
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                return 409, {"error": f"You already created this {repo_type} repo", "url": url}
            private = bool(body.get("private")) or body.get("visibility") == "private"
            repo = Repo(repo_type, repo_id, private, _now())
            attributes = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in DEFAULT_LFS_PATTERNS)
            initial = repo.commit("initial commit", {".gitattributes": Blob(attributes.encode())}, None)
            repo.branches["main"] = initial.oid
            self.repos[(repo_type, repo_id)] = repo
        return 200, {"url": url, "name": repo_id, "id": repo_id}

    def validate_yaml(self, body: dict, **_: Any) -> tuple[int, Any]:
        content = body.get("content", "")
        if content.startswith("---"):
            try:
                yaml.safe_load(content.split("---", 2)[1])
            except yaml.YAMLError as err:
                return 400, {"errors": [{"message": f"Invalid YAML: {err}"}], "warnings": []}
        return 200, {"errors": [], "warnings": []}

    def repo_info(self, kind: str, repo: str, auth: str | None, rev: str = "main", query=None, **_: Any):
        query = query or {}
        with self._lock:
            r = self._repo(REPO_TYPES[kind], repo, auth)
            snapshot = self._snapshot(r, rev)
            metadata = query.get("blobs", ["false"])[0].lower() == "true"  # files_metadata=True
            siblings = []
            for path, blob in sorted(snapshot.files.items()):
                sibling = {"rfilename": path}
                if metadata:
                    sibling.update(size=len(blob.content), blobId=blob.oid)
                    if blob.lfs:
                        sibling["lfs"] = {"sha256": blob.sha256, "size": len(blob.content),
                                          "pointerSize": len(lfs_pointer(blob.sha256, len(blob.content)))}
                siblings.append(sibling)
            info = {
                "_id": hashlib.sha1(f"{kind}/{repo}".encode()).hexdigest()[:24],
                "id": repo,
                "author": repo.split("/")[0],
                "sha": snapshot.oid,
                "lastModified": snapshot.date,
                "createdAt": r.created_at,
                "private": r.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
            }
            readme = snapshot.files.get("README.md")
            if readme is not None and readme.content.startswith(b"---"):
                info["cardData"] = yaml.safe_load(readme.content.decode().split("---", 2)[1])
            if kind == "models":
                info["modelId"] = repo
            return 200, info

    @staticmethod
    def _folder(snapshot: Commit, path: str) -> dict:
        inside = sorted((p, b.oid) for p, b in snapshot.files.items() if p.startswith(path + "/"))
        return {"type": "directory", "oid": hashlib.sha1(json.dumps(inside).encode()).hexdigest(), "size": 0, "path": path}

    @staticmethod
    def _with_last_commit(entries: list[dict], snapshot: Commit, expand: bool) -> list[dict]:
        if expand:
            for entry in entries:
                entry["lastCommit"] = {"id": snapshot.oid, "title": snapshot.title, "date": snapshot.date}
        return entries

    def tree(self, kind: str, repo: str, rev: str, auth: str | None, path: str | None = None, query=None, **_: Any):
        query = query or {}
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        expand = query.get("expand", ["false"])[0].lower() == "true"
        with self._lock:
            snapshot = self._snapshot(self._repo(REPO_TYPES[kind], repo, auth), rev)
            prefix = f"{path.strip('/')}/" if path and path.strip("/") else ""
            files = {p: b for p, b in sorted(snapshot.files.items()) if p.startswith(prefix)}
            if prefix and not files:
                raise HubError(404, f"{path} does not exist at {snapshot.oid}", "EntryNotFound", snapshot.oid)
            entries: dict[str, dict] = {}
            for p, blob in files.items():
                parts = p[len(prefix):].split("/")
                for depth in range(1, len(parts)):  # the folders on the way, as the Hub lists them
                    folder = prefix + "/".join(parts[:depth])
                    if folder not in entries and (recursive or depth == 1):
                        entries[folder] = self._folder(snapshot, folder)
                if recursive or len(parts) == 1:
                    entries[p] = blob.entry(p)
            return 200, self._with_last_commit(list(entries.values()), snapshot, expand)

    def paths_info(self, kind: str, repo: str, rev: str, auth: str | None, body: dict, **_: Any):
        paths = body.get("paths") or []
        paths = [paths] if isinstance(paths, str) else paths
        expand = str(body.get("expand", False)).lower() in ("true", "1")
        with self._lock:
            snapshot = self._snapshot(self._repo(REPO_TYPES[kind], repo, auth), rev)
            out = []
            for path in (p.strip("/") for p in paths):
                if path in snapshot.files:
                    out.append(snapshot.files[path].entry(path))
                elif any(p.startswith(path + "/") for p in snapshot.files):
                    out.append(self._folder(snapshot, path))
            return 200, self._with_last_commit(out, snapshot, expand)

    def preupload(self, kind: str, repo: str, rev: str, auth: str | None, body: dict, query=None, **_: Any):
        if query and "create_pr" in query:
            raise HubError(400, "Pull requests are not served by this stand-in")
        with self._lock:
            snapshot = self._snapshot(self._repo(REPO_TYPES[kind], repo, auth, write=True), rev)
            patterns = lfs_patterns(snapshot.files)
            files = []
            for f in body.get("files", []):
                lfs = goes_to_lfs(f["path"], f["size"], base64.b64decode(f.get("sample", "")), patterns)
                existing = snapshot.files.get(f["path"])
                oid = None if existing is None else (existing.sha256 if existing.lfs else existing.oid)
                mode = "lfs" if lfs else "regular"
                files.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
            return 200, {"files": files, "commitOid": snapshot.oid}

    def commit(self, kind: str, repo: str, rev: str, auth: str | None, raw: bytes, query=None, **_: Any):
        if query and ("create_pr" in query or "hot_reload" in query):
            raise HubError(400, f"Commit options {sorted(query)} are not served by this stand-in")
        lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "A commit starts with its header line")
        header = lines[0]["value"]
        with self._lock:
            r = self._repo(REPO_TYPES[kind], repo, auth, write=True)
            if rev not in r.branches:
                raise HubError(404, f"Invalid rev id: {rev} (commits go to a branch)", "RevisionNotFound")
            head = r.commits[r.branches[rev]]
            if header.get("parentCommit") not in (None, head.oid):
                raise HubError(412, f"A commit has happened since {header['parentCommit']}; the head is {head.oid}")
            files = dict(head.files)
            regular = []
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                path = value.get("path", "")
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise HubError(400, f"Unknown encoding {value.get('encoding')!r} of {path}")
                    files[path] = Blob(base64.b64decode(value["content"]))
                    regular.append(path)
                elif key == "lfsFile":
                    content = self.lfs_objects.get(value.get("oid", ""))
                    if content is None:
                        raise HubError(400, f"LFS object {value.get('oid')} of {path} was never uploaded")
                    files[path] = Blob(content, lfs=True)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    folder = path.rstrip("/") + "/"
                    files = {p: b for p, b in files.items() if not p.startswith(folder)}
                else:
                    raise HubError(400, f"Commit operation {key!r} is not served by this stand-in")
            patterns = lfs_patterns(files)
            for path in regular:  # the Hub refuses inline content that belongs in LFS
                content = files[path].content
                if content and goes_to_lfs(path, len(content), content[:512], patterns):
                    raise HubError(400, f"{path} must be uploaded with LFS (see the preupload answer)")
            new = r.commit(header.get("summary", ""), files, head.oid)
            r.branches[rev] = new.oid
            url = f"{self.endpoint}/{URL_PREFIXES[r.repo_type]}{r.repo_id}/commit/{new.oid}"
            return 200, {"success": True, "commitOid": new.oid, "commitUrl": url, "hookOutput": ""}

    def lfs_batch(self, prefix: str | None, repo: str, auth: str | None, body: dict, **_: Any):
        repo_type = {None: "model", "datasets": "dataset", "spaces": "space"}[prefix]
        if body.get("operation") != "upload" or "basic" not in body.get("transfers", ["basic"]):
            raise HubError(400, f"Only basic LFS uploads are served by this stand-in, not {body}")
        with self._lock:
            self._repo(repo_type, repo, auth, write=True)
            objects = []
            for obj in body.get("objects", []):
                answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
                if obj["oid"] not in self.lfs_objects:  # an object already stored needs no actions
                    href = f"{self.endpoint}/lfs-objects/{obj['oid']}"
                    answer["actions"] = {"upload": {"href": href, "header": {}}, "verify": {"href": f"{href}/verify"}}
                objects.append(answer)
            return 200, {"transfer": "basic", "objects": objects}

    def lfs_upload(self, oid: str, raw: bytes, **_: Any):
        if hashlib.sha256(raw).hexdigest() != oid:
            raise HubError(400, f"The uploaded content does not hash to {oid}")
        with self._lock:
            self.lfs_objects[oid] = raw
        return 200, {}

    def lfs_verify(self, oid: str, body: dict, **_: Any):
        with self._lock:
            content = self.lfs_objects.get(oid)
        if content is None or body.get("oid") != oid or body.get("size") != len(content):
            raise HubError(404, f"LFS object {oid} of size {body.get('size')} is not stored")
        return 200, {"success": True}

    def resolve(self, prefix: str | None, repo: str, rev: str, path: str, auth: str | None, **_: Any) -> tuple[Blob, str]:
        repo_type = {None: "model", "datasets": "dataset", "spaces": "space"}[prefix]
        with self._lock:
            snapshot = self._snapshot(self._repo(repo_type, repo, auth), rev)
            if path not in snapshot.files:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound", snapshot.oid)
            return snapshot.files[path], snapshot.oid


ROUTES = [
    ("POST", r"^/api/repos/create$", "create_repo"),
    ("POST", r"^/api/validate-yaml$", "validate_yaml"),
    ("GET", _API + r"$", "repo_info"),
    ("GET", _API + r"/revision/" + _REV + r"$", "repo_info"),
    ("GET", _API + r"/tree/" + _REV + r"(?:/(?P<path>.+))?$", "tree"),
    ("POST", _API + r"/paths-info/" + _REV + r"$", "paths_info"),
    ("POST", _API + r"/preupload/" + _REV + r"$", "preupload"),
    ("POST", _API + r"/commit/" + _REV + r"$", "commit"),
    ("POST", r"^/(?:(?P<prefix>datasets|spaces)/)?" + _REPO + r"\.git/info/lfs/objects/batch$", "lfs_batch"),
    ("PUT", r"^/lfs-objects/(?P<oid>[0-9a-f]{64})$", "lfs_upload"),
    ("POST", r"^/lfs-objects/(?P<oid>[0-9a-f]{64})/verify$", "lfs_verify"),
    ("GET", r"^/(?:(?P<prefix>datasets|spaces)/)?" + _REPO + r"/resolve/" + _REV + r"/(?P<path>.+)$", "resolve"),
]
ROUTES = [(method, re.compile(pattern), name) for method, pattern, name in ROUTES]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect; every answer has a Content-Length
    hub: HubStandIn

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, data: bytes, headers: dict[str, str], head: bool = False) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None, head: bool = False) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}, head)

    def _handle(self) -> None:
        raw = self._body()
        auth = self.headers.get("Authorization")
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.hub.requests.append(Request(self.command, self.path, auth, raw, headers))
        url = urlsplit(self.path)
        head = self.command == "HEAD"
        method = "GET" if head else self.command
        for route_method, pattern, name in ROUTES:
            match = pattern.match(url.path)
            if route_method == method and match:
                break
        else:
            self.hub.unserved.append(f"{self.command} {self.path}")
            self._json(404, {"error": f"The Hub stand-in does not serve {self.command} {url.path}"}, head=head)
            return
        args = {k: (unquote(v) if v is not None else None) for k, v in match.groupdict().items()}
        try:
            if name == "resolve":
                self._resolve(*self.hub.resolve(auth=auth, **args), head=head)
                return
            body: Any = {}
            if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                form = parse_qs(raw.decode(), keep_blank_values=True)
                body = {k: (v if k == "paths" else v[-1]) for k, v in form.items()}
            elif raw and name not in ("commit", "lfs_upload"):
                body = json.loads(raw)
            query = parse_qs(url.query, keep_blank_values=True)
            status, payload = getattr(self.hub, name)(auth=auth, body=body, raw=raw, query=query, **args)
            self._json(status, payload)
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            if err.commit:
                headers["X-Repo-Commit"] = err.commit
            self._json(err.status, {"error": err.message}, headers, head=head)

    def _resolve(self, blob: Blob, commit: str, head: bool) -> None:
        content = blob.content
        etag = f'"{blob.sha256 if blob.lfs else blob.oid}"'  # an LFS file's ETag is its sha256, as on the Hub
        headers = {"Content-Type": "application/octet-stream", "ETag": etag, "X-Repo-Commit": commit,
                   "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers.update({"X-Linked-Etag": etag, "X-Linked-Size": str(len(content))})
        status, data = 200, content
        ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if ranged and ranged.group(0) != "bytes=-":
            first, last = ranged.groups()
            if first:
                start, end = int(first), min(int(last) if last else len(content) - 1, len(content) - 1)
            else:
                start, end = max(len(content) - int(last), 0), len(content) - 1
            if start >= len(content):
                self._send(416, b"", {"Content-Range": f"bytes */{len(content)}"}, head)
                return
            status, data = 206, content[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        self._send(status, data, headers, head)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, *args):
        pass
