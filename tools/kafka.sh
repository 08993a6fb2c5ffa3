#!/usr/bin/env bash
# Start, stop or inspect a local Apache Kafka (KRaft, no ZooKeeper) on 127.0.0.1.
#
#   tools/kafka.sh start  [--port 9092] [--brokers 1|3] [--sasl]
#   tools/kafka.sh stop   [--port 9092]
#   tools/kafka.sh status [--port 9092]
#   tools/kafka.sh kill   [--port 9092] [--node N]     # kill -9 one broker
#   tools/kafka.sh stop-node [--port 9092] [--node N]  # stop one broker cleanly
#   tools/kafka.sh pause-node|resume-node [--port 9092] [--node N]  # SIGSTOP/SIGCONT: a stalled broker
#   tools/kafka.sh restart-node [--port 9092] [--node N]
#   tools/kafka.sh create-topic [--port 9092] --topic NAME --partitions N
#   tools/kafka.sh transaction-state [--port 9092] --id TRANSACTIONAL_ID  # Empty, Ongoing, CompleteCommit, ...
#   tools/kafka.sh group-offsets [--port 9092] --id GROUP  # "topic partition offset lag metadata" lines
#   tools/kafka.sh consumer-groups [--port 9092] --id GROUP  # kafka-consumer-groups --describe, as Kafka ships it
#   tools/kafka.sh gc [--port 9092]                    # a full GC in every broker now (jcmd)
#
# KAFKA_JVM_OPTS replaces the brokers' heap and GC flags (default
# `-Xms256m -Xmx768m -XX:+UseG1GC`).
#
# With --brokers 3 the brokers listen on port, port+1, port+2 (each is also a
# controller, so the quorum survives one of them dying). Each broker also has
# a SASL/PLAIN listener on its port + 50, user `streamlyr`, password in
# $KAFKA_SASL_PASSWORD (default `streamlyr-secret`), for the security tests. Data lives in a
# temporary directory that `stop` removes. `start` returns only once every
# broker answers metadata requests.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/versions.sh"

cmd="${1:-}"; shift || true
port=9092; brokers=1; node=0; topic=""; partitions=1; transactional_id=""
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --brokers) brokers="$2"; shift 2 ;;
    --node) node="$2"; shift 2 ;;
    --topic) topic="$2"; shift 2 ;;
    --partitions) partitions="$2"; shift 2 ;;
    --id) transactional_id="$2"; shift 2 ;;
    *) echo "kafka.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

state="${STREAMLYR_STATE_DIR:-/tmp/streamlyr-kafka}/$port"
libs="$KAFKA_HOME/libs"

java_run() {
  java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.level=WARN -cp "$libs/*" "$@"
}

node_port() { echo $((port + $1)); }
sasl_port() { echo $((port + 50 + $1)); }
sasl_password="${KAFKA_SASL_PASSWORD:-streamlyr-secret}"
controller_port() { echo $((port + 100 + $1)); }

write_config() { # node
  local n="$1"
  local dir="$state/node$n" voters="" i
  for i in $(seq 0 $((brokers - 1))); do
    voters="${voters:+$voters,}$((i + 1))@127.0.0.1:$(controller_port "$i")"
  done
  local rf=1; [ "$brokers" -ge 3 ] && rf=3
  mkdir -p "$dir/data"
  cat > "$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=$((n + 1))
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(node_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n"),SASL_PLAINTEXT://127.0.0.1:$(sasl_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$n"),SASL_PLAINTEXT://127.0.0.1:$(sasl_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_streamlyr="$sasl_password";
min.insync.replicas=$([ "$rf" -ge 3 ] && echo 2 || echo 1)
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$rf
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$([ "$rf" -ge 3 ] && echo 2 || echo 1)
transaction.state.log.num.partitions=3
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.flush.interval.messages=9223372036854775807
EOF
}

start_node() { # node
  local n="$1"
  local dir="$state/node$n"
  nohup bash -c "exec java ${KAFKA_JVM_OPTS:--Xms256m -Xmx768m -XX:+UseG1GC} -Djava.awt.headless=true \
      -Dlog4j2.level=WARN -cp '$libs/*' kafka.Kafka '$dir/server.properties'" \
      > "$dir/broker.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
}

wait_ready() { # node
  local n="$1" deadline=$((SECONDS + 90))
  until kcat -b "127.0.0.1:$(node_port "$n")" -L -m 2 >/dev/null 2>&1; do
    if [ $SECONDS -gt $deadline ]; then
      echo "kafka.sh: broker $n on port $(node_port "$n") did not come up; log:" >&2
      tail -30 "$state/node$n/broker.log" >&2
      return 1
    fi
    if ! kill -0 "$(cat "$state/node$n/pid")" 2>/dev/null; then
      echo "kafka.sh: broker $n exited; log:" >&2
      tail -30 "$state/node$n/broker.log" >&2
      return 1
    fi
    sleep 0.5
  done
}

case "$cmd" in
  start)
    if [ -f "$state/brokers" ]; then
      echo "kafka.sh: stopping a previous Kafka on port $port" >&2
      "$0" stop --port "$port"
    fi
    mkdir -p "$state"
    echo "$brokers" > "$state/brokers"
    cluster_id="$(java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    for n in $(seq 0 $((brokers - 1))); do
      write_config "$n"
      java_run kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$state/node$n/server.properties" > "$state/node$n/format.log" 2>&1 ||
        { cat "$state/node$n/format.log" >&2; exit 1; }
    done
    for n in $(seq 0 $((brokers - 1))); do start_node "$n"; done
    for n in $(seq 0 $((brokers - 1))); do wait_ready "$n"; done
    servers=""
    for n in $(seq 0 $((brokers - 1))); do servers="${servers:+$servers,}127.0.0.1:$(node_port "$n")"; done
    echo "$servers"
    ;;
  stop)
    [ -f "$state/brokers" ] || exit 0
    brokers="$(cat "$state/brokers")"
    for n in $(seq 0 $((brokers - 1))); do
      pid="$(cat "$state/node$n/pid" 2>/dev/null || true)"
      [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for n in $(seq 0 $((brokers - 1))); do
      pid="$(cat "$state/node$n/pid" 2>/dev/null || true)"
      for _ in $(seq 1 60); do
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
      done
      [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$state"
    ;;
  kill)
    kill -9 "$(cat "$state/node$node/pid")"
    ;;
  stop-node)
    pid="$(cat "$state/node$node/pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    ;;
  pause-node) kill -STOP "$(cat "$state/node$node/pid")" ;;
  resume-node) kill -CONT "$(cat "$state/node$node/pid")" ;;
  restart-node)
    brokers="$(cat "$state/brokers")"
    start_node "$node"
    wait_ready "$node"
    ;;
  gc)
    brokers="$(cat "$state/brokers")"
    for n in $(seq 0 $((brokers - 1))); do jcmd "$(cat "$state/node$n/pid")" GC.run >/dev/null; done
    ;;
  transaction-state)
    java -Xmx256m -cp "$libs/*" "$here/TransactionState.java" "127.0.0.1:$port" "$transactional_id" 2>/dev/null ;;
  group-offsets)
    java -Xmx256m -cp "$libs/*" "$here/GroupOffsets.java" "127.0.0.1:$port" "$transactional_id" 2>/dev/null ;;
  consumer-groups)
    java -Xmx256m -cp "$libs/*" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
      --bootstrap-server "127.0.0.1:$port" --describe --group "$transactional_id" 2>/dev/null ;;
  create-topic)
    java -Xmx256m -cp "$libs/*" "$here/CreateTopic.java" "127.0.0.1:$port" "$topic" "$partitions" ;;
  status)
    [ -f "$state/brokers" ] || { echo "stopped"; exit 1; }
    kcat -b "127.0.0.1:$port" -L -m 2 >/dev/null 2>&1 && echo "running" || { echo "not answering"; exit 1; }
    ;;
  *)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
