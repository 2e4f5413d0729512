/* HTTP/1.1 server rules Mongoose leaves to its user, applied to accepted HTTP
 * connections before an event reaches Python:
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
/* Room for the request line and headers on top of the body. */
#define PM_HTTP_HEAD_MAX ((size_t) 64 * 1024)
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

/* Answers 413 and starts dropping the body: `remaining` more bytes of it, or, when
 * PM_HTTP_UNKNOWN_LENGTH (chunked), up to the chunked body's end; closes once it is
 * all read, or after PM_HTTP_LINGER_MS. */
static void pm_http_refuse(struct mg_connection *c, struct pm_conn *st, uint64_t remaining) {
  mg_http_reply(c, 413, "Connection: close\r\n", "Content Too Large: the limit is %lu bytes\n",
                (unsigned long) pm_http_max_body(st));
  c->recv.len = 0;
  c->pfn = NULL;  // no more parsing: what follows is the refused body
  st->http_refused = true;
  st->http_discard = remaining;
  st->http_linger_until = mg_millis() + PM_HTTP_LINGER_MS;
  if (remaining == 0) c->is_draining = 1;
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
                       : n >= st->http_discard;
      if (!ended && st->http_discard != PM_HTTP_UNKNOWN_LENGTH) st->http_discard -= n;
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
  } else if (ev == MG_EV_READ && c->recv.len > pm_http_max_body(st) + PM_HTTP_HEAD_MAX) {
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
