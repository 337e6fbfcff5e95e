"""Turn a discovered package into copy specs under the tag policy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from github_org_backup.errors import InvalidReference
from github_org_backup.model.oci import Platform
from github_org_backup.model.packages import Owner, Package
from github_org_backup.model.reference import Reference, Registry, Repository
from github_org_backup.model.reserved import reserved_path, reserved_tag
from github_org_backup.model.specs import CopySpec
from github_org_backup.plan.policy import Decision, TagPolicy, select_tags


class Target(Protocol):
    """What planning needs of a run's settings: where packages come from and go, and the policy."""

    @property
    def owner(self) -> Owner: ...
    @property
    def source(self) -> Registry: ...
    @property
    def destination(self) -> Repository: ...
    @property
    def policy(self) -> TagPolicy: ...
    @property
    def platforms(self) -> tuple[Platform, ...]: ...


@dataclass(frozen=True)
class PackagePlan:
    package: Package
    decisions: tuple[Decision, ...]
    specs: tuple[CopySpec, ...]
    error: str | None = None
    refused: tuple[Decision, ...] = ()  # tags in the tool's own namespace, never copied

    @property
    def failed(self) -> bool:
        """The package names something the tool reserves: it fails, whatever else is copied."""
        return bool(self.refused) or self.reserved

    @property
    def reserved(self) -> bool:
        return self.error is not None and self.error.startswith(_RESERVED)

    def refusal(self) -> str | None:
        """What the report says of a failed package."""
        if self.reserved:
            return self.error
        if not self.refused:
            return None
        shown = "; ".join(d.reason for d in self.refused[:_SHOWN])
        more = len(self.refused) - _SHOWN
        return _RESERVED + shown + (f"; and {more} more such tags" if more > 0 else "")

    def render(self) -> str:
        """The dry-run text: kept tags with digest and destination, dropped tags with the reason."""
        kept = [d for d in self.decisions if d.keep]
        lines = [f"{self.package.name}: keep {len(kept)}, drop {len(self.decisions) - len(kept)}"]
        if self.error:
            lines.append(f"  {'refuse' if self.reserved else 'skip'}  {self.error}")
        for decision in self.refused:
            lines.append(f"  refuse {decision.tag:<23} {decision.reason}")
        targets = {spec.destination.tag: spec.destination for spec in self.specs}
        for decision in self.decisions:
            if decision.keep:
                digest = self.package.tags[decision.tag]
                target = targets.get(decision.tag)
                where = f" -> {target}" if target else ""
                lines.append(f"  keep  {decision.tag:<24} {digest}{where}  ({decision.reason})")
            else:
                lines.append(f"  drop  {decision.tag:<24} {decision.reason}")
        return "\n".join(lines)


# Cosign signatures, attestations and SBOMs, and the OCI 1.1 referrers fallback tag: each
# names the digest of the image it belongs to.
_SUBJECT_TAG = re.compile(r"sha256-([a-f0-9]{64})(?:\.(?:sig|att|sbom))?", re.ASCII)


def decide_tags(tags: dict[str, str], policy: TagPolicy) -> tuple[Decision, ...]:
    """Ordinary tags follow the policy; subject tags follow the image they name, whatever it is."""
    subject_tags = {t: m.group(1) for t in tags if (m := _SUBJECT_TAG.fullmatch(t))}
    decisions = select_tags((t for t in tags if t not in subject_tags), policy)
    kept = {tags[d.tag] for d in decisions if d.keep}
    for tag, subject in subject_tags.items():
        follows = f"sha256:{subject}" in kept
        reason = "belongs to a kept image" if follows else "belongs to an image not kept"
        decisions.append(Decision(tag, follows, reason))
    return tuple(sorted(decisions, key=lambda d: d.tag))


_RESERVED = "refused: "
_SHOWN = 3  # refused tags named in the report: a hostile source may push thousands


def plan_package(package: Package, config: Target) -> PackagePlan:
    """The specs for the tags the policy keeps. A tag or package name in the tool's own
    namespace is refused whatever the policy (``--include-tag '.*'`` included)."""
    refused = tuple(
        Decision(tag, False, reason)
        for tag in sorted(package.tags)
        if (reason := reserved_tag(tag)) is not None
    )
    tags = {t: d for t, d in package.tags.items() if reserved_tag(t) is None}
    decisions = decide_tags(tags, config.policy)
    path = f"{config.owner.name}/{package.name}".lower()
    if (reason := reserved_path(path)) is not None:
        return PackagePlan(package, decisions, (), _RESERVED + reason, refused)
    try:
        source = Repository(config.source, path)
        target = config.destination.child(path)
    except InvalidReference as exc:
        error = f"package name cannot be a repository: {exc}"
        return PackagePlan(package, decisions, (), error, refused)
    specs = tuple(
        CopySpec(
            Reference(source, d.tag, package.tags[d.tag]),
            Reference(target, d.tag),
            config.platforms,
        )
        for d in decisions
        if d.keep
    )
    return PackagePlan(package, decisions, specs, refused=refused)
