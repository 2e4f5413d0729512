/* Opening connections (listen, connect, by protocol) and reading or changing one:
 * flags, addresses, events, idle timeout, raw sends. */

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

/* Read by Mongoose's mg_open_listener (patches listen-reuse-port, listen-backlog,
 * listen-adopt-fd): set only around one pm_listen call on this thread. */
_Thread_local bool pm_reuse_port;
_Thread_local int pm_listen_backlog = 128;
static _Thread_local long pm_listen_fd = -1;

/* Called by mg_open_listener first: 1 when the descriptor pm_listen was given is
 * now c's, 0 when it cannot be (logged, left open: it is still the caller's), -1
 * when there is none and Mongoose opens a socket itself. */
int pm_open_listener(struct mg_connection *c) {
  long fd = pm_listen_fd;
  if (fd < 0) return -1;
#if defined(_WIN32)
  (void) c;
  MG_ERROR(("listen on a descriptor: not on Windows"));
  return 0;
#else
  {
    int type = 0, listening = 0;
    socklen_t len = sizeof(type);
    if (getsockopt((int) fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
      MG_ERROR(("getsockopt: %d", MG_SOCK_ERR(-1)));
      return 0;
    }
    if (type != SOCK_STREAM) {
      MG_ERROR(("not a stream socket"));
      return 0;
    }
    len = sizeof(listening);
    // A socket bound but not yet listening (as some supervisors pass them) is
    // made to listen; one already listening keeps its own queue length.
    if (getsockopt((int) fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
        (!listening && listen((int) fd, pm_listen_backlog) != 0)) {
      MG_ERROR(("listen: %d", MG_SOCK_ERR(-1)));
      return 0;
    }
    setlocaddr((MG_SOCKET_TYPE) fd, &c->loc);
    mg_set_non_blocking_mode((MG_SOCKET_TYPE) fd);
    c->fd = S2PTR(fd);
    MG_EPOLL_ADD(c);
    return 1;
  }
#endif
}

unsigned long pm_listen(struct mg_mgr *mgr, const char *url, int proto,
                        uint32_t events, const struct mg_tls_opts *tls, bool reuse_port,
                        int backlog, long fd) {
  pm_opener open = proto == PM_PROTO_HTTP   ? mg_http_listen
                   : proto == PM_PROTO_MQTT ? mg_mqtt_listen
                                            : mg_listen;
  unsigned long id;
  pm_reuse_port = reuse_port;
  pm_listen_backlog = backlog;
  pm_listen_fd = fd;
  id = pm_open(open, mgr, url, events, tls);
  pm_reuse_port = false;
  pm_listen_fd = -1;
  return id;
}

unsigned long pm_connect(struct mg_mgr *mgr, const char *url, int proto,
                         uint32_t events, const struct mg_tls_opts *tls) {
  pm_opener open = proto == PM_PROTO_HTTP   ? mg_http_connect
                   : proto == PM_PROTO_SNTP ? mg_sntp_connect
                                            : mg_connect;
  return pm_open(open, mgr, url, events, tls);
}

unsigned long pm_ws_connect(struct mg_mgr *mgr, const char *url,
                            const char *extra_headers, size_t max_message,
                            bool compression, uint32_t events,
                            const struct mg_tls_opts *tls) {
  struct pm_conn *st = pm_new_state(events, tls);
  struct mg_connection *c = NULL;
  if (extra_headers == NULL) extra_headers = "";
  if (st != NULL) {
    st->ws_max = max_message;
    // Offered unless the caller's own headers make an offer (then theirs stands,
    // and a response agreeing to anything fails: this side cannot speak it).
    st->ws_deflate_offered =
        compression && !pm_has_header_line(extra_headers, "Sec-WebSocket-Extensions");
    c = mg_ws_connect(mgr, url, pm_event_handler, st, "%s%s",
                      st->ws_deflate_offered ? PM_DEFLATE_OFFER : "", extra_headers);
  }
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

/* The largest request body an HTTP listener (and what it accepts from now on)
 * takes; larger ones are answered 413 (httpd.c). 0: the default, 3 MiB. */
void pm_conn_set_max_body(struct mg_connection *c, size_t max_body) {
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  if (st != NULL) st->max_body = max_body;
}

/* What an HTTP listener (and what it accepts from now on) takes of a request head,
 * and how long it waits for one (httpd.c); 0: the default size, or no timeout. */
void pm_conn_set_http_limits(struct mg_connection *c, uint32_t max_head, uint32_t max_target,
                             uint32_t header_timeout_ms, uint32_t keepalive_timeout_ms) {
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  if (st != NULL) {
    st->limits.max_head = max_head;
    st->limits.max_target = max_target;
    st->limits.header_timeout = header_timeout_ms;
    st->limits.keepalive_timeout = keepalive_timeout_ms;
  }
}

/* An HTTP listener (and what it accepts from now on) delivers MG_EV_HTTP_HDRS only
 * for a request whose Content-Length is over `size` bytes, with no
 * Transfer-Encoding: the one a handler may want to stream (pymongoose.wsgi and
 * asgi). Every other request crosses into Python once, with MG_EV_HTTP_MSG. */
void pm_conn_set_hdrs_over(struct mg_connection *c, size_t size) {
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  if (st != NULL) st->hdrs_over = size;
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


void pm_error(struct mg_connection *c, const char *message) {
  mg_error(c, "%s", message);
}
