#!/usr/bin/env python3
"""Package versions of the workspace.

  tools/versions.py show                 each package's version
  tools/versions.py check                every sibling pin admits the sibling's current version
  tools/versions.py bump PACKAGE PART    bump one package (PART: major, minor, patch or X.Y.Z), then check

A bump that a sibling's pin no longer admits is reported (exit 1) with the pin to widen; the pins
are bounded ranges (e.g. bitmat-kernels>=0.1,<0.2), never file references.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as a package
    import tomli as tomllib

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ROOT / "packages"


def about_file(pkg_dir: Path) -> Path:
    meta = tomllib.loads((pkg_dir / "pyproject.toml").read_text())
    return pkg_dir / meta["tool"]["hatch"]["version"]["path"]


def read_version(pkg_dir: Path) -> Version:
    match = re.search(r'__version__\s*=\s*"([^"]+)"', about_file(pkg_dir).read_text())
    if not match:
        raise SystemExit(f"no __version__ in {about_file(pkg_dir)}")
    return Version(match.group(1))


def packages() -> dict[str, Path]:
    found = {}
    for d in sorted(PACKAGES.iterdir()):
        if (d / "pyproject.toml").exists():
            found[tomllib.loads((d / "pyproject.toml").read_text())["project"]["name"]] = d
    return found


def requirements(pkg_dir: Path) -> list[tuple[str, Requirement]]:
    project = tomllib.loads((pkg_dir / "pyproject.toml").read_text())["project"]
    reqs = [("dependencies", Requirement(r)) for r in project.get("dependencies", [])]
    for extra, items in project.get("optional-dependencies", {}).items():
        reqs += [(f"extra '{extra}'", Requirement(r)) for r in items]
    return reqs


def check() -> list[str]:
    pkgs = packages()
    versions = {name: read_version(d) for name, d in pkgs.items()}
    problems = []
    for name, d in pkgs.items():
        for where, req in requirements(d):
            if req.name not in versions:
                continue
            if req.url:
                problems.append(f"{name}: {where} pins {req.name} by URL ({req}); use a version range")
            elif not req.specifier:
                problems.append(f"{name}: {where} leaves {req.name} unbounded; use a range like >=X.Y,<X.Y+1")
            elif not req.specifier.contains(versions[req.name], prereleases=True):
                problems.append(f"{name}: {where} requires {req} but {req.name} is {versions[req.name]}")
    return problems


def bump(version: Version, part: str) -> Version:
    major, minor, patch = (*version.release, 0, 0)[:3]
    if part == "major":
        return Version(f"{major + 1}.0.0")
    if part == "minor":
        return Version(f"{major}.{minor + 1}.0")
    if part == "patch":
        return Version(f"{major}.{minor}.{patch + 1}")
    return Version(part)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)
    sub.add_parser("show", help="print each package's version")
    sub.add_parser("check", help="check that sibling pins admit current versions")
    b = sub.add_parser("bump", help="bump one package's version")
    b.add_argument("package", help="e.g. bitmat-kernels")
    b.add_argument("part", help="major, minor, patch or an explicit version")
    args = parser.parse_args(argv)

    pkgs = packages()
    if args.verb == "show":
        for name, d in pkgs.items():
            print(f"{name} {read_version(d)}")
        return 0
    if args.verb == "bump":
        if args.package not in pkgs:
            print(f"unknown package {args.package!r}; known: {', '.join(pkgs)}", file=sys.stderr)
            return 2
        path = about_file(pkgs[args.package])
        old = read_version(pkgs[args.package])
        new = bump(old, args.part)
        if new <= old:
            print(f"new version {new} is not above {old}", file=sys.stderr)
            return 2
        path.write_text(re.sub(r'__version__\s*=\s*"[^"]+"', f'__version__ = "{new}"', path.read_text()))
        print(f"{args.package}: {old} -> {new} ({path.relative_to(ROOT)}); add a CHANGELOG entry")
    problems = check()
    for p in problems:
        print("pin problem:", p, file=sys.stderr)
    if not problems:
        print("all sibling pins admit the current versions")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
