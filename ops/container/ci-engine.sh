#!/usr/bin/env bash
# CI: a Docker engine on this machine — Debian's docker.io installed when missing, dockerd started when it
# does not answer (its log in /var/log/exnode-dockerd.log). Exits non-zero, saying why, when it cannot run.
set -euo pipefail
if ! command -v dockerd >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if docker info >/dev/null 2>&1; then
    exit 0
fi
echo "ci-engine: starting dockerd"
nohup dockerd >/var/log/exnode-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && exit 0
    sleep 1
done
echo "ci-engine: dockerd did not start: $(tail -n 5 /var/log/exnode-dockerd.log)" >&2
exit 1
