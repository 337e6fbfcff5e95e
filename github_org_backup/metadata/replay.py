"""Issues in the replay form: what --export-issues writes, one JSON object a line, and what
--issues and --issues-from create again in another repository::

    {"original": {"repository", "number", "author", "created_at", "closed_at", "state",
                  "pull_request", "url"},
     "title", "body", "labels": [names], "state": "open"|"closed", "state_reason",
     "comments": [{"original": {"id", "author", "created_at", "kind"}, "body"}]}

GitHub keeps neither the authors nor the times nor the numbers of what is created through its
API: each body starts with a quoted header that records them. Its logins and ``OWNER/REPO#N``
are code spans, so that GitHub neither notifies those users again nor links the old number to
the new repository's issue of that number. A pull request becomes an issue with a note (its
reviews and review comments become comments): it cannot be re-created without its branches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from github_org_backup.errors import UsageError
from github_org_backup.metadata.restore import RepoTree


def _login(user: Any) -> str:
    login = user.get("login") if isinstance(user, dict) else None
    return login if isinstance(login, str) and login else "ghost"


def _quoted(lines: Iterable[str]) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in lines)


def _with_header(header: list[str], body: Any) -> str:
    text = body if isinstance(body, str) else ""
    return _quoted(header) + ("\n\n" + text if text.strip() else "")


def replay_records(tree: RepoTree) -> Iterator[dict[str, Any]]:
    """Every issue of the tree (pull requests too), by number, in the replay form."""
    for n, doc in tree.documents("issues"):
        issue = doc.get("issue") if isinstance(doc, dict) else None
        if not isinstance(issue, dict) or not isinstance(issue.get("title"), str):
            tree.unreadable.append(f"issues/{n}.json")
            continue
        comments = doc.get("comments")
        pull = tree.read("pulls", f"{n}.json")
        yield replay_form(
            tree.repository,
            issue,
            comments if isinstance(comments, list) else [],
            pull if isinstance(pull, dict) else None,
        )


def replay_form(
    repository: str, issue: dict[str, Any], comments: list[Any], pull: dict[str, Any] | None
) -> dict[str, Any]:
    number = issue.get("number")
    author, created = _login(issue.get("user")), issue.get("created_at") or "?"
    closed = issue.get("state") == "closed"
    closed_at = issue.get("closed_at")
    is_pull = "pull_request" in issue or pull is not None
    where = f"`{repository}#{number}`"
    detail = pull.get("pull") if pull is not None else None
    detail = detail if isinstance(detail, dict) else {}
    marker = issue.get("pull_request")
    merged_at = detail.get("merged_at") or (
        marker.get("merged_at") if isinstance(marker, dict) else None
    )
    line = f"Originally {'pull request ' if is_pull else ''}{where} by `@{author}` on {created}"
    if merged_at:
        line += f", merged on {merged_at}"
    elif closed:
        line += f", closed on {closed_at}" if closed_at else ", closed"
    header = [line + "."]
    if is_pull:
        head, base = (detail.get(k) for k in ("head", "base"))
        refs = [r.get("ref") for r in (head, base) if isinstance(r, dict)]
        branches = f" (`{refs[0]}` into `{refs[1]}`)" if len(refs) == 2 else ""
        header += [
            "",
            f"A pull request{branches} cannot be re-created without its branches: it is kept "
            f"here as an issue. Its code is in the git mirror (refs/pull/{number}/head, when "
            "the mirror was made with --pull-refs).",
        ]
    reason = issue.get("state_reason")
    if reason not in ("completed", "not_planned"):
        reason = "not_planned" if is_pull and not merged_at else "completed"
    labels = [x.get("name") if isinstance(x, dict) else x for x in issue.get("labels") or []]
    return {
        "original": {
            "repository": repository,
            "number": number,
            "author": author,
            "created_at": issue.get("created_at"),
            "closed_at": closed_at,
            "state": issue.get("state"),
            "pull_request": is_pull,
            "url": issue.get("html_url"),
        },
        "title": issue["title"],
        "body": _with_header(header, issue.get("body")),
        "labels": [x for x in labels if isinstance(x, str) and x],
        "state": "closed" if closed else "open",
        "state_reason": reason if closed else None,
        "comments": _comments(comments, pull),
    }


def _comments(comments: list[Any], pull: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issue's comments, and a pull request's reviews and review comments, by time."""
    found: list[tuple[str, int, dict[str, Any]]] = []

    def add(item: Any, kind: str, stamp_key: str, what: str = "", after: str = "") -> None:
        if not isinstance(item, dict):
            return
        given, number = item.get(stamp_key), item.get("id")
        stamp = given if isinstance(given, str) else ""
        ident = number if isinstance(number, int) else 0
        author = _login(item.get("user"))
        header = f"Originally {what}by `@{author}` on {stamp or '?'}{after}."
        original = {"id": ident, "author": author, "created_at": stamp, "kind": kind}
        found.append(
            (stamp, ident, {"original": original, "body": _with_header([header], item.get("body"))})
        )

    for item in comments:
        add(item, "comment", "created_at")
    for review in (pull or {}).get("reviews") or []:
        if isinstance(review, dict):
            state = str(review.get("state") or "").lower().replace("_", " ")
            add(review, "review", "submitted_at", "a review ", f": {state or 'no state'}")
    for item in (pull or {}).get("review_comments") or []:
        where = ""
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            line = item.get("line") or item.get("original_line")
            where = f", on `{item['path']}`" + (f" line {line}" if line else "")
        add(item, "review_comment", "created_at", "a review comment ", where)
    return [entry for _, _, entry in sorted(found, key=lambda f: (f[0], f[1]))]


def write_export(records: Iterable[dict[str, Any]], out: Any) -> int:
    """The records as JSON lines on the text stream ``out``: how many."""
    count = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def read_export(path: Path) -> list[dict[str, Any]]:
    """The records of an export, every line checked before any is replayed."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--issues-from {path}: cannot read it ({exc})") from None
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise UsageError(f"--issues-from {path} line {n}: not JSON") from None
        problem = _shape_problem(record)
        if problem:
            raise UsageError(f"--issues-from {path} line {n}: {problem} (see --export-issues)")
        records.append(record)
    return records


def _shape_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    if not isinstance(record.get("title"), str) or not record["title"].strip():
        return "no title"
    if not isinstance(record.get("body", ""), str):
        return "a body that is not text"
    labels = record.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        return "labels that are not a list of names"
    if record.get("state", "open") not in ("open", "closed"):
        return "a state other than open or closed"
    comments = record.get("comments", [])
    if not isinstance(comments, list) or not all(
        isinstance(c, dict) and isinstance(c.get("body"), str) and c["body"].strip()
        for c in comments
    ):
        return "comments that are not a list of objects with a body"
    return None
