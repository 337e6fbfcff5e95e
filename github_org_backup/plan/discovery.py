"""Discovery for the registry command: an owner's packages listed on GitHub, each planned by
the policy as it arrives, with what became of each package and why discovery stopped, if it
did."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol

import structlog

from github_org_backup.base.listing import listing
from github_org_backup.errors import BackupError, DiscoveryStopped, UsageError
from github_org_backup.model.packages import FailedPackage
from github_org_backup.model.results import PackageResult
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.report import Discovery as DiscoveryOutcome
from github_org_backup.plan.package import PackagePlan, Target, plan_package


class Wanted(Target, Protocol):
    """What discovery needs of a run's settings: planning's, and which packages it wants."""

    def wants(self, package: str) -> bool: ...


if TYPE_CHECKING:
    from github_org_backup.github.packages import GitHubPackages

log = structlog.get_logger("github_org_backup.commands")


class Discovery:
    """Feeds specs to the engine as packages are listed; remembers what became of each package
    and why discovery stopped, if it did."""

    def __init__(self, github: GitHubPackages, config: Wanted) -> None:
        self.github = github
        self.config = config
        self.packages = 0
        self.plans: list[PackagePlan] = []
        self.results: list[PackageResult] = []
        self.error: BackupError | None = None  # what ended discovery early
        self.stopped = False  # by a signal
        self._paths: dict[str, str] = {}  # lower-cased package name -> the first listed
        self._passed_over: dict[str, None] = {}  # listed, but outside the filter or the shard

    def _wanted(self, package: str) -> bool:
        if self.config.wants(package):
            return True
        self._passed_over[package] = None  # asked again when the cache is revalidated
        return False

    @property
    def passed_over(self) -> list[str]:
        return list(self._passed_over)

    async def found(self) -> AsyncIterator[tuple[PackageResult, PackagePlan | None]]:
        """Each package as discovery reaches it; a package that failed comes without a plan."""
        try:
            async for package in self.github.packages(self._wanted):
                if isinstance(package, FailedPackage):
                    result = PackageResult(package.name, "failed", error=package.error)
                    self.results.append(result)
                    yield result, None
                    continue
                self.packages += 1
                if (clash := self._clash(package.name)) is not None:
                    log.error("package_failed", package=package.name, error=clash)
                    result = PackageResult(package.name, "failed", error=clash)
                    self.results.append(result)
                    yield result, None
                    continue
                plan = plan_package(package, self.config)
                self.plans.append(plan)
                if plan.failed:
                    result = self._refused(plan)
                elif package.skipped:
                    result = self._out_of_shape(plan)
                elif plan.error:
                    log.error("package_skipped", package=package.name, error=plan.error)
                    result = PackageResult(package.name, "skipped", error=plan.error)
                else:
                    result = PackageResult(package.name, "discovered", len(plan.specs))
                self.results.append(result)
                yield result, plan
        except DiscoveryStopped:
            self.stopped = True
            log.warning("discovery_stopped", packages_discovered=self.packages)
        except BackupError as exc:
            self.error = exc
            log.error("discovery_failed", error=str(exc), packages_discovered=self.packages)

    def _clash(self, name: str) -> str | None:
        """Repository paths are lower case: two packages whose names differ only in case would
        write one repository, and the second would take the first one's tags."""
        first = self._paths.setdefault(name.lower(), name)
        if first == name:
            return None
        return (
            f"package {name!r} would be backed up to the same repository as {first!r} (their "
            "names differ only in case): only the first one reached is backed up"
        )

    @staticmethod
    def _refused(plan: PackagePlan) -> PackageResult:
        """A package naming the tool's own namespace fails; its other tags are still copied."""
        name = plan.package.name
        log.error(
            "reserved_name_refused",
            package=name,
            tags=[d.tag for d in plan.refused[:10]],
            tags_refused=len(plan.refused),
            reason=plan.refusal(),
        )
        return PackageResult(name, "failed", len(plan.specs), error=plan.refusal())

    @staticmethod
    def _out_of_shape(plan: PackagePlan) -> PackageResult:
        """A package with versions GitHub listed out of its API's shape fails (so prune leaves
        it alone); the tags of its well-formed versions are still copied."""
        name, skipped = plan.package.name, plan.package.skipped
        error = f"versions listed out of the API's shape were skipped: {'; '.join(skipped[:3])}"
        if len(skipped) > 3:
            error += f"; and {len(skipped) - 3} more"
        log.error("package_out_of_shape", package=name, skipped=list(skipped[:10]))
        return PackageResult(name, "failed", len(plan.specs), error=error)

    async def specs(self) -> AsyncIterator[CopySpec]:
        async for _, plan in self.found():
            for spec in plan.specs if plan else ():
                yield spec

    def stop(self) -> None:
        self.github.stop()

    @property
    def planned(self) -> int:
        """The tags this run's plans copy."""
        return sum(len(plan.specs) for plan in self.plans)

    def emptiness(self) -> str | None:
        """Why a complete discovery selected nothing to back up, naming what exists; None when
        it selected something, failed somewhere, or did not finish."""
        if not self.complete or self.failed_packages or self.planned:
            return None
        owner = str(self.config.owner)
        if skipped := [plan for plan in self.plans if plan.error]:
            return (
                f"every selected package of {owner} was skipped: {skipped[0].package.name}: "
                f"{skipped[0].error}" + (f"; and {len(skipped) - 1} more" if skipped[1:] else "")
            )
        if self.plans:
            names = listing([plan.package.name for plan in self.plans])
            return (
                f"the tag policy keeps no tag of the {len(self.plans)} selected package(s) of "
                f"{owner} ({names}): see --all-patches, --keep-prereleases and --include-tag"
            )
        if not self.passed_over:
            return (
                f"{owner} has no container package this token can see (GitHub listed none): "
                "check --org/--user and that the token has read:packages"
            )
        return (
            f"the selection matched none of the {len(self.passed_over)} package(s) of {owner} "
            f"({listing(self.passed_over)}): check --include-package, --exclude-package and "
            "--shard"
        )

    @property
    def complete(self) -> bool:
        return self.error is None and not self.stopped and not self.github.truncated

    @property
    def failed_packages(self) -> int:
        return sum(result.status == "failed" for result in self.results)

    def fatal_error(self) -> UsageError | None:
        """Discovery failed before reaching any package: nothing can be backed up (exit 2)."""
        if self.error is None or self.results:
            return None
        if isinstance(self.error, UsageError):
            return self.error
        return UsageError(str(self.error))

    def outcome(self) -> DiscoveryOutcome:
        github = self.github
        return DiscoveryOutcome(
            self.packages,
            self.failed_packages,
            github.pages_requested,
            github.rate_limit_remaining,
            github.truncated,
            str(self.error) if self.error else None,
            github.cache_state,
            github.pages_not_modified,
            github.packages_from_cache,
            github.packages_revalidated,
            github.packages_read,
        )

    def failed_check(self) -> Callable[[str], bool]:
        """Whether a repository (below the backup's prefix) is a package that failed this
        run: prune leaves its entries for later."""
        failed = self._failed_repositories()
        return lambda repository: repository in failed

    def outside_check(self) -> Callable[[str], bool]:
        """Whether this run did not look at a repository: a package outside
        --include-package/--exclude-package or this shard, one GitHub refused to list, or any
        when discovery stopped early. Its entries keep what they had."""
        unlisted = self._failed_repositories()
        return lambda repository: (
            not self.complete
            or not self.config.wants(repository.partition("/")[2])
            or repository in unlisted
        )

    def _failed_repositories(self) -> set[str]:
        owner = self.config.owner.name.lower()
        return {f"{owner}/{r.package}".lower() for r in self.results if r.status == "failed"}
