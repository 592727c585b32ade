"""The Live Link Face CSV layout read back as written, at the scene rates users have."""

from __future__ import annotations

import pytest

from protocol import au_curves


@pytest.mark.parametrize("fps", [24, 25, 30, 60])
@pytest.mark.parametrize("n", [10, 100])
def test_written_frames_read_back_on_the_same_frames(fps, n):
    frames = list(range(5, 5 + n))
    text = au_curves.write_live_link_face(frames, {"JawOpen": [i / n for i in range(n)]}, fps)
    back = au_curves.read_live_link_face(text, fps, start=5)
    assert back.frames == frames, "a short take keeps its timing (the timecode rate is the scene's)"
    assert back.values["JawOpen"] == pytest.approx([i / n for i in range(n)], abs=1e-6)


def test_a_bad_timecode_is_named_not_a_crash():
    header = ",".join(au_curves.LLF_HEADER)
    with pytest.raises(au_curves.CurveFileError, match="column Timecode"):
        au_curves.read_live_link_face(header + "\nnot-a-time,61" + ",0" * 61 + "\n", 24)
