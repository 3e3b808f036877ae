"""The checkpoints folder as a model registry shared by a server's visitors.

- Every checkpoint is listed and, if it loads, usable by anyone; a file that does not load (damaged,
  another architecture, bad metadata, NaN weights) is listed as broken with its reason.
- A model trained from the app carries its owner's key in its metadata: only that owner may rename or
  delete it. Shipped models and models without an owner (trained with the CLI) are nobody's to change.
- A visitor is known by a random token (kept in the page's URL, so it survives a reload); the
  metadata holds only a hash of it, so reading the checkpoints does not reveal anyone's token.
- Rename and delete take a file *name*, never a path, and work only on a regular file directly in the
  folder: whatever a browser sends, nothing outside the folder is touched.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import (
    ONE_CLASS_FOLDER,
    SHIPPED,
    SUFFIX,
    CheckpointError,
    checkpoint_dir,
    clean_stale_temp_files,
    load_checkpoint,
)
from ..files import write_atomically
from . import limits
from .limits import LIMITS

# Matched whole (fullmatch): "$" alone also matches before a trailing newline, which let "evil\n.pt" through.
NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{LIMITS.name_length - 1}}}")
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
LAST_USED_FILE = ".last-used.json"  # model file name → when a page last used it (the oldest unused expire first)


class NotAllowed(PermissionError):
    """The file is not one this visitor may change (shipped, someone else's, or not a checkpoint here)."""


def new_token() -> str:
    """A fresh visitor token: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def valid_token(token) -> bool:
    return isinstance(token, str) and TOKEN_PATTERN.fullmatch(token) is not None


def owner_key(token: str) -> str:
    """What a checkpoint stores as its owner: a hash of the visitor's token, not the token itself."""
    if not valid_token(token):
        raise ValueError("not a visitor token")
    return hashlib.sha256(f"conv-vae-studio owner:{token}".encode()).hexdigest()[:32]


def origin_key(address: str) -> str:
    """What a checkpoint stores as the address it was trained from (traffic.address_key): a hash, so the
    files do not reveal anyone's address; models per address are counted by it."""
    return hashlib.sha256(f"conv-vae-studio origin:{address}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CheckpointEntry:
    path: Path
    mtime: float
    metadata: dict | None  # None when the file is broken
    error: str | None  # why it cannot be loaded

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def one_class(self) -> bool:
        """One of the benchmark's one-class models, shipped in checkpoints/one-class/."""
        return self.path.parent.name == ONE_CLASS_FOLDER

    @property
    def shipped(self) -> bool:
        return self.path.name in SHIPPED and not self.one_class

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def owner(self) -> str | None:
        return None if self.metadata is None else self.metadata.get("owner")

    def owned_by(self, key: str | None) -> bool:
        return key is not None and not self.shipped and self.owner == key

    @property
    def digits(self) -> list[int] | None:
        """The digits the model was trained on, or None for all ten."""
        digits = (self.metadata or {}).get("digits")
        return sorted(int(d) for d in digits) if digits else None

    @property
    def short_label(self) -> str:
        """'vae-z64 · VAE z=64': what fits the sidebar's picker; `details` says the rest below it."""
        if not self.ok:
            return f"{self.path.name} · BROKEN"
        return f"{self.name} · {self.metadata['kind'].upper()} z={self.metadata['latent_dim']}"

    @property
    def details(self) -> str:
        """'test loss 98.9 · all digits · 60 epochs on 60,000 images · mnist' (what the short label leaves out)."""
        m = self.metadata or {}
        loss = (m.get("test_loss") or {}).get("total")
        digits = self.digits
        parts = [f"test loss {loss:.1f}" if isinstance(loss, (int, float)) else "no test loss stored",
                 "all digits" if digits is None else f"digit{'s' if len(digits) > 1 else ''} {', '.join(map(str, digits))}"]
        if isinstance(m.get("train_images"), int):
            epochs = m.get("epochs", "?")
            parts.append(f"{epochs} epoch{'' if epochs == 1 else 's'} on {m['train_images']:,} images")
        parts.append(str(m.get("data_source", "?")))
        return " · ".join(parts)

    @property
    def label(self) -> str:
        """The short label and the details in one line: 'vae-z64 · VAE z=64 · test loss 98.9 · …'."""
        if not self.ok:
            return self.short_label
        kind = "one-class " if self.one_class else ""
        return f"{self.name} · {kind}{self.metadata['kind'].upper()} z={self.metadata['latent_dim']} · {self.details}"


def entry_for(path: str | os.PathLike) -> CheckpointEntry:
    """Load the file as the app would (architecture, weights, metadata all checked) and say whether it is usable.

    Remembered per file version (size and modification time), so a folder of hundreds of visitors'
    models is read once, not on every scan (31 ms a file)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        return CheckpointEntry(path, 0.0, None, f"cannot be read ({exc.strerror or exc})")
    return _describe_version(path, stat.st_mtime, stat.st_mtime_ns, stat.st_size)


def metadata_problem(metadata) -> str | None:
    """Why the metadata may not be listed or rendered (nested too deep, too big), or None. It is walked
    without recursion, and the walk stops at the first limit, so a hostile file costs little to check."""
    most_depth, most_bytes = limits.LIMITS.metadata_depth, limits.LIMITS.metadata_kb * 1024
    size, todo = 0, [(metadata, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, (dict, list, tuple)):
            if depth > most_depth:
                return f"its metadata is nested more than {most_depth} levels deep"
            items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            for key, item in items:
                size += 2 + (len(key) if isinstance(key, str) else 0)
                todo.append((item, depth + 1))
        else:
            size += len(value) if isinstance(value, str) else 8
        if size > most_bytes:
            return f"its metadata is larger than {limits.LIMITS.metadata_kb} KB"
    return None


@functools.lru_cache(maxsize=2048)
def _describe_version(path: Path, mtime: float, mtime_ns: int, size: int) -> CheckpointEntry:
    try:
        _, metadata = load_checkpoint(path)
        if problem := metadata_problem(metadata):
            return CheckpointEntry(path, mtime, None, f"{path.name} cannot be listed: {problem}")
        return CheckpointEntry(path, mtime, metadata, None)
    except CheckpointError as exc:
        return CheckpointEntry(path, mtime, None, str(exc))
    except OSError as exc:
        return CheckpointEntry(path, mtime, None, f"cannot be read ({exc.strerror or exc})")


def scan(folder: str | os.PathLike | None = None) -> list[CheckpointEntry]:
    """Every *.pt in the folder: shipped ones first (in SHIPPED order), the one-class models of its one-class/
    folder next (by name), then the others, newest first.

    Temp files of saves that died midway are removed on the way.
    """
    folder = Path(folder or checkpoint_dir())
    if not folder.is_dir():
        return []
    clean_stale_temp_files(folder)
    paths = [p for p in folder.glob(f"*{SUFFIX}") if p.is_file() and not p.name.startswith(".")]
    shipped = sorted((p for p in paths if p.name in SHIPPED), key=lambda p: SHIPPED.index(p.name))
    own = sorted((p for p in paths if p.name not in SHIPPED), key=lambda p: p.stat().st_mtime, reverse=True)
    one_class = sorted(p for p in (folder / ONE_CLASS_FOLDER).glob(f"*{SUFFIX}") if p.is_file() and not p.name.startswith("."))
    return [entry_for(p) for p in shipped + one_class + own]


def owned(entries: list[CheckpointEntry], key: str | None) -> list[CheckpointEntry]:
    """The usable entries this owner may rename and delete. A file that does not load proves no owner:
    only whoever runs the server removes it."""
    return [e for e in entries if e.owned_by(key)]


def owned_path(name: str, key: str | None, folder: str | os.PathLike | None = None) -> Path:
    """The checkpoint `name` in `folder`, if the owner `key` may change it; NotAllowed otherwise.

    `name` is a bare file name ('vae-z2-mine.pt'): a path, a link, a shipped model, a file that does
    not load or one with another owner are all refused, with a reason a visitor can read.
    """
    if not isinstance(name, str) or not name.endswith(SUFFIX) or not NAME_PATTERN.fullmatch(name[: -len(SUFFIX)]):
        raise NotAllowed(f"{str(name)[:100]!r} is not the name of a checkpoint")
    if name in SHIPPED:
        raise NotAllowed(f"{name} is a shipped model and cannot be changed")
    folder = Path(folder or checkpoint_dir()).resolve()
    path = folder / name
    if path.is_symlink() or not path.is_file() or path.resolve().parent != folder:
        raise NotAllowed(f"{name} is not a checkpoint in {folder.name}/")
    entry = entry_for(path)
    if key is None or not entry.owned_by(key):
        raise NotAllowed(f"{name} belongs to someone else: only the visitor who trained it may change it")
    return path


# Rename and delete check, then act: two tabs racing must not interleave (a rename "failed" that happened,
# a delete "succeeded" on a model that survived renamed). One server process changes the folder.
_changing = threading.Lock()


class Gone(NotAllowed):
    """The model is no longer there: renamed or deleted meanwhile (in another tab), or expired."""


def rename(name: str, new_name: str, key: str | None, folder: str | os.PathLike | None = None) -> Path:
    """Rename one of the owner's checkpoints within the folder; the new name must be new and simple."""
    new_name = new_name.strip() if isinstance(new_name, str) else ""
    if new_name.endswith(SUFFIX):
        new_name = new_name[: -len(SUFFIX)]
    if not NAME_PATTERN.fullmatch(new_name):
        raise ValueError(f"a name uses letters, digits, '.', '_' and '-' only (at most {LIMITS.name_length}), "
                         f"e.g. vae-z16-ones")
    with _changing:
        path = _still_owned(name, key, folder)
        target = path.with_name(new_name + SUFFIX)
        if target.name in SHIPPED or target.exists() or target.is_symlink():
            raise FileExistsError(f"{target.name} already exists; choose another name")
        os.link(path, target)  # fails instead of overwriting if the name was taken meanwhile
        os.unlink(path)
        _move_last_use(path, target)
    return target


def delete(name: str, key: str | None, folder: str | os.PathLike | None = None) -> None:
    """Delete one of the owner's checkpoints."""
    with _changing:
        path = _still_owned(name, key, folder)
        path.unlink()
        _move_last_use(path, None)


def for_visitors(exc: Exception) -> str:
    """What a visitor reads when a rename or delete fails: this module's own sentences as they are (they name
    files, never folders); for anything else the OS raised, its reason in words, without errno or paths."""
    if isinstance(exc, (ValueError, NotAllowed, FileExistsError)):
        return str(exc)
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    return f"the server could not change the file ({reason.lower()}); nothing was changed"


def _still_owned(name: str, key: str | None, folder) -> Path:
    """owned_path, saying Gone when the file went away meanwhile (not a permission problem)."""
    folder_path = Path(folder or checkpoint_dir())
    if (isinstance(name, str) and name.endswith(SUFFIX) and NAME_PATTERN.fullmatch(name[: -len(SUFFIX)])
            and not (folder_path / name).exists()):
        raise Gone(f"{name} is no longer there (renamed or deleted in another tab?)")
    return owned_path(name, key, folder)


# --- which models a visitor uses, and which expire ----------------------------------------------------------

_noted: dict[str, float] = {}  # path → when its use was last written down


def note_use(path: str | os.PathLike, now: float | None = None) -> None:
    """A page used this model for a visitor: written down at most once per LIMITS.note_use_s per model."""
    now = time.time() if now is None else now
    path = Path(path)
    if now - _noted.get(str(path), 0.0) < limits.LIMITS.note_use_s:
        return
    _noted[str(path)] = now
    with _changing:
        record = _last_use_record(path.parent)
        record[path.name] = now
        _write_last_use(path.parent, record)


def last_used(entry: CheckpointEntry, record: dict) -> float:
    """When a page last used the model, or when it was saved if never (whichever is later)."""
    used = record.get(entry.path.name)
    return max(entry.mtime, used if isinstance(used, (int, float)) else 0.0)


def expire_unused(entries: list[CheckpointEntry], count: int, origin: str | None = None,
                  folder: str | os.PathLike | None = None, now: float | None = None) -> list[Path]:
    """Delete up to `count` visitors' models nobody has used for LIMITS.model_idle_s, the longest unused first
    (only those trained from `origin`, if given); the paths removed. Shipped models, one-class models and
    models trained with the CLI (no owner) never expire."""
    now = time.time() if now is None else now
    folder = Path(folder or checkpoint_dir())
    with _changing:
        record = _last_use_record(folder)
        candidates = sorted((e for e in entries if e.ok and e.owner is not None and not e.shipped and not e.one_class
                             and (origin is None or e.metadata.get("origin") == origin)
                             and now - last_used(e, record) >= limits.LIMITS.model_idle_s),
                            key=lambda e: last_used(e, record))
        removed = []
        for entry in candidates[:count]:
            try:
                entry.path.unlink()
            except FileNotFoundError:
                continue
            record.pop(entry.path.name, None)
            removed.append(entry.path)
        if removed:
            _write_last_use(folder, record)
    return removed


def _last_use_record(folder: Path) -> dict:
    try:
        record = json.loads((folder / LAST_USED_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_last_use(folder: Path, record: dict) -> None:
    try:
        write_atomically(folder / LAST_USED_FILE, lambda f: f.write(json.dumps(record).encode()))
    except OSError:  # a full or read-only disk: uses are not written down, nothing else breaks
        pass


def _move_last_use(path: Path, target: Path | None) -> None:
    """Called with _changing held: the record follows a rename, and forgets a deleted model."""
    record = _last_use_record(path.parent)
    used = record.pop(path.name, None)
    if target is not None and used is not None:
        record[target.name] = used
    if used is not None:
        _write_last_use(path.parent, record)
