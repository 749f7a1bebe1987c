#!/usr/bin/env bash
# Starts the local PostgreSQL, Redis and RabbitMQ if they are not running.
set -u
pg_isready -h 127.0.0.1 -q || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
[ "$(redis-cli ping 2>/dev/null)" = PONG ] || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
(exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null || rabbitmq-server -detached
