#!/usr/bin/env bash
# Start the local PostgreSQL and RabbitMQ when they are not running, and wait until they answer.
# The integration tests need both; they fail (never skip) when either is missing.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 name=$2
    for _ in $(seq 1 120); do
        port_open "$port" && return 0
        sleep 1
    done
    echo "ensure-services: $name did not open port $port" >&2
    return 1
}

if ! port_open 5432; then
    if ! ls /etc/postgresql >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    echo "ensure-services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    wait_port 5432 PostgreSQL
fi

if ! port_open 5672; then
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    fi
    echo "ensure-services: starting RabbitMQ"
    rabbitmq-server -detached || true
    wait_port 5672 RabbitMQ
    rabbitmqctl -q await_startup >/dev/null 2>&1 || true
fi
# The tiers are linked by dynamic shovels (adapters/shovel.py): the plugin is enabled once, without a restart.
if ! rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_shovel; then
    echo "ensure-services: enabling the rabbitmq_shovel plugin"
    rabbitmq-plugins enable -q rabbitmq_shovel >/dev/null
fi
# The console's browser tests drive Debian's headless Chromium through Playwright (whose own browser
# download cannot work here); CJK fonts so the screenshots show the Chinese pages as people see them.
if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "noto sans cjk"; then
    echo "ensure-services: installing chromium and CJK fonts (console browser tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
        fonts-noto-cjk >/dev/null
fi
echo "ensure-services: PostgreSQL (5432), RabbitMQ (5672, shovel plugin) and chromium are up"
