/*
 * loadgen.c — the load generator of bench/run.mjs for Durable Streams servers.
 *
 * One thread, one epoll loop, non-blocking sockets, HTTP/1.1 keep-alive, one request in
 * flight per connection (closed loop). Minimal response parsing: status line, a few headers,
 * Content-Length / chunked / until-close bodies. Latencies are kept as raw nanosecond samples
 * and sorted at the end (exact percentiles, 1 ns resolution of CLOCK_MONOTONIC).
 *
 * Modes (--mode):
 *   write    S streams (PUT first unless --no-create), one idempotent producer per stream
 *            (Producer-Id s<idx>, epoch 0, seq from --seq-start), B-byte bodies, --conns
 *            connections; a free connection takes the next stream that has no append in
 *            flight (FIFO). Warm-up, then a measured window: appends/s and latency. Then every
 *            stream is read back (GET ?offset=-1 ... until Stream-Up-To-Date) and its bytes are
 *            compared with the acknowledged appends (length and content).
 *   fill     like write, but every stream gets exactly --count appends (no time window).
 *   fanout   one stream (text/plain), --subs SSE subscribers from offset=now, one writer
 *            POSTing B-byte events at --rate per second that carry their send time; delivery
 *            latency and an exactly-once check per subscriber.
 *   catchup  --streams readers at once, one connection each, each reading its own stream from
 *            offset=-1 to the tail; MiB/s, per-reader time, length/content check against
 *            --count records of --body bytes.
 *
 * Output: one JSON object on stdout. Diagnostics on stderr.
 * Build: cc -O2 -Wall -Wextra -Werror -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Small utilities */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "loadgen: out of memory\n");
    exit(3);
  }
  return p;
}

static void *xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (!p) {
    fprintf(stderr, "loadgen: out of memory\n");
    exit(3);
  }
  return p;
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) {
    fprintf(stderr, "loadgen: out of memory\n");
    exit(3);
  }
  return q;
}

typedef struct {
  uint64_t *v;
  size_t n, cap;
} samples_t;

static void samples_add(samples_t *s, uint64_t x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 65536;
    s->v = xrealloc(s->v, s->cap * sizeof(uint64_t));
  }
  s->v[s->n++] = x;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y ? 1 : 0;
}

/* Nearest-rank percentile of sorted samples, p in [0,1]. */
static uint64_t pct(const samples_t *s, double p) {
  if (s->n == 0) return 0;
  size_t rank = (size_t)(p * (double)s->n + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > s->n) rank = s->n;
  return s->v[rank - 1];
}

/* Prints "name":{count,mean,p50,...} in microseconds (3 decimals = ns resolution). */
static void print_latency(const char *name, samples_t *s) {
  qsort(s->v, s->n, sizeof(uint64_t), cmp_u64);
  double sum = 0;
  for (size_t i = 0; i < s->n; i++) sum += (double)s->v[i];
  double mean = s->n ? sum / (double)s->n : 0;
  printf("\"%s\":{\"count\":%zu,\"meanUs\":%.3f,\"minUs\":%.3f,\"p50Us\":%.3f,\"p90Us\":%.3f,"
         "\"p99Us\":%.3f,\"p999Us\":%.3f,\"maxUs\":%.3f}",
         name, s->n, mean / 1e3, s->n ? (double)s->v[0] / 1e3 : 0, (double)pct(s, 0.5) / 1e3,
         (double)pct(s, 0.9) / 1e3, (double)pct(s, 0.99) / 1e3, (double)pct(s, 0.999) / 1e3,
         s->n ? (double)s->v[s->n - 1] / 1e3 : 0);
}

/* CPU time of a process in nanoseconds. Self: CLOCK_PROCESS_CPUTIME_ID. Another process: the
 * sum of the first field of /proc/<pid>/task/<tid>/schedstat over its threads (ns, so short
 * windows are measured exactly), falling back to utime+stime from /proc/<pid>/stat (clock
 * ticks) when schedstat is not available. */
static long long cpu_ns(int pid) {
  if (pid <= 0) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
  }
  char path[96], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR *d = opendir(path);
  if (d) {
    long long sum = 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.') continue;
      char p2[128];
      snprintf(p2, sizeof p2, "/proc/%d/task/%.20s/schedstat", pid, e->d_name);
      FILE *f = fopen(p2, "r");
      if (!f) continue;
      long long ns;
      if (fscanf(f, "%lld", &ns) == 1) {
        sum += ns;
        found = 1;
      }
      fclose(f);
    }
    closedir(d);
    if (found) return sum;
  }
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  p += 2; /* field 3 (state) */
  for (int field = 3; field < 14; field++) {
    p = strchr(p, ' ');
    if (!p) return -1;
    p++;
  }
  char *end;
  long long ut = strtoll(p, &end, 10);
  long long st = strtoll(end + 1, NULL, 10);
  return (ut + st) * (1000000000ll / sysconf(_SC_CLK_TCK));
}

/* System-wide CPU from the first line of /proc/stat: busy (user+nice+system+irq+softirq)
 * and steal, in clock ticks summed over all CPUs. */
typedef struct {
  long long busy, steal;
} sys_cpu_t;

static sys_cpu_t sys_cpu(void) {
  sys_cpu_t r = {-1, -1};
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return r;
  long long v[8] = {0};
  if (fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
             &v[7]) == 8) {
    r.busy = v[0] + v[1] + v[2] + v[5] + v[6];
    r.steal = v[7];
  }
  fclose(f);
  return r;
}

/* Deterministic content: record `seq` of stream `s` is a run of 64-bit words gen64(s, seq, j)
 * stored little-endian (bodies are a multiple of 8 bytes), so every byte of every stream is
 * known and a read-back can be checked 8 bytes at a time. */
static inline uint64_t gen64(uint32_t s, uint64_t seq, uint32_t j) {
  uint64_t x = ((uint64_t)s + 1) * 0x9E3779B97F4A7C15ull ^ (seq + 1) * 0xC2B2AE3D27D4EB4Full ^
               ((uint64_t)j + 1) * 0x165667B19E3779F9ull;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 32);
}

static inline uint8_t gen_byte(uint32_t s, uint64_t seq, uint32_t i) {
  return (uint8_t)(gen64(s, seq, i >> 3) >> ((i & 7) * 8));
}

static void gen_record(uint8_t *out, uint32_t s, uint64_t seq, int len) {
  for (int j = 0; j < len / 8; j++) {
    uint64_t w = gen64(s, seq, (uint32_t)j);
    memcpy(out + j * 8, &w, 8); /* little-endian host */
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Options */

enum { MODE_WRITE, MODE_FILL, MODE_FANOUT, MODE_CATCHUP };

static struct {
  int mode;
  char host[64];
  int port;
  char prefix[256];
  int streams;
  int conns;
  int body;
  uint64_t warmup_ms, duration_ms, timeout_ms, grace_ms, phase_timeout_ms;
  int create;
  int verify;
  int content_check;
  int producer;
  uint64_t count;
  uint64_t seq_start;
  char content_type[128];
  int server_pid;
  int subs;
  double rate;
  int passes;
  int json_records; /* write mode: each append is a JSON array of this many records */
} opt = {
    .mode = MODE_WRITE,
    .host = "127.0.0.1",
    .port = 4437,
    .prefix = "/v1/stream/bench-",
    .streams = 100,
    .conns = 64,
    .body = 256,
    .warmup_ms = 1000,
    .duration_ms = 5000,
    .timeout_ms = 10000,
    .grace_ms = 3000,
    .phase_timeout_ms = 180000,
    .create = 1,
    .verify = 1,
    .content_check = 1,
    .producer = 1,
    .count = 0,
    .seq_start = 0,
    .content_type = "application/octet-stream",
    .server_pid = 0,
    .subs = 10,
    .rate = 50,
    .passes = 1,
};

/* ------------------------------------------------------------------------------------------ */
/* Connections and HTTP parsing */

enum { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };
enum { R_HEAD, R_CL, R_CHUNK_SIZE, R_CHUNK_DATA, R_CHUNK_CRLF, R_TRAILER, R_EOF, R_DONE };
enum { K_NONE, K_CREATE, K_APPEND, K_READ, K_SSE, K_WRITER };

typedef struct conn {
  int fd;
  int id;
  int state;
  /* output */
  char *out;
  size_t out_len, out_off, out_cap;
  /* input */
  char *in;
  size_t in_start, in_end, in_cap;
  uint64_t t_read; /* when the bytes being parsed were read */
  /* response */
  int rstate;
  int status;
  int chunked, close_after, up_to_date, no_body;
  long long content_length;
  long long remaining;
  char next_offset[96];
  /* request */
  int kind;
  int stream;
  uint64_t seq;
  uint64_t t_send;
  uint64_t deadline;
  uint64_t body_bytes; /* body bytes of the current response */
  int content_bad;     /* current response failed the content check */
  /* SSE */
  char *sse;
  size_t sse_len, sse_cap;
  int sse_event_data; /* current event is "data" */
  int subscribed;     /* got the first control event */
  char sse_offset[96];
  uint64_t reconnect_at;
  int in_stack; /* has an entry on the idle stack */
} conn_t;

static int ep;
static conn_t *conns;
static int nconns;
static struct sockaddr_in addr;

/* stats */
static long long st_status[6];  /* responses by class 1xx..5xx (index 1..5) */
static long long st_status_other;
static long long st_timeouts, st_conn_errors, st_reconnects, st_parse_errors, st_connect_fail;
static char st_first_error[256];

static void note_error(const char *fmt, const char *a, int b) {
  if (st_first_error[0]) return;
  snprintf(st_first_error, sizeof st_first_error, fmt, a, b);
}

static void ep_mod(conn_t *c, int want_out) {
  struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_reset_response(conn_t *c) {
  c->rstate = R_HEAD;
  c->status = 0;
  c->chunked = c->close_after = c->up_to_date = c->no_body = 0;
  c->content_length = -1;
  c->remaining = 0;
  c->next_offset[0] = 0;
  c->body_bytes = 0;
  c->content_bad = 0;
}

static int conn_open(conn_t *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("socket");
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int r = connect(fd, (struct sockaddr *)&addr, sizeof addr);
  if (r < 0 && errno != EINPROGRESS) {
    st_connect_fail++; if (st_connect_fail < 3) fprintf(stderr, "connect() fail conn %d errno %d\n", c->id, errno);
    close(fd);
    return -1;
  }
  c->fd = fd;
  c->state = C_CONNECTING;
  c->in_start = c->in_end = 0;
  c->out_len = c->out_off = 0;
  c->sse_len = 0;
  c->sse_event_data = 0;
  c->kind = K_NONE;
  conn_reset_response(c);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

static void conn_close(conn_t *c) {
  if (c->fd >= 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  c->fd = -1;
  c->state = C_DOWN;
}

static void out_reserve(conn_t *c, size_t n) {
  if (c->out_cap < n) {
    c->out_cap = n + 1024;
    c->out = xrealloc(c->out, c->out_cap);
  }
}

/* Try to write pending output; 0 ok (maybe partial, EPOLLOUT armed), -1 error. */
static int conn_flush(conn_t *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (n > 0) {
      c->out_off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ep_mod(c, 1);
      return 0;
    }
    return -1;
  }
  c->out_len = c->out_off = 0;
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Workload state */

static int phase;
enum { PH_CONNECT, PH_CREATE, PH_LOAD, PH_DRAIN, PH_VERIFY, PH_SUBSCRIBE, PH_FANOUT, PH_GRACE, PH_READ, PH_END };

static int nstreams;
static uint64_t *s_seq;       /* next producer seq to send (= acknowledged appends + seq_start) */
static uint8_t *s_dead;       /* gave up on this stream */
static int *s_fail;           /* consecutive failures */
static uint8_t *s_retry;      /* an append failed (its outcome is unknown) and awaits its retry */
static uint64_t *s_bytes;     /* verify/read: committed body bytes */
static char (*s_offset)[96];  /* verify/read: next offset to read from */
static uint8_t *s_bad;        /* content mismatch seen */
static uint64_t *s_reqs;      /* read requests per stream */
static uint64_t *s_t_start, *s_t_end;

/* FIFO of stream indices that have no request in flight */
static int *q;
static size_t q_head, q_len, q_cap;
static void q_push(int s) {
  q[(q_head + q_len) % q_cap] = s;
  q_len++;
}
static int q_pop(void) {
  int s = q[q_head];
  q_head = (q_head + 1) % q_cap;
  q_len--;
  return s;
}

static int *idle_stack;
static int idle_n;

static uint64_t t_phase_start, t_measure_start, t_measure_end, t_load_end;
static uint64_t done_streams;
static long long measured_appends, total_appends;
static samples_t lat;
static long long cpu_self_start, cpu_self_end, cpu_srv_start, cpu_srv_end;
static sys_cpu_t sys_start, sys_end;
static uint64_t created;

/* fanout */
static int fan_nsubs;
static conn_t *writer;
static uint64_t fan_max_events, fan_sent, fan_next_event, fan_writer_errors, fan_subscribed;
static uint64_t fan_t_start, fan_t_stop;
static uint8_t *fan_recv; /* [sub * fan_max_events + event] receive count */
static uint8_t *fan_failed_event;
static samples_t fan_lat, fan_writer_lat;
static long long fan_sse_reconnects, fan_bad_records;
static int fan_stream_created;

/* ------------------------------------------------------------------------------------------ */
/* Requests */

static int build_head(conn_t *c, const char *method, const char *path_suffix, size_t body_len,
                      const char *extra) {
  out_reserve(c, 1024 + body_len);
  int n = snprintf(c->out, c->out_cap,
                   "%s %s%s HTTP/1.1\r\nHost: %s:%d\r\n%s", method, opt.prefix, path_suffix,
                   opt.host, opt.port, extra ? extra : "");
  if (body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
    n += snprintf(c->out + n, c->out_cap - (size_t)n, "Content-Length: %zu\r\n", body_len);
  n += snprintf(c->out + n, c->out_cap - (size_t)n, "\r\n");
  return n;
}

static int send_request(conn_t *c, uint64_t now) {
  c->t_send = now;
  c->deadline = now + opt.timeout_ms * 1000000ull;
  c->state = C_BUSY;
  conn_reset_response(c);
  if (conn_flush(c) < 0) return -1;
  return 0;
}

static void req_create(conn_t *c, int s, uint64_t now) {
  char suffix[32], extra[256];
  snprintf(suffix, sizeof suffix, "%d", s);
  snprintf(extra, sizeof extra, "Content-Type: %s\r\n", opt.content_type);
  c->out_len = (size_t)build_head(c, "PUT", suffix, 0, extra);
  c->out_off = 0;
  c->kind = K_CREATE;
  c->stream = s;
  send_request(c, now);
}

static char *put_u64(char *p, uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

static char *put_mem(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

/* The append request is assembled by hand (it is the hot path): "POST <prefix>" <stream>
 * <middle> [<stream> "\r\nProducer-Seq: " <seq>] "\r\n\r\n" <body>. */
static char append_middle[512];
static size_t append_middle_len;

/* An append's body bytes: --body, or with --json-records N a JSON array of N strings of
 * --body bytes each (quotes included): "[" N * (record ",") with the last "," a "]". */
static int append_bytes(void) {
  return opt.json_records > 0 ? opt.json_records * (opt.body + 1) + 1 : opt.body;
}

static void gen_json_batch(uint8_t *out, uint32_t s, uint64_t seq) {
  uint8_t *p = out;
  *p++ = '[';
  for (int r = 0; r < opt.json_records; r++) {
    *p++ = '"';
    for (int i = 0; i < opt.body - 2; i++) *p++ = (uint8_t)('a' + gen_byte(s, seq, (uint32_t)(r * opt.body + i)) % 26);
    *p++ = '"';
    *p++ = r + 1 < opt.json_records ? ',' : ']';
  }
}

static void req_append(conn_t *c, int s, uint64_t now) {
  uint64_t seq = s_seq[s];
  int bytes = append_bytes();
  if (!append_middle_len)
    append_middle_len = (size_t)snprintf(append_middle, sizeof append_middle,
                                         " HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s",
                                         opt.host, opt.port, opt.content_type, bytes,
                                         opt.producer ? "Producer-Epoch: 0\r\nProducer-Id: s" : "");
  out_reserve(c, 1024 + (size_t)bytes);
  char *p = c->out;
  p = put_mem(p, "POST ", 5);
  p = put_mem(p, opt.prefix, strlen(opt.prefix));
  p = put_u64(p, (uint64_t)s);
  p = put_mem(p, append_middle, append_middle_len);
  if (opt.producer) {
    p = put_u64(p, (uint64_t)s);
    p = put_mem(p, "\r\nProducer-Seq: ", 16);
    p = put_u64(p, seq);
    p = put_mem(p, "\r\n", 2);
  }
  p = put_mem(p, "\r\n", 2);
  if (opt.json_records > 0) gen_json_batch((uint8_t *)p, (uint32_t)s, seq);
  else gen_record((uint8_t *)p, (uint32_t)s, seq, opt.body);
  c->out_len = (size_t)(p - c->out) + (size_t)bytes;
  c->out_off = 0;
  c->kind = K_APPEND;
  c->stream = s;
  c->seq = seq;
  send_request(c, now);
}

static void req_read(conn_t *c, int s, uint64_t now) {
  char suffix[160];
  snprintf(suffix, sizeof suffix, "%d?offset=%s", s, s_offset[s]);
  c->out_len = (size_t)build_head(c, "GET", suffix, 0, NULL);
  c->out_off = 0;
  c->kind = K_READ;
  c->stream = s;
  s_reqs[s]++;
  send_request(c, now);
}

static void req_sse(conn_t *c, uint64_t now) {
  char suffix[160];
  snprintf(suffix, sizeof suffix, "fan?offset=%s&live=sse", c->sse_offset[0] ? c->sse_offset : "now");
  c->out_len = (size_t)build_head(c, "GET", suffix, 0, NULL);
  c->out_off = 0;
  c->kind = K_SSE;
  c->sse_len = 0;
  c->sse_event_data = 0;
  send_request(c, now);
  c->deadline = UINT64_MAX; /* long-lived */
}

static void req_fan_create(conn_t *c, uint64_t now) {
  c->out_len = (size_t)build_head(c, "PUT", "fan", 0, "Content-Type: text/plain\r\n");
  c->out_off = 0;
  c->kind = K_CREATE;
  c->stream = -1;
  send_request(c, now);
}

static void req_fan_event(conn_t *c, uint64_t now) {
  char head[96];
  uint64_t ev = fan_next_event++;
  int hn = snprintf(head, sizeof head, "#%llu,%llu,", (unsigned long long)ev, (unsigned long long)now);
  int n = build_head(c, "POST", "fan", (size_t)opt.body, "Content-Type: text/plain\r\n");
  char *b = c->out + n;
  memset(b, 'x', (size_t)opt.body);
  memcpy(b, head, (size_t)(hn < opt.body ? hn : opt.body));
  c->out_len = (size_t)n + (size_t)opt.body;
  c->out_off = 0;
  c->kind = K_WRITER;
  c->seq = ev;
  fan_sent = fan_next_event;
  send_request(c, now);
}

/* ------------------------------------------------------------------------------------------ */
/* Dispatch: give an idle connection its next request, if there is one. */

static int load_active(uint64_t now) {
  if (opt.mode == MODE_FILL) return 1;
  return now < t_load_end;
}

static void make_idle(conn_t *c) {
  c->state = C_IDLE;
  c->kind = K_NONE;
  if (!c->in_stack) {
    c->in_stack = 1;
    idle_stack[idle_n++] = c->id;
  }
}

static void idle_clear(void) {
  for (int i = 0; i < idle_n; i++) conns[idle_stack[i]].in_stack = 0;
  idle_n = 0;
}

static void dispatch(conn_t *c, uint64_t now) {
  if (c->state != C_IDLE) return;
  if (opt.mode == MODE_FANOUT) return;
  if (q_len == 0) return;
  if (phase == PH_CREATE) {
    req_create(c, q_pop(), now);
  } else if (phase == PH_LOAD) {
    if (!load_active(now)) return;
    req_append(c, q_pop(), now);
  } else if (phase == PH_DRAIN) {
    /* after the window, only failed appends are retried (same seq), so that every stream
     * ends in a known state before it is read back */
    while (q_len > 0) {
      int s = q_pop();
      if (s_retry[s]) {
        req_append(c, s, now);
        return;
      }
    }
  } else if (phase == PH_VERIFY || phase == PH_READ) {
    req_read(c, q_pop(), now);
  }
}

static void pump(uint64_t now) {
  while (idle_n > 0 && q_len > 0) {
    conn_t *c = &conns[idle_stack[--idle_n]];
    c->in_stack = 0;
    if (c->state != C_IDLE) continue;
    dispatch(c, now);
    if (c->state == C_IDLE) { /* nothing to do now; keep it idle */
      make_idle(c);
      break;
    }
  }
}

/* A request failed (error status, timeout, broken connection): put its work back. */
static void requeue_failed(conn_t *c) {
  if (c->kind == K_APPEND && c->stream >= 0) s_retry[c->stream] = 1;
  if (c->kind == K_CREATE || c->kind == K_APPEND || c->kind == K_READ) {
    int s = c->stream;
    if (s >= 0) {
      if (++s_fail[s] > 50) {
        s_dead[s] = 1;
        if (phase == PH_VERIFY || phase == PH_READ || (opt.mode == MODE_FILL && phase == PH_LOAD) ||
            phase == PH_CREATE)
          done_streams++;
      } else {
        q_push(s);
      }
    } else if (c->kind == K_CREATE) {
      fan_stream_created = -1;
    }
  }
  if (c->kind == K_WRITER) {
    fan_writer_errors++;
    if (c->seq < fan_max_events) fan_failed_event[c->seq] = 1;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Body consumers */

static void sse_line(conn_t *c, char *line, size_t len) {
  if (len == 0) {
    c->sse_event_data = 0;
    return;
  }
  if (len >= 6 && memcmp(line, "event:", 6) == 0) {
    char *v = line + 6;
    while (*v == ' ') v++;
    c->sse_event_data = (strncmp(v, "data", 4) == 0 && (size_t)(v - line) + 4 == len);
    if (!c->sse_event_data && strncmp(v, "control", 7) == 0) c->sse_event_data = 2;
    return;
  }
  if (len >= 5 && memcmp(line, "data:", 5) == 0) {
    char *d = line + 5;
    size_t dl = len - 5;
    if (c->sse_event_data == 2) {
      /* control: remember streamNextOffset for resumption */
      char *k = memmem(d, dl, "\"streamNextOffset\":\"", 20);
      if (k) {
        k += 20;
        char *e = memchr(k, '"', dl - (size_t)(k - d));
        if (e && (size_t)(e - k) < sizeof c->sse_offset) {
          memcpy(c->sse_offset, k, (size_t)(e - k));
          c->sse_offset[e - k] = 0;
        }
      }
      if (!c->subscribed) {
        c->subscribed = 1;
        fan_subscribed++;
      }
      return;
    }
    if (c->sse_event_data != 1) return;
    char *p = d, *end = d + dl;
    while ((p = memchr(p, '#', (size_t)(end - p))) != NULL) {
      p++;
      char *e1;
      unsigned long long ev = strtoull(p, &e1, 10);
      if (e1 >= end || *e1 != ',') {
        fan_bad_records++;
        continue;
      }
      unsigned long long ts = strtoull(e1 + 1, &e1, 10);
      if (e1 >= end || *e1 != ',' || ev >= fan_max_events) {
        fan_bad_records++;
        continue;
      }
      uint8_t *cnt = &fan_recv[(size_t)c->id * fan_max_events + ev];
      if (*cnt < 255) (*cnt)++;
      if (*cnt == 1 && ts >= fan_t_start + opt.warmup_ms * 1000000ull && c->t_read >= ts)
        samples_add(&fan_lat, c->t_read - ts);
      p = e1;
    }
  }
}

static void sse_feed(conn_t *c, const char *data, size_t n) {
  if (c->sse_len + n > c->sse_cap) {
    c->sse_cap = (c->sse_len + n) * 2 + 4096;
    c->sse = xrealloc(c->sse, c->sse_cap);
  }
  memcpy(c->sse + c->sse_len, data, n);
  c->sse_len += n;
  size_t start = 0;
  for (;;) {
    char *nl = memchr(c->sse + start, '\n', c->sse_len - start);
    if (!nl) break;
    size_t end = (size_t)(nl - c->sse);
    size_t len = end - start;
    if (len > 0 && c->sse[start + len - 1] == '\r') len--;
    sse_line(c, c->sse + start, len);
    start = end + 1;
  }
  if (start > 0) {
    memmove(c->sse, c->sse + start, c->sse_len - start);
    c->sse_len -= start;
  }
}

static void on_body(conn_t *c, const char *data, size_t n) {
  if (c->kind == K_SSE) {
    if (c->status == 200) sse_feed(c, data, n);
    return;
  }
  if (c->kind == K_READ && c->status == 200 && opt.verify && opt.content_check && !c->content_bad) {
    int s = c->stream;
    uint64_t pos = s_bytes[s] + c->body_bytes;
    uint64_t rec = pos / (uint64_t)opt.body;
    uint32_t i = (uint32_t)(pos % (uint64_t)opt.body);
    const uint8_t *d = (const uint8_t *)data;
    size_t k = 0;
    while (k < n) {
      if ((i & 7) == 0 && n - k >= 8) { /* a whole word */
        uint64_t w;
        memcpy(&w, d + k, 8);
        if (w != gen64((uint32_t)s, rec, i >> 3)) {
          c->content_bad = 1;
          break;
        }
        k += 8;
        i += 8;
      } else {
        if (d[k] != gen_byte((uint32_t)s, rec, i)) {
          c->content_bad = 1;
          break;
        }
        k++;
        i++;
      }
      if (i == (uint32_t)opt.body) {
        i = 0;
        rec++;
      }
    }
  }
  c->body_bytes += n;
}

/* ------------------------------------------------------------------------------------------ */
/* Response completion */

static void on_response(conn_t *c, uint64_t now) {
  int st = c->status;
  int cls = st / 100;
  if (cls >= 1 && cls <= 5)
    st_status[cls]++;
  else
    st_status_other++;
  int ok = cls == 2;
  if (!ok) note_error("HTTP %s%d on a request", c->kind == K_APPEND ? "append: " : c->kind == K_READ ? "read: " : c->kind == K_CREATE ? "create: " : "", st);

  switch (c->kind) {
  case K_CREATE:
    if (ok) {
      created++;
      if (c->stream >= 0) {
        s_fail[c->stream] = 0;
        done_streams++;
      } else {
        fan_stream_created = 1;
      }
    } else {
      requeue_failed(c);
    }
    break;
  case K_APPEND: {
    int s = c->stream;
    if (ok) {
      s_seq[s]++;
      s_fail[s] = 0;
      s_retry[s] = 0;
      total_appends++;
      if (opt.mode == MODE_WRITE && now >= t_measure_start && now < t_measure_end) {
        measured_appends++;
        samples_add(&lat, now - c->t_send);
      } else if (opt.mode == MODE_FILL) {
        samples_add(&lat, now - c->t_send);
      }
      if (opt.mode == MODE_FILL && s_seq[s] >= opt.seq_start + opt.count)
        done_streams++;
      else
        q_push(s);
    } else {
      requeue_failed(c);
    }
    break;
  }
  case K_READ: {
    int s = c->stream;
    if (c->status == 200 || c->status == 204) {
      s_fail[s] = 0;
      s_bytes[s] += c->body_bytes;
      if (c->content_bad) s_bad[s] = 1;
      if (c->next_offset[0]) strcpy(s_offset[s], c->next_offset);
      if (c->up_to_date || !c->next_offset[0] || c->status == 204) {
        s_t_end[s] = now;
        done_streams++;
      } else if (opt.mode == MODE_CATCHUP && !c->close_after) {
        /* each reader keeps its own connection */
        req_read(c, s, now);
        return;
      } else {
        q_push(s);
      }
    } else {
      requeue_failed(c);
    }
    break;
  }
  case K_SSE:
    /* server ended the SSE response: resume from the last control offset */
    fan_sse_reconnects++;
    c->state = C_IDLE;
    req_sse(c, now);
    return;
  case K_WRITER:
    if (ok)
      samples_add(&fan_writer_lat, now - c->t_send);
    else
      requeue_failed(c);
    break;
  }
  c->kind = K_NONE;
  if (c->close_after) {
    conn_close(c);
    c->reconnect_at = now;
    return;
  }
  make_idle(c);
  if (c != writer) dispatch(c, now); /* a stale stack entry is skipped by pump() */
}

/* ------------------------------------------------------------------------------------------ */
/* Parsing */

static int parse_head(conn_t *c) {
  char *buf = c->in + c->in_start;
  size_t avail = c->in_end - c->in_start;
  char *end = memmem(buf, avail, "\r\n\r\n", 4);
  if (!end) {
    if (avail > 65536) return -1;
    return 0;
  }
  *end = 0;
  if (avail < 12 || memcmp(buf, "HTTP/1.", 7) != 0) return -1;
  c->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
  if (buf[7] == '0') c->close_after = 1;
  char *line = memchr(buf, '\n', (size_t)(end - buf));
  while (line) {
    line += 1;
    char *next = memchr(line, '\n', (size_t)(end - line));
    char *line_end = next ? next - 1 : end; /* at the '\r' */
    if (next) *line_end = 0;
    char *colon = memchr(line, ':', (size_t)(line_end - line));
    if (colon) {
      size_t name_len = (size_t)(colon - line);
      char *v = colon + 1;
      while (*v == ' ' || *v == '\t') v++;
      switch (name_len) {
      case 14:
        if (strncasecmp(line, "content-length", 14) == 0) c->content_length = atoll(v);
        break;
      case 17:
        if (strncasecmp(line, "transfer-encoding", 17) == 0)
          c->chunked = strcasestr(v, "chunked") != NULL;
        else if (strncasecmp(line, "stream-up-to-date", 17) == 0)
          c->up_to_date = strncasecmp(v, "true", 4) == 0;
        break;
      case 10:
        if (strncasecmp(line, "connection", 10) == 0) c->close_after = strcasestr(v, "close") != NULL;
        break;
      case 18:
        if (strncasecmp(line, "stream-next-offset", 18) == 0) {
          size_t l = strcspn(v, " \t");
          if (l >= sizeof c->next_offset) l = sizeof c->next_offset - 1;
          memcpy(c->next_offset, v, l);
          c->next_offset[l] = 0;
        }
        break;
      }
    }
    line = next;
  }
  c->in_start += (size_t)(end - buf) + 4;
  if (c->status == 204 || c->status == 304 || c->status < 200)
    c->rstate = R_DONE;
  else if (c->chunked)
    c->rstate = R_CHUNK_SIZE;
  else if (c->content_length >= 0) {
    c->remaining = c->content_length;
    c->rstate = c->remaining ? R_CL : R_DONE;
  } else
    c->rstate = R_EOF;
  return 1;
}

/* Parses as much as possible; -1 on protocol error. */
static int parse(conn_t *c, uint64_t now) {
  for (;;) {
    size_t avail = c->in_end - c->in_start;
    char *buf = c->in + c->in_start;
    switch (c->rstate) {
    case R_HEAD: {
      if (c->state != C_BUSY) {
        if (avail) return -1; /* unsolicited bytes */
        return 0;
      }
      int r = parse_head(c);
      if (r <= 0) return r;
      break;
    }
    case R_CL: {
      if (!avail) return 0;
      size_t n = avail < (size_t)c->remaining ? avail : (size_t)c->remaining;
      on_body(c, buf, n);
      c->in_start += n;
      c->remaining -= (long long)n;
      if (c->remaining == 0) c->rstate = R_DONE;
      break;
    }
    case R_CHUNK_SIZE: {
      char *nl = memmem(buf, avail, "\r\n", 2);
      if (!nl) return avail > 1024 ? -1 : 0;
      char *e;
      long long sz = strtoll(buf, &e, 16);
      if (e == buf || sz < 0) return -1;
      c->in_start += (size_t)(nl - buf) + 2;
      if (sz == 0)
        c->rstate = R_TRAILER;
      else {
        c->remaining = sz;
        c->rstate = R_CHUNK_DATA;
      }
      break;
    }
    case R_CHUNK_DATA: {
      if (!avail) return 0;
      size_t n = avail < (size_t)c->remaining ? avail : (size_t)c->remaining;
      on_body(c, buf, n);
      c->in_start += n;
      c->remaining -= (long long)n;
      if (c->remaining == 0) c->rstate = R_CHUNK_CRLF;
      break;
    }
    case R_CHUNK_CRLF:
      if (avail < 2) return 0;
      if (buf[0] != '\r' || buf[1] != '\n') return -1;
      c->in_start += 2;
      c->rstate = R_CHUNK_SIZE;
      break;
    case R_TRAILER: {
      char *nl = memmem(buf, avail, "\r\n", 2);
      if (!nl) return 0;
      c->in_start += (size_t)(nl - buf) + 2;
      if (nl == buf) c->rstate = R_DONE;
      break;
    }
    case R_EOF:
      if (!avail) return 0;
      on_body(c, buf, avail);
      c->in_start += avail;
      break;
    case R_DONE:
      c->rstate = R_HEAD;
      on_response(c, now);
      if (c->state == C_DOWN) return 0;
      break;
    }
  }
}

static void conn_failed(conn_t *c, uint64_t now, int timeout) {
  if (timeout)
    st_timeouts++;
  else
    st_conn_errors++;
  if (c->state == C_BUSY) {
    if (c->kind == K_SSE) {
      fan_sse_reconnects++;
    } else {
      requeue_failed(c);
    }
  }
  int was_sse = c->kind == K_SSE;
  conn_close(c);
  c->reconnect_at = now + (timeout ? 0 : 50000000ull); /* 50 ms back-off after an error */
  c->kind = was_sse ? K_SSE : K_NONE;
}

static void on_readable(conn_t *c, uint64_t now) {
  for (;;) {
    if (c->in_cap - c->in_end < 65536) {
      if (c->in_start > 0) {
        memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
        c->in_end -= c->in_start;
        c->in_start = 0;
      }
      if (c->in_cap - c->in_end < 65536) {
        c->in_cap = c->in_cap * 2 + 65536;
        c->in = xrealloc(c->in, c->in_cap);
      }
    }
    size_t space = c->in_cap - c->in_end;
    ssize_t n = read(c->fd, c->in + c->in_end, space);
    if (n > 0) {
      c->t_read = now_ns();
      c->in_end += (size_t)n;
      if (parse(c, c->t_read) < 0) {
        st_parse_errors++;
        note_error("parse error in a response (%s%d)", "status ", c->status);
        conn_failed(c, now, 0);
        return;
      }
      if (c->state == C_DOWN) return;
      if (c->in_start == c->in_end) c->in_start = c->in_end = 0;
      if ((size_t)n < space) return; /* drained the socket */
      continue;
    }
    if (n == 0) {
      if (c->rstate == R_EOF && c->state == C_BUSY) {
        c->rstate = R_HEAD;
        c->close_after = 1;
        on_response(c, now);
        if (c->state != C_DOWN) conn_close(c);
        c->reconnect_at = now;
        return;
      }
      conn_failed(c, now, 0);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    conn_failed(c, now, 0);
    return;
  }
}

static void on_event(conn_t *c, uint32_t events, uint64_t now) {
  if (c->state == C_CONNECTING) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) {
        st_connect_fail++; if (st_connect_fail < 3) fprintf(stderr, "connect fail conn %d err %d phase %d\n", c->id, err, phase);
        int k = c->kind;
        conn_close(c);
        c->kind = k;
        c->reconnect_at = now + 100000000ull;
        return;
      }
      ep_mod(c, 0);
      int was_sse = c->kind == K_SSE;
      make_idle(c);
      if (was_sse && phase >= PH_SUBSCRIBE) req_sse(c, now);
    }
    return;
  }
  if (events & EPOLLOUT) {
    if (conn_flush(c) < 0) {
      conn_failed(c, now, 0);
      return;
    }
    if (c->out_len == 0) ep_mod(c, 0);
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, now);
}

/* ------------------------------------------------------------------------------------------ */
/* Main loop */

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static void housekeeping(uint64_t now) {
  for (int i = 0; i < nconns; i++) {
    conn_t *c = &conns[i];
    if (c->state == C_BUSY && now > c->deadline) conn_failed(c, now, 1);
    if (c->state == C_DOWN && now >= c->reconnect_at && phase != PH_END) {
      int k = c->kind;
      st_reconnects++;
      if (conn_open(c) < 0) {
        c->reconnect_at = now + 100000000ull;
        c->state = C_DOWN;
      }
      c->kind = k;
    }
  }
}

/* Start / end of the measured window of the write mode, taken before the batch of events
 * that carries time `now` is processed, so counting and CPU sampling agree. */
static int window_started, window_ended;
static void window_edges(uint64_t now) {
  if (!window_started && now >= t_measure_start) {
    window_started = 1;
    cpu_self_start = cpu_ns(0);
    sys_start = sys_cpu();
    cpu_srv_start = opt.server_pid > 0 ? cpu_ns(opt.server_pid) : -1;
    t_measure_start = now;
    t_measure_end = t_load_end = now + opt.duration_ms * 1000000ull;
  }
  if (window_started && !window_ended && now >= t_measure_end) {
    window_ended = 1;
    cpu_self_end = cpu_ns(0);
    sys_end = sys_cpu();
    cpu_srv_end = opt.server_pid > 0 ? cpu_ns(opt.server_pid) : -1;
    t_measure_end = t_load_end = now;
  }
}

static int all_connected(void) {
  for (int i = 0; i < nconns; i++)
    if (conns[i].state != C_IDLE) return 0;
  return 1;
}

static int busy_count(void) {
  int n = 0;
  for (int i = 0; i < nconns; i++)
    if (conns[i].state == C_BUSY && conns[i].kind != K_SSE) n++;
  return n;
}

static void fill_queue_all(void) {
  q_head = q_len = 0;
  for (int s = 0; s < nstreams; s++)
    if (!s_dead[s]) q_push(s);
}

static void start_phase(int ph, uint64_t now) {
  phase = ph;
  t_phase_start = now;
  done_streams = 0;
  for (int s = 0; s < nstreams; s++) s_fail[s] = 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --mode write|fill|fanout|catchup --port P [--host H] [--prefix /v1/stream/x-]\n"
          "  [--streams S] [--conns C] [--body B] [--warmup-ms MS] [--duration-ms MS] [--timeout-ms MS]\n"
          "  [--no-create] [--no-verify] [--no-producer] [--count N] [--seq-start N]\n"
          "  [--content-type T] [--server-pid PID] [--subs K] [--rate R] [--grace-ms MS]\n"
          "  [--phase-timeout-ms MS] [--no-content-check] [--json-records N]\n");
  exit(2);
}

static void parse_args(int argc, char **argv) {
  static struct option lo[] = {
      {"mode", 1, 0, 'm'},       {"host", 1, 0, 'H'},       {"port", 1, 0, 'p'},
      {"prefix", 1, 0, 'P'},     {"streams", 1, 0, 's'},    {"conns", 1, 0, 'c'},
      {"body", 1, 0, 'b'},       {"warmup-ms", 1, 0, 'w'},  {"duration-ms", 1, 0, 'd'},
      {"timeout-ms", 1, 0, 't'}, {"no-create", 0, 0, 'C'},  {"no-verify", 0, 0, 'V'},
      {"no-producer", 0, 0, 'R'}, {"count", 1, 0, 'n'},     {"seq-start", 1, 0, 'S'},
      {"content-type", 1, 0, 'T'}, {"server-pid", 1, 0, 'i'}, {"subs", 1, 0, 'k'},
      {"rate", 1, 0, 'r'},       {"grace-ms", 1, 0, 'g'},   {"phase-timeout-ms", 1, 0, 'x'},
      {"no-content-check", 0, 0, 'N'}, {"json-records", 1, 0, 'J'},
      {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
    case 'm':
      if (!strcmp(optarg, "write")) opt.mode = MODE_WRITE;
      else if (!strcmp(optarg, "fill")) opt.mode = MODE_FILL;
      else if (!strcmp(optarg, "fanout")) opt.mode = MODE_FANOUT;
      else if (!strcmp(optarg, "catchup")) opt.mode = MODE_CATCHUP;
      else usage();
      break;
    case 'H': snprintf(opt.host, sizeof opt.host, "%s", optarg); break;
    case 'p': opt.port = atoi(optarg); break;
    case 'P': snprintf(opt.prefix, sizeof opt.prefix, "%s", optarg); break;
    case 's': opt.streams = atoi(optarg); break;
    case 'c': opt.conns = atoi(optarg); break;
    case 'b': opt.body = atoi(optarg); break;
    case 'w': opt.warmup_ms = strtoull(optarg, NULL, 10); break;
    case 'd': opt.duration_ms = strtoull(optarg, NULL, 10); break;
    case 't': opt.timeout_ms = strtoull(optarg, NULL, 10); break;
    case 'C': opt.create = 0; break;
    case 'V': opt.verify = 0; break;
    case 'R': opt.producer = 0; break;
    case 'N': opt.content_check = 0; break;
    case 'n': opt.count = strtoull(optarg, NULL, 10); break;
    case 'S': opt.seq_start = strtoull(optarg, NULL, 10); break;
    case 'T': snprintf(opt.content_type, sizeof opt.content_type, "%s", optarg); break;
    case 'i': opt.server_pid = atoi(optarg); break;
    case 'k': opt.subs = atoi(optarg); break;
    case 'r': opt.rate = atof(optarg); break;
    case 'g': opt.grace_ms = strtoull(optarg, NULL, 10); break;
    case 'x': opt.phase_timeout_ms = strtoull(optarg, NULL, 10); break;
    case 'J': opt.json_records = atoi(optarg); break;
    default: usage();
    }
  }
  if (opt.port <= 0 || opt.streams <= 0 || opt.conns <= 0 || opt.body <= 0) usage();
  if (opt.json_records > 0) {
    /* The read-back check compares binary records; a JSON batch's caller checks the records. */
    if (opt.mode != MODE_WRITE || opt.body < 3) usage();
    snprintf(opt.content_type, sizeof opt.content_type, "application/json");
    opt.verify = 0;
  } else if (opt.mode != MODE_FANOUT && opt.body % 8 != 0) {
    fprintf(stderr, "loadgen: --body must be a multiple of 8\n");
    exit(2);
  }
}

static void print_common(double wall_s) {
  long tck = sysconf(_SC_CLK_TCK);
  printf("\"errors\":{\"status1xx\":%lld,\"status3xx\":%lld,\"status4xx\":%lld,\"status5xx\":%lld,"
         "\"statusOther\":%lld,\"timeouts\":%lld,\"connErrors\":%lld,\"connectFailures\":%lld,"
         "\"parseErrors\":%lld,\"reconnects\":%lld,\"first\":\"%s\"},",
         st_status[1], st_status[3], st_status[4], st_status[5], st_status_other, st_timeouts,
         st_conn_errors, st_connect_fail, st_parse_errors, st_reconnects, st_first_error);
  double self_cpu = cpu_self_end >= 0 && cpu_self_start >= 0 && wall_s > 0
                        ? (double)(cpu_self_end - cpu_self_start) / 1e9 / wall_s
                        : -1;
  double srv_cpu = opt.server_pid > 0 && cpu_srv_end >= 0 && cpu_srv_start >= 0 && wall_s > 0
                       ? (double)(cpu_srv_end - cpu_srv_start) / 1e9 / wall_s
                       : -1;
  double busy = sys_start.busy >= 0 && sys_end.busy >= 0 && wall_s > 0
                    ? (double)(sys_end.busy - sys_start.busy) / (double)tck / wall_s
                    : -1;
  double steal = sys_start.steal >= 0 && sys_end.steal >= 0 && wall_s > 0
                     ? (double)(sys_end.steal - sys_start.steal) / (double)tck / wall_s
                     : -1;
  double other = busy >= 0 && self_cpu >= 0 ? busy - self_cpu - (srv_cpu > 0 ? srv_cpu : 0) : -1;
  printf("\"windowSeconds\":%.4f,\"loadgenCpu\":%.4f,\"serverCpu\":%.4f,\"systemBusyCpu\":%.4f,"
         "\"stealCpu\":%.4f,\"otherCpu\":%.4f",
         wall_s, self_cpu, srv_cpu, busy, steal, other);
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)opt.port);
  if (inet_pton(AF_INET, opt.host, &addr.sin_addr) != 1) {
    fprintf(stderr, "loadgen: bad --host\n");
    return 2;
  }
  ep = epoll_create1(EPOLL_CLOEXEC);

  nstreams = opt.mode == MODE_FANOUT ? 0 : opt.streams;
  if (opt.mode == MODE_CATCHUP) opt.conns = opt.streams; /* one reader per stream */
  if (opt.mode == MODE_FANOUT) {
    fan_nsubs = opt.subs;
    opt.conns = opt.subs + 1;
    fan_max_events = (uint64_t)(opt.rate * (double)(opt.warmup_ms + opt.duration_ms) / 1000.0) + 64;
    fan_recv = xcalloc((size_t)fan_nsubs * fan_max_events, 1);
    fan_failed_event = xcalloc(fan_max_events, 1);
  }
  nconns = opt.conns;
  conns = xcalloc((size_t)nconns, sizeof(conn_t));
  idle_stack = xcalloc((size_t)nconns, sizeof(int));
  s_seq = xcalloc((size_t)nstreams, sizeof(uint64_t));
  s_dead = xcalloc((size_t)nstreams, 1);
  s_fail = xcalloc((size_t)nstreams, sizeof(int));
  s_retry = xcalloc((size_t)nstreams, 1);
  s_bytes = xcalloc((size_t)nstreams, sizeof(uint64_t));
  s_offset = xcalloc((size_t)nstreams, sizeof *s_offset);
  s_bad = xcalloc((size_t)nstreams, 1);
  s_reqs = xcalloc((size_t)nstreams, sizeof(uint64_t));
  s_t_start = xcalloc((size_t)nstreams, sizeof(uint64_t));
  s_t_end = xcalloc((size_t)nstreams, sizeof(uint64_t));
  q_cap = (size_t)nstreams + 1;
  q = xcalloc(q_cap, sizeof(int));
  for (int s = 0; s < nstreams; s++) s_seq[s] = opt.seq_start;

  for (int i = 0; i < nconns; i++) {
    conns[i].id = i;
    conns[i].fd = -1;
    conns[i].in_cap = 131072;
    conns[i].in = xmalloc(conns[i].in_cap);
    if (conn_open(&conns[i]) < 0) {
      conns[i].state = C_DOWN;
      conns[i].reconnect_at = now_ns() + 100000000ull;
    }
  }
  if (opt.mode == MODE_FANOUT) writer = &conns[nconns - 1];

  uint64_t t0 = now_ns();
  start_phase(PH_CONNECT, t0);
  int failed = 0;
  char fail_reason[512] = "";
  uint64_t t_create_ms = 0, t_verify_ms = 0, t_drain_ms = 0;
  uint64_t t_read_start = 0, t_read_end = 0;
  uint64_t last_hk = t0;
  struct epoll_event evs[512];

  while (phase != PH_END) {
    uint64_t now = now_ns();
    /* next timer: housekeeping every 50 ms, window edges, writer ticks */
    uint64_t next = last_hk + 50000000ull;
    if (phase == PH_LOAD && opt.mode == MODE_WRITE) {
      if (now < t_measure_start && t_measure_start < next) next = t_measure_start;
      if (now < t_load_end && t_load_end < next) next = t_load_end;
    }
    if (phase == PH_FANOUT && writer->state == C_IDLE) { /* a busy writer wakes us with its response */
      uint64_t due = fan_t_start + (uint64_t)((double)fan_next_event * 1e9 / opt.rate);
      if (due < next) next = due;
    }
    if (phase == PH_FANOUT) {
      uint64_t stop = fan_t_start + (opt.warmup_ms + opt.duration_ms) * 1000000ull;
      if (stop < next) next = stop;
    }
    int timeout_ms = next > now ? (int)((next - now + 999999) / 1000000) : 0;
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    now = now_ns();
    if (phase == PH_LOAD && opt.mode == MODE_WRITE) window_edges(now);
    for (int i = 0; i < n; i++) on_event((conn_t *)evs[i].data.ptr, evs[i].events, now);
    if (interrupted) {
      failed = 1;
      snprintf(fail_reason, sizeof fail_reason, "interrupted");
      break;
    }
    if (now - last_hk >= 50000000ull) {
      housekeeping(now);
      last_hk = now;
    }
    if (now - t_phase_start > opt.phase_timeout_ms * 1000000ull && phase != PH_FANOUT &&
        !(phase == PH_LOAD && opt.mode == MODE_WRITE)) {
      failed = 1;
      snprintf(fail_reason, sizeof fail_reason, "phase %d timed out after %llu ms (%llu/%d streams done)",
               phase, (unsigned long long)opt.phase_timeout_ms, (unsigned long long)done_streams, nstreams);
      break;
    }

    switch (phase) {
    case PH_CONNECT:
      if (all_connected()) {
        if (opt.mode == MODE_FANOUT) {
          start_phase(PH_CREATE, now);
          idle_clear();
          req_fan_create(writer, now);
        } else if (opt.mode == MODE_CATCHUP) {
          start_phase(PH_READ, now);
          for (int s = 0; s < nstreams; s++) strcpy(s_offset[s], "-1");
          cpu_self_start = cpu_ns(0);
    sys_start = sys_cpu();
          cpu_srv_start = opt.server_pid > 0 ? cpu_ns(opt.server_pid) : -1;
          t_read_start = now_ns();
          idle_clear();
          for (int s = 0; s < nstreams; s++) {
            s_t_start[s] = now_ns();
            req_read(&conns[s], s, s_t_start[s]);
          }
        } else if (opt.create) {
          start_phase(PH_CREATE, now);
          fill_queue_all();
        } else {
          goto begin_load;
        }
      }
      break;
    case PH_CREATE:
      if (opt.mode == MODE_FANOUT) {
        if (fan_stream_created == 1 && writer->state == C_IDLE) {
          t_create_ms = (now - t_phase_start) / 1000000ull;
          start_phase(PH_SUBSCRIBE, now);
          idle_clear();
          for (int i = 0; i < fan_nsubs; i++) req_sse(&conns[i], now);
        } else if (fan_stream_created == -1) {
          failed = 1;
          snprintf(fail_reason, sizeof fail_reason, "could not create the fan-out stream: %s", st_first_error);
          phase = PH_END;
        } else if (fan_stream_created == 0 && writer->state == C_IDLE) {
          req_fan_create(writer, now);
        }
        break;
      }
      if (done_streams >= (uint64_t)nstreams) {
        t_create_ms = (now - t_phase_start) / 1000000ull;
      begin_load:
        start_phase(PH_LOAD, now);
        t_measure_start = now + opt.warmup_ms * 1000000ull;
        t_measure_end = t_measure_start + opt.duration_ms * 1000000ull;
        t_load_end = t_measure_end;
        cpu_self_start = cpu_srv_start = -1;
        fill_queue_all();
        if (opt.mode == MODE_FILL) {
          cpu_self_start = cpu_ns(0);
    sys_start = sys_cpu();
          cpu_srv_start = opt.server_pid > 0 ? cpu_ns(opt.server_pid) : -1;
          t_measure_start = now;
        }
      }
      break;
    case PH_LOAD:
      if (opt.mode == MODE_WRITE) {
        if (now >= t_load_end) start_phase(PH_DRAIN, now);
      } else if (done_streams >= (uint64_t)nstreams) {
        cpu_self_end = cpu_ns(0);
    sys_end = sys_cpu();
        cpu_srv_end = opt.server_pid > 0 ? cpu_ns(opt.server_pid) : -1;
        t_measure_end = now;
        start_phase(PH_DRAIN, now);
      }
      break;
    case PH_DRAIN:
      if ((busy_count() == 0 && q_len == 0) || now - t_phase_start > 2 * opt.timeout_ms * 1000000ull + 2000000000ull) {
        t_drain_ms = (now - t_phase_start) / 1000000ull;
        if (busy_count() != 0) {
          failed = 1;
          snprintf(fail_reason, sizeof fail_reason, "%d appends still unanswered after the window", busy_count());
        }
        if (opt.verify && !failed) {
          start_phase(PH_VERIFY, now);
          for (int s = 0; s < nstreams; s++) {
            strcpy(s_offset[s], "-1");
            s_bytes[s] = 0;
          }
          fill_queue_all();
        } else {
          phase = PH_END;
        }
      }
      break;
    case PH_VERIFY:
      if (done_streams >= (uint64_t)nstreams && busy_count() == 0) {
        t_verify_ms = (now - t_phase_start) / 1000000ull;
        phase = PH_END;
      }
      break;
    case PH_READ:
      if (done_streams >= (uint64_t)nstreams && busy_count() == 0) {
        t_read_end = now;
        cpu_self_end = cpu_ns(0);
    sys_end = sys_cpu();
        cpu_srv_end = opt.server_pid > 0 ? cpu_ns(opt.server_pid) : -1;
        phase = PH_END;
      }
      break;
    case PH_SUBSCRIBE:
      if (fan_subscribed >= (uint64_t)fan_nsubs) {
        t_create_ms = (now - t_phase_start) / 1000000ull; /* time to subscribe everyone */
        start_phase(PH_FANOUT, now);
        fan_t_start = now;
        cpu_self_start = cpu_ns(0);
    sys_start = sys_cpu();
        cpu_srv_start = opt.server_pid > 0 ? cpu_ns(opt.server_pid) : -1;
      }
      break;
    case PH_FANOUT: {
      uint64_t stop = fan_t_start + (opt.warmup_ms + opt.duration_ms) * 1000000ull;
      if (now >= stop) {
        fan_t_stop = now;
        cpu_self_end = cpu_ns(0);
    sys_end = sys_cpu();
        cpu_srv_end = opt.server_pid > 0 ? cpu_ns(opt.server_pid) : -1;
        start_phase(PH_GRACE, now);
        break;
      }
      uint64_t due = fan_t_start + (uint64_t)((double)fan_next_event * 1e9 / opt.rate);
      if (now >= due && writer->state == C_IDLE && fan_next_event < fan_max_events) req_fan_event(writer, now);
      break;
    }
    case PH_GRACE: {
      int complete = writer->state == C_IDLE;
      for (int sidx = 0; complete && sidx < fan_nsubs; sidx++)
        for (uint64_t e = 0; e < fan_sent; e++)
          if (!fan_recv[(size_t)sidx * fan_max_events + e] && !fan_failed_event[e]) {
            complete = 0;
            break;
          }
      if (complete || now - t_phase_start > opt.grace_ms * 1000000ull) {
        t_drain_ms = (now - t_phase_start) / 1000000ull;
        phase = PH_END;
      }
      break;
    }
    }
    pump(now);
  }

  /* ---------------------------------------------------------------------------------------- */
  /* Report */
  printf("{");
  static const char *mode_names[] = {"write", "fill", "fanout", "catchup"};
  printf("\"mode\":\"%s\",\"failed\":%s,\"failReason\":\"%s\",", mode_names[opt.mode],
         failed ? "true" : "false", fail_reason);
  if (opt.mode == MODE_WRITE || opt.mode == MODE_FILL) {
    double wall_s = (double)(t_measure_end - t_measure_start) / 1e9;
    printf("\"streams\":%d,\"conns\":%d,\"bodyBytes\":%d,\"jsonRecords\":%d,\"createMs\":%llu,\"drainMs\":%llu,",
           nstreams, nconns, append_bytes(), opt.json_records, (unsigned long long)t_create_ms,
           (unsigned long long)t_drain_ms);
    printf("\"measuredAppends\":%lld,\"totalAppends\":%lld,\"appendsPerSecond\":%.1f,",
           opt.mode == MODE_WRITE ? measured_appends : total_appends, total_appends,
           wall_s > 0 ? (double)(opt.mode == MODE_WRITE ? measured_appends : total_appends) / wall_s : 0);
    print_latency("latency", &lat);
    printf(",");
    /* verification */
    long long len_mismatch = 0, content_mismatch = 0, dead = 0, unresolved = 0;
    char example[256] = "";
    for (int s = 0; s < nstreams; s++) {
      if (s_dead[s]) dead++;
      if (!opt.verify || phase != PH_END || failed) continue;
      uint64_t expect = s_seq[s] * (uint64_t)opt.body; /* seq counts every acknowledged append */
      if (s_retry[s]) {
        /* an append whose outcome never became known: the stream may hold it or not */
        unresolved++;
        if (s_bytes[s] == expect + (uint64_t)opt.body) expect += (uint64_t)opt.body;
      }
      if (s_bytes[s] != expect) {
        if (!example[0])
          snprintf(example, sizeof example, "stream %d: read %llu bytes, acknowledged %llu appends = %llu bytes", s,
                   (unsigned long long)s_bytes[s], (unsigned long long)(s_seq[s]), (unsigned long long)expect);
        len_mismatch++;
      }
      if (s_bad[s]) {
        content_mismatch++;
        if (!example[0]) snprintf(example, sizeof example, "stream %d: content differs from what was appended", s);
      }
    }
    int verified = opt.verify && !failed;
    uint64_t read_reqs = 0, read_bytes = 0;
    for (int s2 = 0; s2 < nstreams; s2++) {
      read_reqs += s_reqs[s2];
      read_bytes += s_bytes[s2];
    }
    printf("\"verify\":{\"done\":%s,\"ms\":%llu,\"readRequests\":%llu,\"readBytes\":%llu,"
           "\"lengthMismatches\":%lld,\"contentMismatches\":%lld,\"deadStreams\":%lld,\"unresolvedAppends\":%lld,"
           "\"example\":\"%s\"},",
           verified ? "true" : "false", (unsigned long long)t_verify_ms, (unsigned long long)read_reqs,
           (unsigned long long)read_bytes, len_mismatch, content_mismatch, dead, unresolved, example);
    print_common(wall_s);
  } else if (opt.mode == MODE_CATCHUP) {
    double wall_s = (double)(t_read_end - t_read_start) / 1e9;
    uint64_t total = 0, reqs = 0;
    long long len_mismatch = 0, content_mismatch = 0;
    samples_t per = {0};
    char example[256] = "";
    uint64_t expect = opt.count * (uint64_t)opt.body;
    for (int s = 0; s < nstreams; s++) {
      total += s_bytes[s];
      reqs += s_reqs[s];
      if (s_t_end[s]) samples_add(&per, s_t_end[s] - s_t_start[s]);
      if (opt.count && s_bytes[s] != expect) {
        len_mismatch++;
        if (!example[0])
          snprintf(example, sizeof example, "stream %d: read %llu bytes, expected %llu", s,
                   (unsigned long long)s_bytes[s], (unsigned long long)expect);
      }
      if (s_bad[s]) content_mismatch++;
    }
    printf("\"readers\":%d,\"totalBytes\":%llu,\"requests\":%llu,\"mibPerSecond\":%.2f,", nstreams,
           (unsigned long long)total, (unsigned long long)reqs,
           wall_s > 0 ? (double)total / 1048576.0 / wall_s : 0);
    print_latency("perReader", &per);
    printf(",\"verify\":{\"done\":%s,\"contentChecked\":%s,\"lengthMismatches\":%lld,\"contentMismatches\":%lld,"
           "\"example\":\"%s\"},",
           opt.verify && !failed ? "true" : "false", opt.content_check ? "true" : "false", len_mismatch,
           content_mismatch, example);
    print_common(wall_s);
  } else {
    double wall_s = (double)(fan_t_stop - fan_t_start) / 1e9;
    uint64_t missing = 0, dup = 0, expected = 0, subs_complete = 0, failed_events = 0;
    for (uint64_t e = 0; e < fan_sent; e++) failed_events += fan_failed_event[e];
    for (int sidx = 0; sidx < fan_nsubs; sidx++) {
      int ok = 1;
      for (uint64_t e = 0; e < fan_sent; e++) {
        if (fan_failed_event[e]) continue;
        uint8_t cnt = fan_recv[(size_t)sidx * fan_max_events + e];
        expected++;
        if (cnt == 0) {
          missing++;
          ok = 0;
        } else if (cnt > 1) {
          dup += cnt - 1u;
          ok = 0;
        }
      }
      subs_complete += (uint64_t)ok;
    }
    printf("\"eventsPlanned\":%llu,", (unsigned long long)(opt.rate * (double)(opt.warmup_ms + opt.duration_ms) / 1000.0));
    printf("\"subscribers\":%d,\"subscribeMs\":%llu,\"graceMs\":%llu,\"eventsSent\":%llu,"
           "\"writerErrors\":%llu,\"deliveriesExpected\":%llu,\"missing\":%llu,\"duplicates\":%llu,"
           "\"subscribersComplete\":%llu,\"allDelivered\":%s,\"badRecords\":%lld,\"sseReconnects\":%lld,",
           fan_nsubs, (unsigned long long)t_create_ms, (unsigned long long)t_drain_ms,
           (unsigned long long)fan_sent, (unsigned long long)failed_events, (unsigned long long)expected,
           (unsigned long long)missing, (unsigned long long)dup, (unsigned long long)subs_complete,
           (missing == 0 && dup == 0 && failed_events == 0 && fan_sent > 0) ? "true" : "false",
           fan_bad_records, fan_sse_reconnects);
    print_latency("delivery", &fan_lat);
    printf(",");
    print_latency("writer", &fan_writer_lat);
    printf(",");
    print_common(wall_s);
  }
  printf("}\n");
  fflush(stdout);
  for (int i = 0; i < nconns; i++) conn_close(&conns[i]);
  return failed ? 1 : 0;
}
