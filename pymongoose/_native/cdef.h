/* The C declarations Python may touch, read by build_mongoose.py as the cffi cdef.
 *
 * Only what Python uses is declared. Structs list the fields Python reads and end in
 * "...;" so the compiler fixes their layout. struct mg_connection has bitfields: they
 * are never declared here; the shim reads and writes them (pm_conn_*).
 * No variadic Mongoose function is declared: the shim wraps each one with fixed
 * arguments, so user data never becomes a format string.
 */

/* ---- mongoose.h: strings, buffers, addresses ---------------------------------- */

struct mg_str {
  char *buf;   // Pointer to the data (not necessarily NUL-terminated)
  size_t len;  // Number of bytes
};

struct mg_iobuf {
  unsigned char *buf;  // Heap-allocated data buffer
  size_t size;         // Allocated capacity
  size_t len;          // Number of bytes currently stored
  ...;
};

/* ---- mongoose.h: event manager and connections -------------------------------- */

struct mg_dns {
  const char *url;  // DNS server URL, e.g. "udp://8.8.8.8:53"
  ...;
};

struct mg_mgr {
  struct mg_dns dns4;  // IPv4 DNS server
  struct mg_dns dns6;  // IPv6 DNS server
  int dnstimeout;      // DNS resolve timeout in ms
  bool use_dns6;       // If true, prefer DNS6 for hostname resolution
  void *userdata;      // The owning pymongoose Manager's key (pm_mgr_new)
  ...;
};

struct mg_connection {
  struct mg_mgr *mgr;    // Manager that owns this connection
  unsigned long id;      // Unique, auto-incrementing connection ID
  struct mg_iobuf recv;  // Received data
  struct mg_iobuf send;  // Data to send
  ...;
};

static const int MG_EV_ERROR;
static const int MG_EV_OPEN;
static const int MG_EV_POLL;
static const int MG_EV_RESOLVE;
static const int MG_EV_CONNECT;
static const int MG_EV_ACCEPT;
static const int MG_EV_TLS_HS;
static const int MG_EV_READ;
static const int MG_EV_WRITE;
static const int MG_EV_CLOSE;
static const int MG_EV_HTTP_HDRS;
static const int MG_EV_HTTP_MSG;
static const int MG_EV_WS_OPEN;
static const int MG_EV_WS_MSG;
static const int MG_EV_WS_CTL;
static const int MG_EV_MQTT_CMD;
static const int MG_EV_MQTT_MSG;
static const int MG_EV_MQTT_OPEN;
static const int MG_EV_SNTP_TIME;
static const int MG_EV_WAKEUP;
static const int MG_EV_USER;

// MQTT 5 property value types (mongoose.h's enum), for programs that name them.
static const int MQTT_PROP_TYPE_BYTE;
static const int MQTT_PROP_TYPE_STRING;
static const int MQTT_PROP_TYPE_STRING_PAIR;
static const int MQTT_PROP_TYPE_BINARY_DATA;
static const int MQTT_PROP_TYPE_VARIABLE_INT;
static const int MQTT_PROP_TYPE_INT;
static const int MQTT_PROP_TYPE_SHORT;




/* ---- mongoose.h: logging and time --------------------------------------------- */

static const int MG_LL_NONE;
static const int MG_LL_ERROR;
static const int MG_LL_INFO;
static const int MG_LL_DEBUG;
static const int MG_LL_VERBOSE;
extern int mg_log_level;  // Current log level, one of MG_LL_*

uint64_t mg_millis(void);  // Monotonic milliseconds
uint64_t mg_now(void);     // Milliseconds since the epoch (seeded by the shim)

/* ---- mongoose.h: HTTP --------------------------------------------------------- */


struct mg_http_header {
  struct mg_str name;   // Header name, e.g. "Content-Type"
  struct mg_str value;  // Header value, e.g. "text/html"
};

struct mg_http_message {
  struct mg_str method, uri, query, proto;             // Request/response line
  struct mg_http_header headers[...];                   // MG_MAX_HTTP_HEADERS slots
  struct mg_str body;                                  // Request or response body
  struct mg_str head;                                  // Request line + headers
  struct mg_str message;                               // Head + body
  ...;
};

struct mg_http_serve_opts {
  const char *root_dir;       // Root directory for serving files
  const char *ssi_pattern;    // Server-Side Include pattern; NULL disables SSI
  const char *extra_headers;  // Extra response headers, "A: b\r\nC: d\r\n"
  const char *mime_types;     // Additional MIME types: "ext1=type1,ext2=type2"
  const char *page404;        // Path to a custom 404 page
  ...;
};

struct mg_http_part {
  struct mg_str name;      // Form field name
  struct mg_str filename;  // Original filename, empty for plain fields
  struct mg_str body;      // Part contents
};

void mg_http_serve_dir(struct mg_connection *, struct mg_http_message *hm,
                       const struct mg_http_serve_opts *);
void mg_http_serve_file(struct mg_connection *, struct mg_http_message *hm,
                        const char *path, const struct mg_http_serve_opts *);
struct mg_str *mg_http_get_header(struct mg_http_message *, const char *name);
struct mg_str mg_http_var(struct mg_str buf, struct mg_str name);
int mg_url_decode(const char *s, size_t n, char *to, size_t to_len, int form);
size_t mg_url_encode(const char *s, size_t n, char *buf, size_t len);
void mg_http_bauth(struct mg_connection *, const char *user, const char *pass);
struct mg_str mg_http_get_header_var(struct mg_str s, struct mg_str v);
size_t mg_http_next_multipart(struct mg_str, size_t, struct mg_http_part *);
int mg_http_status(const struct mg_http_message *hm);

/* ---- mongoose.h: WebSocket ---------------------------------------------------- */

#define WEBSOCKET_OP_CONTINUE ...
#define WEBSOCKET_OP_TEXT ...
#define WEBSOCKET_OP_BINARY ...
#define WEBSOCKET_OP_CLOSE ...
#define WEBSOCKET_OP_PING ...
#define WEBSOCKET_OP_PONG ...

struct mg_ws_message {
  struct mg_str data;  // Message payload
  uint8_t flags;       // FIN (bit 7) | opcode (bits 3:0)
  ...;
};


/* ---- mongoose.h: MQTT --------------------------------------------------------- */

// An MQTT 5 property: id (MQTT_PROP_*), and iv for integer types, val for
// string and binary ones, key and val for a user property.
struct mg_mqtt_prop {
  uint8_t id;
  uint32_t iv;
  struct mg_str key;
  struct mg_str val;
};

struct mg_mqtt_opts {
  struct mg_str user;       // CONNECT: username
  struct mg_str pass;       // CONNECT: password
  struct mg_str client_id;  // CONNECT: client ID; empty = auto-generate
  struct mg_str topic;      // CONNECT: will topic; PUBLISH/SUBSCRIBE: topic
  struct mg_str message;    // CONNECT: will payload; PUBLISH: payload
  uint8_t qos;              // QoS level: 0, 1, or 2
  uint8_t version;          // MQTT version: 4 (3.1.1) or 5
  uint16_t keepalive;       // CONNECT: keepalive interval in seconds
  uint16_t retransmit_id;   // PUBLISH: packet ID for retransmit
  bool retain;              // PUBLISH/CONNECT will: retain flag
  bool clean;               // CONNECT: clean session
  struct mg_mqtt_prop *props;       // MQTT 5: properties; NULL if none
  size_t num_props;
  struct mg_mqtt_prop *will_props;  // MQTT 5 CONNECT: will properties
  size_t num_will_props;
  ...;
};

struct mg_mqtt_message {
  struct mg_str topic;  // PUBLISH: message topic
  struct mg_str data;   // PUBLISH: message payload
  struct mg_str dgram;  // Complete raw MQTT packet
  uint16_t id;          // Packet ID
  uint8_t cmd;          // Packet type, one of MQTT_CMD_*
  uint8_t qos;          // QoS level
  uint8_t ack;          // CONNACK return code; 0 = success
  ...;
};

uint16_t mg_mqtt_pub(struct mg_connection *c, const struct mg_mqtt_opts *opts);
void mg_mqtt_sub(struct mg_connection *, const struct mg_mqtt_opts *opts);
void mg_mqtt_unsub(struct mg_connection *c, const struct mg_mqtt_opts *opts);
void mg_mqtt_ping(struct mg_connection *);
void mg_mqtt_pong(struct mg_connection *);
void mg_mqtt_disconnect(struct mg_connection *, const struct mg_mqtt_opts *);
// Iterate a received message's MQTT 5 properties: start at 0, pass the result
// back; 0 when done.
size_t mg_mqtt_next_prop(struct mg_mqtt_message *, struct mg_mqtt_prop *, size_t ofs);
// The value type (MQTT_PROP_TYPE_*) of a property id, or -1 for an unknown id.
int pm_mqtt_prop_type(int id);

/* ---- mongoose.h: SNTP and TLS ------------------------------------------------- */

void mg_sntp_request(struct mg_connection *c);

struct mg_tls_opts {
  struct mg_str ca;        // CA certificate, PEM or DER
  struct mg_str cert;      // Our certificate, PEM or DER
  struct mg_str key;       // Our private key, PEM or DER
  struct mg_str name;      // Server name for SNI + hostname verification
  bool skip_verification;  // Skip certificate and hostname verification
  ...;
};

void mg_tls_init(struct mg_connection *c, const struct mg_tls_opts *opts);
void mg_tls_free(struct mg_connection *);

/* ---- mongoose.h: JSON, URL and other helpers ---------------------------------- */

int mg_json_get(struct mg_str json, const char *path, int *toklen);
bool mg_json_get_num(struct mg_str json, const char *path, double *v);
bool mg_json_get_bool(struct mg_str json, const char *path, bool *v);
long mg_json_get_long(struct mg_str json, const char *path, long dflt);

unsigned short mg_url_port(const char *url);
bool mg_url_is_ssl(const char *url);
struct mg_str mg_url_host(const char *url);
struct mg_str mg_url_user(const char *url);
struct mg_str mg_url_pass(const char *url);
const char *mg_url_uri(const char *url);

bool mg_match(struct mg_str str, struct mg_str pattern, struct mg_str *caps);
bool mg_random(void *buf, size_t len);
uint32_t mg_crc32(uint32_t crc, const char *buf, size_t len);
size_t mg_base64_encode(const unsigned char *p, size_t n, char *buf, size_t);
size_t mg_base64_decode(const char *src, size_t n, char *dst, size_t);
void mg_sha256(uint8_t dst[32], uint8_t *data, size_t datasz);
char *mg_random_str(char *buf, size_t len);
void mg_hmac_sha256(uint8_t dst[32], uint8_t *key, size_t keysz, uint8_t *data,
                    size_t datasz);


/* ==== pymongoose's C (pymongoose/_native/*.c), unit by unit ================== */

/* ---- core.c: constants, frames, the manager -------------------------------- */

// Pseudo-events delivered to pm_on_event: a timer fired (id = the timer's id);
// nothing happened, but deferred events are queued; MG_EV_HTTP_MSG, alone or
// after its request's MG_EV_HTTP_HDRS (same message), which is to be delivered first.
#define PM_EV_TIMER ...
#define PM_EV_FLUSH ...
#define PM_EV_HTTP_MSG ...
#define PM_EV_HTTP_HDRS_MSG ...

// Protocols a listener or outbound connection speaks (pm_listen, pm_connect).
#define PM_PROTO_TCP ...
#define PM_PROTO_HTTP ...
#define PM_PROTO_MQTT ...
#define PM_PROTO_SNTP ...

// Bits of pm_conn_flags(): the connection's state flags, read in one call.
#define PM_IS_LISTENING ...
#define PM_IS_CLIENT ...
#define PM_IS_ACCEPTED ...
#define PM_IS_RESOLVING ...
#define PM_IS_CONNECTING ...
#define PM_IS_TLS ...
#define PM_IS_TLS_HS ...
#define PM_IS_UDP ...
#define PM_IS_WEBSOCKET ...
#define PM_IS_DRAINING ...
#define PM_IS_CLOSING ...
#define PM_IS_FULL ...
#define PM_IS_READABLE ...
#define PM_IS_WRITABLE ...
#define PM_IS_MQTT5 ...

// Frames of events being delivered to Python (owned by the Python Manager): a
// message view is valid while token[its frame's depth] still holds its frame token.
// queue holds deferred events (MG_EV_POLL, MG_EV_WRITE, MG_EV_READ after a protocol
// handler, small MG_EV_WS_MSG) as (id, ev, number) triples, handed to Python with
// the next crossing (a WebSocket message as (id, PM_QUEUE_WS_MSG + its flags, the
// end of its payload)). When queued has PM_QUEUE_HAS_PAYLOADS, the batch's WebSocket
// payloads are the first handed bytes of payloads, back to back, in queue order.
#define PM_MAX_FRAMES ...
#define PM_QUEUE_MAX ...
#define PM_QUEUE_HAS_PAYLOADS ...
#define PM_QUEUE_WS_MSG ...
struct pm_frames {
  unsigned depth;
  uint64_t *token;  // PM_MAX_FRAMES of them
  int64_t queue[...];
  char *payloads;
  size_t handed;
  int64_t *trace;    // tests: every event bound for Python, as (id, ev) pairs
  size_t trace_cap;  // in events
  size_t trace_len;
  ...;
};

// What this build of Mongoose is: its MG_VERSION and PM_HAS_* feature bits.
#define PM_HAS_TLS_BUILTIN ...
#define PM_HAS_IPV6 ...
#define PM_HAS_EPOLL ...
#define PM_HAS_TLS_MBED ...
const char *pm_mongoose_version(void);
unsigned pm_build_features(void);

void pm_init(void);
// owner: a non-zero key that pm_on_event passes back (Python's table of managers).
struct mg_mgr *pm_mgr_new(uintptr_t owner, struct pm_frames *frames);
// The id of the connection Mongoose made for its wakeup pipe.
unsigned long pm_mgr_wakeup_id(struct mg_mgr *mgr);
// A descriptor that turns readable whenever a poll would have work (the epoll set),
// for an event loop to watch (pymongoose.aio); -1 where there is none.
int pm_mgr_wait_fd(struct mg_mgr *mgr);
// For a loop watching that descriptor: the milliseconds (at most ms) until a poll is
// due for what it cannot show (output waiting, a timer, a connection to close).
int pm_mgr_due(struct mg_mgr *mgr, int ms);
// Where there is no such descriptor (the poll() build), for a loop that watches each
// socket itself: (fd, connection id, PM_WANT_* bits) triples in out, up to cap of
// them; returns how many sockets there are.
#define PM_WANT_READ ...
#define PM_WANT_WRITE ...
size_t pm_mgr_sockets(struct mg_mgr *mgr, int64_t *out, size_t cap);
void pm_mgr_free(struct mg_mgr *mgr);
void pm_mgr_disown(struct mg_mgr *mgr);

// The open connection with this id, or NULL once it has closed. The pointer may be
// used until control returns to Mongoose (the end of the current call or handler).
struct mg_connection *pm_conn(struct mg_mgr *mgr, unsigned long id);


/* ---- tls.c: TLS options ---------------------------------------------------- */

// The DER form of an ECDSA P-256 signature (r || s, 64 bytes) as TLS sends it;
// out needs 72 bytes. Exposed for tests of the TLS fix in vendor/mongoose_patches.py.
size_t pm_ecdsa_der(uint8_t *out, const uint8_t *sig);

// X25519 (RFC 7748) as mbed TLS's handshakes use it (x25519.c): 32-byte scalar,
// u and out; 0, 1 if out is all zeros, 2 if not built here. Exposed for tests.
int pm_x25519(uint8_t out[32], const uint8_t scalar[32], const uint8_t u[32]);
// The TLS library's text for an error number Mongoose logged ("key err 0x3d00").
void pm_tls_strerror(int code, char *buf, size_t len);
// Parse TLS options as mg_tls_init() would; false, with the reason in err, if bad.
bool pm_tls_check(struct mg_mgr *mgr, const struct mg_tls_opts *opts, bool client,
                  char *err, size_t err_len);

bool pm_conn_set_tls(struct mg_connection *c, const struct mg_tls_opts *opts);
// A TLS client: resume=false neither offers a kept session nor keeps its own.
void pm_conn_tls_resume(struct mg_connection *c, bool resume);
// ALPN protocols for c's TLS options, NUL-separated; false if it cannot have them.
bool pm_conn_tls_alpn(struct mg_connection *c, const char *list, size_t len);
// The protocol a finished handshake agreed on, or NULL.
const char *pm_tls_alpn_chosen(struct mg_connection *c);
// A server's certificate for clients asking for name (SNI); false if it does not load.
bool pm_conn_tls_sni(struct mg_connection *c, const char *name, size_t name_len, const char *cert,
                     size_t cert_len, const char *key, size_t key_len);
// The name a client asked a server connection for (SNI), or NULL.
const char *pm_tls_server_name(struct mg_connection *c);
// Start TLS on c now, with the options pm_conn_set_tls gave it.
void pm_tls_start(struct mg_connection *c);

/* ---- wait.c: the poll and the wakeup --------------------------------------- */

// One iteration of the event loop, waiting up to ms for I/O.
void pm_mgr_poll(struct mg_mgr *mgr, int ms);
// Wake a poll waiting in another thread.
bool pm_mgr_wake(struct mg_mgr *mgr);

/* ---- ws.c: WebSocket ------------------------------------------------------- */

// 1: queued; 0: the connection has closed (or mgr is NULL); -1: op is not a
// WebSocket opcode.
int pm_ws_send(struct mg_mgr *mgr, unsigned long id, const void *buf, size_t len,
               int op);
// max_message: the largest message accepted (close 1009 beyond); 0: 16 MiB.
// compression: agree to permessage-deflate if the client offers it.
void pm_ws_upgrade(struct mg_connection *c, struct mg_http_message *hm,
                   const char *extra_headers, size_t max_message, bool compression);

/* ---- servers.c: the responses of the app servers (pymongoose.servers) ------- */

// How the rest of a response's body is framed, as pm_response_start chose.
#define PM_BODY_COMPLETE ...
#define PM_BODY_RAW ...
#define PM_BODY_CHUNKED ...
#define PM_BODY_UNTIL_CLOSE ...
#define PM_BODY_NO_BODY ...
// Checks a response head before it is queued: 0 if it may be sent, -1 if a header
// is refused (a name that is not a token, CR, LF or NUL in a value, not pairs), -2
// if the status is not 100-999 or the reason holds anything but tabs, spaces and
// visible characters.
int pm_response_check(int status, const char *reason, size_t reason_len, const char *kv,
                      size_t kv_len, unsigned pairs);
// The head (status, reason or NULL for the standard one, the application's headers
// as "name\0value\0...", checked, plus Date and the framing it left out) and the
// body or its first piece. Returns a PM_BODY_* framing, -1 if the head is refused
// (nothing sent), -2 once closed.
int pm_response_start(struct mg_mgr *mgr, unsigned long id, int status, const char *reason,
                      size_t reason_len, const char *kv, size_t kv_len, unsigned pairs,
                      const char *body, size_t body_len, bool more, bool http10);
// A graceful stop: every response from now on says "connection: close" and closes.
void pm_http_closing(struct mg_mgr *mgr);
// A further piece of the body; `more` false ends the response. Returns the bytes
// waiting to be sent on the connection, or -1 once it has closed.
long pm_response_body(struct mg_mgr *mgr, unsigned long id, int framing, const char *body,
                      size_t body_len, bool more);
// Upgrade to WebSocket the request whose head is given (delivered earlier): 1 when
// upgraded, 0 once closed, -1 if it is not an upgrade request (answered 426).
int pm_ws_accept(struct mg_mgr *mgr, unsigned long id, const char *head, size_t head_len,
                 const char *extra_headers, size_t max_message, bool compression);

/* ---- dispatch.c: the event table and the entry points into Python ---------- */

// The event table (dispatch.c): what Python receives as each event's data.
#define PM_DATA_NONE ...
#define PM_DATA_NUMBER ...
#define PM_DATA_TEXT ...
#define PM_DATA_HTTP ...
#define PM_DATA_MQTT ...
#define PM_DATA_WS ...
#define PM_DATA_OPEN ...
#define PM_DATA_CLOSE ...
int pm_event_data_kind(int ev);

// Every event the shim forwards to Python: the Manager (its key, see pm_mgr_new); how many
// deferred events wait in its queue (deliver them first); the connection's id (or
// the timer's id); the event; its data, valid during this call: Mongoose's
// ev_data, except the connection for MG_EV_OPEN/CLOSE (which have none) and the
// payload for MG_EV_WS_MSG/CTL; and extra: the number that MG_EV_READ/WRITE/
// MQTT_OPEN/SNTP_TIME carry, (payload length << 8) | frame flags for WebSocket
// messages, the frame token that views of HTTP and MQTT messages check, or 0.
// Pointers cross as integers: on CPython a pointer argument costs an object that
// Python would make only for the events whose data it reads.
extern "Python" void pm_on_event(uintptr_t owner, unsigned queued, unsigned long id,
                                 int ev, uintptr_t ev_data, int64_t extra);
// One complete line of Mongoose's log output, without its line ending.
extern "Python" void pm_on_log(const char *line, size_t len);

/* ---- connections.c: opening and changing connections ----------------------- */

// Open a connection; return its id, or 0 on failure (the reason is logged). With
// tls (may be NULL), a listener starts TLS on each connection it accepts, a client
// once connected.
// reuse_port: SO_REUSEPORT, so that other processes may listen on the same port;
// backlog: the accept queue's length. fd >= 0: listen on this socket instead of
// opening one (it becomes the listener's, closed with it; on failure it is left
// open); url then only names the protocol.
unsigned long pm_listen(struct mg_mgr *mgr, const char *url, int proto,
                        uint32_t events, const struct mg_tls_opts *tls, bool reuse_port,
                        int backlog, long fd);
unsigned long pm_connect(struct mg_mgr *mgr, const char *url, int proto,
                         uint32_t events, const struct mg_tls_opts *tls);
unsigned long pm_ws_connect(struct mg_mgr *mgr, const char *url,
                            const char *extra_headers, size_t max_message,
                            bool compression, uint32_t events,
                            const struct mg_tls_opts *tls);
unsigned long pm_mqtt_connect(struct mg_mgr *mgr, const char *url,
                              const struct mg_mqtt_opts *opts, uint32_t events,
                              const struct mg_tls_opts *tls);

void pm_conn_set_idle_timeout(struct mg_connection *c, uint64_t ms);
void pm_conn_set_max_body(struct mg_connection *c, size_t max_body);
void pm_conn_set_http_limits(struct mg_connection *c, uint32_t max_head, uint32_t max_target,
                             uint32_t header_timeout_ms, uint32_t keepalive_timeout_ms);
// MG_EV_HTTP_HDRS only for a request body declared over `size` bytes (0: always).
void pm_conn_set_hdrs_over(struct mg_connection *c, size_t size);
// A server stopping gracefully waits for this connection: a request is arriving or
// being answered, or (between) none has since it was accepted or last answered.
bool pm_http_unfinished(struct mg_connection *c, bool between);
// After a handler read a request body itself: the HTTP parser takes the next request.
void pm_http_resume(struct mg_connection *c, bool response_pending);
// One chunk of a chunked response read from a file: bytes sent, 0 at its end,
// -1 once the connection has closed, -2 if the file cannot be read.
long pm_http_chunk_from_fd(struct mg_mgr *mgr, unsigned long id, int fd, uint64_t offset,
                           size_t len);
uint32_t pm_conn_events(const struct mg_connection *c);
void pm_conn_set_events(struct mg_connection *c, uint32_t events);
unsigned long pm_conn_parent(const struct mg_connection *c);
unsigned pm_conn_flags(const struct mg_connection *c);
void pm_conn_set_full(struct mg_connection *c, bool full);
void pm_conn_drain(struct mg_connection *c);
void pm_conn_close(struct mg_connection *c);
int pm_conn_addr(const struct mg_connection *c, bool remote, uint8_t ip[16],
                 bool *is_ip6);

// Sending, by connection id; each returns false, sending nothing, once it closed.
bool pm_send(struct mg_mgr *mgr, unsigned long id, const void *buf, size_t len);

void pm_error(struct mg_connection *c, const char *message);

/* ---- http.c: responses ----------------------------------------------------- */

// A complete response (or, with "Transfer-Encoding: chunked", its head and body as
// a first chunk). Headers as "name\0value\0..." (pairs of them; kv NULL: none),
// checked while copied. 1: queued; 0: the connection has closed (or mgr is NULL);
// PM_BAD_STATUS: status outside 100-999; -1: headers refused.
#define PM_BAD_STATUS ...
int pm_http_respond(struct mg_mgr *mgr, unsigned long id, int status, const char *kv,
                    size_t kv_len, unsigned pairs, const char *body, size_t body_len);
// A handler consumed a request's input in MG_EV_HTTP_HDRS: Mongoose's HTTP
// handler lets go of the connection, as it does when that happens at once.
void pm_http_detach(struct mg_mgr *mgr, unsigned long id);
bool pm_http_chunk(struct mg_mgr *mgr, unsigned long id, const char *buf,
                   size_t len);
bool pm_http_sse(struct mg_mgr *mgr, unsigned long id, const char *event,
                 size_t event_len, const char *data, size_t data_len);
// Where a parsed message's fields are in hm->head: (offset, length) of its method,
// URI, query, protocol, then each header's name and value (out: room for
// 2 * (4 + 2 * PM_LAYOUT_HEADERS)). Returns how many headers.
#define PM_LAYOUT_HEADERS ...
int pm_http_layout(const struct mg_http_message *hm, uint32_t *out);

/* ---- dns.c: the guarded resolver ------------------------------------------- */

// mg_resolve()/mg_resolve_cancel(), guarded against Mongoose's DNS client's flaws.
void pm_resolve(struct mg_connection *c, const char *url);
void pm_resolve_cancel(struct mg_connection *c);

/* ---- timers.c, utils.c, bench.c: timers by id, digests, measuring ------------ */

bool pm_timer_add(struct mg_mgr *mgr, uint64_t period_ms, bool repeat,
                  bool run_now, unsigned long id);
void pm_timer_cancel(struct mg_mgr *mgr, unsigned long id);

// One-shot MD5 and SHA-1 (Mongoose has them as init/update/final).
void pm_md5(const void *data, size_t len, uint8_t out[16]);
void pm_sha1(const void *data, size_t len, uint8_t out[20]);

// Delivers event ev to connection id n times (for benchmarks/); returns how many.
unsigned pm_bench_events(struct mg_mgr *mgr, unsigned long id, int ev,
                         void *ev_data, unsigned n);
