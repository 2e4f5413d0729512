/* Dispatch: the one event handler every connection has. It filters by the
 * connection's mask, defers what may wait, and forwards the rest to Python's single
 * entry point (pm_on_event) inside a numbered frame. */

/* Events numbered beyond the mask's width (user events) always cross. */
#define PM_MASKABLE_EVENTS 32

static bool pm_wants(const struct pm_conn *st, int ev) {
  // Python creates its Connection on MG_EV_OPEN and retires it on MG_EV_CLOSE, so
  // those two always cross; Python then decides whether the user handler sees them.
  if (ev == MG_EV_OPEN || ev == MG_EV_CLOSE) return true;
  if (ev < 0 || ev >= PM_MASKABLE_EVENTS) return true;
  return (st->events & (1u << ev)) != 0;
}

/* The event table: for each Mongoose event, what Python receives as its data. It
 * is the one place this is written: Python builds its dispatch plan from it
 * (pm_event_data_kind; see _core.py), and pm_event_number below reads it. Events
 * not listed (POLL, CONNECT, user events...) carry no data. */
static unsigned char pm_data_kind(int ev) {
  switch (ev) {
    case MG_EV_OPEN: return PM_DATA_OPEN;
    case MG_EV_CLOSE: return PM_DATA_CLOSE;
    case MG_EV_ERROR: return PM_DATA_TEXT;
    case MG_EV_READ:
    case MG_EV_WRITE:
    case MG_EV_MQTT_OPEN:
    case MG_EV_SNTP_TIME: return PM_DATA_NUMBER;
    case MG_EV_HTTP_HDRS:
    case MG_EV_HTTP_MSG:
    case MG_EV_WS_OPEN: return PM_DATA_HTTP;
    case MG_EV_MQTT_CMD:
    case MG_EV_MQTT_MSG: return PM_DATA_MQTT;
    case MG_EV_WS_MSG:
    case MG_EV_WS_CTL: return PM_DATA_WS;
    default: return PM_DATA_NONE;
  }
}

int pm_event_data_kind(int ev) { return pm_data_kind(ev); }

/* The number Python receives with an event (pm_on_event's extra): for
 * PM_DATA_NUMBER the number itself, read here so that Python receives an int
 * instead of a pointer to convert (each event's own C type); for WebSocket
 * messages, whose payload Python copies out at once, its length and the frame flags
 * as (len << 8) | flags; -1 for the views (they need the frame token); else 0. */
static int64_t pm_event_number(int ev, const void *ev_data) {
  switch (pm_data_kind(ev)) {
    case PM_DATA_NUMBER:
      if (ev_data == NULL) return 0;
      if (ev == MG_EV_MQTT_OPEN) return *(const int *) ev_data;
      if (ev == MG_EV_SNTP_TIME) return *(const int64_t *) ev_data;
      return *(const long *) ev_data;  // MG_EV_READ, MG_EV_WRITE
    case PM_DATA_WS: {
      const struct mg_ws_message *wm = (const struct mg_ws_message *) ev_data;
      return (int64_t) wm->data.len << 8 | wm->flags;
    }
    case PM_DATA_HTTP:
    case PM_DATA_MQTT: return -1;
    default: return 0;  // a small int costs Python nothing to make
  }
}

/* Calls Python inside a numbered frame (see struct pm_frames), handing over the
 * deferred events first. Python's last argument is the event's number
 * (pm_event_number) or, for the others, the frame token that message views check.
 * MG_EV_HTTP_MSG crosses as PM_EV_HTTP_MSG, or as PM_EV_HTTP_HDRS_MSG when
 * hdrs_joined (pm_hdrs_join). */
static void pm_forward(struct mg_mgr *mgr, unsigned long id, int ev, void *ev_data,
                       bool hdrs_joined) {
  struct pm_frames *f = ((struct pm_mgr *) mgr)->frames;
  unsigned depth = f->depth, queued = f->queued;
  int64_t extra = pm_event_number(ev, ev_data);
  uint64_t token = 0;
  if (depth < PM_MAX_FRAMES) {
    token = (++f->counter << 6) | depth;  // depth in the low 6 bits
    f->token[depth] = token;
  }
  f->depth = depth + 1;
  f->queued = 0;  // Python copies the queue out before it runs any handler
  f->handed = f->payloads_len;
  if (f->has_messages) {
    f->payloads_len = 0;
    f->has_messages = false;
    queued += PM_QUEUE_HAS_PAYLOADS;
  }
  if (pm_data_kind(ev) == PM_DATA_WS) {
    ev_data = ((struct mg_ws_message *) ev_data)->data.buf;  // the payload, to copy
  }
  if (ev == MG_EV_HTTP_MSG) ev = hdrs_joined ? PM_EV_HTTP_HDRS_MSG : PM_EV_HTTP_MSG;
  pm_on_event((uintptr_t) mgr->userdata, queued, id, ev, (uintptr_t) ev_data,
              extra < 0 ? (int64_t) token : extra);
  f->depth = depth;
  if (depth < PM_MAX_FRAMES) f->token[depth] = 0;
}

/* Delivers the deferred events now, if there are any. */
static void pm_flush(struct mg_mgr *mgr) {
  if (((struct pm_mgr *) mgr)->frames->queued > 0 && mgr->userdata != NULL) {
    pm_forward(mgr, 0, PM_EV_FLUSH, NULL, false);
  }
}

/* Events whose data is a plain number and whose handler has nothing that must run
 * at once: they need no crossing of their own. MG_EV_READ qualifies only where a
 * protocol handler (HTTP, WebSocket, MQTT...) has already consumed what was read;
 * on plain TCP/UDP the handler reads the buffer itself, so it runs at once.
 *
 * So do WebSocket messages up to PM_DEFER_MESSAGE_MAX bytes, their payload copied
 * (Python copies it anyway). The messages of one read then cross together, with
 * the MG_EV_READ that follows them (pm_event_handler): before Mongoose writes that
 * connection's output, so a reply leaves in the same iteration as it would have. */
static bool pm_deferrable(const struct mg_connection *c, int ev, const void *ev_data) {
  return ev == MG_EV_POLL || ev == MG_EV_WRITE || (ev == MG_EV_READ && c->pfn != NULL) ||
         (ev == MG_EV_WS_MSG &&
          ((const struct mg_ws_message *) ev_data)->data.len <= PM_DEFER_MESSAGE_MAX);
}

/* True if MG_EV_HTTP_HDRS of this request may wait for its MG_EV_HTTP_MSG and
 * cross with it: one crossing per request instead of two. So it is on a server
 * connection whose handler wants both, when the whole request is already in the
 * receive buffer with a Content-Length (or no body): Mongoose then raises
 * MG_EV_HTTP_MSG next, for the same message, before it reads or writes anything.
 * A handler that consumes the input in MG_EV_HTTP_HDRS still gets what Mongoose
 * does then (it lets go of the connection): see pm_http_detach. The app servers'
 * streamed bodies (hdrs_over) keep their own crossing. */
static bool pm_hdrs_join(const struct mg_connection *c, const struct pm_conn *st,
                         struct mg_http_message *hm) {
  size_t start = (size_t) ((const uint8_t *) hm->message.buf - c->recv.buf);
  return c->is_accepted && st->hdrs_over == 0 && (st->events & (1u << MG_EV_HTTP_MSG)) &&
         start <= c->recv.len && hm->message.len <= c->recv.len - start &&
         mg_http_get_header(hm, "Transfer-Encoding") == NULL;
}

/* Appends a deferred message's payload; false (nothing deferred) without memory. */
static bool pm_defer_payload(struct mg_mgr *mgr, const struct mg_str *data) {
  struct pm_frames *f = ((struct pm_mgr *) mgr)->frames;
  if (f->payloads_len + data->len > PM_PAYLOADS_MAX) pm_flush(mgr);
  if (f->payloads_len + data->len > f->payloads_cap) {
    size_t cap = f->payloads_cap == 0 ? 4 * PM_DEFER_MESSAGE_MAX : 2 * f->payloads_cap;
    char *grown = (char *) realloc(f->payloads, cap);
    if (grown == NULL) return false;
    f->payloads = grown, f->payloads_cap = cap;
  }
  if (data->len > 0) memcpy(f->payloads + f->payloads_len, data->buf, data->len);
  f->payloads_len += data->len;
  f->has_messages = true;
  return true;
}

/* Queues an event (pm_deferrable); false if it must cross now after all. */
static bool pm_defer(struct mg_mgr *mgr, unsigned long id, int ev, void *ev_data) {
  struct pm_frames *f = ((struct pm_mgr *) mgr)->frames;
  int64_t *slot;
  if (f->queued == PM_QUEUE_MAX) pm_flush(mgr);
  if (ev == MG_EV_WS_MSG &&
      !pm_defer_payload(mgr, &((struct mg_ws_message *) ev_data)->data)) {
    return false;
  }
  slot = &f->queue[3 * f->queued++];
  slot[0] = (int64_t) id;
  if (ev == MG_EV_WS_MSG) {  // see PM_QUEUE_WS_MSG
    slot[1] = PM_QUEUE_WS_MSG + ((struct mg_ws_message *) ev_data)->flags;
    slot[2] = (int64_t) f->payloads_len;
  } else {
    slot[1] = ev;
    slot[2] = pm_event_number(ev, ev_data);
  }
  return true;
}

/* Notes when a connection's timeout runs out, so that the next poll's wait ends
 * by then (pm_timers_wait). */
static void pm_deadline(struct pm_mgr *pm, uint64_t when) {
  if (when != 0 && (pm->next_deadline == 0 || when < pm->next_deadline)) pm->next_deadline = when;
}

/* Mongoose has no timeouts of its own: a client that connects and stays silent, or
 * sends a request a byte a minute (slowloris), holds its connection forever. With an
 * idle timeout, a connection (not a listener) closes after that long without I/O. */
static void pm_idle_check(struct pm_mgr *pm, struct mg_connection *c, struct pm_conn *st, int ev) {
  if (ev == MG_EV_READ || ev == MG_EV_WRITE) {
    st->last_io = mg_millis();
  } else if (ev == MG_EV_POLL && !c->is_listening && !c->is_closing) {
    if (mg_millis() - st->last_io >= st->idle_timeout) {
      mg_error(c, "idle timeout");
    } else {
      pm_deadline(pm, st->last_io + st->idle_timeout);
    }
  }
}


static void pm_event_handler(struct mg_connection *c, int ev, void *ev_data) {
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  struct pm_mgr *pm = (struct pm_mgr *) c->mgr;
  if (st == NULL) return;  // Out of memory when it opened: already closing
  if (ev == MG_EV_OPEN) {
    if (c->is_accepted) {
      struct pm_conn *own = (struct pm_conn *) calloc(1, sizeof(*own));
      if (own == NULL) {
        c->fn_data = NULL;
        c->is_closing = 1;
        return;
      }
      own->events = st->events;
      own->parent = st->id;
      own->idle_timeout = st->idle_timeout;
      own->max_body = st->max_body;
      own->hdrs_over = st->hdrs_over;
      own->limits = st->limits;
      own->tls = st->tls;
      if (own->tls != NULL) own->tls->refs++;
      c->fn_data = st = own;
    }
    st->id = c->id;
    st->last_io = st->http_since = mg_millis();
    if (!pm_table_put(&pm->conns, c->id, c)) {
      c->fn_data = NULL;
      c->is_closing = 1;
      pm_tls_release(st->tls);
      free(st);
      return;
    }
  } else if ((ev == MG_EV_ACCEPT || ev == MG_EV_CONNECT) && st->tls != NULL) {
    pm_tls_start(c);  // before the handler, which may send already
  } else if (st->mqtt_keepalive > 0) {
    pm_mqtt_keepalive(c, st, ev);
  }
  if (ev == MG_EV_TLS_HS && c->is_client) pm_tls_keep_session(c, false);  // to resume later
  if (st->idle_timeout > 0) pm_idle_check(pm, c, st, ev);
  if (ev == MG_EV_POLL && c->is_accepted) pm_deadline(pm, pm_http_clock(c, st));
  if (ev == MG_EV_READ && !c->is_websocket && c->recv.len >= PM_RECV_MAX &&
      !(c->is_accepted && c->pfn == http_cb)) {  // an HTTP server has max_body (httpd.c)
    mg_error(c, "MG_MAX_RECV_SIZE");  // as Mongoose with its own limit (see build)
  }
  bool hdrs_waiting = (ev == MG_EV_HTTP_HDRS || ev == MG_EV_HTTP_MSG) && st->http_hdrs_joined;
  if (hdrs_waiting) st->http_hdrs_joined = false;
  if (pm_ws_check(c, st, ev, &ev_data) && pm_http_check(c, st, ev, ev_data) && pm->mgr.userdata != NULL && pm_wants(st, ev)) {
    struct pm_frames *f = pm->frames;
    if (f->trace != NULL && f->trace_len < f->trace_cap) {
      f->trace[2 * f->trace_len] = (int64_t) c->id;
      f->trace[2 * f->trace_len++ + 1] = ev;
    }
    if (ev == MG_EV_HTTP_HDRS && pm_hdrs_join(c, st, (struct mg_http_message *) ev_data)) {
      st->http_hdrs_joined = true;
    } else if (!pm_deferrable(c, ev, ev_data) || !pm_defer(&pm->mgr, c->id, ev, ev_data)) {
      // MG_EV_OPEN and MG_EV_CLOSE carry no data: Python gets the connection instead.
      bool bookend = ev == MG_EV_OPEN || ev == MG_EV_CLOSE;
      pm_forward(&pm->mgr, c->id, ev, bookend ? (void *) c : ev_data, hdrs_waiting);
    }
  } else if (hdrs_waiting && ev == MG_EV_HTTP_MSG && pm->mgr.userdata != NULL) {
    pm_forward(&pm->mgr, c->id, MG_EV_HTTP_HDRS, ev_data, false);  // the message stays in C
  }
  if (st->http_close) pm_http_after(c, st);
  // The messages this read brought are all parsed: deliver them before Mongoose
  // writes (see pm_deferrable), whether or not MG_EV_READ itself was wanted.
  if (ev == MG_EV_READ && pm->frames->has_messages) pm_flush(&pm->mgr);
  if (ev == MG_EV_CLOSE) {
    pm_table_del(&pm->conns, c->id);
    c->fn_data = NULL;
    pm_tls_release(st->tls);
    free(st->tls_server_name);
    pm_deflate_free(st->ws_deflate);
    free(st);
  }
}
