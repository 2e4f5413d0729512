/* ---- HTTP responses: headers checked in the pass that copies them -------------- */

#define PM_DEFAULT_CONTENT_TYPE "Content-Type: text/plain; charset=utf-8\r\n"
#define PM_HAS_CONTENT_TYPE 1u
#define PM_IS_CHUNKED 2u
#define PM_IS_HEAD 4u
#define PM_HAS_LENGTH 8u
#define PM_CLOSES 16u
#define PM_BAD_STATUS (-2)  // pm_http_respond: a status outside 100-999

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
 * more than 2 * pairs). Sets PM_HAS_CONTENT_TYPE, PM_IS_CHUNKED, PM_HAS_LENGTH
 * (Content-Length) and PM_CLOSES (Connection: close) in *flags.
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
    } else if (pm_name_is(kv + name_start, name_len, "Content-Length")) {
      *flags |= PM_HAS_LENGTH;
    } else if (pm_name_is(kv + name_start, name_len, "Connection") &&
               pm_contains_nocase(kv + start, i - start, "close")) {
      *flags |= PM_CLOSES;
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
 * The answer to a HEAD request has the head alone (with the body's length).
 *
 * Returns 1 when queued; sending nothing, 0 when the connection has closed (or mgr
 * is NULL: a closed manager), PM_BAD_STATUS for a status outside 100-999, -1 when
 * the headers are refused. */
int pm_http_respond(struct mg_mgr *mgr, unsigned long id, int status, const char *kv,
                    size_t kv_len, unsigned pairs, const char *body, size_t body_len) {
  struct mg_connection *c = mgr == NULL ? NULL : pm_conn(mgr, id);
  const struct pm_conn *st;
  const char *reason;
  size_t reason_len, head_len, start, lines_len = 0, default_len = 0;
  unsigned flags = 0;
  char *p;
  if (status < 100 || status > 999) return PM_BAD_STATUS;
  if (kv != NULL) {
    long n = pm_headers_check(kv, kv_len, pairs, &flags);
    if (n < 0) return -1;
    lines_len = (size_t) n;
  }
  if (c == NULL) return 0;
  if ((st = (const struct pm_conn *) c->fn_data) != NULL && st->http_head) {
    body = NULL, flags |= PM_IS_HEAD;  // Content-Length still says what GET would send
  }
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
  if (!(flags & PM_IS_CHUNKED) || (flags & PM_IS_HEAD)) {
    if (body != NULL) memcpy(p, body, body_len), c->send.len += body_len;
    c->is_resp = 0;  // the response is complete: Mongoose may parse the next request
  } else if (body_len > 0) {
    mg_http_write_chunk(c, body, body_len);  // the empty chunk will end the response
  }
  return 1;
}

void pm_http_detach(struct mg_mgr *mgr, unsigned long id) {
  struct mg_connection *c = pm_conn(mgr, id);
  if (c != NULL) c->pfn = NULL;  // http_cb returns at once (patch http-detached-in-msg)
}

/* True if this connection answers HEAD: its response's chunks are not sent. */
static bool pm_answers_head(const struct mg_connection *c) {
  const struct pm_conn *st = (const struct pm_conn *) c->fn_data;
  return st != NULL && st->http_head;
}

bool pm_http_chunk(struct mg_mgr *mgr, unsigned long id, const char *buf,
                   size_t len) {
  struct mg_connection *c = pm_conn(mgr, id);
  if (c == NULL) return false;
  if (!pm_answers_head(c)) mg_http_write_chunk(c, buf, len);
  if (len == 0) c->is_resp = 0;  // the last chunk
  return true;
}

/* pread(), which Windows lacks: a read at an offset through the file's handle. */
#ifdef _WIN32
#include <io.h>
static long pm_pread(int fd, void *buf, size_t len, uint64_t offset) {
  HANDLE file = (HANDLE) _get_osfhandle(fd);
  OVERLAPPED at;
  DWORD got = 0;
  memset(&at, 0, sizeof(at));
  at.Offset = (DWORD) offset;
  at.OffsetHigh = (DWORD) (offset >> 32);
  if (file == INVALID_HANDLE_VALUE) return -1;
  if (!ReadFile(file, buf, (DWORD) len, &got, &at)) return GetLastError() == ERROR_HANDLE_EOF ? 0 : -1;
  return (long) got;
}
#else
static long pm_pread(int fd, void *buf, size_t len, uint64_t offset) {
  return (long) pread(fd, buf, len, (off_t) offset);
}
#endif

/* Sends len bytes of file descriptor fd from offset as one chunk of a chunked
 * response, read straight into the send buffer (the bytes never pass through
 * Python: WSGI's wsgi.file_wrapper). Returns the bytes sent (0 at the end of the
 * file), -1 once the connection has closed, -2 if the file cannot be read. */
long pm_http_chunk_from_fd(struct mg_mgr *mgr, unsigned long id, int fd, uint64_t offset,
                           size_t len) {
  struct mg_connection *c = pm_conn(mgr, id);
  size_t start;
  long n;
  if (c == NULL) return -1;
  if (pm_answers_head(c) || len == 0) return 0;
  start = c->send.len;
  // "%08lx\r\n" (a chunk size with leading zeros, as Mongoose writes it), data, "\r\n"
  if (mg_iobuf_add(&c->send, start, NULL, 10 + len + 2) == 0) {
    mg_error(c, "OOM");
    return -1;
  }
  PM_WITHOUT_GIL(n = pm_pread(fd, c->send.buf + start + 10, len, offset));  // a slow disk
  if (n <= 0) {
    c->send.len = start;
    return n == 0 ? 0 : -2;
  }
  mg_snprintf((char *) c->send.buf + start, 9, "%08lx", (unsigned long) n);
  memcpy(c->send.buf + start + 8, "\r\n", 2);
  memcpy(c->send.buf + start + 10 + (size_t) n, "\r\n", 2);
  c->send.len = start + 10 + (size_t) n + 2;
  return (long) n;
}

/* One Server-Sent Event, as a chunk of a chunked response. */
bool pm_http_sse(struct mg_mgr *mgr, unsigned long id, const char *event,
                 size_t event_len, const char *data, size_t data_len) {
  struct mg_connection *c = pm_conn(mgr, id);
  size_t len = 7 + event_len + 7 + data_len + 2;  // "event: " E "\ndata: " D "\n\n"
  if (c == NULL) return false;
  if (pm_answers_head(c)) return true;
  mg_printf(c, "%lx\r\nevent: %.*s\ndata: %.*s\n\n\r\n", (unsigned long) len,
            (int) event_len, event, (int) data_len, data);
  return true;
}

/* ---- reading a parsed message (messages.py) ------------------------------------ */

/* Writes where s is in hm's head as (offset, length); empty if it is not inside. */
static void pm_span(const struct mg_http_message *hm, const struct mg_str *s, uint32_t *out) {
  const char *head = hm->head.buf;
  bool inside = s->len > 0 && head != NULL && s->buf >= head && s->len <= hm->head.len &&
                (size_t) (s->buf - head) <= hm->head.len - s->len;
  out[0] = inside ? (uint32_t) (s->buf - head) : 0;
  out[1] = inside ? (uint32_t) s->len : 0;
}

/* Where a message's fields are in its head, for Python to slice one copy of the
 * head instead of copying each field through cffi: (offset, length) of the method,
 * URI, query and protocol, then of each header's name and value. Returns the
 * number of headers. */
int pm_http_layout(const struct mg_http_message *hm, uint32_t *out) {
  int n;
  pm_span(hm, &hm->method, out);
  pm_span(hm, &hm->uri, out + 2);
  pm_span(hm, &hm->query, out + 4);
  pm_span(hm, &hm->proto, out + 6);
  for (n = 0; n < PM_LAYOUT_HEADERS && hm->headers[n].name.len > 0; n++) {
    pm_span(hm, &hm->headers[n].name, out + 8 + 4 * n);
    pm_span(hm, &hm->headers[n].value, out + 10 + 4 * n);
  }
  return n;
}
