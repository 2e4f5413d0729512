/* The C side of pymongoose: everything that has to be C, in units by concern.
 *
 * build_mongoose.py compiles them as one translation unit, after mongoose.c, so
 * they may use Mongoose's internals and the compiler may inline across all of them.
 * In that order:
 *   core.c         shared types and constants, the id -> connection table, the
 *                  manager's lifetime, the clock seeding and the log bridge
 *   tls.c          TLS options shared by a listener and what it accepts
 *   wait.c         the I/O wait of a poll; the wakeup
 *   deflate.c      WebSocket permessage-deflate (with zlib)
 *   ws.c, mqtt.c, httpd.c  protocol rules applied before an event reaches Python
 *   dispatch.c     the one event handler: filter, defer, cross into Python
 *   connections.c  opening connections; reading and changing one
 *   http.c         responses, headers checked in the pass that copies them
 *   dns.c          a guard around Mongoose's DNS client
 *   timers.c, utils.c, bench.c
 *
 * - Python holds connection *ids*, never pointers kept across events: each manager
 *   has a table from id to connection, maintained here, so a closed connection's id
 *   finds nothing whatever Python was doing when it closed (even if an exception
 *   from a signal cut its bookkeeping short).
 * - Each event forwarded to Python runs in a numbered frame; message views check
 *   their frame is still running before reading Mongoose's buffers.
 * - Fixed-argument wrappers for Mongoose's variadic calls: user data is only ever
 *   passed as a "%s"/"%.*s" argument, never as a format string.
 * - Accessors for struct mg_connection's bitfields, which the cdef cannot declare.
 */

#include <time.h>

/* Forward declarations of the extern "Python" functions cffi generates below. */
static void pm_on_event(uintptr_t owner, unsigned queued, unsigned long id, int ev,
                        uintptr_t ev_data, int64_t extra);
static void pm_on_log(const char *line, size_t len);
static void pm_flush(struct mg_mgr *mgr);

struct pm_tls_sessions;  // tls.c
static void pm_tls_sessions_free(struct pm_tls_sessions *sessions);

/* Runs statement without the GIL, for the calls that may wait (CPython: Python's
 * calls into this module keep the GIL, see held_gil.h; PyPy releases it itself). */
#if defined(Py_PYTHON_H) && !defined(PYPY_VERSION)
#define PM_WITHOUT_GIL(statement)                    \
  do {                                               \
    PyThreadState *pm_saved_ = PyEval_SaveThread();  \
    statement;                                       \
    PyEval_RestoreThread(pm_saved_);                 \
  } while (0)
#else
#define PM_WITHOUT_GIL(statement) \
  do {                            \
    statement;                    \
  } while (0)
#endif

/* The headers pm_http_layout lays out (http.c): all that Mongoose parses. */
#define PM_LAYOUT_HEADERS MG_MAX_HTTP_HEADERS

/* What Python receives as an event's data (the event table is in dispatch.c). */
#define PM_DATA_NONE 0    // nothing: the handler gets None
#define PM_DATA_NUMBER 1  // a number (byte count, CONNACK code, SNTP time)
#define PM_DATA_TEXT 2    // a NUL-terminated message (MG_EV_ERROR)
#define PM_DATA_HTTP 3    // a view of struct mg_http_message, checked by frame token
#define PM_DATA_MQTT 4    // a view of struct mg_mqtt_message, checked by frame token
#define PM_DATA_WS 5      // a WebSocket message: its payload, copied out at once
#define PM_DATA_OPEN 6    // the connection's first event: Python makes its Connection
#define PM_DATA_CLOSE 7   // its last: Python retires it

#define PM_EV_TIMER (-1)
#define PM_EV_FLUSH (-2)  // no event: only deliver the queued ones
// MG_EV_HTTP_MSG crosses as one of these, so that Python routes it with one
// comparison: alone, or (pm_hdrs_join) after its MG_EV_HTTP_HDRS, same message.
#define PM_EV_HTTP_MSG (-3)
#define PM_EV_HTTP_HDRS_MSG (-4)

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
#define PM_HAS_TLS_MBED (1u << 3)

const char *pm_mongoose_version(void) { return MG_VERSION; }

unsigned pm_build_features(void) {
  return (MG_TLS == MG_TLS_BUILTIN ? PM_HAS_TLS_BUILTIN : 0) |
         (MG_TLS == MG_TLS_MBED ? PM_HAS_TLS_MBED : 0) |
         (MG_ENABLE_IPV6 ? PM_HAS_IPV6 : 0) | (MG_ENABLE_EPOLL ? PM_HAS_EPOLL : 0);
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
// Unread input a connection may hold, WebSocket excepted (its limit is per message,
// pm_ws_too_big): Mongoose's default limit, which the build raises to let large
// WebSocket messages through.
#define PM_RECV_MAX ((size_t) 3 * 1024 * 1024)
#define PM_PAYLOADS_MAX (256 * 1024)  // deferred payload bytes before a crossing is forced
#define PM_QUEUE_HAS_PAYLOADS (1u << 16)  // added to pm_on_event's queued: see payloads
// A deferred MG_EV_WS_MSG is queued as (id, PM_QUEUE_WS_MSG + its flags, where its
// payload ends in payloads): Python makes the message with no bit operations.
#define PM_QUEUE_WS_MSG 256

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
  bool has_messages;  // a WebSocket message is queued (its payload may be empty)
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
  uint64_t next_deadline;     // the earliest connection timeout seen by the last
                              //   poll's MG_EV_POLL pass (0: none), for its wait
  struct pm_tls_sessions *tls_sessions;  // TLS clients' sessions, to resume (tls.c)
  bool http_closing;          // servers.c: each response from now on closes its connection
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

static void pm_tls_threading_init(void);  // tls.c

void pm_init(void) {
  pm_tls_threading_init();
  mg_log_set(MG_LL_NONE);  // Mongoose's log is off until Python turns it on.
  mg_log_set_fn(pm_log_char, NULL);
  pm_seed_clock();
}

struct mg_mgr *pm_mgr_new(uintptr_t owner, struct pm_frames *frames) {
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
  pm->mgr.userdata = (void *) owner;  // non-zero: NULL means disowned
  return &pm->mgr;
}

int pm_mgr_wait_fd(struct mg_mgr *mgr) {
#if MG_ENABLE_EPOLL
  return mgr->epoll_fd;
#else
  (void) mgr;
  return -1;
#endif
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
  pm_tls_sessions_free(pm->tls_sessions);
  free(pm);
}

/* Stops all calls into Python for this manager: used when it is freed from a
 * finalizer, where running Python handlers would be unsafe. */
void pm_mgr_disown(struct mg_mgr *mgr) { mgr->userdata = NULL; }

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

/* ---- per-connection state and the event handler ------------------------------ */

struct pm_deflate;

/* Where UTF-8 validation stopped in a fragmented text message (pm_utf8_feed). */
struct pm_utf8 {
  uint8_t need;    // continuation bytes still due
  uint8_t lo, hi;  // the range the next one must be in
};

/* What the shim keeps for each connection Python created, in c->fn_data.
 * Mongoose copies fn_data from a listener to each connection it accepts; on that
 * connection's MG_EV_OPEN the shim replaces the shared pointer by a copy of its own,
 * so every connection owns exactly one state, freed on its MG_EV_CLOSE. */
/* What an HTTP server accepts of a request, and how long it waits (httpd.c). 0 is
 * the default for the sizes and "never" for the timeouts. */
struct pm_http_limits {
  uint32_t max_head;         // bytes of request line and headers (431 beyond)
  uint32_t max_target;       // bytes of the request target (414 beyond)
  uint32_t header_timeout;   // ms for a request's head to arrive whole (408 after)
  uint32_t keepalive_timeout;  // ms a connection may wait idle for its next request
};

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
  bool ws_closed;            // WebSocket: the peer's close frame arrived; deliver no more
  size_t ws_send_cut;        // WebSocket, once failed: send.len after our close frame
  size_t ws_max;             // WebSocket: largest message accepted (0: the default)
  uint8_t ws_fragmented;     // WebSocket: opcode of a message arriving in fragments, or 0
  bool ws_joined;            // its last fragment came: the next MG_EV_WS_MSG is all of it
  struct pm_utf8 ws_utf8;    // a fragmented text message: its validation so far
  struct pm_deflate *ws_deflate;  // permessage-deflate, once agreed (deflate.c)
  bool ws_deflate_offered;   // WebSocket client: its handshake offered it
  bool ws_compressed;        // the message being received is compressed (RSV1)
  size_t max_body;           // HTTP server: largest request body (0: the default)
  size_t hdrs_over;          // HTTP server: MG_EV_HTTP_HDRS crosses only for a body
                             //   declared larger than this (0: for every request)
  bool http_continued;       // HTTP server: "100 Continue" sent for this request
  bool http_hdrs_joined;     // HTTP server: this request's MG_EV_HTTP_HDRS crosses with
                             //   its MG_EV_HTTP_MSG (pm_hdrs_join)
  bool http_close;           // HTTP server: close once this response is sent
  bool tls_no_resume;        // TLS client: neither resume a kept session nor keep one
  char *tls_server_name;     // TLS server: the name the client asked for (SNI), malloc'd
  bool http_head;            // HTTP server: this request is HEAD (no body in the response)
  bool http_refused;         // HTTP server: answered 413; dropping the body
  uint64_t http_discard;     // its bytes still to drop (httpd.c)
  uint64_t http_linger_until;  // and when to close at the latest
  struct pm_http_limits limits;  // HTTP server: RFC 9112 limits and timeouts (httpd.c)
  uint8_t http_phase;        // HTTP server: which timeout applies now (PM_HTTP_* in httpd.c)
  uint64_t http_since;       // and since when
  bool epollout;             // EPOLLOUT is registered for its socket (wait.c keeps it)
  uint64_t idle_timeout;     // close after this many ms without I/O (0: never)
  uint64_t last_io;          // when it last read or wrote (or opened)
};

static void pm_event_handler(struct mg_connection *c, int ev, void *ev_data);  // dispatch.c

/* The state pymongoose keeps for c, or NULL: not its connection, or an accepted one
 * before its MG_EV_OPEN (its fn_data is still the listener's, see struct pm_conn). */
static struct pm_conn *pm_own_state(const struct mg_connection *c) {
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  if (c->fn != pm_event_handler || st == NULL || st->id != c->id) return NULL;
  return st;
}
