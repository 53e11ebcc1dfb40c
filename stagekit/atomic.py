"""Write, then rename: every file and directory the project writes appears complete or not at all.

One helper for each shape of output, all built on the same two moves: write under a hidden temporary name beside
the target (same directory, so same filesystem), then `os.replace` it into place. A process killed in between
leaves the old target intact and a `.<name>.tmp-<pid>-*` sibling; for directories the next writer of that target
removes it once that pid is gone (`remove_stale_siblings`).

- `write_atomic(path, data)`: a text or bytes file (summaries, manifests, JSONL rewrites, configs);
- `write_json(path, obj)`: the same for a JSON document;
- `staged_file(path)`: a context manager yielding the temporary path, for writers that want a file name
  (matplotlib's `savefig`, `safetensors.save_file`);
- `replace_dir(new, out)`: move a finished directory over another; the old one is moved aside first and deleted
  only once the new one is in place (`os.replace` cannot overwrite a non-empty directory);
- `save_dataset(dataset, path)`: `Dataset.save_to_disk` into a staged directory, then `replace_dir`;
- `fsync_tree(root)`: make a staged tree durable before it is published (checkpoints).

Hand-written because neither the standard library nor the stack (transformers, datasets, accelerate) offers an
atomic write of a file or a directory tree; the dozen lines each writer would otherwise repeat live here once.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _sibling(path: Path, tag: str = "tmp") -> Path:
    """A hidden, unique name beside `path`: `.<name>.<tag>-<pid>-<hex>` (several processes may stage at once)."""
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_siblings(path: str | os.PathLike) -> list[Path]:
    """Clear what killed writers of `path` left beside it; returns what was removed or restored.

    A `.<name>.tmp-<pid>-*` staging file or directory whose writer (the pid in its name) is gone is deleted. A
    `.<name>.old-<pid>-*` is the previous output that `replace_dir` moved aside: if `path` itself is missing (the
    writer died between its two renames) it is renamed back, else deleted. Siblings of live writers are left alone,
    so concurrent writers on one machine never delete each other's work. Called by `staged_dir` (data builds,
    datasets, checkpoints: the big leftovers); single files are small and not scanned for on every write.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(tmp|old)-(\d+)-[0-9a-f]{{8}}.*")
    touched = []
    for sibling in sorted(path.parent.iterdir()):
        match = pattern.fullmatch(sibling.name)
        if not match or _pid_alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and not path.exists() and not path.is_symlink():
            os.replace(sibling, path)
        elif sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            sibling.unlink(missing_ok=True)
        touched.append(sibling)
    return touched


@contextmanager
def staged_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on a clean exit it is renamed to `path`, on an error removed.

    The suffix of `path` is kept (`x.png` stages as `.x.png.tmp-...png`), so writers that pick a format by
    extension still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path)
    tmp = tmp.with_name(tmp.name + path.suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(
    path: str | os.PathLike, data: str | bytes, *, encoding: str = "utf-8", durable: bool = False
) -> Path:
    """Write `data` (text or bytes) to `path` through a temporary sibling and a rename; returns the path.

    `durable`: fsync the file before the rename and the directory after it (caches worth surviving a power cut).
    """
    path = Path(path)
    with staged_file(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode(encoding))
            if durable:
                f.flush()
                os.fsync(f.fileno())
    if durable:
        fsync_dir(path.parent)
    return path


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, default=str, **dumps) -> Path:
    """`obj` as JSON at `path`, atomically (`default` turns what JSON cannot encode into text)."""
    return write_atomic(path, json.dumps(obj, indent=indent, default=default, **dumps))


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory, so the entries in it (a rename) are durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """fsync every file under `root`, then every directory."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for dirpath, _, _ in os.walk(root):
        fsync_dir(dirpath)


def replace_dir(new: str | os.PathLike, out: str | os.PathLike, *, durable: bool = False) -> None:
    """Move the finished directory `new` to `out`, replacing what is there.

    A previous `out` is renamed aside first and deleted only once `new` is in place; if the second rename fails the
    old one is put back. `durable`: fsync the parent directory afterwards (checkpoints).
    """
    new, out = Path(new), Path(out)
    if not out.exists():
        os.replace(new, out)
    else:
        old = _sibling(out, "old")
        os.replace(out, old)
        try:
            os.replace(new, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    if durable:
        fsync_dir(out.parent)


@contextmanager
def staged_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh empty directory beside `path`; on a clean exit it replaces `path` (`replace_dir`), on an error
    it is removed. Its mode is the umask's, not mkdtemp's 0700, since it becomes the output."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(path)
    tmp = _sibling(path)
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_dataset(dataset, path: str | os.PathLike) -> Path:
    """`dataset.save_to_disk` into a staged directory renamed over `path`: never half a dataset on disk."""
    with staged_dir(path) as tmp:
        dataset.save_to_disk(str(tmp))
    return Path(path)
