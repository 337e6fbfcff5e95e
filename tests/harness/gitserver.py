"""A git server on loopback: the real `git http-backend` (smart HTTP) behind Basic auth.

As on github.com, the token is the Basic password and any non-empty username is accepted.
Repositories live below ``root`` as ``OWNER/REPO.git``. A tiny Git LFS batch API serves the
objects kept in each bare repository's ``lfs/objects`` directory, behind the same auth.
The server counts the bytes it sends, and can be told to fail chosen repositories. Playing a
hostile server, it can trickle a repository's answers (``trickle_bps``), advertise refs without
end (``endless_bps``) or redirect a repository elsewhere (``redirect``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from tests.harness.servers import ThreadedHTTPServer

GIT = shutil.which("git") or "git"
ZERO = "0" * 40


@dataclass
class GitServer(ThreadedHTTPServer):
    root: Path
    tokens: set[str] = field(default_factory=set)
    failing: dict[str, int] = field(default_factory=dict)  # "owner/repo.git" -> HTTP status
    delay_s: float = 0.0  # slow every git request down by this much
    trickle_bps: dict[str, float] = field(default_factory=dict)  # "owner/repo.git" -> bytes/s
    trickle_only_lfs: bool = False  # trickle only the LFS batch API, not git's own requests
    endless_bps: dict[str, float] = field(default_factory=dict)  # endless ref advertisement
    redirect: dict[str, str] = field(default_factory=dict)  # "owner/repo.git" -> base URL
    lfs_href_base: str | None = None  # where the LFS batch API sends downloads, if not here
    bytes_sent: int = 0
    requests: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)

    def start(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        return super().start()

    def clone_url(self, owner: str, repo: str) -> str:
        return f"{self.url}/{owner}/{repo}.git"

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_sent = 0
            self.requests.clear()
            self.authorizations.clear()

    # Repository set-up, through a scratch working tree

    def bare(self, owner: str, repo: str) -> Path:
        return self.root / owner / f"{repo}.git"

    def create(self, owner: str, repo: str, files: dict[str, str] | None = None) -> Path:
        """A bare repository with one commit on main holding ``files``."""
        path = self.bare(owner, repo)
        git("init", "--quiet", "--bare", "--initial-branch=main", str(path))
        self.commit(owner, repo, "main", files or {"README.md": f"# {repo}\n"}, "initial")
        return path

    def commit(
        self,
        owner: str,
        repo: str,
        branch: str,
        files: dict[str, str],
        message: str,
        *,
        parent: str | None = "branch",
    ) -> str:
        """Commit ``files`` on top of ``branch`` (or of ``parent``, a sha, or None for a root)."""
        path = self.bare(owner, repo)
        index = path / f"scratch-index-{threading.get_ident()}"
        env = {"GIT_INDEX_FILE": str(index), "GIT_DIR": str(path)}
        base = None
        if parent == "branch":
            found = git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", env=env, ok=1)
            base = found or None
        elif parent is not None:
            base = parent
        if base:
            git("read-tree", base, env=env)
        else:
            git("read-tree", "--empty", env=env)
        for name, text in files.items():
            blob = git("hash-object", "-w", "--stdin", env=env, input=text)
            git("update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", env=env)
        tree = git("write-tree", env=env)
        index.unlink(missing_ok=True)
        args = ["commit-tree", tree, "-m", message] + (["-p", base] if base else [])
        sha = git(*args, env=env)
        git("update-ref", f"refs/heads/{branch}", sha, env=env)
        return sha

    def set_ref(self, owner: str, repo: str, ref: str, sha: str | None) -> None:
        env = {"GIT_DIR": str(self.bare(owner, repo))}
        if sha is None:
            git("update-ref", "-d", ref, env=env)
        else:
            git("update-ref", ref, sha, env=env)

    def refs(self, owner: str, repo: str) -> dict[str, str]:
        out = git(
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            env={"GIT_DIR": str(self.bare(owner, repo))},
        )
        return {ref: sha for sha, ref in (line.split(" ", 1) for line in out.splitlines())}

    def add_lfs_object(self, owner: str, repo: str, branch: str, name: str, data: bytes) -> str:
        """Commit an LFS pointer for ``data`` and store the object where the batch API finds it."""
        oid = hashlib.sha256(data).hexdigest()
        store = self.bare(owner, repo) / "lfs" / "objects" / oid[:2] / oid[2:4]
        store.mkdir(parents=True, exist_ok=True)
        (store / oid).write_bytes(data)
        pointer = (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n"
        )
        self.commit(
            owner,
            repo,
            branch,
            {".gitattributes": f"{name} filter=lfs diff=lfs merge=lfs -text\n", name: pointer},
            f"add {name}",
        )
        return oid

    # HTTP

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return bool(user) and password in self.tokens

    def _repository_of(self, path: str) -> str | None:
        parts = path.strip("/").split("/")
        if len(parts) >= 2 and parts[1].endswith(".git"):
            return f"{parts[0]}/{parts[1]}"
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(
                self, status: int, body: bytes, headers: dict[str, str], bps: float = 0
            ) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not bps:
                    self.wfile.write(body)
                else:
                    self._trickle(body, bps)
                with server._lock:
                    server.bytes_sent += len(body)

            def _trickle(self, body: bytes, bps: float) -> None:
                step = max(1, int(bps / 10))
                try:
                    for start in range(0, len(body), step):
                        self.wfile.write(body[start : start + step])
                        self.wfile.flush()
                        time.sleep(step / bps)
                except OSError:  # the client gave up
                    self.close_connection = True

            def _endless(self, bps: float) -> None:
                """An upload-pack ref advertisement that never ends, at ``bps``."""
                self.send_response(200)
                self.send_header("Content-Type", "application/x-git-upload-pack-advertisement")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                first = b"# service=git-upload-pack\n"
                self.wfile.write(b"%04x" % (len(first) + 4) + first + b"0000")
                line = f"{'1' * 40} refs/heads/main\0multi_ack side-band-64k\n".encode()
                n = 0
                try:
                    while True:
                        self.wfile.write(b"%04x" % (len(line) + 4) + line)
                        self.wfile.flush()
                        with server._lock:
                            server.bytes_sent += len(line) + 4
                        time.sleep((len(line) + 4) / bps)
                        n += 1
                        line = f"{'1' * 40} refs/heads/b{n}\n".encode()
                except OSError:
                    return

            def _serve(self) -> None:
                body = self._body()
                url = urlsplit(self.path)
                auth = self.headers.get("Authorization", "")
                with server._lock:
                    server.requests.append(f"{self.command} {url.path}")
                    server.authorizations.append(auth)
                if not server._authorized(auth):
                    self._send(401, b"", {"WWW-Authenticate": 'Basic realm="git"'})
                    return
                repository = server._repository_of(url.path)
                if repository in server.failing:
                    self._send(server.failing[repository], b"injected failure\n", {})
                    return
                if repository in server.redirect:
                    target = server.redirect[repository] + self.path
                    self._send(302, b"", {"Location": target})
                    return
                if repository in server.endless_bps:
                    self._endless(server.endless_bps[repository])
                    return
                if server.delay_s:
                    time.sleep(server.delay_s)
                bps = server.trickle_bps.get(repository or "", 0)
                if url.path.endswith("/info/lfs/objects/batch"):
                    self._send(*server._lfs_batch(url.path, body), bps=bps)
                elif url.path.startswith("/lfs-object/"):
                    self._send(*server._lfs_object(url.path))
                else:
                    bps = 0 if server.trickle_only_lfs else bps
                    self._send(*server._backend(self, url.path, url.query, body), bps=bps)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _backend(
        self, request: BaseHTTPRequestHandler, path: str, query: str, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": request.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "backup",
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
        }
        done = subprocess.run(
            [GIT, "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, content = done.stdout.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers[key.strip()] = value.strip()
        return status, content, headers

    def _lfs_batch(self, path: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        repository = path.removesuffix("/info/lfs/objects/batch").strip("/")
        request = json.loads(body)
        objects = []
        for item in request.get("objects", []):
            oid, size = item["oid"], item["size"]
            stored = self.root / repository / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
            if request.get("operation") == "download" and stored.is_file():
                href = f"{self.lfs_href_base or self.url}/lfs-object/{repository}/{oid}"
                objects.append({"oid": oid, "size": size, "actions": {"download": {"href": href}}})
            else:
                objects.append(
                    {"oid": oid, "size": size, "error": {"code": 404, "message": "not found"}}
                )
        answer = json.dumps({"transfer": "basic", "objects": objects}).encode()
        return 200, answer, {"Content-Type": "application/vnd.git-lfs+json"}

    def _lfs_object(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        repository, _, oid = path.removeprefix("/lfs-object/").rpartition("/")
        stored = self.root / repository / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
        if not stored.is_file():
            return 404, b"", {}
        return 200, stored.read_bytes(), {"Content-Type": "application/octet-stream"}


def git(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, ok: int = 0
) -> str:
    """Run git for test set-up; its stdout, stripped. ``ok`` is an extra accepted exit code."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    base |= {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    done = subprocess.run(
        [GIT, *args],
        env=base | (env or {}),
        input=input,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, ok):
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()
