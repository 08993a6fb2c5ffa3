// kcat -P's produce loop with nothing around it, to compare librdkafka
// versions on the same broker (bench/README.md, "Session 13"):
//   gcc -O2 -o produce-2.0.2 produce.c -lrdkafka          # Debian's librdkafka-dev
//   O=$CARGO_TARGET_DIR/release/build/rdkafka-sys-*/out     # the 2.12.1 rdkafka-sys builds
//   gcc -O2 -I$O/include -o produce-2.12.1 produce.c $O/lib/librdkafka.a -lssl -lcrypto -lz -lzstd -lpthread -lm -ldl
//   ./produce-2.12.1 <brokers> <topic> <file of lines> [<config> <value> ...]
// With KICKS=0 in the environment it makes one blocking metadata request
// for the topic before producing (as streamlyr's sink does at start).
// Prints the total time, the first delivery report's and the last produce call's.
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double started, first_delivery;

static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  if (!first_delivery) first_delivery = now() - started;
  if (m->err) {
    fprintf(stderr, "%s\n", rd_kafka_err2str(m->err));
    exit(2);
  }
}

int main(int argc, char **argv) {
  char err[512];
  if (argc < 4) {
    fprintf(stderr, "usage: produce <brokers> <topic> <file> [<config> <value> ...]\n");
    return 1;
  }
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const char *settings[][2] = {{"bootstrap.servers", argv[1]}, {"enable.idempotence", "true"}, {"acks", "all"},
                               {"linger.ms", "5"}, {"compression.codec", "none"}};
  for (int i = 0; i < 5; i++)
    if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
  for (int i = 4; i + 1 < argc; i += 2)
    if (rd_kafka_conf_set(conf, argv[i], argv[i + 1], err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
  rd_kafka_conf_set_dr_msg_cb(conf, delivered);

  // The lines, read before the clock starts (kcat's come from a file made before it).
  FILE *f = fopen(argv[3], "r");
  if (!f) { perror(argv[3]); return 1; }
  size_t total = 0, room = 1 << 20, n = 0, n_room = 1 << 16;
  char *data = malloc(room), *line = NULL;
  size_t *offsets = malloc(n_room * sizeof *offsets), *lengths = malloc(n_room * sizeof *lengths), cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    if (line[len - 1] == '\n') len--;
    while (total + len > room) data = realloc(data, room *= 2);
    if (n == n_room) {
      n_room *= 2;
      offsets = realloc(offsets, n_room * sizeof *offsets);
      lengths = realloc(lengths, n_room * sizeof *lengths);
    }
    memcpy(data + total, line, len);
    offsets[n] = total;
    lengths[n++] = len;
    total += len;
  }

  started = now();
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, argv[2], NULL);
  if (getenv("KICKS")) {
    const struct rd_kafka_metadata *md;
    if (!rd_kafka_metadata(rk, 0, rkt, &md, 5000)) rd_kafka_metadata_destroy(md);
  }
  for (size_t i = 0; i < n; i++) {
    while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, data + offsets[i], lengths[i], NULL, 0, NULL) == -1)
      rd_kafka_poll(rk, 10);
    rd_kafka_poll(rk, 0);
  }
  double produced = now() - started;
  rd_kafka_flush(rk, 60000);
  printf("%s produce %zu %.4f first_delivery %.4f produced %.4f\n", rd_kafka_version_str(), n, now() - started,
         first_delivery, produced);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  return 0;
}
