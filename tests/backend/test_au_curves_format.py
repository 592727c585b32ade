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


def test_the_head_turn_reads_in_degrees_and_writes_back():
    """HeadYaw etc. are the angle / 180 (Epic's ARKit face support); written back the same."""
    n = 30
    head = {"yaw": [20.0 * i / n for i in range(n)], "pitch": [-8.0] * n, "roll": [5.0 * (i % 3) for i in range(n)]}
    text = au_curves.write_live_link_face(list(range(1, n + 1)), {}, 24, head=head)
    row = text.splitlines()[2].split(",")
    col = {c: i for i, c in enumerate(au_curves.LLF_HEADER)}
    assert float(row[col["HeadPitch"]]) == pytest.approx(-8.0 / 180, abs=1e-6)
    kind, back = au_curves.read_curve_file(text, 24, 1)
    assert kind == au_curves.LIVE_LINK_FACE and back.frames == list(range(1, n + 1))
    for k in head:
        assert back.head[k] == pytest.approx(head[k], abs=1e-3), k
    assert back.skipped == ["eye rotation columns (gaze is in the EyeLook shapes)"]


def test_a_take_without_all_three_head_columns_keys_no_head_and_says_so():
    cols = [c for c in au_curves.LLF_HEADER if c != "HeadRoll"]
    text = ",".join(cols) + "\n" + "00:00:00:00.000,60" + ",0.1" * (len(cols) - 2) + "\n"
    back = au_curves.read_live_link_face(text, 24)
    assert back.head == {} and any("only HeadYaw, HeadPitch" in s for s in back.skipped), back.skipped


def test_a_csv_of_neither_layout_is_named_as_such():
    with pytest.raises(au_curves.CurveFileError, match="neither a Live Link Face CSV .* this one starts hello, world"):
        au_curves.read_curve_file("hello,world\n1,2\n", 24)
    header = ",".join(c for c in au_curves.LLF_HEADER)
    row = ["00:00:00:00.000", "61"] + ["0"] * len(au_curves.ARKIT) + ["oops"] + ["0"] * 8
    with pytest.raises(au_curves.CurveFileError, match="line 2, column HeadYaw: not a number"):
        au_curves.read_curve_file(header + "\n" + ",".join(row) + "\n", 24)
