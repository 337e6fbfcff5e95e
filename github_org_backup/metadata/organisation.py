"""The organisation's own configuration, which GitHub cannot give back once it is deleted.

    org/organization.json         the organisation object
    org/members.json              its members
    org/teams/ID.json             {"team": ..., "members": [...], "repositories": [...]}: the
                                  repositories carry the team's ``permissions`` and ``role_name``
    org/hooks.json                its webhooks, with the config GitHub returns (secrets masked)
    org/actions-variables.json    Actions variables, values included
    org/actions-secrets.json      Actions secrets: names and dates only, GitHub gives no value
    org/rulesets.json             the ruleset list; org/rulesets/ID.json each ruleset in full

Each part fails alone: a token without the webhooks permission still backs up the teams.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from github_org_backup.metadata.parts import Part, PartRunner, known_pages, list_state, number

_LISTS = (
    ("members", "/members", "members.json", None),
    ("hooks", "/hooks", "hooks.json", None),
    ("actions-variables", "/actions/variables", "actions-variables.json", "variables"),
    ("actions-secrets", "/actions/secrets", "actions-secrets.json", "secrets"),
)


class OrganisationBackup:
    def __init__(self, runner: PartRunner, org: str) -> None:
        self.runner = runner
        self.reader = runner.reader
        self.store = runner.store
        self.org = org
        self.api_path = f"/orgs/{quote(org, safe='')}"

    def run(self, state: dict[str, Any]) -> None:
        run = self.runner.run
        run(self.org, "org/organization", state, self._organisation)
        for kind, path, name, key in _LISTS:

            def work(part: Part, path: str = path, name: str = name, key: str | None = key) -> None:
                self.runner.list_document(part, self.api_path + path, {}, ("org", name), key)

            run(self.org, f"org/{kind}", state, work)
        run(self.org, "org/teams", state, self._teams)
        run(self.org, "org/rulesets", state, self._rulesets)

    def _organisation(self, part: Part) -> None:
        etag = part.old.get("etag")
        if not self.store.path("org", "organization.json").exists():
            etag = None
        data, new_etag = self.reader.get_object(
            self.api_path, etag if isinstance(etag, str) else None
        )
        part.new = {"etag": new_etag}
        if data is not None and self.store.write(data, "org", "organization.json"):
            part.wrote("org", "organization.json")

    def _teams(self, part: Part) -> None:
        teams = self.runner.list_document(
            part, self.api_path + "/teams", {}, ("org", "teams"), write=False
        )
        known = part.old.get("each")
        known = known if isinstance(known, dict) else {}
        if teams is None:  # the list is unchanged: check each team's members and repositories
            listed = [
                {"id": int(k), "slug": v.get("slug"), "_kept": True}
                for k, v in known.items()
                if k.isdigit() and isinstance(v, dict)
            ]
        else:
            listed = teams
        each: dict[str, Any] = {}
        for index, team in enumerate(listed):
            ident, slug = number(team, "id"), team.get("slug") if isinstance(team, dict) else None
            if ident is None or not isinstance(slug, str) or not slug:
                part.skip(f"entry {index} of {self.api_path}/teams has no id or slug")
                continue
            old = known.get(str(ident))
            old = old if isinstance(old, dict) else {}
            path = f"{self.api_path}/teams/{quote(slug, safe='')}"
            doc = self.store.read("org", "teams", f"{ident}.json")
            doc = doc if isinstance(doc, dict) else {}
            fresh = not doc
            members = self._list(f"{path}/members", old.get("members"), fresh)
            repositories = self._list(f"{path}/repos", old.get("repositories"), fresh)
            each[str(ident)] = {
                "slug": slug,
                "members": list_state(members),
                "repositories": list_state(repositories),
            }
            new = {
                "team": doc.get("team") if team.get("_kept") else team,
                "members": doc.get("members") if members.items is None else members.items,
                "repositories": doc.get("repositories")
                if repositories.items is None
                else repositories.items,
            }
            if self.store.write(new, "org", "teams", f"{ident}.json"):
                part.wrote("org", "teams", f"{ident}.json")
        if teams is not None and not part.skipped:  # a team without an id may be any of them
            for name in self.store.names("org", "teams"):
                if name not in each:
                    self.store.remove("org", "teams", f"{name}.json")
                    part.wrote("org", "teams", f"{name}.json")
        part.new["each"] = each

    def _list(self, path: str, state: Any, fresh: bool) -> Any:
        tags, last = known_pages(state)
        return self.reader.read_list(path, {}, () if fresh else tags, last)

    def _rulesets(self, part: Part) -> None:
        rulesets = self.runner.list_document(
            part, self.api_path + "/rulesets", {}, ("org", "rulesets.json")
        )
        if rulesets is None:
            return
        kept = set()
        for index, summary in enumerate(rulesets):
            ident = number(summary, "id")
            if ident is None:
                part.skip(f"entry {index} of {self.api_path}/rulesets has no id")
                continue
            kept.add(str(ident))
            full, _ = self.reader.get_object(f"{self.api_path}/rulesets/{ident}", None)
            if self.store.write(full, "org", "rulesets", f"{ident}.json"):
                part.wrote("org", "rulesets", f"{ident}.json")
        for name in self.store.names("org", "rulesets"):
            if name not in kept and not part.skipped:
                self.store.remove("org", "rulesets", f"{name}.json")
                part.wrote("org", "rulesets", f"{name}.json")
