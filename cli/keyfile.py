"""The dev API key file: <var_dir>/dev-api-key, readable by its owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from shared.auth import KEY_PREFIX, new_api_key

DEV_KEY_FILE = "dev-api-key"
KEY_FILE_MODE = 0o600


class KeyFileError(Exception):
    """The key file exists but cannot be used; the message says why."""


def dev_key_path(var_dir: Path) -> Path:
    return var_dir / DEV_KEY_FILE


def read_key_file(path: Path) -> str:
    key = path.read_text().strip()
    if not key.startswith(KEY_PREFIX):
        raise KeyFileError(f"{path} does not hold a sendmesh API key ({KEY_PREFIX}...)")
    return key


def ensure_dev_key(var_dir: Path) -> str:
    """The dev key: reused if the file exists, else created with mode 0600."""
    path = dev_key_path(var_dir)
    if path.exists():
        # A key file others can read is as good as published: tighten it.
        if stat.S_IMODE(path.stat().st_mode) != KEY_FILE_MODE:
            path.chmod(KEY_FILE_MODE)
        return read_key_file(path)
    var_dir.mkdir(parents=True, exist_ok=True)
    key = new_api_key()
    # O_EXCL: two launchers starting at once must not overwrite each other's key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key
