"""Every relative link and #anchor in README.md, CONTRIBUTING.md and docs/*.md leads
somewhere, and the README stays a guide: short, with the flow, the default policy and the quick
start on its first screen.

Anchors are made as GitHub makes them for headings: the heading's text (inline code and
emphasis marks gone, a link's text kept), lower-cased, every character but letters, digits,
spaces, hyphens and underscores dropped, spaces turned into hyphens; a repeated slug gets
``-1``, ``-2`` and so on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 350
FIRST_SCREEN = 40

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_HTML_ID = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text, before duplicates are numbered."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = _CODE_SPAN.sub(lambda m: m.group(2), text).replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text()):
        found.update(_HTML_ID.findall(line))
        if match := _HEADING.match(line):
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    """The link targets of a page's prose (code blocks and code spans left out)."""
    targets: list[str] = []
    for line in prose_lines(path.read_text()):
        targets.extend(_LINK.findall(_CODE_SPAN.sub("", line)))
    return targets


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in links(path):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # https:, mailto: ...: not this repository's
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading makes #{anchor} in {linked.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        (
            "`registry`: back up an organisation's images",
            "registry-back-up-an-organisations-images",
        ),
        ("Git repositories: `repos`", "git-repositories-repos"),
        ("403/429 **primary** rate limit", "403429-primary-rate-limit"),
        ("See [the runbook](docs/operations.md)", "see-the-runbook"),
        ("GitHubOrgBackupStale", "githuborgbackupstale"),
        ("Bounds and their defaults", "bounds-and-their-defaults"),
        ("What to do -- now", "what-to-do----now"),
    ],
)
def test_slugs_follow_githubs_rules(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_repeated_headings_are_numbered(tmp_path: Path) -> None:
    """The second "Exit status" is #exit-status-1, as GitHub numbers it; code is no heading."""
    page = tmp_path / "page.md"
    page.write_text(
        "# Top\n\n## Exit status\n\n```sh\n# not a heading\n```\n\n## Exit status\n\n"
        "[a](#exit-status-1) [b](#not-a-heading) [c](missing.md) [d](page.md#top) "
        "`[e](#in-code)` [f](https://example.com/#x)\n"
    )
    assert anchors(page) == {"top", "exit-status", "exit-status-1"}
    assert broken_links(page) == [
        "#not-a-heading: no heading makes #not-a-heading in page.md",
        "missing.md: no such file",
    ]


def test_the_readme_is_a_guide() -> None:
    """At most 350 lines; its first screen has the flow, the default policy and the way in."""
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    first = "\n".join(lines[:FIRST_SCREEN])
    assert "```mermaid" in first
    assert "latest patch" in first and "prerelease" in first
    assert "(#quick-start)" in first
    headings = [m.group(2) for line in prose_lines(readme) if (m := _HEADING.match(line))]
    wanted = [
        "Install",
        "Quick start",
        "Back up for real",
        "Run it unattended",
        "Verify and restore",
        "Exit codes",
        "Tests",
    ]
    assert [h for h in headings if h in wanted] == wanted
