/* WebSocket: what reaches Python is valid (UTF-8 text, RFC 6455 8.1), and the
 * calls that send. */

/* UTF-8 validation that can stop anywhere and go on with the next piece (a
 * fragmented text message arrives in frames): RFC 3629, so no overlong forms, no
 * surrogates, nothing above U+10FFFF. The state (struct pm_utf8) is the count of
 * continuation bytes still due and the range of the next one, narrower right after
 * E0, ED, F0 and F4. ASCII is skipped eight bytes at a time. */
/* Feeds s[0..n); false as soon as it cannot be UTF-8, whatever follows. */
static bool pm_utf8_feed(struct pm_utf8 *u, const unsigned char *s, size_t n) {
  uint8_t need = u->need, lo = u->lo, hi = u->hi;
  size_t i = 0;
  while (i < n) {
    unsigned char b = s[i];
    if (need > 0) {
      if (b < lo || b > hi) return false;
      need--, lo = 0x80, hi = 0xBF, i++;
      continue;
    }
    if (i + 8 <= n) {
      uint64_t block;
      memcpy(&block, s + i, 8);
      if ((block & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    lo = 0x80, hi = 0xBF;
    if (b < 0x80) {
      need = 0;
    } else if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need = 2;
      if (b == 0xE0) lo = 0xA0;  // else overlong
      if (b == 0xED) hi = 0x9F;  // else a surrogate
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 3;
      if (b == 0xF0) lo = 0x90;  // else overlong
      if (b == 0xF4) hi = 0x8F;  // else above U+10FFFF
    } else {
      return false;  // a continuation byte, C0, C1 or F5-FF
    }
    i++;
  }
  u->need = need, u->lo = lo, u->hi = hi;
  return true;
}

/* True if s[0..n) is valid UTF-8 on its own. */
static bool pm_utf8_valid(const unsigned char *s, size_t n) {
  struct pm_utf8 u = {0, 0x80, 0xBF};
  return pm_utf8_feed(&u, s, n) && u.need == 0;
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

/* The largest message a WebSocket connection accepts unless told otherwise. */
#define PM_WS_MAX_DEFAULT ((size_t) 16 * 1024 * 1024)

/* Bytes of a fragmented message joined so far (Mongoose keeps them at the start of
 * c->recv, after the first frame's flags byte, and its offset in pfn_data). */
static size_t pm_ws_joined(const struct mg_connection *c) {
  size_t ofs = (size_t) c->pfn_data;
  return ofs > 0 ? ofs - 1 : 0;
}

/* True if a data frame of len bytes makes its message larger than the limit. */
static bool pm_ws_over(const struct mg_connection *c, const struct pm_conn *st, uint64_t len) {
  size_t max = st->ws_max > 0 ? st->ws_max : PM_WS_MAX_DEFAULT;
  return len > max || pm_ws_joined(c) + len > max;
}

/* True if the frame Mongoose is still receiving would make its message too large:
 * its header announces the length, so the connection is failed before the buffer
 * grows to hold it. (A frame that arrived whole is checked as it is delivered.) */
static bool pm_ws_too_big(const struct mg_connection *c, const struct pm_conn *st) {
  size_t ofs = (size_t) c->pfn_data, avail;
  const unsigned char *h = c->recv.buf + ofs;
  uint64_t len;
  if (ofs >= c->recv.len || (avail = c->recv.len - ofs) < 2) return false;
  len = h[1] & 0x7F;
  if (len == 126) {
    if (avail < 4) return false;
    len = (uint64_t) h[2] << 8 | h[3];
  } else if (len == 127) {
    if (avail < 10) return false;
    len = 0;
    for (int i = 2; i < 10; i++) len = len << 8 | h[i];
  }
  return !(h[0] & 0x08) && pm_ws_over(c, st, len);  // control frames: not the message
}

/* Takes in one frame of a data message (all of it, its first fragment or a
 * continuation), inflated first if the message is compressed: its size against
 * the limit, its UTF-8 if it is text. NULL, or why to fail with *code. */
static const char *pm_ws_data_frame(struct mg_connection *c, struct pm_conn *st,
                                    const struct mg_ws_message *wm, bool first, bool last,
                                    uint16_t *code) {
  struct pm_deflate *d = st->ws_deflate;
  const unsigned char *text = (const unsigned char *) wm->data.buf;
  size_t text_len = wm->data.len;
  if (pm_ws_over(c, st, wm->data.len)) {
    *code = 1009;
    return "message too big";
  }
  if (first) {
    st->ws_compressed = (wm->flags & 0x40) != 0;
    st->ws_utf8 = (struct pm_utf8){0, 0x80, 0xBF};
    if (st->ws_compressed) d->inflated.len = 0;
  }
  if (st->ws_compressed) {
    size_t before = d->inflated.len;
    if ((*code = pm_inflate_frame(d, wm->data.buf, wm->data.len, last,
                                  st->ws_max > 0 ? st->ws_max : PM_WS_MAX_DEFAULT)) != 0) {
      return *code == 1009 ? "message too big" : *code == 1007 ? "bad compressed data"
                                                                : "out of memory";
    }
    text = d->inflated.buf + before, text_len = d->inflated.len - before;
  }
  bool is_text = (first ? wm->flags & 0x0F : st->ws_fragmented) == WEBSOCKET_OP_TEXT;
  if (is_text && (!pm_utf8_feed(&st->ws_utf8, text, text_len) || (last && st->ws_utf8.need > 0))) {
    *code = 1007;
    return "invalid UTF-8 in a text message";
  }
  return NULL;
}

/* What the handler receives for a compressed message: the inflated bytes. */
static void *pm_ws_inflated(struct pm_conn *st, const struct mg_ws_message *wm) {
  struct pm_deflate *d = st->ws_deflate;
  d->message.flags = (uint8_t) (wm->flags & ~0x40);
  d->message.data = mg_str_n((char *) d->inflated.buf, d->inflated.len);
  return &d->message;
}

/* Handlers only ever see what RFC 6455 allows, checked here before Python:
 * - no reserved bit set (RSV1 only on the first frame of a data message, and only
 *   once permessage-deflate is agreed), no reserved opcode: 1002;
 * - control frames whole and at most 125 bytes; close frames with a valid code and
 *   a UTF-8 reason: 1002 (1007 for the reason);
 * - a continuation only inside a fragmented message, and no new message inside
 *   one: 1002;
 * - text messages valid UTF-8 (RFC 6455 8.1), a fragmented one checked frame by
 *   frame so that it fails at the first bad one: 1007;
 * - messages no larger than the connection's limit, inflated or not: 1009, as soon
 *   as a frame header announces more;
 * - compressed messages that inflate (RFC 7692): 1007; the handler gets them
 *   inflated (*ev_data is replaced);
 * - a client's handshake response that agrees to an extension we did not offer:
 *   1002;
 * - nothing after the peer's close frame (5.5.1) or after a failure.
 * The first frame of a fragmented message and frames with a reserved opcode come
 * as MG_EV_WS_CTL (patch ws-every-frame-seen) and are never delivered.
 * Returns false for an event that must not be delivered. */
static bool pm_ws_check(struct mg_connection *c, struct pm_conn *st, int ev, void **ev_data) {
  const struct mg_ws_message *wm = (const struct mg_ws_message *) *ev_data;
  const char *fault = NULL;
  uint16_t code = 1002;
  bool deliver = true;
  unsigned op;
  if (ev == MG_EV_READ && c->is_websocket) {
    if (st->ws_failed) {
      if (c->send.len > st->ws_send_cut) c->send.len = st->ws_send_cut;  // see pm_ws_fail
      c->recv.len = 0;  // Mongoose parses no more (ws-stop-after-close): drop it
      return true;
    }
    if (st->ws_closed || !pm_ws_too_big(c, st)) return true;
    fault = "message too big", code = 1009;
  } else if (ev == MG_EV_WS_OPEN && c->is_client) {
    if (pm_deflate_agreed((const struct mg_http_message *) *ev_data, st->ws_deflate_offered,
                          &st->ws_deflate) < 0) {
      fault = "bad Sec-WebSocket-Extensions in the handshake response";
    }
  } else if (ev != MG_EV_WS_MSG && ev != MG_EV_WS_CTL) {
    return true;
  } else if (st->ws_failed || st->ws_closed) {
    return false;
  } else {
    bool data = false;
    op = wm->flags & 0x0F;
    if ((wm->flags & 0x30) ||
        ((wm->flags & 0x40) && (st->ws_deflate == NULL ||
                                (op != WEBSOCKET_OP_TEXT && op != WEBSOCKET_OP_BINARY)))) {
      fault = "reserved bits set, no extension negotiated";
    } else if ((op > WEBSOCKET_OP_BINARY && op < WEBSOCKET_OP_CLOSE) || op > WEBSOCKET_OP_PONG) {
      fault = "reserved opcode";
    } else if (ev == MG_EV_WS_CTL && (op == WEBSOCKET_OP_TEXT || op == WEBSOCKET_OP_BINARY)) {
      deliver = false;  // the first fragment of a message
      if (st->ws_fragmented != 0) {
        fault = "new message inside a fragmented one";
      } else {
        st->ws_fragmented = (uint8_t) op;
        fault = pm_ws_data_frame(c, st, wm, true, false, &code);
      }
    } else if (ev == MG_EV_WS_CTL && op == WEBSOCKET_OP_CONTINUE) {
      if (st->ws_fragmented == 0) {
        fault = "continuation frame without a message to continue";
      } else {
        fault = pm_ws_data_frame(c, st, wm, false, (wm->flags & 0x80) != 0, &code);
        st->ws_joined = fault == NULL && (wm->flags & 0x80);
        deliver = !st->ws_compressed;  // its bytes mean nothing alone
      }
    } else if (ev == MG_EV_WS_CTL) {
      fault = pm_ws_control_fault(wm, &code);
      if (fault == NULL && op == WEBSOCKET_OP_CLOSE) st->ws_closed = true;
    } else if (st->ws_joined) {  // the fragmented message, whole and checked
      st->ws_joined = false, st->ws_fragmented = 0, data = true;
    } else if (st->ws_fragmented != 0) {
      fault = "new message inside a fragmented one";
    } else {
      fault = pm_ws_data_frame(c, st, wm, true, true, &code);
      data = true;
    }
    if (data && fault == NULL && st->ws_compressed) *ev_data = pm_ws_inflated(st, wm);
  }
  if (fault != NULL) {
    // Messages before this frame may still wait in the deferred queue: they reach
    // their handler first, so what it sends leaves before the close frame.
    pm_flush(c->mgr);
    pm_ws_fail(c, st, code, fault);
    return false;
  }
  return deliver;
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
  if (mgr == NULL || (c = pm_conn(mgr, id)) == NULL) return 0;
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  if (st->ws_deflate != NULL && (op == WEBSOCKET_OP_TEXT || op == WEBSOCKET_OP_BINARY) &&
      pm_deflate_message(st->ws_deflate, buf, len)) {
    size_t header = c->send.len;
    mg_ws_send(c, st->ws_deflate->deflated.buf, st->ws_deflate->deflated.len, op);
    if (c->send.len > header) c->send.buf[header] |= 0x40;  // RSV1: compressed
  } else {
    mg_ws_send(c, buf, len, op);
  }
  return 1;
}

/* True if `lines` ("Name: value\r\n"...) has a header called `name`. */
static bool pm_has_header_line(const char *lines, const char *name) {
  for (const char *line = lines; line != NULL && *line != '\0';) {
    size_t i = 0;  // compared up to the first difference, so never past line's end
    while (name[i] != '\0' && tolower((unsigned char) line[i]) == tolower((unsigned char) name[i])) i++;
    if (name[i] == '\0' && line[i] == ':') return true;
    line = strchr(line, '\n');
    if (line != NULL) line++;
  }
  return false;
}

void pm_ws_upgrade(struct mg_connection *c, struct mg_http_message *hm,
                   const char *extra_headers, size_t max_message, bool compression) {
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  char agreed[160] = "";
  if (extra_headers == NULL) extra_headers = "";
  if (st != NULL) {
    st->ws_max = max_message;
    // A handler that answers Sec-WebSocket-Extensions itself keeps that answer.
    if (compression && st->ws_deflate == NULL &&
        !pm_has_header_line(extra_headers, "Sec-WebSocket-Extensions")) {
      st->ws_deflate = pm_deflate_accept(hm, agreed, sizeof(agreed));
    }
  }
  mg_ws_upgrade(c, hm, "%s%s", agreed, extra_headers);
  if (st != NULL && !c->is_websocket) {  // not an upgrade request: answered 426
    pm_deflate_free(st->ws_deflate);
    st->ws_deflate = NULL;
  }
}
