#!/usr/bin/env bash
# Make sure a Redis answers at $STT_REDIS_URL's host:port (default 127.0.0.1:6379): start one if not,
# installing redis-server from the distribution's packages when it is missing and we are root.
set -euo pipefail
url="${STT_REDIS_URL:-redis://127.0.0.1:6379/0}"
hostport="${url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$host" ] && port=6379

answers() { (exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; }

if answers; then echo "redis: answering at $host:$port"; exit 0; fi
case "$host" in 127.0.0.1|localhost) ;; *) echo "redis: nothing answers at $host:$port" >&2; exit 1;; esac
command -v redis-server >/dev/null || "$(dirname "$0")/install_system_packages.sh" redis-server
mkdir -p .run
redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
  --dir "$PWD/.run" --logfile "$PWD/.run/redis.log" --pidfile "$PWD/.run/redis.pid"
for _ in $(seq 50); do answers && { echo "redis: started on $host:$port"; exit 0; }; sleep 0.1; done
echo "redis: failed to start (see .run/redis.log)" >&2; exit 1
