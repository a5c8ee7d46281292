"""Check the licence of every distribution the api and worker images install against an allowlist.

    python scripts/check_licences.py [--extras api,worker] [--list]

The set is the project's own requirements with those extras, followed through every requirement's
requirements (markers evaluated for this Python), read from the installed distributions' metadata: an
SPDX `License-Expression`, else the `License` field, else the trove classifiers. A licence outside
ALLOWED, or one this script cannot read, fails the check with the package named: review it, then add
its SPDX id to ALLOWED or its free-text licence to FREE_TEXT here (NOTICE says why each is acceptable).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "turkish-stt"
# Permissive licences, and the weak copyleft ones whose libraries may be used unmodified from a
# separate, replaceable file (psycopg and libsoxr, LGPL): nothing strong copyleft (GPL, AGPL) or unknown.
ALLOWED = {
    "0BSD",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "CC0-1.0",
    "HPND",
    "ISC",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "MIT",
    "MIT-0",
    "MIT-CMU",
    "MPL-2.0",
    "PSF-2.0",
    "Python-2.0",
    "Unlicense",
    "Zlib",
}
# Licence fields written as prose rather than SPDX, as the packages we install write them.
FREE_TEXT = {
    "apache 2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "3-clause bsd license": "BSD-3-Clause",
    "bsd": "BSD-3-Clause",
    "bsd 3-clause license": "BSD-3-Clause",
    "bsd license": "BSD-3-Clause",
    "bsd licensed, as found in the license file": "BSD-3-Clause",  # flashlight-text: its LICENSE is BSD-3
    "mit license": "MIT",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "python software foundation license": "PSF-2.0",
    "isc license (iscl)": "ISC",
}


@dataclass(frozen=True)
class Found:
    name: str
    version: str
    licence: str  # as the package states it
    spdx: list[str]  # the SPDX ids it comes to; empty when unreadable

    @property
    def allowed(self) -> bool:
        return bool(self.spdx) and all(part in ALLOWED for part in self.spdx)


def spdx_ids(dist: metadata.Distribution) -> tuple[str, list[str]]:
    """The licence as stated, and the SPDX ids it names (every one of them must be allowed)."""
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return expression, [p for p in re.split(r"\s+(?:AND|OR|WITH)\s+|[()]", expression) if p.strip()]
    stated = " ".join((meta.get("License") or "").split())
    if stated and len(stated) < 100 and stated.lower() not in ("unknown", "none"):
        known = FREE_TEXT.get(stated.lower()) or (stated if stated in ALLOWED else None)
        if known:
            return stated, [known]
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    mapped = [FREE_TEXT.get(c.lower()) for c in classifiers]
    if classifiers and all(mapped):
        return "; ".join(classifiers), [m for m in mapped if m]
    return stated[:80] or "; ".join(classifiers) or "(none stated)", []


def closure(roots: Iterable[str], extras: Iterable[str], path: list[str] | None = None) -> list[metadata.Distribution]:
    """Every installed distribution the roots (with `extras` on the roots) require, transitively."""
    environment = default_environment()
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()  # each package once per set of extras asked of it
    todo = [(root, frozenset(extras)) for root in roots]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if (key, wanted) in seen:
            continue
        seen.add((key, wanted))
        dist = next(iter(metadata.distributions(name=name, path=path)), None) if path else None
        dist = dist or metadata.distribution(name)
        found[key] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            needed = marker is None or any(marker.evaluate({**environment, "extra": e}) for e in ("", *wanted))
            if needed:
                todo.append((requirement.name, frozenset(requirement.extras)))
    return [d for k, d in sorted(found.items()) if k != canonicalize_name(PROJECT)]


def check(roots: Iterable[str], extras: Iterable[str], path: list[str] | None = None) -> list[Found]:
    return [Found(d.metadata["Name"], d.version, *spdx_ids(d)) for d in closure(roots, extras, path)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extras", default="api,worker", help="The project's extras whose installs are checked.")
    parser.add_argument("--root", action="append", help=f"Distributions to start from (default: {PROJECT}).")
    parser.add_argument("--path", action="append", help="Look for distributions here first (tests).")
    parser.add_argument("--list", action="store_true", help="Print every package and its licence.")
    args = parser.parse_args(argv)
    try:
        found = check(args.root or [PROJECT], [e for e in args.extras.split(",") if e], args.path)
    except metadata.PackageNotFoundError as exc:
        print(f"licences: {exc} is required but not installed", file=sys.stderr)
        return 2
    refused = [f for f in found if not f.allowed]
    for f in found if args.list else refused:
        verdict = "ok" if f.allowed else "NOT ALLOWED" if f.spdx else "UNREADABLE"
        print(f"{f.name} {f.version}: {f.licence} -> {' + '.join(f.spdx) or '?'} [{verdict}]")
    print(f"licences: {len(found)} packages checked, {len(refused)} outside the allowlist")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
