/*
 * A patient device in C over the vitalgate SDK: enrolls with the TTP, then
 * twice connects to the HSP, streams readings and disconnects. Its state (key
 * seed, credential, trust anchors, what it knows of the HSP, the sequence
 * reservation) lives in one file per slot in a directory, so a second run
 * goes straight to the handshake.
 *
 * The device has no gRPC: it talks to a relay (a hub, a phone, here the test
 * in tests/e2e/sdk_c.rs) over TCP in frames of a 4-byte big-endian length and
 * the bytes. Each connection starts with one frame naming its purpose:
 *
 *   "enroll":  then token length (2 bytes, big-endian) | token | public key (32) | proof (64);
 *              the relay answers with credential length (2) | credential | trust anchors (32 each)
 *   "session": then the SDK's own frames: handshake messages, then records
 *
 * Usage: device PORT TOKEN STATE_DIR SAMPLES_PER_SESSION
 * Build: cc -std=c11 -I crates/sdk-c/include examples/c/device.c \
 *           target/debug/libvitalgate_sdk_c.a -lpthread -ldl -lm -o device
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vitalgate.h"

#define MAX_FRAME 65536

struct link {
  int fd;              /* the TCP connection to the relay, or -1 */
  const char *dir;     /* where the slots live */
};

/* ---- framing over the socket ---- */

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int send_frame(int fd, const uint8_t *data, size_t len) {
  uint8_t prefix[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
  if (len > MAX_FRAME || write_all(fd, prefix, 4) != 0) return -1;
  return write_all(fd, data, len);
}

/* Reads one frame; returns its length, -1 on a closed or failed link, -2 if it exceeds capacity. */
static long recv_frame(int fd, uint8_t *buf, size_t capacity) {
  uint8_t prefix[4];
  if (read_all(fd, prefix, 4) != 0) return -1;
  size_t len = ((size_t)prefix[0] << 24) | ((size_t)prefix[1] << 16) | ((size_t)prefix[2] << 8) | prefix[3];
  if (len > capacity) return -2;
  if (read_all(fd, buf, len) != 0) return -1;
  return (long)len;
}

static int open_link(struct link *link, int port, const char *purpose) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  link->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (link->fd < 0 || connect(link->fd, (struct sockaddr *)&addr, sizeof addr) != 0) return -1;
  return send_frame(link->fd, (const uint8_t *)purpose, strlen(purpose));
}

static void close_link(struct link *link) {
  if (link->fd >= 0) close(link->fd);
  link->fd = -1;
}

/* ---- the SDK's callbacks ---- */

static int32_t cb_send(void *context, const uint8_t *frame, size_t len) {
  struct link *link = context;
  if (link->fd < 0) return VG_IO_CLOSED;
  return send_frame(link->fd, frame, len) == 0 ? VG_IO_OK : VG_IO_CLOSED;
}

static int32_t cb_receive(void *context, uint8_t *buf, size_t capacity, size_t *len) {
  struct link *link = context;
  if (link->fd < 0) return VG_IO_CLOSED;
  long n = recv_frame(link->fd, buf, capacity);
  if (n == -2) return VG_IO_TOO_LARGE;
  if (n < 0) return VG_IO_CLOSED;
  *len = (size_t)n;
  return VG_IO_OK;
}

static int32_t cb_now(void *context, uint64_t *unix_ms) {
  (void)context;
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return VG_IO_FAILED;
  *unix_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  return VG_IO_OK;
}

static int32_t cb_random(void *context, uint8_t *buf, size_t len) {
  (void)context;
  while (len > 0) {
    ssize_t n = getrandom(buf, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return VG_IO_FAILED;
    buf += n;
    len -= (size_t)n;
  }
  return VG_IO_OK;
}

static void slot_path(const struct link *link, vg_slot slot, const char *suffix, char *path, size_t size) {
  snprintf(path, size, "%s/slot-%d%s", link->dir, (int)slot, suffix);
}

static int32_t cb_storage_read(void *context, vg_slot slot, uint8_t *buf, size_t capacity, size_t *len) {
  char path[4096];
  slot_path(context, slot, "", path, sizeof path);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return errno == ENOENT ? VG_IO_EMPTY : VG_IO_FAILED;
  struct stat st;
  int32_t result = VG_IO_FAILED;
  if (fstat(fd, &st) == 0) {
    size_t size = (size_t)st.st_size;
    if (size > capacity) {
      result = VG_IO_TOO_LARGE;
    } else if (read_all(fd, buf, size) == 0) {
      *len = size;
      result = VG_IO_OK;
    }
  }
  close(fd);
  return result;
}

/* Atomic and durable: write a temporary file, sync it, rename it over the slot. */
static int32_t cb_storage_write(void *context, vg_slot slot, const uint8_t *data, size_t len) {
  char path[4096], temporary[4096];
  slot_path(context, slot, "", path, sizeof path);
  slot_path(context, slot, ".tmp", temporary, sizeof temporary);
  int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return VG_IO_FAILED;
  int ok = write_all(fd, data, len) == 0 && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(temporary, path) != 0) return VG_IO_FAILED;
  return VG_IO_OK;
}

static int32_t cb_storage_remove(void *context, vg_slot slot) {
  char path[4096];
  slot_path(context, slot, "", path, sizeof path);
  if (unlink(path) != 0 && errno != ENOENT) return VG_IO_FAILED;
  return VG_IO_OK;
}

/* ---- the device's life ---- */

static int check(vg_error e, const char *what) {
  if (e != VG_ERROR_OK) fprintf(stderr, "device: %s: %s\n", what, vg_error_name(e));
  return e == VG_ERROR_OK;
}

static int enroll(vg_device *device, struct link *link, int port, const char *token) {
  size_t token_len = strlen(token);
  uint8_t request[2 + 256 + VG_PUBLIC_KEY_LEN + VG_PROOF_LEN];
  if (token_len > 256) return fprintf(stderr, "device: the token is too long\n"), 0;
  request[0] = (uint8_t)(token_len >> 8);
  request[1] = (uint8_t)token_len;
  memcpy(request + 2, token, token_len);
  uint8_t *key = request + 2 + token_len, *proof = key + VG_PUBLIC_KEY_LEN;
  if (!check(vg_enroll_request(device, (const uint8_t *)token, token_len, key, proof), "vg_enroll_request")) return 0;

  static uint8_t answer[MAX_FRAME];
  if (open_link(link, port, "enroll") != 0 || send_frame(link->fd, request, 2 + token_len + VG_PUBLIC_KEY_LEN + VG_PROOF_LEN) != 0)
    return fprintf(stderr, "device: cannot reach the relay\n"), 0;
  long n = recv_frame(link->fd, answer, sizeof answer);
  close_link(link);
  if (n < 2) return fprintf(stderr, "device: the relay did not answer the enrollment\n"), 0;
  size_t credential_len = ((size_t)answer[0] << 8) | answer[1];
  if (credential_len > (size_t)n - 2) return fprintf(stderr, "device: a malformed enrollment answer\n"), 0;
  const uint8_t *credential = answer + 2, *anchors = credential + credential_len;
  size_t anchors_len = (size_t)n - 2 - credential_len;
  return check(vg_enroll_accept(device, credential, credential_len, anchors, anchors_len), "vg_enroll_accept");
}

static int session(vg_device *device, struct link *link, int port, int samples, int *taken) {
  if (open_link(link, port, "session") != 0) return fprintf(stderr, "device: cannot reach the relay\n"), 0;
  vg_error connected = vg_connect(device);
  if (connected == VG_ERROR_RESUMPTION_REFUSED) {
    /* The last session's ticket was refused and is used up: a new link, a full handshake. */
    printf("resumption refused\n");
    close_link(link);
    if (open_link(link, port, "session") != 0) return fprintf(stderr, "device: cannot reach the relay\n"), 0;
    connected = vg_connect(device);
  }
  int ok = check(connected, "vg_connect");
  for (int i = 0; ok && i < samples; i++) {
    uint64_t now = 0, sequence = 0;
    cb_now(NULL, &now);
    int k = ++*taken;
    vg_sample sample = {
        .measured_at_ms = (int64_t)now,
        .heart_rate_bpm = 60.0f + (float)k, /* the test recognises readings by this */
        .spo2_percent = 97.0f,
        .respiratory_rate_per_min = 14.0f,
        .skin_temperature_c = 33.5f,
        .systolic_mmhg = 120.0f,
        .diastolic_mmhg = 80.0f,
        .anomaly = 0,
    };
    ok = check(vg_push_sample(device, &sample, &sequence), "vg_push_sample");
  }
  size_t acknowledged = 0;
  ok = ok && check(vg_flush(device, 4, &acknowledged), "vg_flush");
  ok = ok && check(vg_disconnect(device), "vg_disconnect");
  close_link(link);
  if (ok) printf("session: %zu samples acknowledged\n", acknowledged);
  if (ok && acknowledged != (size_t)samples) {
    fprintf(stderr, "device: %zu of %d samples acknowledged\n", acknowledged, samples);
    ok = 0;
  }
  return ok;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: device PORT TOKEN STATE_DIR SAMPLES_PER_SESSION\n");
    return 2;
  }
  int port = atoi(argv[1]), samples = atoi(argv[4]);
  struct link link = {.fd = -1, .dir = argv[3]};
  vg_callbacks callbacks = {
      .context = &link,
      .send = cb_send,
      .receive = cb_receive,
      .now_unix_ms = cb_now,
      .random = cb_random,
      .storage_read = cb_storage_read,
      .storage_write = cb_storage_write,
      .storage_remove = cb_storage_remove,
  };
  vg_device *device = NULL;
  if (!check(vg_device_new(&callbacks, 64, &device), "vg_device_new")) return 1;

  int ok = 1;
  uint8_t enrolled = 0;
  ok = check(vg_is_enrolled(device, &enrolled), "vg_is_enrolled");
  if (ok && !enrolled) {
    ok = enroll(device, &link, port, argv[2]);
    if (ok) printf("enrolled\n");
  }
  int taken = 0;
  /* Two sessions: the first a full handshake (full credentials on a first run,
     references after), the second resumes with the ticket the first received. */
  for (int round = 0; ok && round < 2; round++) ok = session(device, &link, port, samples, &taken);

  size_t pending = 1;
  uint64_t dropped = 1;
  ok = ok && check(vg_buffer_state(device, &pending, &dropped), "vg_buffer_state");
  if (ok && (pending != 0 || dropped != 0)) {
    fprintf(stderr, "device: %zu samples pending, %llu dropped\n", pending, (unsigned long long)dropped);
    ok = 0;
  }
  vg_device_free(device);
  return ok ? 0 : 1;
}
