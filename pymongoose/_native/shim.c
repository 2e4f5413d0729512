/* The C side of pymongoose: everything that has to be C.
 *
 * Compiled in the same translation unit as mongoose.c (see build_mongoose.py), after
 * it, so it may use Mongoose's internals and the compiler may inline across both.
 *
 * - One event handler, pm_event_handler, serves every connection Python creates.
 *   It filters events by the connection's mask before anything crosses into Python,
 *   then forwards them to the single extern "Python" entry point, pm_on_event.
 * - Python holds connection *ids*, never pointers kept across events: each manager
 *   has a table from id to connection, maintained here, so a closed connection's id
 *   finds nothing whatever Python was doing when it closed (even if an exception
 *   from a signal cut its bookkeeping short).
 * - Each event forwarded to Python runs in a numbered frame; message views check
 *   their frame is still running before reading Mongoose's buffers.
 * - Fixed-argument wrappers for Mongoose's variadic calls: user data is only ever
 *   passed as a "%s"/"%.*s" argument, never as a format string.
 * - Accessors for struct mg_connection's bitfields, which the cdef cannot declare.
 * - The bridge from Mongoose's character-at-a-time log to whole lines for Python.
 * - Timers, fired through the same entry point and cancelled by id.
 */

#include <time.h>

/* Forward declarations of the extern "Python" functions cffi generates below. */
static void pm_on_event(void *owner, unsigned queued, unsigned long id, int ev,
                        char *ev_data, int64_t extra);
static void pm_on_log(const char *line, size_t len);
static void pm_flush(struct mg_mgr *mgr);

#define PM_EV_TIMER (-1)
#define PM_EV_FLUSH (-2)  // no event: only deliver the queued ones

enum { PM_PROTO_TCP, PM_PROTO_HTTP, PM_PROTO_MQTT, PM_PROTO_SNTP };

#define PM_IS_LISTENING (1u << 0)
#define PM_IS_CLIENT (1u << 1)
#define PM_IS_ACCEPTED (1u << 2)
#define PM_IS_RESOLVING (1u << 3)
#define PM_IS_CONNECTING (1u << 4)
#define PM_IS_TLS (1u << 5)
#define PM_IS_TLS_HS (1u << 6)
#define PM_IS_UDP (1u << 7)
#define PM_IS_WEBSOCKET (1u << 8)
#define PM_IS_DRAINING (1u << 9)
#define PM_IS_CLOSING (1u << 10)
#define PM_IS_FULL (1u << 11)
#define PM_IS_READABLE (1u << 12)
#define PM_IS_WRITABLE (1u << 13)
#define PM_IS_MQTT5 (1u << 14)

/* ---- build facts, for tests and diagnostics ---------------------------------- */

#define PM_HAS_TLS_BUILTIN (1u << 0)
#define PM_HAS_IPV6 (1u << 1)
#define PM_HAS_EPOLL (1u << 2)

const char *pm_mongoose_version(void) { return MG_VERSION; }

unsigned pm_build_features(void) {
  return (MG_TLS == MG_TLS_BUILTIN ? PM_HAS_TLS_BUILTIN : 0) |
         (MG_ENABLE_IPV6 ? PM_HAS_IPV6 : 0) | (MG_ENABLE_EPOLL ? PM_HAS_EPOLL : 0);
}

/* ---- TLS signature encoding (used by vendor/mongoose_patches.py) -------------- */

/* Writes an ECDSA P-256 signature (r and s, 32 bytes each, big-endian) as the DER
 * SEQUENCE of two INTEGERs that TLS expects: minimal (leading zero bytes dropped)
 * and positive (a zero byte added before a high bit). Returns its length (<= 72). */
size_t pm_ecdsa_der(uint8_t *out, const uint8_t *sig) {
  size_t i, n = 2;
  for (i = 0; i < 2; i++) {
    const uint8_t *v = sig + 32 * i;
    size_t skip = 0, len;
    while (skip < 31 && v[skip] == 0 && !(v[skip + 1] & 0x80)) skip++;
    len = 32 - skip;
    out[n++] = 0x02;  // INTEGER
    out[n++] = (uint8_t) (len + (v[skip] >> 7));
    if (v[skip] & 0x80) out[n++] = 0;
    memmove(out + n, v + skip, len);
    n += len;
  }
  out[0] = 0x30;  // SEQUENCE
  out[1] = (uint8_t) (n - 2);
  return n;
}

/* ---- the id -> connection table ------------------------------------------------ */

/* Open addressing with linear probing; ids are never 0, so 0 marks a free slot. */
struct pm_slot {
  unsigned long id;
  struct mg_connection *c;
};

struct pm_table {
  struct pm_slot *slots;
  size_t mask;  // capacity - 1 (capacity is a power of two), or 0 before first use
  size_t len;
};

static size_t pm_hash(unsigned long id, size_t mask) {
  return (size_t) ((uint64_t) id * 0x9E3779B97F4A7C15ULL >> 17) & mask;
}

static struct mg_connection *pm_table_get(const struct pm_table *t,
                                          unsigned long id) {
  size_t i;
  if (t->mask == 0) return NULL;
  for (i = pm_hash(id, t->mask); t->slots[i].id != 0; i = (i + 1) & t->mask) {
    if (t->slots[i].id == id) return t->slots[i].c;
  }
  return NULL;
}

static bool pm_table_grow(struct pm_table *t) {
  size_t i, cap = t->mask == 0 ? 64 : (t->mask + 1) * 2;
  struct pm_slot *old = t->slots, *slots = (struct pm_slot *) calloc(cap, sizeof(*slots));
  size_t old_cap = t->mask == 0 ? 0 : t->mask + 1;
  if (slots == NULL) return false;
  t->slots = slots;
  t->mask = cap - 1;
  for (i = 0; i < old_cap; i++) {
    if (old[i].id != 0) {
      size_t j = pm_hash(old[i].id, t->mask);
      while (slots[j].id != 0) j = (j + 1) & t->mask;
      slots[j] = old[i];
    }
  }
  free(old);
  return true;
}

static bool pm_table_put(struct pm_table *t, unsigned long id,
                         struct mg_connection *c) {
  size_t i;
  if ((t->len + 1) * 2 > t->mask + 1 && !pm_table_grow(t)) return false;
  for (i = pm_hash(id, t->mask); t->slots[i].id != 0; i = (i + 1) & t->mask) {
  }
  t->slots[i].id = id;
  t->slots[i].c = c;
  t->len++;
  return true;
}

static void pm_table_del(struct pm_table *t, unsigned long id) {
  size_t i, j;
  if (t->mask == 0) return;
  for (i = pm_hash(id, t->mask); t->slots[i].id != id; i = (i + 1) & t->mask) {
    if (t->slots[i].id == 0) return;  // not there
  }
  // Backward-shift deletion keeps every probe chain unbroken.
  for (j = (i + 1) & t->mask; t->slots[j].id != 0; j = (j + 1) & t->mask) {
    size_t home = pm_hash(t->slots[j].id, t->mask);
    bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
    if (movable) {
      t->slots[i] = t->slots[j];
      i = j;
    }
  }
  t->slots[i].id = 0;
  t->slots[i].c = NULL;
  t->len--;
}

/* ---- the manager ---------------------------------------------------------------- */

#define PM_MAX_FRAMES 64  // nesting depth of events whose views can be validated
#define PM_QUEUE_MAX 512  // deferred events held before a crossing is forced
#define PM_DEFER_MESSAGE_MAX 16384    // larger WebSocket messages cross at once
#define PM_PAYLOADS_MAX (256 * 1024)  // deferred payload bytes before a crossing is forced
#define PM_QUEUE_HAS_PAYLOADS (1u << 16)  // flag in pm_on_event's queued: see payloads

/* Frames of events being delivered to Python, and the queue of deferred events.
 * The struct and its token array are allocated and owned by the Python Manager;
 * message views keep the token array alive, so they may read it safely.
 *
 * Deferred events (see pm_deferrable) wait in the queue as (id, ev, number) and
 * cross into Python together, at the start of the next crossing or at the end of
 * the poll, in the order Mongoose raised them. A deferred WebSocket message's
 * payload waits in payloads (malloc'd here, freed with the manager), back to back
 * with the others; as a batch crosses, handed says how many of its bytes are the
 * batch's, and Python copies them out before any handler runs. */
struct pm_frames {
  unsigned depth;
  uint64_t counter;
  uint64_t *token;  // [PM_MAX_FRAMES]: the running frame's token at each depth, or 0
  unsigned queued;                // deferred events waiting in queue
  int64_t queue[3 * PM_QUEUE_MAX];
  char *payloads;
  size_t payloads_len, payloads_cap, handed;
  // For tests: when set, every event bound for Python, deferred or not, is also
  // recorded here as (id, ev) in the order Mongoose raised it.
  int64_t *trace;
  size_t trace_cap, trace_len;  // in events
};

/* A Mongoose manager with pymongoose's bookkeeping. mgr comes first, so the
 * struct mg_mgr * Mongoose hands around is also a struct pm_mgr *. */
struct pm_mgr {
  struct mg_mgr mgr;
  struct pm_table conns;
  struct pm_frames *frames;
  unsigned long wakeup_id;    // the wakeup pipe's connection
  unsigned in_dns_callback;   // depth of calls into Mongoose's DNS handler
  unsigned deferred_cancels;  // resolve_cancel calls waiting for it to return
};

/* Mongoose's wall clock is its monotonic clock plus a boot timestamp that only an
 * SNTP reply sets. Built-in TLS checks certificate dates against it, and with no
 * timestamp it would contact a public time server on its own. Seed it from the host
 * clock instead, so dates verify and no host the user did not name is contacted. */
static void pm_seed_clock(void) {
  struct timespec ts;
  if (mg_boot_timestamp_ms == 0 && clock_gettime(CLOCK_REALTIME, &ts) == 0) {
    uint64_t wall_ms = (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
    mg_boot_timestamp_ms = wall_ms - mg_millis();
  }
}

/* Collects Mongoose's log, which arrives a character at a time, into lines. Each
 * polling thread has its own line, so managers polled in parallel do not interleave. */
#define PM_LOG_LINE_MAX 1024
static _Thread_local char pm_log_line[PM_LOG_LINE_MAX];
static _Thread_local size_t pm_log_len;

static void pm_log_char(char ch, void *param) {
  (void) param;
  if (ch == '\n') {
    size_t len = pm_log_len;
    if (len > 0 && pm_log_line[len - 1] == '\r') len--;
    pm_log_len = 0;
    pm_on_log(pm_log_line, len);
  } else if (pm_log_len < PM_LOG_LINE_MAX) {
    pm_log_line[pm_log_len++] = ch;
  }  // Longer lines are cut at PM_LOG_LINE_MAX characters.
}

void pm_init(void) {
  mg_log_set(MG_LL_NONE);  // Mongoose's log is off until Python turns it on.
  mg_log_set_fn(pm_log_char, NULL);
  pm_seed_clock();
}

struct mg_mgr *pm_mgr_new(void *owner, struct pm_frames *frames) {
  struct pm_mgr *pm = (struct pm_mgr *) calloc(1, sizeof(*pm));
  if (pm == NULL) return NULL;
  mg_mgr_init(&pm->mgr);
  // The wakeup pipe lets another thread interrupt a blocking poll (pm_mgr_wake).
  if (!mg_wakeup_init(&pm->mgr)) {
    mg_mgr_free(&pm->mgr);
    free(pm);
    return NULL;
  }
  pm->wakeup_id = pm->mgr.conns == NULL ? 0 : pm->mgr.conns->id;  // made just now
  pm->frames = frames;
  pm->mgr.userdata = owner;
  return &pm->mgr;
}

unsigned long pm_mgr_wakeup_id(struct mg_mgr *mgr) {
  return ((struct pm_mgr *) mgr)->wakeup_id;
}

/* Closes every connection (their MG_EV_CLOSE still reaches Python unless the manager
 * was disowned), frees every timer, then the manager itself. */
void pm_mgr_free(struct mg_mgr *mgr) {
  struct pm_mgr *pm = (struct pm_mgr *) mgr;
  mg_mgr_free(mgr);
  free(pm->frames->payloads);
  pm->frames->payloads = NULL;
  free(pm->conns.slots);
  free(pm);
}

/* Stops all calls into Python for this manager: used when it is freed from a
 * finalizer, where running Python handlers would be unsafe. */
void pm_mgr_disown(struct mg_mgr *mgr) { mgr->userdata = NULL; }

/* Runs one iteration of the event loop (Python's Manager.poll).
 *
 * cffi releases the GIL around every C call, and each event crossing into Python
 * then takes it back: on CPython that is about a third of a crossing's cost, paid
 * for every event. So this waits for I/O without the GIL, as other threads should
 * run meanwhile, then lets Mongoose dispatch with the GIL held.
 *
 * The wait mirrors mg_iotest(): the same readiness, the same reasons not to wait.
 * epoll is level-triggered, so Mongoose's own zero-timeout wait that follows sees
 * the same readiness. When Mongoose would wait anyway (a connection
 * closing, TLS data pending: it then waits 1 ms), the GIL is not held. */
#if MG_ENABLE_EPOLL && defined(Py_PYTHON_H) && !defined(PYPY_VERSION)
#define PM_DISPATCH_WITH_GIL 1
#else
#define PM_DISPATCH_WITH_GIL 0
#endif

#if PM_DISPATCH_WITH_GIL
#include <poll.h>

#define PM_MAX_WRITERS 63

/* Waits for what mg_iotest() would: the epoll set (its fd turns readable when a
 * registered socket is ready) and writability of the sockets with output pending,
 * which Mongoose adds to the epoll set only inside mg_iotest(); poll() avoids
 * doing those epoll_ctl() calls twice. Returns false, without waiting, when
 * Mongoose should wait on its own. */
static bool pm_wait_for_io(struct mg_mgr *mgr, int ms) {
  struct pollfd fds[PM_MAX_WRITERS + 1];
  nfds_t n = 1;
  struct mg_connection *c;
  fds[0].fd = mgr->epoll_fd;
  fds[0].events = POLLIN;
  for (c = mgr->conns; c != NULL; c = c->next) {
    if (c->rtls.len > 0 || mg_tls_pending(c) > 0 || c->is_closing) return false;
    if (can_write(c)) {
      if (n > PM_MAX_WRITERS) return false;
      fds[n].fd = (int) (size_t) c->fd;
      fds[n].events = POLLOUT;
      n++;
    }
  }
  if (ms > 0) poll(fds, n, ms);
  return true;
}
#endif

void pm_mgr_poll(struct mg_mgr *mgr, int ms) {
#if PM_DISPATCH_WITH_GIL
  if (pm_wait_for_io(mgr, ms)) {
    PyGILState_STATE gil = PyGILState_Ensure();
    mg_mgr_poll(mgr, 0);
    pm_flush(mgr);
    PyGILState_Release(gil);
    return;
  }
#endif
  mg_mgr_poll(mgr, ms);
  pm_flush(mgr);
}

/* Connection ids count up from 1, so this one never names a connection: Mongoose
 * reads the message, finds no connection, and drops it, but the poll has woken. */
#define PM_WAKE_ONLY_ID ((unsigned long) -1)

bool pm_mgr_wake(struct mg_mgr *mgr) {
  return mg_wakeup(mgr, PM_WAKE_ONLY_ID, "", 0);
}

/* The open connection with this id, or NULL once it has closed. */
struct mg_connection *pm_conn(struct mg_mgr *mgr, unsigned long id) {
  return pm_table_get(&((struct pm_mgr *) mgr)->conns, id);
}

/* ---- TLS options a listener shares with the connections it accepts ------------ */

/* A deep copy of struct mg_tls_opts, reference-counted: a listener and each
 * connection it accepted hold one reference, since accepted connections may outlive
 * their listener. Mongoose copies what it needs in mg_tls_init(). */
struct pm_tls {
  unsigned refs;
  struct mg_tls_opts opts;
};

static struct mg_str pm_copy_into(char **cursor, struct mg_str s) {
  struct mg_str copy = {NULL, 0};  // Mongoose tests .buf == NULL for "not given"
  if (s.len > 0) {
    memcpy(*cursor, s.buf, s.len);
    copy.buf = *cursor;
    copy.len = s.len;
    *cursor += s.len;
  }
  return copy;
}

static struct pm_tls *pm_tls_new(const struct mg_tls_opts *o) {
  size_t size = o->ca.len + o->cert.len + o->key.len + o->name.len;
  struct pm_tls *t = (struct pm_tls *) calloc(1, sizeof(*t) + size + 1);
  char *cursor = (char *) (t + 1);
  if (t == NULL) return NULL;
  t->refs = 1;
  t->opts.ca = pm_copy_into(&cursor, o->ca);
  t->opts.cert = pm_copy_into(&cursor, o->cert);
  t->opts.key = pm_copy_into(&cursor, o->key);
  t->opts.name = pm_copy_into(&cursor, o->name);
  t->opts.skip_verification = o->skip_verification;
  return t;
}

static void pm_tls_release(struct pm_tls *t) {
  if (t != NULL && --t->refs == 0) free(t);
}

struct pm_tls_error {
  char *buf;
  size_t len;
};

static void pm_record_error(struct mg_connection *c, int ev, void *ev_data) {
  struct pm_tls_error *error = (struct pm_tls_error *) c->fn_data;
  if (ev == MG_EV_ERROR && error->buf[0] == '\0') {
    snprintf(error->buf, error->len, "%s", (const char *) ev_data);
  }
}

/* Parses opts as mg_tls_init() would, on a throwaway connection, so bad PEM or a
 * missing key is reported when the options are given, not at the first accept.
 * Returns false and fills err on failure. */
bool pm_tls_check(struct mg_mgr *mgr, const struct mg_tls_opts *opts, bool client,
                  char *err, size_t err_len) {
  struct mg_connection probe;
  struct pm_tls_error error = {err, err_len};
  memset(&probe, 0, sizeof(probe));
  err[0] = '\0';
  probe.mgr = mgr;
  probe.is_client = client;
  probe.fn = pm_record_error;
  probe.fn_data = &error;
  mg_tls_init(&probe, opts);
  mg_tls_free(&probe);
  return err[0] == '\0' && !probe.is_closing;
}

/* ---- per-connection state and the event handler ------------------------------ */

/* What the shim keeps for each connection Python created, in c->fn_data.
 * Mongoose copies fn_data from a listener to each connection it accepts; on that
 * connection's MG_EV_OPEN the shim replaces the shared pointer by a copy of its own,
 * so every connection owns exactly one state, freed on its MG_EV_CLOSE. */
struct pm_conn {
  uint32_t events;           // Bit n set: event n crosses into Python
  unsigned long id;          // This connection's id
  unsigned long parent;      // For accepted connections: the listener's id
  struct pm_tls *tls;        // TLS to start on accept (listeners) or connect (clients)
  uint64_t mqtt_keepalive;   // MQTT client: ping after this many idle ms (0: never)
  uint64_t mqtt_last_write;  // MQTT client: when it last sent something
  bool mqtt_open;            // MQTT client: CONNACK received
  bool cancel_resolve;       // resolve_cancel() deferred (see pm_resolve_cancel)
  bool ws_failed;            // WebSocket: closed for a protocol error; deliver no more
  uint64_t idle_timeout;     // close after this many ms without I/O (0: never)
  uint64_t last_io;          // when it last read or wrote (or opened)
};

/* Events numbered beyond the mask's width (user events) always cross. */
#define PM_MASKABLE_EVENTS 32

static bool pm_wants(const struct pm_conn *st, int ev) {
  // Python creates its Connection on MG_EV_OPEN and retires it on MG_EV_CLOSE, so
  // those two always cross; Python then decides whether the user handler sees them.
  if (ev == MG_EV_OPEN || ev == MG_EV_CLOSE) return true;
  if (ev < 0 || ev >= PM_MASKABLE_EVENTS) return true;
  return (st->events & (1u << ev)) != 0;
}

/* The data of events that carry a number, read here so that Python receives an
 * int instead of a pointer to convert; for WebSocket messages, whose payload
 * Python copies out at once, its length and the frame flags as (len << 8) | flags;
 * -1 for events whose data Python views in place (they need the frame token);
 * 0 for the others. */
static int64_t pm_event_number(int ev, const void *ev_data) {
  switch (ev) {
    case MG_EV_READ:
    case MG_EV_WRITE: return ev_data == NULL ? 0 : *(const long *) ev_data;
    case MG_EV_MQTT_OPEN: return ev_data == NULL ? 0 : *(const int *) ev_data;
    case MG_EV_SNTP_TIME: return ev_data == NULL ? 0 : *(const int64_t *) ev_data;
    case MG_EV_WS_MSG:
    case MG_EV_WS_CTL: {
      const struct mg_ws_message *wm = (const struct mg_ws_message *) ev_data;
      return (int64_t) wm->data.len << 8 | wm->flags;
    }
    case MG_EV_HTTP_HDRS:
    case MG_EV_HTTP_MSG:
    case MG_EV_WS_OPEN:
    case MG_EV_MQTT_CMD:
    case MG_EV_MQTT_MSG: return -1;
    default: return 0;  // a small int costs Python nothing to make
  }
}

/* Calls Python inside a numbered frame (see struct pm_frames), handing over the
 * deferred events first. Python's last argument is the event's number
 * (pm_event_number) or, for the others, the frame token that message views check. */
static void pm_forward(struct mg_mgr *mgr, unsigned long id, int ev, void *ev_data) {
  struct pm_frames *f = ((struct pm_mgr *) mgr)->frames;
  unsigned depth = f->depth, queued = f->queued;
  int64_t extra = pm_event_number(ev, ev_data);
  uint64_t token = 0;
  if (depth < PM_MAX_FRAMES) {
    token = (++f->counter << 6) | depth;  // depth in the low 6 bits
    f->token[depth] = token;
  }
  f->depth = depth + 1;
  f->queued = 0;  // Python copies the queue out before it runs any handler
  f->handed = f->payloads_len;
  if (f->payloads_len > 0) {
    f->payloads_len = 0;
    queued |= PM_QUEUE_HAS_PAYLOADS;
  }
  if (ev == MG_EV_WS_MSG || ev == MG_EV_WS_CTL) {
    ev_data = ((struct mg_ws_message *) ev_data)->data.buf;  // the payload, to copy
  }
  pm_on_event(mgr->userdata, queued, id, ev, (char *) ev_data,
              extra < 0 ? (int64_t) token : extra);
  f->depth = depth;
  if (depth < PM_MAX_FRAMES) f->token[depth] = 0;
}

/* Delivers the deferred events now, if there are any. */
static void pm_flush(struct mg_mgr *mgr) {
  if (((struct pm_mgr *) mgr)->frames->queued > 0 && mgr->userdata != NULL) {
    pm_forward(mgr, 0, PM_EV_FLUSH, NULL);
  }
}

/* Events whose data is a plain number and whose handler has nothing that must run
 * at once: they need no crossing of their own. MG_EV_READ qualifies only where a
 * protocol handler (HTTP, WebSocket, MQTT...) has already consumed what was read;
 * on plain TCP/UDP the handler reads the buffer itself, so it runs at once.
 *
 * So do WebSocket messages up to PM_DEFER_MESSAGE_MAX bytes, their payload copied
 * (Python copies it anyway). The messages of one read then cross together, with
 * the MG_EV_READ that follows them (pm_event_handler): before Mongoose writes that
 * connection's output, so a reply leaves in the same iteration as it would have. */
static bool pm_deferrable(const struct mg_connection *c, int ev, const void *ev_data) {
  return ev == MG_EV_POLL || ev == MG_EV_WRITE || (ev == MG_EV_READ && c->pfn != NULL) ||
         (ev == MG_EV_WS_MSG &&
          ((const struct mg_ws_message *) ev_data)->data.len <= PM_DEFER_MESSAGE_MAX);
}

/* Appends a deferred message's payload; false (nothing deferred) without memory. */
static bool pm_defer_payload(struct mg_mgr *mgr, const struct mg_str *data) {
  struct pm_frames *f = ((struct pm_mgr *) mgr)->frames;
  if (f->payloads_len + data->len > PM_PAYLOADS_MAX) pm_flush(mgr);
  if (f->payloads_len + data->len > f->payloads_cap) {
    size_t cap = f->payloads_cap == 0 ? 4 * PM_DEFER_MESSAGE_MAX : 2 * f->payloads_cap;
    char *grown = (char *) realloc(f->payloads, cap);
    if (grown == NULL) return false;
    f->payloads = grown, f->payloads_cap = cap;
  }
  if (data->len > 0) memcpy(f->payloads + f->payloads_len, data->buf, data->len);
  f->payloads_len += data->len;
  return true;
}

/* Queues an event (pm_deferrable); false if it must cross now after all. */
static bool pm_defer(struct mg_mgr *mgr, unsigned long id, int ev, void *ev_data) {
  struct pm_frames *f = ((struct pm_mgr *) mgr)->frames;
  int64_t *slot;
  if (f->queued == PM_QUEUE_MAX) pm_flush(mgr);
  if (ev == MG_EV_WS_MSG &&
      !pm_defer_payload(mgr, &((struct mg_ws_message *) ev_data)->data)) {
    return false;
  }
  slot = &f->queue[3 * f->queued++];
  slot[0] = (int64_t) id;
  slot[1] = ev;
  slot[2] = pm_event_number(ev, ev_data);
  return true;
}

/* Mongoose's MQTT client sends PINGREQ only when asked; brokers drop a client
 * that stays silent for 1.5 keepalive periods. Ping once idle for half of one. */
static void pm_mqtt_keepalive(struct mg_connection *c, struct pm_conn *st, int ev) {
  uint64_t now = mg_millis();
  if (ev == MG_EV_MQTT_OPEN) {
    st->mqtt_open = true;
    st->mqtt_last_write = now;
  } else if (ev == MG_EV_WRITE) {
    st->mqtt_last_write = now;
  } else if (ev == MG_EV_POLL && st->mqtt_open && !c->is_closing &&
             now - st->mqtt_last_write >= st->mqtt_keepalive / 2) {
    mg_mqtt_ping(c);
    st->mqtt_last_write = now;
  }
}

/* Mongoose has no timeouts of its own: a client that connects and stays silent, or
 * sends a request a byte a minute (slowloris), holds its connection forever. With an
 * idle timeout, a connection (not a listener) closes after that long without I/O. */
static void pm_idle_check(struct mg_connection *c, struct pm_conn *st, int ev) {
  if (ev == MG_EV_READ || ev == MG_EV_WRITE) {
    st->last_io = mg_millis();
  } else if (ev == MG_EV_POLL && !c->is_listening && !c->is_closing &&
             mg_millis() - st->last_io >= st->idle_timeout) {
    mg_error(c, "idle timeout");
  }
}

/* True if s[0..n) is valid UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF). ASCII is skipped eight bytes at a time. */
static bool pm_utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t cp;
    size_t len, k;
    if (i + 8 <= n) {
      uint64_t block;
      memcpy(&block, s + i, 8);
      if ((block & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    if (s[i] >= 0xC2 && s[i] <= 0xDF) {
      len = 2, cp = s[i] & 0x1Fu;
    } else if (s[i] >= 0xE0 && s[i] <= 0xEF) {
      len = 3, cp = s[i] & 0x0Fu;
    } else if (s[i] >= 0xF0 && s[i] <= 0xF4) {
      len = 4, cp = s[i] & 0x07u;
    } else {
      return false;
    }
    if (len > n - i) return false;
    for (k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (s[i + k] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

/* RFC 6455 7.1.7, "fail the WebSocket connection": send a close frame with code
 * and reason, close once it is sent, and deliver nothing more from this peer. */
static void pm_ws_fail(struct mg_connection *c, struct pm_conn *st, uint16_t code,
                       const char *reason) {
  char payload[2 + 64];
  size_t len = strlen(reason);
  if (len > sizeof(payload) - 2) len = sizeof(payload) - 2;
  payload[0] = (char) (code >> 8), payload[1] = (char) (code & 0xFF);
  memcpy(payload + 2, reason, len);
  mg_ws_send(c, payload, 2 + len, WEBSOCKET_OP_CLOSE);
  c->is_draining = 1;
  st->ws_failed = true;
}

/* Handlers only ever see valid messages: a text message that is not UTF-8 fails
 * the connection with 1007 (RFC 6455 8.1) before it reaches Python. Returns false
 * for an event that must not be delivered. */
static bool pm_ws_check(struct mg_connection *c, struct pm_conn *st, int ev, void *ev_data) {
  const struct mg_ws_message *wm = (const struct mg_ws_message *) ev_data;
  if (ev != MG_EV_WS_MSG && ev != MG_EV_WS_CTL) return true;
  if (st->ws_failed) return false;
  if (ev == MG_EV_WS_MSG && (wm->flags & 0x0F) == WEBSOCKET_OP_TEXT &&
      !pm_utf8_valid((const unsigned char *) wm->data.buf, wm->data.len)) {
    pm_ws_fail(c, st, 1007, "invalid UTF-8 in a text message");
    return false;
  }
  return true;
}

static void pm_event_handler(struct mg_connection *c, int ev, void *ev_data) {
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  struct pm_mgr *pm = (struct pm_mgr *) c->mgr;
  if (st == NULL) return;  // Out of memory when it opened: already closing
  if (ev == MG_EV_OPEN) {
    if (c->is_accepted) {
      struct pm_conn *own = (struct pm_conn *) calloc(1, sizeof(*own));
      if (own == NULL) {
        c->fn_data = NULL;
        c->is_closing = 1;
        return;
      }
      own->events = st->events;
      own->parent = st->id;
      own->idle_timeout = st->idle_timeout;
      own->tls = st->tls;
      if (own->tls != NULL) own->tls->refs++;
      c->fn_data = st = own;
    }
    st->id = c->id;
    st->last_io = mg_millis();
    if (!pm_table_put(&pm->conns, c->id, c)) {
      c->fn_data = NULL;
      c->is_closing = 1;
      pm_tls_release(st->tls);
      free(st);
      return;
    }
  } else if ((ev == MG_EV_ACCEPT || ev == MG_EV_CONNECT) && st->tls != NULL) {
    mg_tls_init(c, &st->tls->opts);  // before the handler, which may send already
  } else if (st->mqtt_keepalive > 0) {
    pm_mqtt_keepalive(c, st, ev);
  }
  if (st->idle_timeout > 0) pm_idle_check(c, st, ev);
  if (pm_ws_check(c, st, ev, ev_data) && pm->mgr.userdata != NULL && pm_wants(st, ev)) {
    struct pm_frames *f = pm->frames;
    if (f->trace != NULL && f->trace_len < f->trace_cap) {
      f->trace[2 * f->trace_len] = (int64_t) c->id;
      f->trace[2 * f->trace_len++ + 1] = ev;
    }
    if (!pm_deferrable(c, ev, ev_data) || !pm_defer(&pm->mgr, c->id, ev, ev_data)) {
      // MG_EV_OPEN and MG_EV_CLOSE carry no data: Python gets the connection instead.
      bool bookend = ev == MG_EV_OPEN || ev == MG_EV_CLOSE;
      pm_forward(&pm->mgr, c->id, ev, bookend ? (void *) c : ev_data);
    }
  }
  // The messages this read brought are all parsed: deliver them before Mongoose
  // writes (see pm_deferrable), whether or not MG_EV_READ itself was wanted.
  if (ev == MG_EV_READ && pm->frames->payloads_len > 0) pm_flush(&pm->mgr);
  if (ev == MG_EV_CLOSE) {
    pm_table_del(&pm->conns, c->id);
    c->fn_data = NULL;
    pm_tls_release(st->tls);
    free(st);
  }
}

static void pm_guard_dns(struct mg_mgr *mgr);

static struct pm_conn *pm_new_state(uint32_t events, const struct mg_tls_opts *tls) {
  struct pm_conn *st = (struct pm_conn *) calloc(1, sizeof(*st));
  if (st == NULL) return NULL;
  st->events = events;
  if (tls != NULL && (st->tls = pm_tls_new(tls)) == NULL) {
    free(st);
    return NULL;
  }
  return st;
}

static void pm_free_state(struct pm_conn *st) {
  if (st != NULL) pm_tls_release(st->tls);
  free(st);
}

typedef struct mg_connection *(*pm_opener)(struct mg_mgr *, const char *url,
                                           mg_event_handler_t, void *fn_data);

/* Mongoose fires MG_EV_OPEN inside the opener, so the state must exist before the
 * call; when the call fails no event has run and the state is still ours to free. */
static unsigned long pm_open(pm_opener open, struct mg_mgr *mgr, const char *url,
                             uint32_t events, const struct mg_tls_opts *tls) {
  struct pm_conn *st = pm_new_state(events, tls);
  struct mg_connection *c = st == NULL ? NULL : open(mgr, url, pm_event_handler, st);
  if (c == NULL) pm_free_state(st);
  pm_guard_dns(mgr);
  return c == NULL ? 0 : c->id;
}

unsigned long pm_listen(struct mg_mgr *mgr, const char *url, int proto,
                        uint32_t events, const struct mg_tls_opts *tls) {
  pm_opener open = proto == PM_PROTO_HTTP   ? mg_http_listen
                   : proto == PM_PROTO_MQTT ? mg_mqtt_listen
                                            : mg_listen;
  return pm_open(open, mgr, url, events, tls);
}

unsigned long pm_connect(struct mg_mgr *mgr, const char *url, int proto,
                         uint32_t events, const struct mg_tls_opts *tls) {
  pm_opener open = proto == PM_PROTO_HTTP   ? mg_http_connect
                   : proto == PM_PROTO_SNTP ? mg_sntp_connect
                                            : mg_connect;
  return pm_open(open, mgr, url, events, tls);
}

unsigned long pm_ws_connect(struct mg_mgr *mgr, const char *url,
                            const char *extra_headers, uint32_t events,
                            const struct mg_tls_opts *tls) {
  struct pm_conn *st = pm_new_state(events, tls);
  struct mg_connection *c =
      st == NULL ? NULL
                 : mg_ws_connect(mgr, url, pm_event_handler, st, "%s",
                                 extra_headers == NULL ? "" : extra_headers);
  if (c == NULL) pm_free_state(st);
  pm_guard_dns(mgr);
  return c == NULL ? 0 : c->id;
}

unsigned long pm_mqtt_connect(struct mg_mgr *mgr, const char *url,
                              const struct mg_mqtt_opts *opts, uint32_t events,
                              const struct mg_tls_opts *tls) {
  struct pm_conn *st = pm_new_state(events, tls);
  struct mg_connection *c = NULL;
  if (st != NULL) {
    st->mqtt_keepalive = (uint64_t) opts->keepalive * 1000;
    c = mg_mqtt_connect(mgr, url, opts, pm_event_handler, st);
  }
  if (c == NULL) pm_free_state(st);
  pm_guard_dns(mgr);
  return c == NULL ? 0 : c->id;
}

/* Use these TLS options from now on: a listener starts TLS on each connection it
 * accepts, a client when its TCP connection is established. */
bool pm_conn_set_tls(struct mg_connection *c, const struct mg_tls_opts *opts) {
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  struct pm_tls *tls = pm_tls_new(opts);
  if (st == NULL || tls == NULL) {
    pm_tls_release(tls);
    return false;
  }
  pm_tls_release(st->tls);
  st->tls = tls;
  return true;
}

/* ---- connection accessors --------------------------------------------------------- */

/* Close this connection (and, for a listener, those it accepts from now on) after
 * ms without reading or writing; 0 turns that off. */
void pm_conn_set_idle_timeout(struct mg_connection *c, uint64_t ms) {
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  if (st != NULL) {
    st->idle_timeout = ms;
    st->last_io = mg_millis();
  }
}

uint32_t pm_conn_events(const struct mg_connection *c) {
  const struct pm_conn *st = (const struct pm_conn *) c->fn_data;
  return st == NULL ? 0 : st->events;
}

void pm_conn_set_events(struct mg_connection *c, uint32_t events) {
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  if (st != NULL) st->events = events;
}

unsigned long pm_conn_parent(const struct mg_connection *c) {
  const struct pm_conn *st = (const struct pm_conn *) c->fn_data;
  return st == NULL ? 0 : st->parent;
}

unsigned pm_conn_flags(const struct mg_connection *c) {
  return (c->is_listening ? PM_IS_LISTENING : 0) | (c->is_client ? PM_IS_CLIENT : 0) |
         (c->is_accepted ? PM_IS_ACCEPTED : 0) |
         (c->is_resolving ? PM_IS_RESOLVING : 0) |
         (c->is_connecting ? PM_IS_CONNECTING : 0) | (c->is_tls ? PM_IS_TLS : 0) |
         (c->is_tls_hs ? PM_IS_TLS_HS : 0) | (c->is_udp ? PM_IS_UDP : 0) |
         (c->is_websocket ? PM_IS_WEBSOCKET : 0) |
         (c->is_draining ? PM_IS_DRAINING : 0) |
         (c->is_closing ? PM_IS_CLOSING : 0) | (c->is_full ? PM_IS_FULL : 0) |
         (c->is_readable ? PM_IS_READABLE : 0) |
         (c->is_writable ? PM_IS_WRITABLE : 0) | (c->is_mqtt5 ? PM_IS_MQTT5 : 0);
}

void pm_conn_set_full(struct mg_connection *c, bool full) { c->is_full = full; }
void pm_conn_drain(struct mg_connection *c) { c->is_draining = 1; }
void pm_conn_close(struct mg_connection *c) { c->is_closing = 1; }

int pm_conn_addr(const struct mg_connection *c, bool remote, uint8_t ip[16],
                 bool *is_ip6) {
  const struct mg_addr *a = remote ? &c->rem : &c->loc;
  memcpy(ip, a->addr.ip, 16);
  *is_ip6 = a->is_ip6;
  return mg_ntohs(a->port);
}

/* ---- sending, by id: the hot calls look the connection up themselves ---------- */

/* Each returns false, sending nothing, when the connection has closed. */

bool pm_send(struct mg_mgr *mgr, unsigned long id, const void *buf, size_t len) {
  struct mg_connection *c = pm_conn(mgr, id);
  if (c == NULL) return false;
  if (!mg_send(c, buf, len)) mg_error(c, "OOM");
  return true;
}

/* ---- HTTP responses: headers checked in the pass that copies them -------------- */

#define PM_DEFAULT_CONTENT_TYPE "Content-Type: text/plain; charset=utf-8\r\n"
#define PM_HAS_CONTENT_TYPE 1u
#define PM_IS_CHUNKED 2u

/* RFC 9110 token characters, allowed in header names. */
static bool pm_is_tchar(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool pm_name_is(const char *name, size_t len, const char *wanted) {
  size_t n = strlen(wanted);
  return len == n && mg_ncasecmp(name, wanted, n) == 0;
}

static bool pm_contains_nocase(const char *s, size_t len, const char *wanted) {
  size_t i, n = strlen(wanted);
  for (i = 0; i + n <= len; i++) {
    if (mg_ncasecmp(s + i, wanted, n) == 0) return true;
  }
  return false;
}

/* Checks headers given as "name\0value\0name\0value": exactly pairs of them, each
 * name a token, no value holding CR or LF (a NUL in a value would make one field
 * more than 2 * pairs). Sets PM_HAS_CONTENT_TYPE and PM_IS_CHUNKED in *flags.
 * Returns how many bytes the "Name: value\r\n" lines take, or -1 if refused. */
static long pm_headers_check(const char *kv, size_t len, unsigned pairs, unsigned *flags) {
  size_t i = 0, fields = 0, name_start = 0, name_len = 0;
  *flags = 0;
  if (len == 0) return pairs == 0 ? 0 : -1;
  for (;;) {
    size_t start = i;
    bool is_name = fields % 2 == 0;
    while (i < len && kv[i] != '\0') {
      unsigned char ch = (unsigned char) kv[i++];
      if (is_name ? !pm_is_tchar(ch) : (ch == '\r' || ch == '\n')) return -1;
    }
    if (is_name) {
      if (i == start) return -1;  // empty name
      name_start = start, name_len = i - start;
    } else if (pm_name_is(kv + name_start, name_len, "Content-Type")) {
      *flags |= PM_HAS_CONTENT_TYPE;
    } else if (pm_name_is(kv + name_start, name_len, "Transfer-Encoding") &&
               pm_contains_nocase(kv + start, i - start, "chunked")) {
      *flags |= PM_IS_CHUNKED;
    }
    fields++;
    if (i == len) break;
    i++;  // the separator
  }
  // Each pair turns its two NULs (one for the last) into ": " and "\r\n".
  return fields == 2 * (size_t) pairs ? (long) (len + 1 + 3 * (size_t) pairs) : -1;
}

/* Copies "name\0value\0..." (checked) out as "Name: value\r\n" lines; returns the end. */
static char *pm_headers_copy(char *p, const char *kv, size_t len) {
  size_t i;
  bool in_name = true;
  for (i = 0; i < len; i++) {
    if (kv[i] != '\0') {
      *p++ = kv[i];
    } else if (in_name) {
      *p++ = ':', *p++ = ' ', in_name = false;
    } else {
      *p++ = '\r', *p++ = '\n', in_name = true;
    }
  }
  if (len > 0) *p++ = '\r', *p++ = '\n';
  return p;
}

/* Writes the decimal digits of v at out; returns how many. */
static size_t pm_decimal(char *out, unsigned long v) {
  char digits[24];
  size_t n = 0, i;
  do {
    digits[n++] = (char) ('0' + v % 10);
    v /= 10;
  } while (v > 0);
  for (i = 0; i < n; i++) out[i] = digits[n - 1 - i];
  return n;
}

/* Like mg_http_reply(), but the body is sent byte for byte (NUL bytes included)
 * instead of being a printf format, and the response is laid out in one
 * allocation with memcpy (the hot path of every HTTP server).
 *
 * Headers come as "name\0value\0name\0value" (pairs of them), checked here in
 * the pass that copies them (see pm_headers_check); kv NULL means none. A
 * text/plain Content-Type is added unless one is given. With "Transfer-Encoding:
 * chunked" only the head is sent, then body as a first chunk if it is not empty.
 *
 * Returns 1 when queued, 0 (sending nothing) when the connection has closed, -1
 * (sending nothing) when the headers are refused. */
int pm_http_respond(struct mg_mgr *mgr, unsigned long id, int status, const char *kv,
                    size_t kv_len, unsigned pairs, const char *body, size_t body_len) {
  struct mg_connection *c = pm_conn(mgr, id);
  const char *reason;
  size_t reason_len, head_len, start, lines_len = 0, default_len = 0;
  unsigned flags = 0;
  char *p;
  if (kv != NULL) {
    long n = pm_headers_check(kv, kv_len, pairs, &flags);
    if (n < 0) return -1;
    lines_len = (size_t) n;
  }
  if (c == NULL) return 0;
  if (!(flags & PM_HAS_CONTENT_TYPE)) default_len = sizeof(PM_DEFAULT_CONTENT_TYPE) - 1;
  reason = mg_http_status_code_str(status);
  reason_len = strlen(reason);
  // "HTTP/1.1 " NNN " " reason CRLF headers "Content-Length: " digits CRLF CRLF
  head_len = 9 + 3 + 1 + reason_len + 2 + default_len + lines_len + 16 + 20 + 4;
  start = c->send.len;
  if (mg_iobuf_add(&c->send, start, NULL, head_len + body_len) == 0) {
    mg_error(c, "OOM");
    return 1;
  }
  p = (char *) c->send.buf + start;
  memcpy(p, "HTTP/1.1 ", 9), p += 9;
  p += pm_decimal(p, (unsigned long) status);
  *p++ = ' ';
  memcpy(p, reason, reason_len), p += reason_len;
  memcpy(p, "\r\n", 2), p += 2;
  memcpy(p, PM_DEFAULT_CONTENT_TYPE, default_len), p += default_len;
  if (kv != NULL) p = pm_headers_copy(p, kv, kv_len);
  if (!(flags & PM_IS_CHUNKED)) {
    memcpy(p, "Content-Length: ", 16), p += 16;
    p += pm_decimal(p, (unsigned long) body_len);
    memcpy(p, "\r\n", 2), p += 2;
  }
  memcpy(p, "\r\n", 2), p += 2;
  c->send.len = (size_t) (p - (char *) c->send.buf);  // the estimate ran over
  if (!(flags & PM_IS_CHUNKED)) {
    memcpy(p, body, body_len);
    c->send.len += body_len;
    c->is_resp = 0;  // the response is complete: Mongoose may parse the next request
  } else if (body_len > 0) {
    mg_http_write_chunk(c, body, body_len);  // the empty chunk will end the response
  }
  return 1;
}

bool pm_http_chunk(struct mg_mgr *mgr, unsigned long id, const char *buf,
                   size_t len) {
  struct mg_connection *c = pm_conn(mgr, id);
  if (c == NULL) return false;
  mg_http_write_chunk(c, buf, len);
  return true;
}

/* One Server-Sent Event, as a chunk of a chunked response. */
bool pm_http_sse(struct mg_mgr *mgr, unsigned long id, const char *event,
                 size_t event_len, const char *data, size_t data_len) {
  struct mg_connection *c = pm_conn(mgr, id);
  size_t len = 7 + event_len + 7 + data_len + 2;  // "event: " E "\ndata: " D "\n\n"
  if (c == NULL) return false;
  mg_printf(c, "%lx\r\nevent: %.*s\ndata: %.*s\n\n\r\n", (unsigned long) len,
            (int) event_len, event, (int) data_len, data);
  return true;
}

/* Returns 1 when queued, 0 when the connection has closed, -1 for an opcode that
 * is not one of RFC 6455's (nothing is sent). */
int pm_ws_send(struct mg_mgr *mgr, unsigned long id, const void *buf, size_t len,
               int op) {
  struct mg_connection *c;
  if (op != WEBSOCKET_OP_CONTINUE && op != WEBSOCKET_OP_TEXT && op != WEBSOCKET_OP_BINARY &&
      op != WEBSOCKET_OP_CLOSE && op != WEBSOCKET_OP_PING && op != WEBSOCKET_OP_PONG) {
    return -1;
  }
  if ((c = pm_conn(mgr, id)) == NULL) return 0;
  mg_ws_send(c, buf, len, op);
  return 1;
}

void pm_ws_upgrade(struct mg_connection *c, struct mg_http_message *hm,
                   const char *extra_headers) {
  mg_ws_upgrade(c, hm, "%s", extra_headers == NULL ? "" : extra_headers);
}

void pm_error(struct mg_connection *c, const char *message) {
  mg_error(c, "%s", message);
}

/* ---- MQTT 5 properties --------------------------------------------------------- */

int pm_mqtt_prop_type(int id) {
  return id < 0 || id > 255 ? -1 : mqtt_prop_type_by_id((uint8_t) id);
}

/* ---- one-shot digests (helpers in utils.py) ------------------------------------ */

void pm_md5(const void *data, size_t len, uint8_t out[16]) {
  mg_md5_ctx ctx;
  mg_md5_init(&ctx);
  mg_md5_update(&ctx, (const unsigned char *) data, len);
  mg_md5_final(&ctx, out);
}

void pm_sha1(const void *data, size_t len, uint8_t out[20]) {
  mg_sha1_ctx ctx;
  mg_sha1_init(&ctx);
  mg_sha1_update(&ctx, (const unsigned char *) data, len);
  mg_sha1_final(out, &ctx);
}

/* ---- a guard around Mongoose's DNS client -------------------------------------- */

/* Two problems of Mongoose 7.23's DNS client, fixed around its handler dns_cb:
 * - A name that does not exist is never reported: a failed A lookup is retried as
 *   AAAA, and an AAAA reply without an address is retried as AAAA again, each time
 *   pushing the timeout back. Here such a reply fails the lookup.
 * - dns_cb keeps a pointer to the next pending lookup while it calls handlers
 *   (MG_EV_ERROR); a handler calling resolve_cancel() could free it. Cancels made
 *   while dns_cb runs are deferred until it returns. */

static uint16_t pm_dns_question_type(const uint8_t *buf, size_t len) {
  size_t i = sizeof(struct mg_dns_header);
  if (len < i || mg_ntohs(((const struct mg_dns_header *) buf)->num_questions) < 1) {
    return 0;
  }
  while (i < len && buf[i] != 0) {
    if (buf[i] & 0xC0) return 0;  // a compressed name in a question: not ours
    i += (size_t) buf[i] + 1;
  }
  return i + 3 > len ? 0 : (uint16_t) (buf[i + 1] << 8 | buf[i + 2]);
}

static void pm_run_deferred_cancels(struct pm_mgr *pm) {
  size_t i;
  if (pm->deferred_cancels == 0 || pm->conns.mask == 0) return;
  pm->deferred_cancels = 0;
  for (i = 0; i <= pm->conns.mask; i++) {
    struct mg_connection *c = pm->conns.slots[i].c;
    struct pm_conn *st = c == NULL ? NULL : (struct pm_conn *) c->fn_data;
    if (st != NULL && st->cancel_resolve) {
      st->cancel_resolve = false;
      mg_resolve_cancel(c);
    }
  }
}

static void pm_dns_cb(struct mg_connection *c, int ev, void *ev_data) {
  struct pm_mgr *pm = (struct pm_mgr *) c->mgr;
  struct mg_dns_message dm;
  pm->in_dns_callback++;
  if (ev == MG_EV_READ &&
      pm_dns_question_type(c->recv.buf, c->recv.len) == MG_DNS_RTYPE_AAAA &&
      mg_dns_parse(c->recv.buf, c->recv.len, &dm) && !dm.resolved) {
    struct dns_data **head = (struct dns_data **) &c->mgr->active_dns_requests;
    struct dns_data *d, *next;
    for (d = *head; d != NULL; d = next) {
      next = d->next;
      if (d->txnid == dm.txnid) {
        mg_error(d->c, "%s DNS lookup failed", dm.name);
        dns_free(head, d);
      }
    }
    c->recv.len = 0;
  } else {
    dns_cb(c, ev, ev_data);
    pm_guard_dns(c->mgr);  // dns_cb may have opened the other DNS connection
  }
  if (--pm->in_dns_callback == 0) pm_run_deferred_cancels(pm);
}

/* Mongoose makes its DNS connections when a first name is looked up: call this
 * after anything that may look one up. */
static void pm_guard_dns(struct mg_mgr *mgr) {
  if (mgr->dns4.c != NULL && mgr->dns4.c->pfn == dns_cb) mgr->dns4.c->pfn = pm_dns_cb;
  if (mgr->dns6.c != NULL && mgr->dns6.c->pfn == dns_cb) mgr->dns6.c->pfn = pm_dns_cb;
}

void pm_resolve(struct mg_connection *c, const char *url) {
  mg_resolve(c, url);
  pm_guard_dns(c->mgr);
}

void pm_resolve_cancel(struct mg_connection *c) {
  struct pm_mgr *pm = (struct pm_mgr *) c->mgr;
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  if (pm->in_dns_callback > 0 && st != NULL) {
    st->cancel_resolve = true;
    pm->deferred_cancels++;
  } else {
    mg_resolve_cancel(c);
  }
}

/* ---- measuring the crossing into Python (benchmarks/) ---------------------------- */

/* Delivers event ev to connection id n times, as Mongoose would, so the cost of one
 * crossing into Python can be measured without the network. Returns the number
 * delivered (0 if the connection is not open). */
unsigned pm_bench_events(struct mg_mgr *mgr, unsigned long id, int ev,
                         void *ev_data, unsigned n) {
  struct mg_connection *c = pm_conn(mgr, id);
  unsigned i;
#if PM_DISPATCH_WITH_GIL
  PyGILState_STATE gil = PyGILState_Ensure();  // as pm_mgr_poll dispatches
#endif
  for (i = 0; c != NULL && i < n && c->fn_data != NULL; i++) {
    pm_event_handler(c, ev, ev_data);
  }
  pm_flush(mgr);
#if PM_DISPATCH_WITH_GIL
  PyGILState_Release(gil);
#endif
  return i;
}

/* ---- timers ---------------------------------------------------------------------- */

/* A Mongoose timer with what its callback needs to reach Python. The mg_timer comes
 * first: Mongoose frees a fired one-shot timer, and every timer in mg_mgr_free(),
 * with mg_free() on its address, which is this whole struct's. */
struct pm_timer {
  struct mg_timer timer;
  struct mg_mgr *mgr;
  unsigned long id;
};

static void pm_timer_fn(void *arg) {
  struct pm_timer *t = (struct pm_timer *) arg;
  if (t->mgr->userdata != NULL) pm_forward(t->mgr, t->id, PM_EV_TIMER, NULL);
}

bool pm_timer_add(struct mg_mgr *mgr, uint64_t period_ms, bool repeat,
                  bool run_now, unsigned long id) {
  struct pm_timer *t = (struct pm_timer *) mg_calloc(1, sizeof(*t));
  unsigned flags = MG_TIMER_AUTODELETE | (repeat ? MG_TIMER_REPEAT : 0) |
                   (run_now ? MG_TIMER_RUN_NOW : 0);
  if (t == NULL) return false;
  t->mgr = mgr;
  t->id = id;
  mg_timer_init(&mgr->timers, &t->timer, period_ms, flags, pm_timer_fn, t);
  return true;
}

/* Unlinks and frees the timer with this id, if it is still there. Must not run
 * inside mg_timer_poll(): Python defers cancels made during a poll. */
void pm_timer_cancel(struct mg_mgr *mgr, unsigned long id) {
  struct mg_timer *t;
  for (t = mgr->timers; t != NULL; t = t->next) {
    if (t->fn == pm_timer_fn && ((struct pm_timer *) t)->id == id) {
      mg_timer_free(&mgr->timers, t);
      mg_free(t);
      return;
    }
  }
}
