"""write_folder_atomically: a folder appears whole or not at all."""

import pytest
from bitmat_hf.utils import write_folder_atomically


def test_write_folder_atomically_replaces_whole_or_keeps_the_old(tmp_path):
    out = tmp_path / "sub" / "model"
    write_folder_atomically(out, lambda tmp: (tmp / "a.txt").write_text("one"))
    assert (out / "a.txt").read_text() == "one"

    def fails(tmp):
        (tmp / "b.txt").write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_folder_atomically(out, fails)
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]  # the old folder, untouched
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]  # no temporary folder left
    write_folder_atomically(out, lambda tmp: (tmp / "c.txt").write_text("two"))
    assert sorted(p.name for p in out.iterdir()) == ["c.txt"]
