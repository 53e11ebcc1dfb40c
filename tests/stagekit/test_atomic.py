"""Write, then rename: a failure at any point leaves the previous file or directory whole and no temporary behind."""

from __future__ import annotations

import json
import os

import pytest
from datasets import Dataset, load_from_disk

from stagekit import atomic
from stagekit.atomic import replace_dir, save_dataset, staged_dir, staged_file, write_atomic, write_json


def test_write_atomic_text_bytes_and_json(tmp_path):
    assert write_atomic(tmp_path / "a.txt", "héllo") == tmp_path / "a.txt"
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    write_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    write_json(tmp_path / "sub" / "c.json", {"x": 1.5, "p": tmp_path}, indent=None)  # parents made; Path -> str
    assert json.loads((tmp_path / "sub" / "c.json").read_text()) == {"x": 1.5, "p": str(tmp_path)}
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin", "sub"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_atomic(path, "old")

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", disk_full)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["summary.json"]


def test_staged_file_keeps_the_suffix_and_renames_only_on_success(tmp_path):
    with staged_file(tmp_path / "curve.png") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp.name.startswith(".curve.png.tmp-")
        tmp.write_bytes(b"png")
    assert (tmp_path / "curve.png").read_bytes() == b"png"
    with pytest.raises(RuntimeError):
        with staged_file(tmp_path / "curve.png") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("plot failed")
    assert (tmp_path / "curve.png").read_bytes() == b"png" and os.listdir(tmp_path) == ["curve.png"]


def test_replace_dir_moves_the_old_aside_and_puts_it_back_if_the_move_fails(tmp_path, monkeypatch):
    out, new = tmp_path / "out", tmp_path / "new"
    out.mkdir()
    (out / "f").write_text("old")
    new.mkdir()
    (new / "f").write_text("new")
    real_replace, calls = os.replace, []

    def second_fails(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", second_fails)
    with pytest.raises(OSError, match="rename failed"):
        replace_dir(new, out)
    assert (out / "f").read_text() == "old" and (new / "f").read_text() == "new"  # rolled back, nothing lost
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    replace_dir(new, out, durable=True)
    assert (out / "f").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["out"]


def test_staged_dir_and_save_dataset(tmp_path):
    with pytest.raises(ValueError):
        with staged_dir(tmp_path / "d") as tmp:
            (tmp / "half").write_text("x")
            raise ValueError("build failed")
    assert os.listdir(tmp_path) == []
    save_dataset(Dataset.from_dict({"a": [1, 2]}), tmp_path / "ds")
    save_dataset(Dataset.from_dict({"a": [3]}), tmp_path / "ds")  # over a previous dataset
    assert load_from_disk(str(tmp_path / "ds"))["a"] == [3]
    assert os.listdir(tmp_path) == ["ds"]


def _dead_pid() -> int:
    import subprocess

    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_killed_builds_staging_is_removed_by_the_next_write(tmp_path):
    """Issue 20: a killed `data build` left hidden `.X.tmp-*` staging directories behind for good. The next staged
    write of the same target removes those of dead writers, keeps a live writer's, and puts back a previous output
    that a writer killed between its two renames had moved aside."""
    out = tmp_path / "data"  # data_builders.writer.write stages its output with staged_dir
    dead, live = _dead_pid(), os.getpid()
    stale = tmp_path / f".data.tmp-{dead}-0123abcd"
    (stale / "sft").mkdir(parents=True)
    (stale / "sft" / "data.arrow").write_bytes(b"x" * 1000)
    busy = tmp_path / f".data.tmp-{live}-89abcdef"  # a concurrent writer, still running
    busy.mkdir()
    other = tmp_path / f".elsewhere.tmp-{dead}-0123abcd"  # another target's: not ours to judge
    other.mkdir()
    with staged_dir(out) as staging:
        (staging / "manifest.json").write_text("{}")
    assert not stale.exists() and busy.exists() and other.exists()
    assert (out / "manifest.json").is_file()

    moved_aside = tmp_path / f".data.old-{dead}-00ff00ff"  # killed after moving the old output aside
    os.replace(out, moved_aside)
    assert atomic.remove_stale_siblings(out) == [moved_aside]
    assert (out / "manifest.json").is_file() and not moved_aside.exists()
