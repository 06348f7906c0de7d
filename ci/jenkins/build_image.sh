#!/bin/sh
# Build & push of one service image, called by the Jenkinsfile's `Build & push` stage (POSIX sh: it
# runs in busybox, the shell of the kaniko and crane debug images).
#
#   sh ci/jenkins/build_image.sh check   # crane container: which registries already hold the tag
#   sh ci/jenkins/build_image.sh build   # kaniko container: build, push only where it is missing
#
# Environment: SERVICE_NAME, IMAGE_TAG (the content tag, ci/jenkins/image_tag.py: the same tag the
# Pulumi program gives the image), REGISTRIES (`cluster=prefix` words, one per cluster registry: each
# cluster pulls from its own cloud's registry), PUSH (`true` on the deploy branch only), WORKSPACE.
# Optional: CRANE, KANIKO (the two executables).
#
# The registries are IMMUTABLE and the tag is a hash of what the image contains: a registry that has
# `<prefix>/<service>:<tag>` already has this image, so it is not pushed again (a push would be refused)
# and its digest is reused; an unchanged service is neither built nor pushed and keeps its digest.
# Writes $WORKSPACE/image-ref: one `<prefix>/<service>@sha256:...` line per registry (empty: nothing
# to pin, a pull request). Nothing secret is printed: crane and kaniko read the mounted docker config.
set -eu
: "${SERVICE_NAME:?}" "${IMAGE_TAG:?}" "${WORKSPACE:?}"
REGISTRIES="${REGISTRIES:-}"
CRANE="${CRANE:-crane}"
KANIKO="${KANIKO:-/kaniko/executor}"
case "$IMAGE_TAG" in *[!0-9a-f]*|"") echo "IMAGE_TAG '$IMAGE_TAG' is not a content tag" >&2; exit 2;; esac
refs="$WORKSPACE/image-ref"
missing="$WORKSPACE/image-missing"

check() {
  rm -f "$refs" "$missing"
  : > "$refs"
  : > "$missing"
  for pair in $REGISTRIES; do
    repo="${pair#*=}/$SERVICE_NAME"
    if out="$("$CRANE" digest "$repo:$IMAGE_TAG" 2>&1)"; then
      echo "$repo:$IMAGE_TAG exists: $out (not pushed again)"
      echo "$repo@$out" >> "$refs"
    elif printf '%s' "$out" | grep -qiE 'MANIFEST_UNKNOWN|NAME_UNKNOWN|NOT_FOUND|not found'; then
      echo "$repo:$IMAGE_TAG is missing: build and push it"
      echo "$repo:$IMAGE_TAG" >> "$missing"
    else
      # Not "absent" (auth, network): never guess, a push over an existing tag would fail later anyway.
      echo "cannot tell whether $repo:$IMAGE_TAG exists: $out" >&2
      exit 1
    fi
  done
}

build() {
  # A service's own Dockerfile, else the shared one with SERVICE=<name> (as `pulumi up` builds).
  dockerfile="$WORKSPACE/services/$SERVICE_NAME/Dockerfile"
  [ -f "$dockerfile" ] || dockerfile="$WORKSPACE/services/Dockerfile"
  dest=""
  if [ "${PUSH:-false}" = true ] && [ -n "$REGISTRIES" ]; then
    [ -f "$missing" ] || { echo "run '$0 check' first" >&2; exit 2; }
    for ref in $(cat "$missing"); do dest="$dest --destination=$ref"; done
    if [ -z "$dest" ]; then
      echo "$SERVICE_NAME:$IMAGE_TAG is in every registry: nothing to build"
      return 0
    fi
    push=""
  else
    rm -f "$refs"
    push="--no-push"
  fi
  rm -f "$WORKSPACE/image-pushed"
  # shellcheck disable=SC2086 # one word per --destination
  "$KANIKO" \
    --context="dir://$WORKSPACE/services" \
    --dockerfile="$dockerfile" --build-arg "SERVICE=$SERVICE_NAME" \
    $dest $push --reproducible \
    --image-name-with-digest-file="$WORKSPACE/image-pushed"
  if [ -z "$push" ]; then cat "$WORKSPACE/image-pushed" >> "$refs"; fi
}

case "${1:-}" in
  check) check ;;
  build) build ;;
  *) echo "usage: $0 check|build" >&2; exit 2 ;;
esac
