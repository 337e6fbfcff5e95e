"""Check that a file is a CycloneDX JSON SBOM listing the named packages, each with a version.

    python3 deploy/image/check_sbom.py sbom.cdx.json github-org-backup=0.1.0 aiohttp

NAME=VERSION wants that exact version; a bare NAME wants any. Prints one line of what it found;
exits 1, saying what is wrong, when the file is not such an SBOM.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any


def normalized(name: str) -> str:
    """PEP 503: names compare lower-case, with runs of -, _ and . as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def problems(sbom: Any, wanted: list[str]) -> tuple[list[str], dict[str, str]]:
    """What is wrong with the SBOM, and the versions it gives the wanted packages."""
    if not isinstance(sbom, dict) or sbom.get("bomFormat") != "CycloneDX":
        return ["not a CycloneDX document (bomFormat is not CycloneDX)"], {}
    found: list[str] = []
    if not re.fullmatch(r"1\.[0-9]+", str(sbom.get("specVersion", ""))):
        found.append(f"specVersion {sbom.get('specVersion')!r} is not 1.x")
    components = sbom.get("components")
    if not isinstance(components, list):
        return [*found, "no components list"], {}
    versions: dict[str, str] = {}
    for component in components:
        if isinstance(component, dict) and isinstance(component.get("name"), str):
            versions.setdefault(normalized(component["name"]), str(component.get("version", "")))
    listed: dict[str, str] = {}
    for entry in wanted:
        name, _, version = entry.partition("=")
        have = versions.get(normalized(name))
        if have is None:
            found.append(f"{name} is not listed")
        elif not have:
            found.append(f"{name} is listed without a version")
        elif version and have != version:
            found.append(f"{name} is listed as {have}, expected {version}")
        else:
            listed[name] = have
    return found, listed


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[0])
    try:
        sbom = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        print(f"{path}: not a JSON SBOM: {error}", file=sys.stderr)
        return 1
    wrong, listed = problems(sbom, argv[1:])
    if wrong:
        print(f"{path}: " + "; ".join(wrong), file=sys.stderr)
        return 1
    names = ", ".join(f"{name} {version}" for name, version in listed.items())
    print(
        f"sbom ok: CycloneDX {sbom['specVersion']}, {len(sbom['components'])} components, {names}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
