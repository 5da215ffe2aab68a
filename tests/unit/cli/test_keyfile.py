from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cli.keyfile import KeyFileError, dev_key_path, ensure_dev_key, read_key_file
from shared.auth import KEY_PREFIX


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_dev_key_is_created_readable_by_its_owner_only(tmp_path: Path):
    key = ensure_dev_key(tmp_path / "var")
    path = dev_key_path(tmp_path / "var")
    assert key.startswith(KEY_PREFIX)
    assert mode_of(path) == 0o600
    assert path.read_text().strip() == key


def test_the_dev_key_is_reused_on_the_next_run(tmp_path: Path):
    assert ensure_dev_key(tmp_path) == ensure_dev_key(tmp_path)


def test_a_key_file_others_can_read_is_tightened(tmp_path: Path):
    key = ensure_dev_key(tmp_path)
    dev_key_path(tmp_path).chmod(0o644)
    assert ensure_dev_key(tmp_path) == key
    assert mode_of(dev_key_path(tmp_path)) == 0o600


def test_a_file_without_a_key_is_refused(tmp_path: Path):
    path = dev_key_path(tmp_path)
    path.write_text("hello\n")
    with pytest.raises(KeyFileError, match="does not hold a sendmesh API key"):
        read_key_file(path)
