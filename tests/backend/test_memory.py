"""The backend process's allocator setting (backend.core.memory): set on glibc, left alone when
asked, and set by the command line's entry before any command runs."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from backend.core import memory
from backend.service import cli


@pytest.mark.skipif(not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
                    reason="glibc's mallopt")
def test_large_blocks_come_from_the_kept_heap_unless_asked_not_to(monkeypatch):
    assert memory.keep_freed_memory() is True
    monkeypatch.setenv("FACEDET3D_MALLOC", "default")
    assert memory.keep_freed_memory() is False


def test_the_command_line_sets_it_before_the_command(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append("set"))
    monkeypatch.setitem(cli.COMMANDS, "reconstruct", lambda args: calls.append("ran") or 0)
    assert cli.main(["reconstruct", "--image", "photo.jpg", "--out", "x"]) == 0
    assert calls == ["set", "ran"]
