#!/usr/bin/env bash
# The optuna-dashboard screenshots of docs/sweeps.md, from a real sweep's stored study, with headless Chromium
# (Debian: apt-get install -y chromium). Nothing here is used by the platform or its tests.
#
#   .venv/bin/python jobs/hpo.py --n_trials 12 --preset debug          # writes <repo>/optuna.db
#   docs/img/optuna_screenshots.sh [STUDY_ID] [PORT]                   # the dashboard's id of the study (1 = first)
set -euo pipefail
cd "$(dirname "$0")/../.."
STUDY=${1:-1}
PORT=${2:-8097}
PY=${PY:-.venv/bin/python}
"$PY" jobs/optuna_ui.py --port "$PORT" >/tmp/optuna_ui_shots.log 2>&1 &
UI=$!
trap 'kill "$UI" 2>/dev/null || true' EXIT   # by its PID: the job execs the dashboard in that process
for _ in $(seq 240); do
  curl -sf "http://127.0.0.1:$PORT/api/studies" >/dev/null && break
  sleep 1
done
shot() {  # PAGE FILE: the dashboard is a JavaScript app; give its plots virtual time to draw
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,1000 \
    --virtual-time-budget=20000 --screenshot="docs/img/$2" "http://127.0.0.1:$PORT/dashboard/studies/$STUDY$1" 2>/dev/null
}
shot "" optuna_dashboard.png
shot "/trials?numbers=1" optuna_dashboard_trial.png   # trial 1: pruned by the plateau stopper
