#!/usr/bin/env bash
# A base image for the Dockerfile's `ARG BASE` made from Debian's own packages, for machines (CI) that can
# reach the Debian mirror but no image registry: bookworm (the release python:3.11-slim is built on, with
# its python3 3.11) plus python3-venv, imported into the local Docker engine.
#   ops/container/local-base.sh [TAG]      (default exnode-base:bookworm; nothing is done if it exists)
# mmdebstrap rather than debootstrap: it resolves and downloads through apt in one pass and streams the tree
# as one tarball for `docker import`, which takes a fraction of debootstrap's time on a fresh machine.
set -euo pipefail
TAG=${1:-exnode-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "local-base: $TAG exists"
    exit 0
fi
command -v mmdebstrap >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
}
TARBALL=$(mktemp /var/tmp/exnode-base-XXXXXX.tar)
trap 'rm -f "$TARBALL"' EXIT
echo "local-base: mmdebstrap bookworm from $MIRROR"
# the suites python:3.11-slim has: point release, updates and security (the Dockerfile pins from them);
# mmdebstrap writes them as the image's sources.list and removes apt's lists and downloaded packages. A
# file, not a pipe: a tree cut short by a failed download must not be imported as the base.
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$TARBALL" \
    "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" "deb $SECURITY bookworm-security main"
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' "$TARBALL" "$TAG" >/dev/null
echo "local-base: $TAG imported"
