"""Image references: ``[http://]host[:port]/path/to/repo[:tag][@sha256:hex]``, or
``oci:DIR:path/to/repo[:tag][@sha256:hex]`` for an OCI image-layout directory.

Pure parsing and validation, no I/O. Every name, tag and digest that later ends up in a URL
or a file path has passed one of the ASCII full-match grammars below first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from github_org_backup.errors import InvalidReference

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*", re.ASCII)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", re.ASCII)
_DIGESTS = {
    "sha256": re.compile(r"sha256:[a-f0-9]{64}", re.ASCII),
    "sha512": re.compile(r"sha512:[a-f0-9]{128}", re.ASCII),
}
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?",
    re.ASCII,
)
_MAX_NAME_LENGTH = 255


def validate_repository(name: str) -> str:
    """Return ``name`` if it is a valid repository path, else raise InvalidReference."""
    if not _REPOSITORY.fullmatch(name):
        raise InvalidReference(
            f"invalid repository name {name!r}: use lowercase components of [a-z0-9._-] "
            "separated by '/'"
        )
    return name


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it matches the OCI tag grammar, else raise InvalidReference."""
    if not _TAG.fullmatch(tag):
        raise InvalidReference(
            f"invalid tag {tag!r}: tags are 1-128 characters of [A-Za-z0-9_.-], "
            "not starting with '.' or '-'"
        )
    return tag


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is a sha256 or sha512 digest in canonical form."""
    algorithm = digest.partition(":")[0]
    pattern = _DIGESTS.get(algorithm)
    if pattern is None:
        raise InvalidReference(
            f"unsupported digest algorithm in {digest[:80]!r}: only sha256 and sha512 are accepted"
        )
    if not pattern.fullmatch(digest):
        raise InvalidReference(f"malformed digest {digest[:80]!r}: expected {algorithm}:<hex>")
    return digest


def validate_host(host: str) -> str:
    """Return ``host`` if it is a hostname or bracketed IPv6 address with an optional port."""
    if not _HOST.fullmatch(host):
        raise InvalidReference(f"invalid registry host {host!r}")
    _, colon, port = host.rpartition("]")[2].rpartition(":")
    if colon and not 1 <= int(port) <= 65535:
        raise InvalidReference(f"invalid registry host {host!r}: the port must be 1-65535")
    return host


Scheme = Literal["https", "http", "oci"]


@dataclass(frozen=True, order=True)
class Registry:
    """Where images live: a registry endpoint reached over ``https`` (or ``http``, only ever set
    by an explicit ``http://`` prefix), or an OCI image layout directory (``oci``)."""

    host: str = ""  # host[:port] of a registry; empty for a layout
    scheme: Scheme = "https"
    path: str = ""  # a layout's directory; empty for a registry

    @classmethod
    def layout_at(cls, directory: str | Path) -> Registry:
        return cls(scheme="oci", path=str(Path(directory).absolute()))

    @property
    def layout(self) -> bool:
        return self.scheme == "oci"

    @property
    def plain_http(self) -> bool:
        return self.scheme == "http"

    @property
    def base_url(self) -> str:
        assert not self.layout, "a layout has no URL"
        return f"{self.scheme}://{self.host}"

    @property
    def location(self) -> str:
        """What names it in messages and length limits: host[:port], or the layout's path."""
        return self.path if self.layout else self.host

    def __str__(self) -> str:
        if self.layout:
            return f"oci:{self.path}"
        return f"http://{self.host}" if self.plain_http else self.host


@dataclass(frozen=True, order=True)
class Repository:
    """A repository on a registry, such as ``ghcr.io/acme/team/app``."""

    registry: Registry
    name: str

    def __post_init__(self) -> None:
        if not self.name:
            return  # a registry's or layout's root: only ever a prefix for child()
        validate_repository(self.name)
        if len(self.registry.location) + 1 + len(self.name) > _MAX_NAME_LENGTH:
            raise InvalidReference(
                f"repository {self.registry.location}/{self.name} is longer than "
                f"{_MAX_NAME_LENGTH} characters"
            )

    def child(self, path: str) -> Repository:
        """The repository ``path`` below this one: ``reg/backup`` + ``acme/app``."""
        return Repository(self.registry, f"{self.name}/{path}" if self.name else path)

    def relative_to(self, prefix: Repository) -> str | None:
        """This repository's path below ``prefix``, or None if it is not below it."""
        if self.registry != prefix.registry:
            return None
        if not prefix.name:
            return self.name
        head = prefix.name + "/"
        return self.name[len(head) :] if self.name.startswith(head) else None

    def __str__(self) -> str:
        separator = ":" if self.registry.layout else "/"
        return f"{self.registry}{separator}{self.name}" if self.name else str(self.registry)


@dataclass(frozen=True, order=True)
class Reference:
    """An image in a repository, named by a tag, a digest or both (the digest wins)."""

    repository: Repository
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if self.tag is None and self.digest is None:
            raise InvalidReference(f"{self.repository} needs a tag or a digest")
        if self.tag is not None:
            validate_tag(self.tag)
        if self.digest is not None:
            validate_digest(self.digest)

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/`` in a URL: the digest if pinned, else the tag."""
        return self.digest or self.tag  # type: ignore[return-value]

    def __str__(self) -> str:
        text = str(self.repository)
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def _split_scheme(text: str) -> tuple[str, bool]:
    if text.startswith("http://"):
        return text[len("http://") :], True
    if text.startswith("https://"):
        return text[len("https://") :], False
    if "://" in text:
        raise InvalidReference(f"unsupported scheme in {text!r}: use http:// or nothing")
    return text, False


def _layout_registry(path: str) -> Registry:
    if not path or "\x00" in path:
        raise InvalidReference("an OCI layout reference needs a directory: oci:/path/to/dir")
    return Registry.layout_at(path)


def parse_repository(text: str, *, root: bool = False) -> Repository:
    """Parse ``[http://]host[:port]/path`` or ``oci:DIR[:path]`` (no tag, no digest): a prefix.

    With ``root``, a bare ``host[:port]`` is the registry's root (for restoring to ghcr.io).
    """
    if text.startswith("oci:"):
        directory, _, name = text[len("oci:") :].partition(":")
        return Repository(_layout_registry(directory), name.strip("/"))
    rest, plain_http = _split_scheme(text.rstrip("/"))
    host, _, path = rest.partition("/")
    if not path and not root:
        raise InvalidReference(
            f"{text!r} has no repository path: write host[:port]/path, "
            "e.g. registry.example.com/backup"
        )
    registry = Registry(validate_host(host), "http" if plain_http else "https")
    return Repository(registry, path)


def parse_reference(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse ``[http://]host[:port]/path[:tag][@digest]`` into a Reference.

    The first path component is always the registry host: there is no implicit Docker Hub.
    """
    if text.startswith("oci:"):
        directory, sep, image = text[len("oci:") :].partition(":")
        if not sep or not image:
            raise InvalidReference(f"{text!r}: write oci:DIR:repository[:tag][@digest]")
        inner = parse_reference(f"layout/{image}", default_tag=default_tag)
        return Reference(
            Repository(_layout_registry(directory), inner.repository.name),
            inner.tag,
            inner.digest,
        )
    rest, plain_http = _split_scheme(text)
    rest, at, digest = rest.partition("@")
    host, sep, path = rest.partition("/")
    if not sep or not path:
        raise InvalidReference(
            f"{text!r} is not host[:port]/repository[:tag][@digest]: the registry host is required"
        )
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
    if tag is None and not at:
        tag = default_tag
    repository = Repository(Registry(validate_host(host), "http" if plain_http else "https"), path)
    return Reference(repository, tag, digest if at else None)
