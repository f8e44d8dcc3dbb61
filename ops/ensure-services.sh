#!/usr/bin/env bash
# Start the local PostgreSQL and RabbitMQ when they are not running, and wait until they answer.
# The integration tests need both; they fail (never skip) when either is missing.
# Every step is bounded in time: a broker whose port is open but which no longer answers (a wedged node
# left by an earlier run) is restarted rather than waited on for ever.
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

# True when the broker on 5672 answers an AMQP 0-9-1 protocol header with a frame (connection.start, whose
# first byte is the method-frame type 1). Bash alone: `python3` may be a shim (pyenv) that a CI shell
# cannot run, which made a healthy broker look wedged.
amqp_answers() {
    timeout 20 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672 && printf "AMQP\x00\x00\x09\x01" >&3 &&
        [ "$(head -c 1 <&3 | od -An -tx1 | tr -d " \n")" = 01 ]' 2>/dev/null
}

wait_amqp() {
    for _ in $(seq 1 60); do
        amqp_answers && return 0
        sleep 2
    done
    echo "ensure-services: RabbitMQ opened port 5672 but does not answer AMQP" >&2
    return 1
}

# Pids of the default broker node (not the extra nodes that cluster tests start with their own names).
default_broker_pids() {
    local pid
    for pid in $(pgrep -f beam.smp || true); do
        if ! tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -q '^RABBITMQ_NODENAME='; then
            echo "$pid"
        fi
    done
}

start_broker() {
    echo "ensure-services: starting RabbitMQ"
    rabbitmq-server -detached || true
    wait_port 5672 RabbitMQ
    timeout 180 rabbitmqctl -q await_startup >/dev/null 2>&1 || true
    wait_amqp
}

restart_broker() {
    echo "ensure-services: RabbitMQ does not answer; restarting it" >&2
    timeout 60 rabbitmqctl -q stop >/dev/null 2>&1 || true
    local pids
    pids=$(default_broker_pids)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null || true
    fi
    for _ in $(seq 1 30); do port_open 5672 || break; sleep 1; done
    start_broker
}

if ! port_open 5432; then
    if ! ls /etc/postgresql >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get install -y -qq postgresql >/dev/null
    fi
    echo "ensure-services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    wait_port 5432 PostgreSQL
fi

if ! port_open 5672; then
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get install -y -qq rabbitmq-server >/dev/null
    fi
    start_broker
elif ! amqp_answers; then
    restart_broker
fi
# The tiers are linked by dynamic shovels (adapters/shovel.py): the plugin is enabled once, without a restart.
if ! enabled=$(timeout 120 rabbitmq-plugins list -e -m 2>/dev/null); then
    restart_broker
    enabled=$(timeout 120 rabbitmq-plugins list -e -m 2>/dev/null || true)
fi
if ! grep -qx rabbitmq_shovel <<<"$enabled"; then
    echo "ensure-services: enabling the rabbitmq_shovel plugin"
    timeout 300 rabbitmq-plugins enable -q rabbitmq_shovel >/dev/null
fi
# The console's browser tests drive Debian's headless Chromium through Playwright (whose own browser
# download cannot work here); CJK fonts so the screenshots show the Chinese pages as people see them.
if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "noto sans cjk"; then
    echo "ensure-services: installing chromium and CJK fonts (console browser tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 1800 apt-get install -y -qq chromium \
        chromium-driver fonts-noto-cjk >/dev/null
fi
echo "ensure-services: PostgreSQL (5432), RabbitMQ (5672, shovel plugin) and chromium are up"
