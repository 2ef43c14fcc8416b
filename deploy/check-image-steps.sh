#!/usr/bin/env bash
# Runs the Dockerfile's install steps without Docker: build the wheel exactly as the build
# stage does, install it into a fresh venv as the final stage does, then check the image's
# entry points (validate the example config, plan the sample, migrate), and that the image
# carries no sandbox extra (faker, lark, trustme).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# build stage: COPY the same paths, then pip wheel
mkdir -p "$work/src"
cp -r pyproject.toml README.md worker connectors sandbox config "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$PY" -m venv "$work/build"
"$work/build/bin/python" -m pip install -q --upgrade pip
"$work/build/bin/python" -m pip wheel -q --no-cache-dir --wheel-dir "$work/wheels" "$work/src"

# final stage: install the wheels into a clean environment
"$PY" -m venv "$work/image"
"$work/image/bin/python" -m pip install -q --no-cache-dir "$work"/wheels/*.whl
cd "$work"   # away from the checkout: only the installed package is used from here

export SF_USERNAME=u SF_PASSWORD=p SF_TOKEN=t HUBSPOT_TOKEN=pat-x
# the example logs in with flow: jwt (validate checks the variables are set, not the key)
printf 'not read by validate\n' > "$work/sf.key"
export SF_CLIENT_ID=client SF_PRIVATE_KEY_FILE="$work/sf.key"
"$work/image/bin/winback" validate "$work/src/config/winback.yaml"
# the image carries no sandbox extra: no emulator dependencies, and `demo` says how to get them
if "$work/image/bin/python" -c "import faker" 2>/dev/null; then
  echo "the image installs faker: the sandbox extra leaked into the runtime dependencies" >&2
  exit 1
fi
"$work/image/bin/winback" demo --plan-only > "$work/demo.txt" && grep -q "task(s) planned" "$work/demo.txt"
if "$work/image/bin/winback" demo 2> "$work/demo.err"; then
  echo "winback demo ran without the sandbox extra" >&2
  exit 1
fi
grep -q "pip install 'winback\[sandbox\]'" "$work/demo.err"
mkdir -p "$work/data"
cat > "$work/run.yaml" <<YAML
version: 1
connections: []
service: {http_port: 0}
YAML
export WINBACK_DATABASE_URL="sqlite:///$work/data/winback.db"
"$work/image/bin/winback" migrate "$work/run.yaml"
echo "image steps ok: wheel built, installed in a fresh venv, CLI works from the installed package"
