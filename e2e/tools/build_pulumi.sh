#!/usr/bin/env bash
# Builds the Pulumi side of the e2e tools from Go modules, at the versions in e2e/versions.env:
#   pulumi                        the CLI / engine (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
#   pulumi-language-python        the Python language host (+ pulumi-language-python-exec beside it)
#   pulumi-resource-kubernetes    the Kubernetes provider
# and reports the providers the dev stack needs that the Go module proxy does not serve (command,
# random, tls: probed each run, so they are picked up the day the proxy serves them).
#
#   bash e2e/tools/build_pulumi.sh            build what is missing (idempotent: a cached binary is reused)
#   bash e2e/tools/build_pulumi.sh --strict   also fail when a provider cannot be had
#
# Binaries go to ${CNPLATFORM_E2E_CACHE:-$HOME/.cache/cnplatform-e2e}/bin/<tool>-<version>, outside the
# clone, and are symlinked into .tools/e2e/bin/<tool> (git-ignored). Nothing built is ever committed.
# The CLI is laid out like Pulumi's own distribution, one directory bin/pulumi-<version>/ holding
# pulumi, pulumi-language-python and pulumi-language-python-exec: the CLI finds its (bundled) language
# host beside its own executable, so ambient plugins can be switched off (PULUMI_IGNORE_AMBIENT_PLUGINS).
# Each wrapper module in e2e/tools/pulumi/ commits its go.sum, so builds run with -mod=readonly.
# Providers are installed into a Pulumi home by e2e/tier2.py (`pulumi plugin install resource NAME
# VERSION --file BINARY`), at the version the Python SDK asks for.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MODS=$ROOT/e2e/tools/pulumi

STRICT=0
for arg in "$@"; do
    case $arg in
        --strict) STRICT=1 ;;
        -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "[e2e-tools] unknown argument: $arg" >&2; exit 2 ;;
    esac
done

require_build_tools

pinned() { (cd "$1" && go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$2"); }
check_pins() {
    local dir=$1 mod=$2 want=$3 got
    got=$(pinned "$dir" "$mod") || die "cannot read $mod from ${dir#"$ROOT"/}/go.mod"
    [[ $got == "$want" ]] || die "e2e/versions.env wants $mod $want but ${dir#"$ROOT"/}/go.mod pins $got"
}
# module_dir DIR MODULE: where the go command unpacked MODULE (downloading it if needed)
module_dir() { (cd "$1" && go mod download -json "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'); }

# build_go NAME VERSION MODULE_DIR PACKAGE LDFLAGS [PREPARE_FN] [OUT]
#   PREPARE_FN, if given, is called with a scratch copy of MODULE_DIR (for generated embed files) and
#   the build runs there instead. OUT: the binary (default $BIN_CACHE/NAME-VERSION).
build_go() {
    local name=$1 version=$2 dir=$3 pkg=$4 ldflags=$5 prepare=${6:-}
    local out=${7:-$BIN_CACHE/$1-$2} t0 src=$3 scratch=""
    if [[ -x $out ]]; then
        log "$name $version: cached ($out)"
    else
        log "building $name $version ..."
        t0=$(date +%s)
        if [[ -n $prepare ]]; then
            scratch=$(mktemp -d "$CACHE/build.$name.XXXXXX")
            cp -r "$dir"/. "$scratch"/
            "$prepare" "$scratch" || { rm -rf "$scratch"; die "preparing the build of $name failed"; }
            src=$scratch
        fi
        (cd "$src" && "${NICE[@]}" go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp.$$" "$pkg") \
            || { rm -f "$out.tmp.$$"; [[ -n $scratch ]] && rm -rf "$scratch"; die "go build $pkg failed (module ${dir#"$ROOT"/})"; }
        [[ -n $scratch ]] && rm -rf "$scratch"
        mv -f "$out.tmp.$$" "$out"
        log "built $name $version in $(( $(date +%s) - t0 ))s ($(du -m "$out" | cut -f1) MiB)"
    fi
    [[ $name == pulumi-language-python ]] || ln -sfn "$out" "$LINK_DIR/$name"
}

# The Kubernetes provider's main embeds schema-embed.json and terraform-mapping-embed.json, which
# upstream's `go generate` (cmd/pulumi-resource-kubernetes/generate.go) writes from the schema.json and
# terraform-mapping.json the module carries, with the release version stamped into the schema.
kubernetes_embeds() {
    local scratch=$1 moddir
    moddir=$(module_dir "$MODS/kubernetes" "github.com/pulumi/pulumi-kubernetes/provider/v4@$PULUMI_KUBERNETES_MODULE")
    python3 - "$moddir/cmd/pulumi-resource-kubernetes" "$scratch" "$PULUMI_KUBERNETES_VERSION" <<'EOF'
import json, sys
src, dst, version = sys.argv[1:]
with open(f"{src}/schema.json") as f:
    schema = json.load(f)
schema["version"] = version
with open(f"{dst}/schema-embed.json", "w") as f:
    json.dump(schema, f, separators=(",", ":"))
with open(f"{src}/terraform-mapping.json") as f:
    mapping = json.load(f)
with open(f"{dst}/terraform-mapping-embed.json", "w") as f:
    json.dump(mapping, f, separators=(",", ":"))
EOF
}

# The executor script the language host runs programs with, from sdk/v3 at the CLI's release.
install_exec() {
    local out=$DIST/pulumi-language-python-exec sdkdir
    if [[ ! -x $out ]]; then
        sdkdir=$(module_dir "$MODS/language-python" "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION")
        install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" "$out.tmp.$$"
        mv -f "$out.tmp.$$" "$out"
        log "pulumi-language-python-exec $PULUMI_LANGUAGE_PYTHON_VERSION: from sdk/v3@$PULUMI_VERSION"
    fi
}

# probe MODULE@VERSION: can the go command fetch it? Prints the go command's error when not.
MISSING=()
probe_provider() {
    local name=$1 modver=$2 err tmp proxy
    if [[ -x $BIN_CACHE/pulumi-resource-$name-v${3} ]]; then
        ln -sfn "$BIN_CACHE/pulumi-resource-$name-v$3" "$LINK_DIR/pulumi-resource-$name"
        log "pulumi-resource-$name v$3: cached"
        return
    fi
    tmp=$(mktemp -d)
    proxy=$(go env GOPROXY); proxy=${proxy%%,*}  # the proxy's answer only (no fallback to the VCS)
    if err=$(cd "$tmp" && GOFLAGS=-mod=mod GOPROXY=$proxy go mod download -json "$modver" 2>&1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d.get("Error", ""))'); [[ -z $err ]]; then
        log "WARNING: $modver is now served: add a wrapper module for pulumi-resource-$name to e2e/tools/pulumi/"
    else
        log "UNAVAILABLE pulumi-resource-$name v$3: $err"
    fi
    rm -rf "$tmp"
    MISSING+=("pulumi-resource-$name")
}

T_ALL=$(date +%s)
check_pins "$MODS/cli" github.com/pulumi/pulumi/pkg/v3 "$PULUMI_VERSION"
check_pins "$MODS/cli" github.com/pulumi/pulumi/sdk/v3 "$PULUMI_VERSION"
check_pins "$MODS/language-python" github.com/pulumi/pulumi/sdk/v3 "$PULUMI_VERSION"
check_pins "$MODS/kubernetes" github.com/pulumi/pulumi-kubernetes/provider/v4 "$PULUMI_KUBERNETES_MODULE"
check_pins "$MODS/kubernetes" github.com/pulumi/pulumi-kubernetes/sdk/v4 "$PULUMI_KUBERNETES_GO_SDK"

DIST=$BIN_CACHE/pulumi-$PULUMI_VERSION
mkdir -p "$DIST"
build_go pulumi "$PULUMI_VERSION" "$MODS/cli" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" "" "$DIST/pulumi"
build_go pulumi-language-python "$PULUMI_LANGUAGE_PYTHON_VERSION" "$MODS/language-python" . \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_LANGUAGE_PYTHON_VERSION" "" \
    "$DIST/pulumi-language-python"
install_exec
rm -f "$LINK_DIR/pulumi-language-python" "$LINK_DIR/pulumi-language-python-exec"  # bundled beside the CLI
build_go pulumi-resource-kubernetes "v$PULUMI_KUBERNETES_VERSION" "$MODS/kubernetes" . \
    "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PULUMI_KUBERNETES_VERSION" \
    kubernetes_embeds

probe_provider command "github.com/pulumi/pulumi-command/provider@v$PULUMI_COMMAND_VERSION" "$PULUMI_COMMAND_VERSION"
probe_provider random "github.com/pulumi/pulumi-random/provider/v4@v$PULUMI_RANDOM_VERSION" "$PULUMI_RANDOM_VERSION"
probe_provider tls "github.com/pulumi/pulumi-tls/provider/v5@v$PULUMI_TLS_VERSION" "$PULUMI_TLS_VERSION"

# sanity: the CLI reports the pinned version
got=$("$LINK_DIR/pulumi" version)
[[ $got == "$PULUMI_VERSION" ]] || die "pulumi reports '$got', not $PULUMI_VERSION"
log "pulumi tools ready in $LINK_DIR ($(( $(date +%s) - T_ALL ))s): pulumi $PULUMI_VERSION," \
    "pulumi-language-python $PULUMI_LANGUAGE_PYTHON_VERSION, pulumi-resource-kubernetes v$PULUMI_KUBERNETES_VERSION" \
    "(module $PULUMI_KUBERNETES_MODULE)"
if (( ${#MISSING[@]} )); then
    log "not available from the Go module proxy: ${MISSING[*]} (tier 2 of the dev stack cannot run without them)"
    (( STRICT )) && exit 1
fi
exit 0
