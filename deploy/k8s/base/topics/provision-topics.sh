#!/bin/sh
# Creates the platform's Kafka topics, or brings existing ones up to the settings: one topic per
# event stream (coaching.<stream>) and one dead-letter topic per consuming service
# (coaching.<service>.dlq). Safe to run again at any time: partitions only ever grow, topic
# configs are re-applied. Used by the Kubernetes Job (deploy/k8s/base/topics) and the compose
# stack (deploy/compose), with the apache/kafka image's command-line tools.
#
# Environment (the services' own names where they exist):
#   KAFKA_BOOTSTRAP_SERVERS    required
#   TOPIC_PREFIX               prepended to every topic name (default: none)
#   TOPIC_PARTITIONS           partitions per topic; also the most replicas a service can use
#   TOPIC_REPLICATION_FACTOR   3 in production
#   TOPIC_MIN_INSYNC_REPLICAS  2 in production: with acks=all a write survives one broker loss
#   STREAM_RETENTION_MS        event streams (default 14 days)
#   DLQ_RETENTION_MS           dead letters, kept longer for investigation (default 60 days)
#   KAFKA_COMMAND_CONFIG       optional client properties file (TLS, SASL)
set -eu

: "${KAFKA_BOOTSTRAP_SERVERS:?KAFKA_BOOTSTRAP_SERVERS must be set}"
PREFIX="${TOPIC_PREFIX:-}"
PARTITIONS="${TOPIC_PARTITIONS:-12}"
REPLICATION="${TOPIC_REPLICATION_FACTOR:-3}"
MIN_ISR="${TOPIC_MIN_INSYNC_REPLICAS:-2}"
STREAM_RETENTION_MS="${STREAM_RETENTION_MS:-1209600000}"
DLQ_RETENTION_MS="${DLQ_RETENTION_MS:-5184000000}"
KAFKA_BIN="${KAFKA_BIN:-/opt/kafka/bin}"

# The event streams (one per producing context) and the services that consume, hence own a
# dead-letter topic. tests/test_deploy_topics.py checks these against the services' code.
STREAMS="enrolment assessment goals feedback notifier"
CONSUMERS="assessment goals feedback notifier"

set -- --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS"
if [ -n "${KAFKA_COMMAND_CONFIG:-}" ]; then
  set -- "$@" --command-config "$KAFKA_COMMAND_CONFIG"
fi

ensure_topic() {  # name retention_ms connection-args...
  topic="$1"
  retention="$2"
  shift 2
  configs="min.insync.replicas=$MIN_ISR,retention.ms=$retention,cleanup.policy=delete"
  current=$("$KAFKA_BIN/kafka-topics.sh" "$@" --describe --topic "$topic" 2>/dev/null \
    | sed -n 's/.*PartitionCount: *\([0-9]*\).*/\1/p' | head -n 1)
  if [ -z "$current" ]; then
    echo "create $topic: $PARTITIONS partitions, replication $REPLICATION, $configs"
    "$KAFKA_BIN/kafka-topics.sh" "$@" --create --if-not-exists --topic "$topic" \
      --partitions "$PARTITIONS" --replication-factor "$REPLICATION" \
      --config "min.insync.replicas=$MIN_ISR" --config "retention.ms=$retention" \
      --config cleanup.policy=delete
    return
  fi
  if [ "$current" -lt "$PARTITIONS" ]; then
    # More partitions re-map keys to partitions: per-client order holds for new events only.
    echo "widen $topic: $current -> $PARTITIONS partitions"
    "$KAFKA_BIN/kafka-topics.sh" "$@" --alter --topic "$topic" --partitions "$PARTITIONS"
  fi
  echo "configure $topic: $configs"
  "$KAFKA_BIN/kafka-configs.sh" "$@" --alter --entity-type topics --entity-name "$topic" \
    --add-config "$configs"
}

for stream in $STREAMS; do
  ensure_topic "${PREFIX}coaching.${stream}" "$STREAM_RETENTION_MS" "$@"
done
for service in $CONSUMERS; do
  ensure_topic "${PREFIX}coaching.${service}.dlq" "$DLQ_RETENTION_MS" "$@"
done
echo "topics ready"
