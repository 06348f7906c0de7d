# Shared by e2e/tools/build_kube.sh and build_pulumi.sh (sourced, not run): the cache layout, logging,
# the prerequisites and the checks both scripts make on what they build.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../versions.env
source "$ROOT/e2e/versions.env"
CACHE=${CNPLATFORM_E2E_CACHE:-$HOME/.cache/cnplatform-e2e}
BIN_CACHE=$CACHE/bin
LINK_DIR=${CNPLATFORM_E2E_LINK_DIR:-$ROOT/.tools/e2e/bin}
NICE=(nice -n 10)

log() { echo "[e2e-tools] $*"; }
die() { echo "[e2e-tools] ERROR: $*" >&2; exit 1; }

# require_build_tools: go and python3 on PATH, the cache and link directories created, module builds
# pinned to the committed go.sum files
require_build_tools() {
    command -v go >/dev/null || die "the go command is not on PATH (Go >= 1.26 is needed to build the tools)"
    command -v python3 >/dev/null || die "python3 is not on PATH"
    mkdir -p "$BIN_CACHE" "$LINK_DIR"
    export GOFLAGS="-mod=readonly -buildvcs=false"
}

# expect_output NAME PATTERN CMD...: CMD's output must contain a line matching the extended regex
# PATTERN. The output is captured first and matched after: `CMD | grep -q` under `set -o pipefail`
# fails at random, because grep exits at the first match and CMD dies of SIGPIPE on its next line.
expect_output() {
    local name=$1 pattern=$2 out
    shift 2
    out=$("$@" 2>&1) || die "$name: '$*' failed: $out"
    grep -Eq -- "$pattern" <<<"$out" || die "$name reports '$out', expected a line matching '$pattern'"
}
