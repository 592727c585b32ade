"""docs/capture.jpg: Animate from Video on the synthetic clip (backend.capture.synthetic): four of its
frames and the tracked AU curves against the ones it was rendered with.

    .venv-backend/bin/python scripts/capture_figure.py [--out docs/capture.jpg]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.capture import synthetic, track  # noqa: E402
from backend.models.loader import load_model  # noqa: E402
from backend.reconstruct.pipeline import reconstruct  # noqa: E402
from protocol.capture import Capture  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/capture.jpg")
    args = ap.parse_args()
    model = load_model()
    truth = synthetic.truth()
    frames = synthetic.frames(model)
    with tempfile.TemporaryDirectory() as d:
        Image.fromarray(synthetic.neutral_frame(model)).save(Path(d) / "face.png")
        reconstruct(str(Path(d) / "face.png"), str(Path(d) / "job"), options={"texture_size": 256,
                                                                              "head_texture_size": 128})
        clip = synthetic.write_clip(Path(d) / "clip.mp4", frames)
        res = track.capture(str(Path(d) / "job"), str(clip))
        cap = Capture.load(Path(d) / "job", res["name"])
    t = np.asarray(cap.times)
    fig = plt.figure(figsize=(12, 6.4), dpi=100)
    picks = [0, 12, 24, 36]
    for i, k in enumerate(picks):
        ax = fig.add_axes([0.02 + i * 0.245, 0.52, 0.23, 0.45])
        ax.imshow(frames[k][60:420, 140:500])
        ax.set_title(f"frame {k} ({t[k]:.2f} s)", fontsize=10)
        ax.axis("off")
    ax = fig.add_axes([0.07, 0.08, 0.9, 0.38])
    a12 = (np.asarray(cap.controls["AU12L"]) + np.asarray(cap.controls["AU12R"])) / 2
    ax.plot(truth["t"], truth["AU12"], "C0--", label="AU12 rendered")
    ax.plot(t, a12, "C0-", label="AU12 tracked")
    ax.plot(truth["t"], truth["AU27"], "C1--", label="AU27 rendered")
    ax.plot(t, cap.controls["AU27"], "C1-", label="AU27 tracked")
    keys = cap.keys["AU12L"]
    ax.plot([k[0] for k in keys], [k[1] for k in keys], "C0o", ms=4, label=f"AU12L keys ({len(keys)} of {len(t)} frames)")
    ax.plot(t, np.asarray(cap.head["yaw"]) / 20.0, "C2:", label="head yaw / 20°")
    ax.set_xlabel("seconds")
    ax.set_ylim(-0.6, 1.1)
    ax.legend(loc="lower right", fontsize=8, ncol=3)
    st = cap.stats
    ax.set_title(f"{st['frames']} frames at 640×480, {st['frames_per_second']} frames/s tracked and fitted; "
                 f"{st['keys']} keys on {len(cap.keys)} controls (tolerance {cap.tolerance})", fontsize=10)
    fig.savefig(args.out, pil_kwargs={"quality": 90})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
