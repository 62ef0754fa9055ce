"""Downloads from a local HTTP mirror: checked against SHA-256, atomic, nothing left behind on
failure; where the data folder is looked for."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from topograph.data.download import ENV_VAR, data_dir, download
from topograph.errors import UsageError


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_checks_sha256_and_is_atomic(http_root, tmp_path):
    served, url = http_root
    payload = os.urandom(3 * (1 << 20) + 17)  # several 1 MiB blocks
    (served / "blob.bin").write_bytes(payload)
    dest = tmp_path / "out" / "blob.bin"
    assert download(url + "blob.bin", dest, sha256(payload), progress=False) == dest
    assert dest.read_bytes() == payload

    wrong = "0" * 64
    bad_dest = tmp_path / "out" / "bad.bin"
    with pytest.raises(UsageError) as info:
        download(url + "blob.bin", bad_dest, wrong, progress=False)
    message = str(info.value)
    assert str(bad_dest) in message and wrong in message and sha256(payload) in message
    assert not bad_dest.exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["blob.bin"]  # no temp files left

    with pytest.raises(UsageError, match="download of .*missing.bin failed"):
        download(url + "missing.bin", tmp_path / "out" / "m.bin", wrong, progress=False)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["blob.bin"]


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert data_dir("/somewhere") == Path("/somewhere")
    assert data_dir() == tmp_path / "env"
    monkeypatch.delenv(ENV_VAR)
    assert data_dir() == Path("~/.cache/topograph").expanduser()
