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
 * and reason, close once it is sent, and deliver nothing more from this peer.
 * Whatever Mongoose queues after it (the echo of a bad close frame, a pong) is
 * cut off at the end of the read (pm_ws_check), so the close frame is the last. */
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
  st->ws_send_cut = c->send.len;
}

/* Status codes a close frame may carry (RFC 6455 7.4.1, 7.4.2; 1004-1006 and
 * 1015 are reserved for reports, never sent). */
static bool pm_ws_close_code_valid(unsigned code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}

/* Why a control frame breaks RFC 6455 5.5, 7.1.5 and 7.4 (NULL: it does not), and
 * the close code to fail with. */
static const char *pm_ws_control_fault(const struct mg_ws_message *wm, uint16_t *code) {
  unsigned op = wm->flags & 0x0F;
  *code = 1002;
  if (!(wm->flags & 0x80)) return "fragmented control frame";
  if (wm->data.len > 125) return "control frame over 125 bytes";
  if (op == WEBSOCKET_OP_CLOSE && wm->data.len == 1) return "close frame with a 1-byte payload";
  if (op == WEBSOCKET_OP_CLOSE && wm->data.len >= 2) {
    const unsigned char *p = (const unsigned char *) wm->data.buf;
    if (!pm_ws_close_code_valid((unsigned) p[0] << 8 | p[1])) return "invalid close code";
    if (!pm_utf8_valid(p + 2, wm->data.len - 2)) {
      *code = 1007;
      return "close reason is not UTF-8";
    }
  }
  return NULL;
}

/* Handlers only ever see what RFC 6455 allows, checked here before Python:
 * - no reserved bit set (no extension is negotiated): 1002;
 * - control frames whole and at most 125 bytes; close frames with a valid code and
 *   a UTF-8 reason: 1002 (1007 for the reason);
 * - a continuation only inside a fragmented message, and no new message inside
 *   one: 1002;
 * - text messages valid UTF-8 (RFC 6455 8.1): 1007;
 * - nothing after the peer's close frame (5.5.1) or after a failure.
 * Returns false for an event that must not be delivered. */
static bool pm_ws_check(struct mg_connection *c, struct pm_conn *st, int ev, void *ev_data) {
  const struct mg_ws_message *wm = (const struct mg_ws_message *) ev_data;
  const char *fault = NULL;
  uint16_t code = 1002;
  unsigned op;
  if (ev == MG_EV_READ && st->ws_failed && c->send.len > st->ws_send_cut) {
    c->send.len = st->ws_send_cut;  // see pm_ws_fail
  }
  if (ev != MG_EV_WS_MSG && ev != MG_EV_WS_CTL) return true;
  if (st->ws_failed || st->ws_closed) return false;
  op = wm->flags & 0x0F;
  bool fragment_open = c->pfn_data != NULL;  // Mongoose's offset of a message being joined
  if (wm->flags & 0x70) {
    fault = "reserved bits set, no extension negotiated";
  } else if (ev == MG_EV_WS_CTL && op == WEBSOCKET_OP_CONTINUE) {
    if (!fragment_open) fault = "continuation frame without a message to continue";
  } else if (ev == MG_EV_WS_CTL) {
    fault = pm_ws_control_fault(wm, &code);
  } else if (fragment_open && wm->data.buf != (char *) c->recv.buf + 1) {
    // A joined message is delivered from recv.buf + 1; anything else is a new
    // message that arrived while one was still being joined.
    fault = "new message inside a fragmented one";
  } else if (op == WEBSOCKET_OP_TEXT && !pm_utf8_valid((const unsigned char *) wm->data.buf,
                                                        wm->data.len)) {
    fault = "invalid UTF-8 in a text message", code = 1007;
  }
  if (fault != NULL) {
    // Messages before this frame may still wait in the deferred queue: they reach
    // their handler first, so what it sends leaves before the close frame.
    pm_flush(c->mgr);
    pm_ws_fail(c, st, code, fault);
    return false;
  }
  if (ev == MG_EV_WS_CTL && op == WEBSOCKET_OP_CLOSE) st->ws_closed = true;
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
