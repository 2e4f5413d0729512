/* ---- a guard around Mongoose's DNS client -------------------------------------- */

/* Two problems of Mongoose 7.23's DNS client, fixed around its handler dns_cb:
 * - A name that does not exist is never reported: a failed A lookup is retried as
 *   AAAA, and an AAAA reply without an address is retried as AAAA again, each time
 *   pushing the timeout back. Here such a reply fails the lookup.
 * - dns_cb keeps a pointer to the next pending lookup while it calls handlers
 *   (MG_EV_ERROR); a handler calling resolve_cancel() could free it. Cancels made
 *   while dns_cb runs are deferred until it returns. */

static uint16_t pm_dns_question_type(const uint8_t *buf, size_t len) {
  size_t i = sizeof(struct mg_dns_header);
  if (len < i || mg_ntohs(((const struct mg_dns_header *) buf)->num_questions) < 1) {
    return 0;
  }
  while (i < len && buf[i] != 0) {
    if (buf[i] & 0xC0) return 0;  // a compressed name in a question: not ours
    i += (size_t) buf[i] + 1;
  }
  return i + 3 > len ? 0 : (uint16_t) (buf[i + 1] << 8 | buf[i + 2]);
}

static void pm_run_deferred_cancels(struct pm_mgr *pm) {
  size_t i;
  if (pm->deferred_cancels == 0 || pm->conns.mask == 0) return;
  pm->deferred_cancels = 0;
  for (i = 0; i <= pm->conns.mask; i++) {
    struct mg_connection *c = pm->conns.slots[i].c;
    struct pm_conn *st = c == NULL ? NULL : (struct pm_conn *) c->fn_data;
    if (st != NULL && st->cancel_resolve) {
      st->cancel_resolve = false;
      mg_resolve_cancel(c);
    }
  }
}

static void pm_dns_cb(struct mg_connection *c, int ev, void *ev_data) {
  struct pm_mgr *pm = (struct pm_mgr *) c->mgr;
  struct mg_dns_message dm;
  pm->in_dns_callback++;
  if (ev == MG_EV_READ &&
      pm_dns_question_type(c->recv.buf, c->recv.len) == MG_DNS_RTYPE_AAAA &&
      mg_dns_parse(c->recv.buf, c->recv.len, &dm) && !dm.resolved) {
    struct dns_data **head = (struct dns_data **) &c->mgr->active_dns_requests;
    struct dns_data *d, *next;
    for (d = *head; d != NULL; d = next) {
      next = d->next;
      if (d->txnid == dm.txnid) {
        mg_error(d->c, "%s DNS lookup failed", dm.name);
        dns_free(head, d);
      }
    }
    c->recv.len = 0;
  } else {
    dns_cb(c, ev, ev_data);
    pm_guard_dns(c->mgr);  // dns_cb may have opened the other DNS connection
  }
  if (--pm->in_dns_callback == 0) pm_run_deferred_cancels(pm);
}

/* Mongoose makes its DNS connections when a first name is looked up: call this
 * after anything that may look one up. */
static void pm_guard_dns(struct mg_mgr *mgr) {
  if (mgr->dns4.c != NULL && mgr->dns4.c->pfn == dns_cb) mgr->dns4.c->pfn = pm_dns_cb;
  if (mgr->dns6.c != NULL && mgr->dns6.c->pfn == dns_cb) mgr->dns6.c->pfn = pm_dns_cb;
}

void pm_resolve(struct mg_connection *c, const char *url) {
  mg_resolve(c, url);
  pm_guard_dns(c->mgr);
}

void pm_resolve_cancel(struct mg_connection *c) {
  struct pm_mgr *pm = (struct pm_mgr *) c->mgr;
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  if (pm->in_dns_callback > 0 && st != NULL) {
    st->cancel_resolve = true;
    pm->deferred_cancels++;
  } else {
    mg_resolve_cancel(c);
  }
}
