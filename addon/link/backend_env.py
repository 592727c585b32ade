"""The backend's Python environment, made from Blender: a virtual environment in the extension's
user folder with the pinned requirements that ship in the extension (``backend/requirements.txt``).

Nothing is installed into Blender's own Python. The environment is made by a Python the user has
(Blender's own if its version fits the pins, else one found on the machine or named in the
preferences): ``python -m venv``, then ``pip install -r requirements.txt``; its log goes to
``setup.log`` beside it. A stamp (the requirements' hash) marks it complete, so the preferences can
say in words whether it is set up, ready or broken, and why. No bpy here: the operator runs
:class:`SetupJob` and polls it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import settings

REQUIREMENTS = settings.EXTENSION_ROOT / "backend" / "requirements.txt"
PYTHON_VERSIONS = ((3, 11),)  # what backend/requirements.txt is pinned for (its wheels)
STAMP = "facedet3d-env.json"
LOG = "setup.log"
# "cpu": PyTorch's CPU-only wheels (small, no GPU); "default": what pip resolves from the package
# index (on Linux PyPI's torch brings CUDA libraries; on macOS and Windows it is a CPU build)
TORCH_BUILDS = {"default": [], "cpu": ["--extra-index-url", "https://download.pytorch.org/whl/cpu"]}


def _exe(env: Path) -> Path:
    return env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def requirements_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def python_version(exe: str) -> Optional[tuple[int, int]]:
    try:
        r = subprocess.run([exe, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
                           capture_output=True, text=True, timeout=30)
        major, minor = r.stdout.split()
        return int(major), int(minor)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def find_python(named: str = "") -> tuple[str, str]:
    """(interpreter, '') to make the environment with, or ('', why none fits). ``named``: the
    user's choice, checked; else Blender's own Python, then python3.11 on the PATH and pyenv's."""
    want = " or ".join(f"{a}.{b}" for a, b in PYTHON_VERSIONS)
    if named:
        v = python_version(named)
        if v is None:
            return "", f"'{named}' is not a Python interpreter that runs."
        if v not in PYTHON_VERSIONS:
            return "", f"'{named}' is Python {v[0]}.{v[1]}; the backend's packages are pinned for Python {want}."
        return named, ""
    cands = [sys.executable]
    for a, b in PYTHON_VERSIONS:
        cands += [shutil.which(f"python{a}.{b}") or "", *sorted(map(str, Path.home().glob(
            f".pyenv/versions/{a}.{b}*/bin/python")))]
        cands += [f"/usr/bin/python{a}.{b}", f"/usr/local/bin/python{a}.{b}"]
    for c in (c for c in cands if c and Path(c).is_file()):
        if python_version(c) in PYTHON_VERSIONS:
            return c, ""
    return "", (f"No Python {want} found (Blender's own is {sys.version_info[0]}.{sys.version_info[1]}). Install "
                f"Python {want} (python.org, your package manager or pyenv) and name it under 'Python for the "
                "backend', then Set Up Backend again.")


@dataclass
class EnvState:
    status: str  # "missing", "ready" or "broken"
    detail: str  # in words, for the preferences


def state(env: Path) -> EnvState:
    exe = _exe(env)
    if not env.exists():
        return EnvState("missing", "Not set up")
    if not exe.is_file():
        return EnvState("broken", f"{env} has no Python: Repair or Remove it")
    try:
        stamp = json.loads((env / STAMP).read_text())
    except (OSError, ValueError):
        return EnvState("broken", f"the set-up did not finish (see {env / LOG}): Repair")
    if stamp.get("requirements") != requirements_hash():
        return EnvState("broken", "made for other requirements (the add-on was updated): Repair")
    return EnvState("ready", f"Ready: Python {stamp.get('python')}, torch {stamp.get('torch')} on "
                             f"{stamp.get('device')}")


def python_of(env: Path) -> str:
    return str(_exe(env))


def remove(env: Path) -> None:
    shutil.rmtree(env, ignore_errors=False)


class SetupJob:
    """Make (or repair) the environment in a background thread: ``progress`` (fraction, words),
    ``cancel()``, and once ``done``, ``error`` ('' on success). Every command's output goes to the
    log; a failure names its cause (no network, no space, a package that would not install)."""

    def __init__(self, env: Path, python: str, torch_build: str = "default", check=None):
        self.env, self.python, self.torch_build = Path(env), python, torch_build
        self.check = check  # check(python) -> health dict: the backend started from the new environment
        self.progress: tuple[float, str] = (0.0, "Starting")
        self.error = ""
        self.done = False
        self._proc: Optional[subprocess.Popen] = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "SetupJob":
        self._thread.start()
        return self

    def wait(self, timeout: Optional[float] = None) -> bool:
        self._thread.join(timeout)
        return self.done

    def cancel(self) -> None:
        self._cancelled = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def _step(self, cmd: list[str], log, start: float, end: float, words: str, expect: int = 0) -> None:
        """Run ``cmd``, logging its output; progress from start to end counts the packages pip
        reports ('Collecting …', 'Installing collected packages'), ``expect`` of them."""
        if self._cancelled:
            raise InterruptedError
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        self.progress = (start, words)
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                      errors="replace",
                                      env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
        try:
            tail = list(self._read(log, start, end, words, expect))[-30:]
        finally:
            if self._proc.poll() is None and (self._cancelled or sys.exc_info()[0] is not None):
                self._proc.kill()  # never a pip left running with nobody reading it
        rc = self._proc.wait()
        if self._cancelled:
            raise InterruptedError
        if rc != 0:
            raise RuntimeError(_why(tail, rc))

    def _read(self, log, start: float, end: float, words: str, expect: int):
        seen = 0
        for line in self._proc.stdout:
            log.write(line)
            yield line.rstrip()
            if line.startswith("Collecting ") or line.startswith("Requirement already satisfied"):
                seen += 1
                name = line.split()[1] if line.startswith("Collecting") else line.split(":")[1].split()[0]
                self.progress = (start + (end - start) * 0.8 * min(seen / max(expect, 1), 1.0),
                                 f"{words}: {name}")
            elif line.startswith("Installing collected packages"):
                self.progress = (start + (end - start) * 0.85, f"{words}: installing")

    def _run(self) -> None:
        try:
            self.env.parent.mkdir(parents=True, exist_ok=True)
            (self.env / STAMP).unlink(missing_ok=True) if self.env.exists() else None
            with open(self.env.parent / LOG, "a", encoding="utf-8") as log:
                if not _exe(self.env).is_file():
                    self._step([self.python, "-m", "venv", str(self.env)], log, 0.0, 0.05,
                               "Making the environment")
                n = sum(1 for ln in REQUIREMENTS.read_text().splitlines() if ln.strip() and not ln.startswith("#"))
                self._step([python_of(self.env), "-m", "pip", "install", "--disable-pip-version-check",
                            "--progress-bar", "off", "-r", str(REQUIREMENTS), *TORCH_BUILDS[self.torch_build]],
                           log, 0.05, 0.9, "Installing the backend's packages", expect=n)
                self.progress = (0.92, "Starting the backend to check it")
                health = self.check(python_of(self.env)) if self.check else {}
                if self.check and (not health.get("torch") or health.get("torch_error")):
                    raise RuntimeError(f"the backend starts but torch does not import ({health.get('torch_error')}): "
                                       "try Torch build 'CPU only', then Repair")
                stamp = {"requirements": requirements_hash(), "python": _version_text(python_of(self.env)),
                         "torch": health.get("torch"), "device": health.get("cuda_device") or
                         ("CUDA" if health.get("cuda") else "CPU"), "torch_build": self.torch_build}
                (self.env / STAMP).write_text(json.dumps(stamp))
                self.progress = (1.0, "Backend ready")
        except InterruptedError:
            self.error = "cancelled: the environment is incomplete (Repair finishes it, Remove deletes it)"
        except Exception as exc:  # every failure reaches the user as words, with the log named
            self.error = f"{exc} (log: {self.env.parent / LOG})"
        finally:
            self.done = True


def _version_text(exe: str) -> str:
    v = python_version(exe)
    return f"{v[0]}.{v[1]}" if v else "?"


def _why(tail: list[str], rc: int) -> str:
    """The cause in words from the last lines of pip's or venv's output."""
    text = "\n".join(tail)
    low = text.lower()
    if "no space left" in low:
        return "the disk is full: free some space (the environment needs about 2 GB) and Repair"
    if any(w in low for w in ("could not fetch url", "connection", "temporary failure in name resolution",
                              "max retries exceeded", "network is unreachable")):
        return "the package index cannot be reached (no network, or a proxy): connect and Repair"
    if "no matching distribution" in low or "could not find a version" in low:
        line = next((ln for ln in tail if "No matching distribution" in ln or "Could not find a version" in ln), "")
        return f"a pinned package has no build for this Python or system ({line.strip()})"
    if "ensurepip" in low or "no module named venv" in low:
        return "this Python cannot make virtual environments (on Debian/Ubuntu install python3.11-venv)"
    last = next((ln for ln in reversed(tail) if ln.strip()), "")
    return f"the set-up stopped (exit {rc}): {last.strip()}"
