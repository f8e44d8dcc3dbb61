#!/usr/bin/env bash
# A base image for the Dockerfile's `ARG BASE` made from Debian's own packages, for machines (CI) that can
# reach the Debian mirror but no image registry: debootstrap of bookworm (the release python:3.11-slim is
# built on, with its python3 3.11) plus python3-venv, imported into the local Docker engine.
#   ops/container/local-base.sh [TAG]      (default exnode-base:bookworm; nothing is done if it exists)
set -euo pipefail
TAG=${1:-exnode-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "local-base: $TAG exists"
    exit 0
fi
command -v debootstrap >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
ROOT=$(mktemp -d /var/tmp/exnode-base-XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "local-base: debootstrap bookworm from $MIRROR into $ROOT"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOT" "$MIRROR" >/dev/null
# the suites python:3.11-slim has: point release, updates and security (the Dockerfile pins from them)
cat >"$ROOT"/etc/apt/sources.list <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${SECURITY_MIRROR:-http://deb.debian.org/debian-security} bookworm-security main
SOURCES
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/archives/*.deb
tar -C "$ROOT" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
echo "local-base: $TAG imported"
