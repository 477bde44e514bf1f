#!/usr/bin/env bash
# Run Apache Kafka itself (KRaft, single node) on this machine, for tests.
#
# The broker is fetched from Maven Central with the machine's Maven and run
# with its Java (17+): no Docker, no download outside the package registries.
#
#   deploy/local/apache-kafka.sh start   # prints the bootstrap address on stdout
#   deploy/local/apache-kafka.sh stop
#
# Environment: KAFKA_PORT (default 39092), KAFKA_HOME (default .livesignals/apache-kafka).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
home="${KAFKA_HOME:-$root/.livesignals/apache-kafka}"
port="${KAFKA_PORT:-39092}"
controller_port=$((port + 1))
libs="$home/libs"
data="$home/data"
pidfile="$home/kafka.pid"

log() { echo "apache-kafka: $*" >&2; }

fetch() {
  if [ -f "$libs/.complete" ]; then return; fi
  command -v mvn >/dev/null || { log "Maven (mvn) is required"; exit 1; }
  command -v java >/dev/null || { log "Java 17+ is required"; exit 1; }
  log "fetching Apache Kafka jars from Maven Central (once)"
  mkdir -p "$libs"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  touch "$libs/.complete"
}

start() {
  stop quiet
  for p in "$port" "$controller_port"; do  # a port someone else holds would read as "up" below
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      log "port $p is already in use by another process: choose another KAFKA_PORT"; exit 1
    fi
  done
  fetch
  rm -rf "$data"; mkdir -p "$data"
  cat > "$home/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data
num.partitions=4
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  cluster_id="$(python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
  java -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" \
       -c "$home/server.properties" --standalone >"$home/format.log" 2>&1
  nohup java -Xms256m -Xmx768m -cp "$libs/*" kafka.Kafka "$home/server.properties" \
       >"$home/kafka.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      log "Apache Kafka is up on 127.0.0.1:$port (log: $home/kafka.log)"
      echo "127.0.0.1:$port"
      return
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "Apache Kafka exited; last log lines:"; tail -20 "$home/kafka.log" >&2; exit 1
    fi
    sleep 0.5
  done
  log "Apache Kafka did not open port $port in 60 s"; exit 1
}

stop() {
  if [ -f "$pidfile" ]; then
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"; for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    [ "${1:-}" = quiet ] || log "stopped"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
