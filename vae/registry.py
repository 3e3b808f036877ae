"""The checkpoints folder as a model registry: list, rename and delete, shipped models protected."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CHECKPOINT_DIR, SUFFIX, CheckpointError, read_checkpoint

# Trained on all 60,000 MNIST training images and committed with the project; never overwritten.
SHIPPED = ("vae-z64.pt", "ae-z64.pt", "vae-z3.pt", "ae-z3.pt", "vae-z2.pt", "ae-z2.pt")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


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
    def shipped(self) -> bool:
        return self.path.name in SHIPPED

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str:
        """'vae-z64 · VAE z=64 · test 99.4 · mnist' or 'broken.pt · BROKEN: reason'."""
        if not self.ok:
            return f"{self.path.name} · BROKEN"
        m = self.metadata
        test = (m.get("test_loss") or {}).get("total")
        test_text = f"test {test:.1f}" if isinstance(test, (int, float)) else "test ?"
        digits = m.get("digits")
        digits_text = f" · digits {''.join(map(str, digits))}" if digits else ""
        return f"{self.name} · {m['kind'].upper()} z={m['latent_dim']} · {test_text}{digits_text} · {m.get('data_source', '?')}"


def describe(path: str | os.PathLike) -> CheckpointEntry:
    path = Path(path)
    mtime = path.stat().st_mtime if path.exists() else 0.0
    try:
        payload = read_checkpoint(path)
        metadata = dict(payload.get("metadata") or {})
        metadata.update(kind=payload["kind"], latent_dim=int(payload["latent_dim"]))
        return CheckpointEntry(path, mtime, metadata, None)
    except (CheckpointError, KeyError, TypeError, ValueError) as exc:
        return CheckpointEntry(path, mtime, None, str(exc))


def scan(folder: str | os.PathLike = CHECKPOINT_DIR) -> list[CheckpointEntry]:
    """Every *.pt in the folder: shipped ones first (in SHIPPED order), then the user's, newest first."""
    folder = Path(folder)
    paths = [p for p in folder.glob(f"*{SUFFIX}") if p.is_file()] if folder.is_dir() else []
    shipped = sorted((p for p in paths if p.name in SHIPPED), key=lambda p: SHIPPED.index(p.name))
    own = sorted((p for p in paths if p.name not in SHIPPED), key=lambda p: p.stat().st_mtime, reverse=True)
    return [describe(p) for p in shipped + own]


def _refuse_shipped(path: Path, action: str) -> None:
    if path.name in SHIPPED:
        raise PermissionError(f"{path.name} is a shipped model and cannot be {action}")


def rename(path: str | os.PathLike, new_name: str) -> Path:
    """Rename a user's checkpoint within its folder; the new name must be new and simple."""
    path = Path(path)
    _refuse_shipped(path, "renamed")
    new_name = new_name.strip()
    if new_name.endswith(SUFFIX):
        new_name = new_name[: -len(SUFFIX)]
    if not NAME_PATTERN.match(new_name):
        raise ValueError("a name uses letters, digits, '.', '_' and '-' only (at most 80), e.g. vae-z16-ones")
    target = path.with_name(new_name + SUFFIX)
    if target.name in SHIPPED or target.exists():
        raise FileExistsError(f"{target.name} already exists")
    os.link(path, target)  # fails instead of overwriting if the name was taken meanwhile
    os.unlink(path)
    return target


def delete(path: str | os.PathLike) -> None:
    path = Path(path)
    _refuse_shipped(path, "deleted")
    path.unlink()
