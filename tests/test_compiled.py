"""The compiled twins of the per-packet code are built and in use (callscope.core.compiled).

`make test` installs with a C compiler: a missing twin means the build failed quietly
(they are optional extensions) and the recorder would run its Python code, ~3x slower.
"""

from __future__ import annotations

import importlib

import pytest

from callscope.core.compiled import compiled_module, pure_python
from callscope.protocol import rtp_receiver, rtp_stats, sip

TWINS = [
    "callscope.core._frozenfast",
    "callscope.protocol._rtpfast",
    "callscope.protocol._sipfast",
    "callscope.capture._hepfast",
    "callscope.capture._pcapscan",
]


@pytest.mark.skipif(pure_python(), reason="CALLSCOPE_PURE_PYTHON asks for the Python code")
@pytest.mark.parametrize("name", TWINS)
def test_twin_is_built(name: str) -> None:
    module = importlib.import_module(name)  # an ImportError here: the build failed
    assert module.__file__ is not None and not module.__file__.endswith(".py")


@pytest.mark.skipif(pure_python(), reason="CALLSCOPE_PURE_PYTHON asks for the Python code")
def test_twins_replace_the_python_classes() -> None:
    assert rtp_stats.StreamStats is not rtp_stats.PythonStreamStats
    assert rtp_receiver.RtpReceiver is not rtp_receiver.PythonRtpReceiver
    assert sip._split_message is not None  # SipMessage.parse's framing


def test_the_switch_turns_them_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLSCOPE_PURE_PYTHON", "1")
    assert compiled_module("callscope.protocol._rtpfast") is None
    monkeypatch.setenv("CALLSCOPE_PURE_PYTHON", "0")
    assert compiled_module("callscope.protocol._rtpfast") is not None
