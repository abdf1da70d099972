"""environment(): the provenance a result carries; source_digest identifies the code that ran."""

import re

from bitmat_bench.env import environment, source_digest


def test_source_digest_follows_the_sources(tmp_path):
    pkg = tmp_path / "bitmat_demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    (pkg / "sub" / "mod.py").write_text("y = 2\n")
    (pkg / "notes.txt").write_text("not code")
    first = source_digest([str(pkg)])
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    assert source_digest([str(pkg)]) == first  # stable
    (pkg / "notes.txt").write_text("still not code")
    assert source_digest([str(pkg)]) == first  # only .py files count
    (pkg / "sub" / "mod.py").write_text("y = 3\n")
    changed = source_digest([str(pkg)])
    assert changed != first
    (pkg / "sub" / "mod.py").rename(pkg / "sub" / "other.py")
    assert source_digest([str(pkg)]) != changed  # paths count too
    assert source_digest([]) is None


def test_environment_records_the_source_digest():
    env = environment([])
    assert re.fullmatch(r"[0-9a-f]{12}", env["source_digest"])
    assert env["source_digest"] == source_digest()
