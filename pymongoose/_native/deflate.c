/* permessage-deflate (RFC 7692): WebSocket messages compressed with raw deflate,
 * agreed on in the handshake. zlib (vendor/zlib, compiled into the extension) does
 * the compressing; this unit reads and writes the negotiation and compresses or
 * inflates one message at a time. ws.c decides when (pm_ws_check, pm_ws_send). */

#include <zlib.h>

/* Our compressor's window and memory unless the peer asks for less: about 40 KiB
 * per connection instead of 256 KiB at zlib's maximum, for a little less
 * compression (the choice the `websockets` library makes too). */
#define PM_DEFLATE_WINDOW_BITS 12
#define PM_DEFLATE_MEM_LEVEL 5
/* Shorter messages are sent as they are: deflate would not make them smaller. */
#define PM_DEFLATE_MIN_SIZE 32
/* What a client offers: the default parameters, and that it can take a smaller
 * window for its compressor if the server wants one. */
#define PM_DEFLATE_OFFER "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"

struct pm_buf {
  unsigned char *buf;
  size_t len, cap;
};

/* Room for `more` bytes after len; false without memory. */
static bool pm_buf_reserve(struct pm_buf *b, size_t more) {
  size_t cap;
  unsigned char *grown;
  if (b->cap - b->len >= more) return true;
  cap = b->cap < 4096 ? 4096 : b->cap;
  while (cap - b->len < more) cap *= 2;
  if ((grown = (unsigned char *) realloc(b->buf, cap)) == NULL) return false;
  b->buf = grown, b->cap = cap;
  return true;
}

/* One connection's compression, once agreed. */
struct pm_deflate {
  bool compress;         // false: ours go uncompressed (zlib cannot keep to an 8-bit window)
  bool tx_reset;         // our compressor forgets each message (no_context_takeover)
  int tx_window;         // our compressor's window bits, 9 to 15
  bool tx_ready, rx_ready;  // each z_stream is set up on first use
  z_stream tx, rx;
  struct pm_buf deflated;   // the message being sent, compressed
  struct pm_buf inflated;   // the message being received, inflated
  struct mg_ws_message message;  // what the handler receives for an inflated message
};

static void pm_deflate_free(struct pm_deflate *d) {
  if (d == NULL) return;
  if (d->tx_ready) deflateEnd(&d->tx);
  if (d->rx_ready) inflateEnd(&d->rx);
  free(d->deflated.buf);
  free(d->inflated.buf);
  free(d);
}

/* The parameters of one permessage-deflate offer or response (RFC 7692 7.1). */
struct pm_deflate_params {
  bool server_no_context_takeover, client_no_context_takeover;
  int server_max_window_bits;  // 0: absent
  int client_max_window_bits;  // 0: absent; -1: present without a value
};

static struct mg_str pm_trim(struct mg_str s) {
  while (s.len > 0 && (s.buf[0] == ' ' || s.buf[0] == '\t')) s.buf++, s.len--;
  while (s.len > 0 && (s.buf[s.len - 1] == ' ' || s.buf[s.len - 1] == '\t')) s.len--;
  return s;
}

/* A window size, "8" to "15", possibly quoted; 0 if it is not one. */
static int pm_window_bits(struct mg_str v) {
  if (v.len >= 2 && v.buf[0] == '"' && v.buf[v.len - 1] == '"') v.buf++, v.len -= 2;
  if (v.len == 1 && v.buf[0] >= '8' && v.buf[0] <= '9') return v.buf[0] - '0';
  if (v.len == 2 && v.buf[0] == '1' && v.buf[1] >= '0' && v.buf[1] <= '5') return 10 + v.buf[1] - '0';
  return 0;
}

/* Reads one extension of a Sec-WebSocket-Extensions list; true if it is a valid
 * permessage-deflate with its parameters in *p: each known parameter at most once,
 * with a value where one is required, and no unknown one (7.1: such an offer is
 * declined, such a response fails the connection). */
static bool pm_deflate_parse(struct mg_str extension, struct pm_deflate_params *p) {
  struct mg_str param, name, value;
  bool first = true;
  memset(p, 0, sizeof(*p));
  while (mg_span(extension, &param, &extension, ';')) {
    param = pm_trim(param);
    if (first) {
      if (mg_strcasecmp(param, mg_str("permessage-deflate")) != 0) return false;
      first = false;
      continue;
    }
    if (!mg_span(param, &name, &value, '=')) return false;
    name = pm_trim(name), value = pm_trim(value);
    bool has_value = value.len > 0 || memchr(param.buf, '=', param.len) != NULL;
    if (mg_strcasecmp(name, mg_str("server_no_context_takeover")) == 0) {
      if (has_value || p->server_no_context_takeover) return false;
      p->server_no_context_takeover = true;
    } else if (mg_strcasecmp(name, mg_str("client_no_context_takeover")) == 0) {
      if (has_value || p->client_no_context_takeover) return false;
      p->client_no_context_takeover = true;
    } else if (mg_strcasecmp(name, mg_str("server_max_window_bits")) == 0) {
      if (p->server_max_window_bits != 0) return false;
      if ((p->server_max_window_bits = pm_window_bits(value)) == 0) return false;
    } else if (mg_strcasecmp(name, mg_str("client_max_window_bits")) == 0) {
      if (p->client_max_window_bits != 0) return false;
      p->client_max_window_bits = has_value ? pm_window_bits(value) : -1;
      if (p->client_max_window_bits == 0) return false;
    } else {
      return false;
    }
  }
  return !first;
}

static struct pm_deflate *pm_deflate_new(bool reset, int window_bits) {
  struct pm_deflate *d = (struct pm_deflate *) calloc(1, sizeof(*d));
  if (d == NULL) return NULL;
  d->tx_reset = reset;
  // zlib's raw deflate has no 8-bit window: with a peer that asks for one, send
  // uncompressed (always allowed: compression is chosen message by message).
  d->compress = window_bits != 8;
  d->tx_window = window_bits < PM_DEFLATE_WINDOW_BITS ? window_bits : PM_DEFLATE_WINDOW_BITS;
  return d;
}

/* Server: the first acceptable permessage-deflate offer among the request's
 * Sec-WebSocket-Extensions headers. Writes the response header line into
 * response (empty if none is accepted) and returns the compression state, or
 * NULL. */
static struct pm_deflate *pm_deflate_accept(const struct mg_http_message *hm, char *response,
                                            size_t size) {
  struct pm_deflate_params p;
  response[0] = '\0';
  for (size_t i = 0; i < MG_MAX_HTTP_HEADERS && hm->headers[i].name.len > 0; i++) {
    struct mg_str list = hm->headers[i].value, extension;
    if (mg_strcasecmp(hm->headers[i].name, mg_str("Sec-WebSocket-Extensions")) != 0) continue;
    while (mg_span(list, &extension, &list, ',')) {
      if (!pm_deflate_parse(extension, &p)) continue;
      int bits = p.server_max_window_bits != 0 ? p.server_max_window_bits : 15;
      struct pm_deflate *d = pm_deflate_new(p.server_no_context_takeover, bits);
      if (d == NULL) return NULL;
      mg_snprintf(response, size, "Sec-WebSocket-Extensions: permessage-deflate%s%s",
                  p.server_no_context_takeover ? "; server_no_context_takeover" : "",
                  p.client_no_context_takeover ? "; client_no_context_takeover" : "");
      if (p.server_max_window_bits != 0) {
        size_t n = strlen(response);
        mg_snprintf(response + n, size - n, "; server_max_window_bits=%d", p.server_max_window_bits);
      }
      strncat(response, "\r\n", size - strlen(response) - 1);
      return d;
    }
  }
  return NULL;
}

/* Client: what the server's handshake response agreed to. Returns 0 with *out set
 * (NULL: no compression), or -1 if the response is not acceptable: an extension we
 * did not offer, or more than one. */
static int pm_deflate_agreed(const struct mg_http_message *hm, bool offered,
                             struct pm_deflate **out) {
  struct pm_deflate_params p;
  int found = 0;
  *out = NULL;
  for (size_t i = 0; i < MG_MAX_HTTP_HEADERS && hm->headers[i].name.len > 0; i++) {
    struct mg_str list = hm->headers[i].value, extension;
    if (mg_strcasecmp(hm->headers[i].name, mg_str("Sec-WebSocket-Extensions")) != 0) continue;
    while (mg_span(list, &extension, &list, ',')) {
      if (pm_trim(extension).len == 0) continue;
      // A response's client_max_window_bits needs a value (7.1.2.2).
      if (!offered || found++ > 0 || !pm_deflate_parse(extension, &p) ||
          p.client_max_window_bits < 0) {
        return -1;
      }
    }
  }
  if (found == 0) return 0;
  *out = pm_deflate_new(p.client_no_context_takeover,
                        p.client_max_window_bits != 0 ? p.client_max_window_bits : 15);
  return *out == NULL ? -1 : 0;
}

/* Compresses one message to send; its bytes are then d->deflated (the trailing
 * 00 00 FF FF removed, 7.2.1). False: send it uncompressed (too short, or zlib
 * failed, after which this connection compresses nothing more). */
static bool pm_deflate_message(struct pm_deflate *d, const void *buf, size_t len) {
  if (!d->compress || len < PM_DEFLATE_MIN_SIZE || len > UINT_MAX / 2) return false;
  if (!d->tx_ready) {
    if (deflateInit2(&d->tx, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -d->tx_window,
                     PM_DEFLATE_MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
      d->compress = false;
      return false;
    }
    d->tx_ready = true;
  }
  d->deflated.len = 0;
  d->tx.next_in = (Bytef *) buf;
  d->tx.avail_in = (uInt) len;
  for (;;) {
    int rc;
    size_t room;
    if (!pm_buf_reserve(&d->deflated, len / 2 + 64)) break;
    room = d->deflated.cap - d->deflated.len;
    if (room > UINT_MAX) room = UINT_MAX;
    d->tx.next_out = d->deflated.buf + d->deflated.len;
    d->tx.avail_out = (uInt) room;
    rc = deflate(&d->tx, Z_SYNC_FLUSH);
    d->deflated.len += room - d->tx.avail_out;
    if (rc != Z_OK && rc != Z_BUF_ERROR) break;
    // Done when all input is in and the flush found room to finish (zlib's rule).
    if (d->tx.avail_in == 0 && d->tx.avail_out > 0) {
      if (d->deflated.len < 4) break;
      d->deflated.len -= 4;  // 00 00 FF FF, which ends every sync flush
      if (d->tx_reset) deflateReset(&d->tx);
      return true;
    }
  }
  // The stream's state is lost with what was not sent: compress nothing more.
  d->compress = false;
  return false;
}

/* Inflates one frame's payload of a compressed message onto d->inflated; `last`
 * adds the 00 00 FF FF its sender removed. Returns 0, or the close code to fail
 * the connection with: 1009 once the message passes max bytes (a small frame may
 * inflate to gigabytes), 1007 for bytes that are not deflate data. */
static uint16_t pm_inflate_frame(struct pm_deflate *d, const void *buf, size_t len, bool last,
                                 size_t max) {
  static const unsigned char trailer[4] = {0x00, 0x00, 0xFF, 0xFF};
  if (!d->rx_ready) {
    if (inflateInit2(&d->rx, -15) != Z_OK) return 1011;
    d->rx_ready = true;
  }
  for (int part = 0; part < (last ? 2 : 1); part++) {
    d->rx.next_in = (Bytef *) (part == 0 ? buf : trailer);
    d->rx.avail_in = (uInt) (part == 0 ? len : sizeof(trailer));
    for (;;) {
      int rc;
      size_t room;
      if (!pm_buf_reserve(&d->inflated, 16384)) return 1011;
      room = d->inflated.cap - d->inflated.len;
      if (room > max + 1 - d->inflated.len) room = max + 1 - d->inflated.len;  // one past
      if (room > UINT_MAX) room = UINT_MAX;
      d->rx.next_out = d->inflated.buf + d->inflated.len;
      d->rx.avail_out = (uInt) room;
      rc = inflate(&d->rx, Z_SYNC_FLUSH);
      d->inflated.len += room - d->rx.avail_out;
      if (d->inflated.len > max) return 1009;
      if (rc == Z_STREAM_END) {
        // The sender ended its stream (a final block): the next message starts a
        // new one, and the rest of this input is the trailer or nothing.
        inflateReset(&d->rx);
        return 0;
      }
      if (rc == Z_BUF_ERROR || (rc == Z_OK && d->rx.avail_in == 0 && d->rx.avail_out > 0)) break;
      if (rc != Z_OK) return 1007;
    }
  }
  return 0;
}
