/* ---- servers.c: the responses of the app servers (pymongoose.servers) --------

Every byte the WSGI and ASGI servers write in answer to a request goes through
here. An application writes its own status, reason and headers, Content-Length
often among them, and may send its body in pieces. The server adds what the
application cannot know: Date, and the framing of a body whose length it did not
give (Content-Length for a body sent whole, chunks for one that streams, the
connection's close under HTTP/1.0). The status and reason are checked here, the
headers (as "name\0value\0...") as they are copied (pm_headers_check in http.c),
so a response can never be split. */

#define PM_BODY_COMPLETE 0     // the whole response is queued
#define PM_BODY_RAW 1          // the body follows as is (its length was given)
#define PM_BODY_CHUNKED 2      // the body follows in chunks
#define PM_BODY_UNTIL_CLOSE 3  // HTTP/1.0: the body ends when the connection closes
#define PM_BODY_NO_BODY 4      // HEAD, 1xx, 204, 304: body pieces are dropped

/* "date: <IMF-fixdate>\r\n" for the current second, made once a second per thread. */
static const char *pm_date_line(size_t *len) {
  static _Thread_local char line[48];
  static _Thread_local size_t line_len;
  static _Thread_local time_t made_at = -1;
  time_t now = time(NULL);
  if (now != made_at) {
    struct tm tm;
#ifdef _WIN32
    gmtime_s(&tm, &now);
#else
    gmtime_r(&now, &tm);
#endif
    line_len = strftime(line, sizeof(line), "date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    made_at = now;
  }
  *len = line_len;
  return line;
}

/* A status of three digits, and a reason (NULL: the standard one) as RFC 9112 4
 * has it: reason-phrase = *( HTAB / SP / VCHAR / obs-text ). */
static bool pm_status_ok(int status, const char *reason, size_t len) {
  size_t i;
  if (status < 100 || status > 999) return false;
  for (i = 0; reason != NULL && i < len; i++) {
    unsigned char ch = (unsigned char) reason[i];
    if (ch != '\t' && (ch < ' ' || ch == 127)) return false;
  }
  return true;
}

int pm_response_check(int status, const char *reason, size_t reason_len, const char *kv,
                      size_t kv_len, unsigned pairs) {
  unsigned flags;
  if (!pm_status_ok(status, reason, reason_len)) return -2;
  if (kv_len == 0) return pairs == 0 ? 0 : -1;
  return pm_headers_check(kv, kv_len, pairs, &flags) < 0 ? -1 : 0;
}

/* Ends a response: the parser may read the next request, or the connection
 * closes if this response must be its last. */
static void pm_response_complete(struct mg_connection *c, struct pm_conn *st, int framing) {
  c->is_resp = 0;
  if (framing == PM_BODY_UNTIL_CLOSE) c->is_draining = 1;
  if (st != NULL) pm_http_after(c, st);
}

#define PM_CLOSE_LINE "connection: close\r\n"

/* From now on every response the servers start on this manager closes its
 * connection once sent, saying so (a graceful stop). */
void pm_http_closing(struct mg_mgr *mgr) {
  ((struct pm_mgr *) mgr)->http_closing = true;
}

/* Queues the head of a response, with `body` (its whole body, or its first piece
 * when `more` follows); `reason` NULL means the standard one for `status`. Returns
 * how the rest of the body will be framed (a PM_BODY_* value; PM_BODY_COMPLETE
 * when nothing follows), -1 if the head is refused (nothing is sent), -2 once the
 * connection has closed. */
int pm_response_start(struct mg_mgr *mgr, unsigned long id, int status, const char *reason,
                      size_t reason_len, const char *kv, size_t kv_len, unsigned pairs,
                      const char *body, size_t body_len, bool more, bool http10) {
  struct mg_connection *c = pm_conn(mgr, id);
  struct pm_conn *st;
  const char *date;
  char length[48];
  size_t date_len, length_len = 0, head_len, start;
  unsigned flags = 0;
  long lines_len = kv_len > 0 ? pm_headers_check(kv, kv_len, pairs, &flags) : 0;
  bool head_only, no_body;
  int framing;
  char *p;
  bool closing;
  if (lines_len < 0 || (kv_len == 0 && pairs != 0)) return -1;
  if (!pm_status_ok(status, reason, reason_len)) return -1;
  if (c == NULL) return -2;
  // A server stopping gracefully: the client is told this response is the
  // connection's last, rather than finding it closed under its next request.
  closing = ((struct pm_mgr *) mgr)->http_closing && status >= 200 && !(flags & PM_CLOSES);
  if (closing) flags |= PM_CLOSES;
  st = (struct pm_conn *) c->fn_data;
  head_only = st != NULL && st->http_head;
  no_body = head_only || status < 200 || status == 204 || status == 304;
  if (flags & PM_IS_CHUNKED) {
    framing = PM_BODY_CHUNKED;  // the application chose chunks
  } else if (!more) {
    framing = PM_BODY_COMPLETE;
    if (!(flags & PM_HAS_LENGTH) && (head_only || !no_body)) {
      length_len = (size_t) mg_snprintf(length, sizeof(length), "content-length: %lu\r\n",
                                        (unsigned long) body_len);
    }
  } else if (flags & PM_HAS_LENGTH || no_body) {
    framing = PM_BODY_RAW;
  } else if (http10) {
    framing = PM_BODY_UNTIL_CLOSE;
  } else {
    framing = PM_BODY_CHUNKED;
    length_len = sizeof("transfer-encoding: chunked\r\n") - 1;
    memcpy(length, "transfer-encoding: chunked\r\n", length_len);
  }
  if (no_body && more) framing = PM_BODY_NO_BODY;
  if ((flags & PM_CLOSES) && st != NULL) st->http_close = true;
  date = pm_date_line(&date_len);
  if (reason == NULL) {
    reason = mg_http_status_code_str(status);
    reason_len = strlen(reason);
  }
  // "HTTP/1.x " NNN " " reason CRLF date length headers CRLF
  head_len = 9 + 3 + 1 + reason_len + 2 + date_len + length_len + (size_t) lines_len + 2 +
             (closing ? sizeof(PM_CLOSE_LINE) - 1 : 0);
  start = c->send.len;
  if (mg_iobuf_add(&c->send, start, NULL, head_len + body_len) == 0) {
    mg_error(c, "OOM");
    return -2;
  }
  p = (char *) c->send.buf + start;
  memcpy(p, http10 ? "HTTP/1.0 " : "HTTP/1.1 ", 9), p += 9;
  p += pm_decimal(p, (unsigned long) status);
  *p++ = ' ';
  memcpy(p, reason, reason_len), p += reason_len;
  memcpy(p, "\r\n", 2), p += 2;
  memcpy(p, date, date_len), p += date_len;
  memcpy(p, length, length_len), p += length_len;
  if (kv_len > 0) p = pm_headers_copy(p, kv, kv_len);
  if (closing) memcpy(p, PM_CLOSE_LINE, sizeof(PM_CLOSE_LINE) - 1), p += sizeof(PM_CLOSE_LINE) - 1;
  memcpy(p, "\r\n", 2), p += 2;
  c->send.len = (size_t) (p - (char *) c->send.buf);
  if (no_body || body_len == 0) {
    // nothing to send now
  } else if (framing == PM_BODY_CHUNKED) {
    mg_http_write_chunk(c, body, body_len);
  } else {
    memcpy(p, body, body_len), c->send.len += body_len;
  }
  if (framing == PM_BODY_COMPLETE) {
    pm_response_complete(c, st, framing);
  } else if (framing == PM_BODY_CHUNKED && !more) {
    mg_http_write_chunk(c, "", 0);  // the application sent chunked headers and one body
    pm_response_complete(c, st, framing);
    framing = PM_BODY_COMPLETE;
  }
  return framing;
}

/* Queues a further piece of a body framed as pm_response_start said; `more` false
 * ends the response. Returns how many bytes now wait to be sent on the connection
 * (for backpressure), or -1 once it has closed. */
long pm_response_body(struct mg_mgr *mgr, unsigned long id, int framing, const char *body,
                      size_t body_len, bool more) {
  struct mg_connection *c = pm_conn(mgr, id);
  if (c == NULL) return -1;
  if (framing == PM_BODY_CHUNKED) {
    if (body_len > 0) mg_http_write_chunk(c, body, body_len);
    if (!more) mg_http_write_chunk(c, "", 0);
  } else if (framing != PM_BODY_NO_BODY && body_len > 0 && !mg_send(c, body, body_len)) {
    mg_error(c, "OOM");
    return -1;
  }
  if (!more) pm_response_complete(c, (struct pm_conn *) c->fn_data, framing);
  return (long) c->send.len;
}

/* Accepts a WebSocket whose upgrade request was delivered earlier (an ASGI
 * application accepts when it likes): `head` is that request's head, kept by
 * Python, parsed again for mg_ws_upgrade; the subprotocol chosen, if any, is among
 * extra_headers. Returns 1 when upgraded, 0 once the
 * connection has closed, -1 if `head` is not an upgrade request (answered 426). */
int pm_ws_accept(struct mg_mgr *mgr, unsigned long id, const char *head, size_t head_len,
                 const char *extra_headers, size_t max_message, bool compression) {
  struct mg_connection *c = pm_conn(mgr, id);
  struct mg_http_message hm;
  size_t i;
  if (c == NULL) return 0;
  if (mg_http_parse(head, head_len, &hm) <= 0) return -1;
  // Mongoose would echo the client's Sec-WebSocket-Protocol list; the application
  // chose one (or none), which extra_headers carries. Hide the offer from it.
  for (i = 0; i < MG_MAX_HTTP_HEADERS && hm.headers[i].name.len > 0; i++) {
    if (mg_strcasecmp(hm.headers[i].name, mg_str("Sec-WebSocket-Protocol")) == 0) {
      hm.headers[i].name = mg_str("X-Offered-Protocols");
    }
  }
  pm_ws_upgrade(c, &hm, extra_headers, max_message, compression);
  return c->is_websocket ? 1 : -1;
}
