#!/usr/bin/env bash
# The API contract checks: `buf lint` on the proto, then `buf breaking`
# against the last released proto (the commit in proto/BREAKING_BASELINE),
# so that a renumbered or deleted field cannot land by accident.
# Runs from any directory; needs buf (pip install buf-bin) and the git
# history down to the baseline commit. See proto/README.md.
set -euo pipefail
cd "$(dirname "$0")/.." # the repository root

if ! command -v buf >/dev/null; then
    echo "proto/check.sh: buf is missing: install it with 'python3 -m pip install buf-bin==1.75.0' (the version CI installs)" >&2
    exit 1
fi

# The baseline: the one line of proto/BREAKING_BASELINE that is not a comment.
baseline=$(grep -v '^[[:space:]]*\(#\|$\)' proto/BREAKING_BASELINE | tr -d '[:space:]')
if ! [[ $baseline =~ ^[0-9a-f]{40}$ ]]; then
    echo "proto/check.sh: proto/BREAKING_BASELINE must hold one full commit id (40 hex digits), found '$baseline'" >&2
    exit 1
fi
if ! git rev-parse --git-dir >/dev/null 2>&1; then
    echo "proto/check.sh: not a git checkout: buf breaking needs the history (git clone the repository)" >&2
    exit 1
fi
# A shallow clone (CI checkouts often are) may not have it; buf would then
# fail with a bare git error, so say what is wrong here.
if ! git cat-file -e "$baseline^{commit}" 2>/dev/null; then
    echo "proto/check.sh: the baseline commit $baseline (proto/BREAKING_BASELINE) is not in this clone." >&2
    if [[ $(git rev-parse --is-shallow-repository) == true ]]; then
        echo "This is a shallow clone: fetch the history with 'git fetch --unshallow' and run again." >&2
    else
        echo "Fetch it ('git fetch origin main', or 'git fetch --unshallow' in a shallow clone) and run again." >&2
    fi
    exit 1
fi

# buf prints its findings and exits with 100; any other failure is buf not
# able to run at all, passed on as it is.
echo "buf lint (proto/buf.yaml)"
status=0
buf lint proto || status=$?
if ((status == 100)); then
    echo "proto/check.sh: buf lint failed: fix the proto, or add an exception with its reason to proto/buf.yaml" >&2
fi
((status == 0)) || exit "$status"

echo "buf breaking against $baseline (proto/BREAKING_BASELINE)"
# subdir is the module root (proto/proto), so the baseline's files have the
# same import paths (pingji/v1/...) whether or not that commit has buf.yaml.
buf breaking proto --against ".git#ref=$baseline,subdir=proto/proto" || status=$?
if ((status == 100)); then
    echo "proto/check.sh: breaking change against the released contract ($baseline)." >&2
    echo "Keep the old numbers and names (add fields with new numbers; on deleting, 'reserved' the number and the name)," >&2
    echo "or, if the break is intended, move proto/BREAKING_BASELINE in a commit of its own saying why (proto/README.md)." >&2
fi
((status == 0)) || exit "$status"
echo "proto checks passed"
