#!/usr/bin/env bash
# The README's first command: set up, train a tiny iris model, serve it in-process (no container engine),
# and show a prediction made over HTTP.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
port=${PORT:-5001}
work=.cache/demo
mkdir -p "$work"
.venv/bin/python examples/iris/train.py "$work/model.joblib"
.venv/bin/prebake serve --entry-script examples/iris/score.py --model-dir "$work" --port "$port" --host 127.0.0.1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
echo
echo "POST http://127.0.0.1:$port/score  {\"data\": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}"
curl -s -X POST "http://127.0.0.1:$port/score" -H 'Content-Type: application/json' \
  -d '{"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'
echo
