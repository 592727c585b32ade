#!/usr/bin/env bash
# Create or update the two environments inside the repository, idempotently:
#   .venv-backend  Python 3.11 + torch (CPU) and the backend's libraries
#   .venv-blender  Python 3.13 + bpy 5.2.3 (Blender as a module, as a user's Blender runs us)
# A second run only compares the requirement files' hashes and returns.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {  # find_python 3.11 -> an interpreter of that version, or fail clearly
  local v=$1 c
  for c in "python$v" "$HOME/.pyenv/versions/$v"*/bin/python "/usr/bin/python$v" "/usr/local/bin/python$v"; do
    for exe in $c; do
      if command -v "$exe" >/dev/null 2>&1 && "$exe" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$v'.split('.'))))" 2>/dev/null; then
        echo "$exe"; return 0
      fi
    done
  done
  echo "error: Python $v not found; install it (pyenv install $v, or your OS package) and rerun." >&2
  return 1
}

make_env() {  # make_env DIR PYTHON_VERSION REQUIREMENTS
  local dir=$1 ver=$2 req=$3 stamp hash
  stamp="$dir/.requirements.sha256"
  hash=$(sha256sum "$req" | cut -d' ' -f1)
  if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
    return 0
  fi
  echo "setup: creating $dir (Python $ver) from $req …" >&2
  if [[ ! -x "$dir/bin/python" ]]; then
    "$(find_python "$ver")" -m venv "$dir"
  fi
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  "$dir/bin/python" -m pip check >/dev/null 2>&1 || true
  # pip's exit status is lost in the pipe above: verify the pins landed.
  "$dir/bin/python" - "$req" <<'PY'
import sys, re
from importlib.metadata import version, PackageNotFoundError
bad = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
    if not m:
        continue
    name, want = m.groups()
    try:
        have = version(name)
    except PackageNotFoundError:
        bad.append(f"{name} missing")
        continue
    if have.split("+")[0] != want.split("+")[0]:
        bad.append(f"{name} {have} != {want}")
if bad:
    sys.exit("setup: failed: " + "; ".join(bad))
PY
  echo "$hash" > "$stamp"
}

make_env .venv-backend 3.11 backend/requirements.txt
make_env .venv-blender 3.13 requirements/blender.txt

# The default face model: a configured folder ($FACEDET3D_MODEL_DIR), a development checkout's
# ../shared/models/ict-facekit, or the public release fetched once into .models/ (pinned commit,
# every file's SHA-256 checked; $FACEDET3D_MODEL_SOURCE: a mirror or local copy of the repository
# instead of GitHub). Without a network, say what to download and where to point.
if [[ -z "${FACEDET3D_MODEL_DIR:-}" && ! -d ../shared/models/ict-facekit && ! -d .models/ict-facekit ]]; then
  echo "setup: no face model found; fetching ICT-FaceKit Light (the release, ~400 MB) into .models/ict-facekit …" >&2
  if ! .venv-backend/bin/python -m backend fetch-model --to .models/ict-facekit --source "${FACEDET3D_MODEL_SOURCE:-}"; then
    echo "setup: the model could not be fetched (above: what to download and where to point it;" \
         "then set FACEDET3D_MODEL_DIR or the add-on's Model folder). The environments are ready." >&2
  fi
fi
