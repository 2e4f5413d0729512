/* WebSocket: what reaches Python is valid (UTF-8 text, RFC 6455 8.1), and the
 * calls that send. */

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
