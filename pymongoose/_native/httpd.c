/* HTTP/1.1 server rules Mongoose leaves to its user, applied to accepted HTTP
 * connections before an event reaches Python:
 * - every request head is screened as RFC 9112 asks (pm_http_screen) before
 *   Mongoose's parser acts on it, and a refused one answered 400, 414, 431, 501
 *   or 505, then the connection closed (Mongoose would close without a word, or
 *   serve it);
 * - a head must arrive whole within the header-read timeout (408 and close), and
 *   a connection may wait idle for its next request only as long as the keep-alive
 *   timeout (pm_http_clock);
 * - a request body over the connection's limit (max_body) is answered
 *   413 Content Too Large, its bytes read and dropped, then the connection closed
 *   (a close while the client still sends would reset the connection, and the
 *   client would never read the 413);
 * - "Expect: 100-continue" is answered "100 Continue" once the headers are in
 *   (RFC 9110 10.1.1), or by the 413 alone;
 * - "Connection: close", and HTTP/1.0 without "Connection: keep-alive", close the
 *   connection once the response is sent, however late the handler sends it;
 * - the response to HEAD has no body (http.c leaves it out: RFC 9110 9.3.2). */

/* The largest request body accepted unless told otherwise: Mongoose's own limit
 * on a buffered request. */
#define PM_HTTP_MAX_BODY_DEFAULT ((size_t) 3 * 1024 * 1024)
/* The request line and headers, and the request target, accepted unless told
 * otherwise (struct pm_http_limits). Room for the head on top of the body. */
#define PM_HTTP_MAX_HEAD_DEFAULT (64u * 1024)
#define PM_HTTP_MAX_TARGET_DEFAULT (8u * 1024)
/* How long a refused body is read and dropped, at most, before closing. */
#define PM_HTTP_LINGER_MS 5000

static size_t pm_http_max_body(const struct pm_conn *st) {
  return st->max_body > 0 ? st->max_body : PM_HTTP_MAX_BODY_DEFAULT;
}

/* True if a header value (a comma-separated list, or NULL) holds `token`,
 * case-insensitively. */
static bool pm_has_token(const struct mg_str *value, const char *token) {
  struct mg_str list, item;
  if (value == NULL) return false;
  list = *value;
  while (mg_span(list, &item, &list, ',')) {
    if (mg_strcasecmp(pm_trim(item), mg_str(token)) == 0) return true;
  }
  return false;
}

#define PM_HTTP_UNKNOWN_LENGTH UINT64_MAX
#define PM_HTTP_HEAD_REST (UINT64_MAX - 1)  // the rest of a refused head, up to its blank line

/* Answers a request no handler will see, then closes: once `discard` more bytes are
 * read and dropped (PM_HTTP_UNKNOWN_LENGTH: up to a chunked body's end;
 * PM_HTTP_HEAD_REST: up to the head's blank line; 0: at once), or after
 * PM_HTTP_LINGER_MS. Closing while the client still sends would reset the
 * connection, and the client would never read why. */
static void pm_http_reject(struct mg_connection *c, struct pm_conn *st, int status, const char *why,
                           uint64_t discard) {
  MG_DEBUG(("%lu %d: %s", c->id, status, why));
  mg_printf(c,
            "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: text/plain; "
            "charset=utf-8\r\nContent-Length: %lu\r\n\r\n%s\n",
            status, mg_http_status_code_str(status), (unsigned long) strlen(why) + 1, why);
  c->recv.len = 0;
  c->pfn = NULL;  // nothing more is parsed: what follows is dropped
  st->http_refused = true;  // pm_http_check drops what arrives from now on
  st->http_discard = discard;
  st->http_linger_until = mg_millis() + PM_HTTP_LINGER_MS;
  if (discard == 0) c->is_draining = 1;
}

/* Answers 413 and drops the body: `remaining` more bytes of it, or up to a chunked
 * body's end (PM_HTTP_UNKNOWN_LENGTH). */
static void pm_http_refuse(struct mg_connection *c, struct pm_conn *st, uint64_t remaining) {
  char why[64];
  mg_snprintf(why, sizeof(why), "Content Too Large: the limit is %lu bytes", (unsigned long) pm_http_max_body(st));
  pm_http_reject(c, st, 413, why, remaining);
}

/* ---- RFC 9112, before Mongoose parses a request ------------------------------- */

/* Where an accepted HTTP connection stands; each phase has its own clock. */
#define PM_HTTP_FRESH 0  // accepted, nothing received: header-read timeout, then a quiet close
#define PM_HTTP_HEAD 1   // a head is arriving: header-read timeout, then 408
#define PM_HTTP_BUSY 2   // the head is in: its body, the handler, the response (no clock)
#define PM_HTTP_IDLE 3   // answered, waiting for the next request: keep-alive timeout

static uint32_t pm_or(uint32_t value, uint32_t fallback) {
  return value > 0 ? value : fallback;
}

/* The request target's length in a request line that ends at eol ("METHOD SP
 * target SP HTTP/x.y"), or the whole line's if it has no two spaces. */
static size_t pm_target_len(const char *line, const char *eol) {
  const char *first = (const char *) memchr(line, ' ', (size_t) (eol - line)), *last = eol;
  while (last > line && last[-1] != ' ') last--;  // just past the last space
  if (first == NULL || last <= first + 1) return (size_t) (eol - line);
  return (size_t) ((last - 1) - (first + 1));
}

/* Whether c may appear in a reg-name or an IP literal (RFC 3986: unreserved and
 * sub-delims; ASCII only, whatever the locale). */
static bool pm_host_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr("-._~!$&'()*+,;=", c) != NULL);
}

static bool pm_hex_digit(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 9112 3.2: a Host field value is uri-host [ ":" port ] (RFC 3986), or empty.
 * uri-host is an IP literal in brackets, or a reg-name (which an IPv4 address is). */
static bool pm_host_valid(struct mg_str v) {
  const unsigned char *s = (const unsigned char *) v.buf;
  size_t i = 0, n = v.len;
  if (n > 0 && s[0] == '[') {  // an IPv6 address (hex digits, colons, dots), or "v" IPvFuture
    bool future = n > 1 && (s[1] == 'v' || s[1] == 'V'), colon = false;
    for (i = 1; i < n && s[i] != ']'; i++) {
      if (s[i] == ':') {
        colon = true;
      } else if (future ? !pm_host_char(s[i]) : !(pm_hex_digit(s[i]) || s[i] == '.')) {
        return false;
      }
    }
    if (i >= n || !(future || colon)) return false;  // unclosed, or not IPv6 (an IPv4 address, say)
    i++;
  } else {
    for (; i < n && s[i] != ':'; i++) {
      if (s[i] == '%') {  // pct-encoded
        if (i + 2 >= n || !pm_hex_digit(s[i + 1]) || !pm_hex_digit(s[i + 2])) return false;
        i += 2;
      } else if (!pm_host_char(s[i])) {
        return false;
      }
    }
  }
  if (i < n && s[i++] != ':') return false;  // after an IP literal: the port, or nothing
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

/* Why a complete request head breaks a rule Mongoose's parser does not enforce,
 * as an HTTP status (0 when it breaks none); *why says which rule. */
static int pm_http_rules(const struct pm_http_limits *limits, const char *buf, int n,
                         struct mg_http_message *hm, const char **why) {
  const char *target_end = hm->query.len > 0 ? hm->query.buf + hm->query.len : hm->uri.buf + hm->uri.len;
  const char *p = buf, *end = buf + n;
  size_t lines = 0, hosts = 0, i;
  struct mg_str *te, list, item, last = {NULL, 0};
  size_t codings = 0;
  if ((size_t) n > pm_or(limits->max_head, PM_HTTP_MAX_HEAD_DEFAULT)) {
    return *why = "the request head is over the limit", 431;
  }
  if ((size_t) (target_end - hm->uri.buf) > pm_or(limits->max_target, PM_HTTP_MAX_TARGET_DEFAULT)) {
    return *why = "the request target is over the limit", 414;
  }
  if (hm->proto.len != 8 || (hm->method.len >= 5 && mg_ncasecmp(hm->method.buf, "HTTP/", 5) == 0)) {
    return *why = "malformed request line", 400;  // a response's status line, say
  }
  if (hm->proto.buf[5] != '1') return *why = "only HTTP/1.x is served here", 505;
  while ((p = (const char *) memchr(p, '\n', (size_t) (end - p))) != NULL) p++, lines++;
  if (lines > MG_MAX_HTTP_HEADERS + 2) {  // the request line and the empty line
    return *why = "too many header fields", 431;
  }
  for (i = 0; i < MG_MAX_HTTP_HEADERS && hm->headers[i].name.len > 0; i++) {
    if (mg_strcasecmp(hm->headers[i].name, mg_str("Host")) == 0) hosts++;
  }
  if (hosts > 1) return *why = "more than one Host header field", 400;
  if (hosts == 0 && mg_strcasecmp(hm->proto, mg_str("HTTP/1.1")) == 0) {
    return *why = "an HTTP/1.1 request needs a Host header field", 400;
  }
  if (hosts == 1 && !pm_host_valid(*mg_http_get_header(hm, "Host"))) {
    return *why = "an invalid Host header field", 400;
  }
  if ((te = mg_http_get_header(hm, "Transfer-Encoding")) == NULL) return 0;
  if (hm->proto.buf[7] == '0') return *why = "Transfer-Encoding in an HTTP/1.0 request", 400;
  list = *te;
  while (mg_span(list, &item, &list, ',')) {
    item = pm_trim(item);
    if (item.len > 0) last = item, codings++;
  }
  if (last.len == 0 || mg_strcasecmp(last, mg_str("chunked")) != 0) {
    return *why = "the final transfer coding is not chunked", 400;
  }
  if (codings > 1) return *why = "no transfer coding other than chunked is implemented", 501;
  return 0;
}

/* Called by Mongoose's HTTP parser (a build patch) with each request it is about
 * to act on, in buf (len bytes, n what mg_http_parse returned: the head's length,
 * 0 while incomplete, -1 if malformed). Returns false when it answered the request
 * itself (the parser must stop: the connection is closing). */
bool pm_http_screen(struct mg_connection *c, const char *buf, size_t len, int n,
                    struct mg_http_message *hm) {
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  const char *why = "malformed request";
  int status = 400;
  if (st == NULL) return true;
  if (n == 0) {  // still arriving: only its size can break a rule yet
    const char *eol = (const char *) memchr(buf, '\n', len);
    uint32_t max_target = pm_or(st->limits.max_target, PM_HTTP_MAX_TARGET_DEFAULT);
    if (st->http_phase != PM_HTTP_HEAD) {  // its first bytes (a fresh connection's clock
      if (st->http_phase != PM_HTTP_FRESH) st->http_since = mg_millis();  // runs already)
      st->http_phase = PM_HTTP_HEAD;
    }
    if (eol == NULL ? len > (size_t) max_target + 32 : pm_target_len(buf, eol) > max_target) {
      why = "the request target is over the limit", status = 414;
    } else if (len > pm_or(st->limits.max_head, PM_HTTP_MAX_HEAD_DEFAULT)) {
      why = "the request head is over the limit", status = 431;
    } else {
      return true;
    }
  } else if (n > 0) {
    st->http_phase = PM_HTTP_BUSY;
    if ((status = pm_http_rules(&st->limits, buf, n, hm, &why)) == 0) return true;
  }
  pm_http_reject(c, st, status, why, n == 0 ? PM_HTTP_HEAD_REST : 0);
  return false;
}

/* On each MG_EV_POLL of an accepted HTTP connection: the header-read and keep-alive
 * timeouts. Returns when the connection's clock runs out (0: no clock runs). */
static uint64_t pm_http_clock(struct mg_connection *c, struct pm_conn *st) {
  uint64_t now, limit;
  if (c->pfn != http_cb || c->is_draining || c->is_closing) return 0;
  now = mg_millis();
  if (st->http_phase == PM_HTTP_BUSY) {
    if (c->is_resp || c->recv.len > 0 || c->send.len > 0) return 0;
    st->http_phase = PM_HTTP_IDLE;  // answered and sent: the keep-alive clock starts
    st->http_since = now;
  }
  limit = st->http_phase == PM_HTTP_IDLE ? st->limits.keepalive_timeout : st->limits.header_timeout;
  if (limit == 0) return 0;
  if (now - st->http_since < limit) return st->http_since + limit;
  if (st->http_phase == PM_HTTP_HEAD && c->recv.len > 0) {
    pm_http_reject(c, st, 408, "the request head did not arrive in time", 0);
  } else {
    c->is_draining = 1;  // nothing was asked: close without a word
  }
  return 0;
}

/* Returns false for an event that must not be delivered. */
static bool pm_http_check(struct mg_connection *c, struct pm_conn *st, int ev, void *ev_data) {
  const struct mg_http_message *hm = (const struct mg_http_message *) ev_data;
  if (!c->is_accepted) return true;
  if (st->http_refused) {
    if (ev == MG_EV_READ) {
      size_t n = c->recv.len;
      bool ended = st->http_discard == PM_HTTP_UNKNOWN_LENGTH
                       ? n >= 5 && memcmp(c->recv.buf + n - 5, "0\r\n\r\n", 5) == 0
                   : st->http_discard == PM_HTTP_HEAD_REST
                       ? n >= 4 && memcmp(c->recv.buf + n - 4, "\r\n\r\n", 4) == 0
                       : n >= st->http_discard;
      if (!ended && st->http_discard < PM_HTTP_HEAD_REST) st->http_discard -= n;
      c->recv.len = 0;
      if (ended) c->is_draining = 1;
    } else if (ev == MG_EV_POLL && mg_millis() >= st->http_linger_until) {
      c->is_draining = 1;
    }
    return ev != MG_EV_READ;
  }
  if (c->pfn != http_cb) return true;  // a WebSocket now, or the handler reads the body itself
  if (ev == MG_EV_HTTP_HDRS) {
    struct mg_str *length = mg_http_get_header((struct mg_http_message *) hm, "Content-Length");
    size_t received = (size_t) ((char *) c->recv.buf + c->recv.len - hm->body.buf);
    uint64_t declared = 0;
    if (length != NULL && mg_str_to_num(*length, 10, &declared, sizeof(declared)) &&
        declared > pm_http_max_body(st)) {
      pm_http_refuse(c, st, declared > received ? declared - received : 0);
      return false;
    }
    if (!st->http_continued && received < declared &&
        pm_has_token(mg_http_get_header((struct mg_http_message *) hm, "Expect"), "100-continue") &&
        mg_strcasecmp(hm->proto, mg_str("HTTP/1.1")) == 0) {
      mg_printf(c, "HTTP/1.1 100 Continue\r\n\r\n");
      st->http_continued = true;
    }
    if (st->hdrs_over > 0 && (declared <= st->hdrs_over ||
                              mg_http_get_header((struct mg_http_message *) hm, "Transfer-Encoding") != NULL)) {
      return false;  // nobody streams this body: MG_EV_HTTP_MSG will bring it whole
    }
  } else if (ev == MG_EV_READ &&
             c->recv.len > pm_http_max_body(st) + pm_or(st->limits.max_head, PM_HTTP_MAX_HEAD_DEFAULT)) {
    pm_http_refuse(c, st, PM_HTTP_UNKNOWN_LENGTH);  // a chunked body
    return false;
  } else if (ev == MG_EV_HTTP_MSG) {
    const struct mg_str *connection = mg_http_get_header((struct mg_http_message *) hm, "Connection");
    bool http10 = mg_strcasecmp(hm->proto, mg_str("HTTP/1.0")) == 0;
    st->http_continued = false;
    st->http_head = mg_strcasecmp(hm->method, mg_str("HEAD")) == 0;
    st->http_close = pm_has_token(connection, "close") ||
                     (http10 && !pm_has_token(connection, "keep-alive"));
  }
  return true;
}

/* Gives a connection whose handler took the request body over (it consumed the
 * buffer on MG_EV_HTTP_HDRS, so Mongoose detached its parser) back to the parser
 * once that body is read: what follows is the next request. While the response is
 * still being made (response_pending), the parser waits for it before reading on. */
void pm_http_resume(struct mg_connection *c, bool response_pending) {
  if (!c->is_accepted || c->is_websocket) return;
  c->pfn = http_cb;
  c->pfn_data = NULL;
  c->is_resp = response_pending;
}

/* After the event was handled: once the response to a request that asked for it is
 * complete, close (whenever the handler sent it: now, from a timer, later). */
static void pm_http_after(struct mg_connection *c, struct pm_conn *st) {
  if (st->http_close && !c->is_resp && c->is_accepted) {
    c->is_draining = 1;
    st->http_close = false;
  }
}

/* Whether a server stopping gracefully should wait for this accepted HTTP
 * connection and answer it (with "connection: close"): a request is arriving or
 * being answered, or (with `between`) none is: the connection was accepted, or its
 * last response sent, and the client's next request may be on its way (the stop
 * came between a connect, or a response, and the request that follows). */
bool pm_http_unfinished(struct mg_connection *c, bool between) {
  const struct pm_conn *st = pm_own_state(c);
  if (st == NULL || !c->is_accepted || c->is_websocket || c->is_closing || c->is_draining) return false;
  return st->http_phase == PM_HTTP_HEAD || st->http_phase == PM_HTTP_BUSY ||
         (between && (st->http_phase == PM_HTTP_FRESH || st->http_phase == PM_HTTP_IDLE));
}
