#!/usr/bin/env bash
# Rebuilds the command map from its sources (npm ci, buf generate, tsc,
# esbuild) and fails when the generated code or dist/, which are committed
# so that building the dispatcher needs no npm, differ from what is committed.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npm run build
if ! git diff --exit-code -- src/gen dist || [ -n "$(git status --porcelain -- src/gen dist)" ]; then
    echo "dispatcher/web: src/gen or dist/ is stale: run dispatcher/web/check.sh (or npm run build there) and commit the result" >&2
    exit 1
fi
echo "dispatcher/web: dist/ is up to date"
