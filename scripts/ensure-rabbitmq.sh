#!/usr/bin/env bash
# Makes sure RabbitMQ answers on 127.0.0.1:5672: starts it if it is installed,
# installs it first if we may (root with apt-get), otherwise says what to do.
# Skipped when SENDMESH_TEST_AMQP_URL points the tests at another broker.
set -euo pipefail
host=127.0.0.1
port=5672
wait_s=60

answers() { timeout 1 bash -c ": </dev/tcp/$host/$port" 2>/dev/null; }

wait_until_up() {
  for _ in $(seq "$wait_s"); do
    answers && { echo "RabbitMQ is up on $host:$port"; return 0; }
    sleep 1
  done
  echo "RabbitMQ did not answer on $host:$port within ${wait_s}s; see /var/log/rabbitmq/" >&2
  return 1
}

if [[ -n "${SENDMESH_TEST_AMQP_URL:-}" ]]; then
  echo "SENDMESH_TEST_AMQP_URL is set: using that broker"
  exit 0
fi
if answers; then
  echo "RabbitMQ answers on $host:$port"
  exit 0
fi
if ! command -v rabbitmq-server >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing rabbitmq-server"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server
  else
    echo "RabbitMQ is not running on $host:$port and not installed." >&2
    echo "Install it (Debian/Ubuntu: sudo apt-get install rabbitmq-server), start it," >&2
    echo "or point the tests at a broker with SENDMESH_TEST_AMQP_URL." >&2
    exit 1
  fi
fi
# The package may have started it already (where services may start).
answers && { echo "RabbitMQ answers on $host:$port"; exit 0; }
echo "starting RabbitMQ"
rabbitmq-server -detached
wait_until_up
