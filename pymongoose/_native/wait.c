/* The I/O wait of one loop iteration (Manager.poll), and the wakeup. */

static void pm_event_handler(struct mg_connection *c, int ev, void *ev_data);

/* Writability, registered only while a socket is blocked (the patches
 * epollout-when-blocked and epollout-after-write). Data queued between iterations
 * is written by the write step after the wait, so the wait must merely not block;
 * a write that leaves data behind registers EPOLLOUT, to wake when there is room.
 * Connections that are not pymongoose's own (Mongoose's wakeup pipe, DNS), TLS
 * ones and connects in progress keep upstream's way. */
static struct pm_conn *pm_plain_conn(struct mg_connection *c) {
  if (c->fn != pm_event_handler || c->is_tls || c->is_connecting || c->is_listening) return NULL;
  return (struct pm_conn *) c->fn_data;
}

/* For a socket with data to send, before the wait: 1 register it for writability
 * (upstream), 0 it is registered already, -1 do not wait (written right after). */
int pm_epoll_out(struct mg_connection *c) {
  struct pm_conn *st = pm_plain_conn(c);
  if (st == NULL) return 1;
  return st->write_blocked ? 0 : -1;
}

/* After the write step. */
void pm_epoll_written(struct mg_connection *c) {
  struct pm_conn *st = pm_plain_conn(c);
  if (st == NULL) return;
  if (c->send.len == 0) {
    st->write_blocked = false;  // a registration left behind goes at the next wait (epollout-stale)
  } else if (!st->write_blocked) {
    st->write_blocked = true;
    MG_EPOLL_MOD(c, 1);
  }
}

/* Runs one iteration of the event loop (Python's Manager.poll).
 *
 * cffi releases the GIL around every C call, and each event crossing into Python
 * then takes it back: on CPython that is about a third of a crossing's cost, paid
 * for every event. So this waits for I/O without the GIL, as other threads should
 * run meanwhile, then lets Mongoose dispatch with the GIL held.
 *
 * The wait mirrors mg_iotest(): the same readiness, the same reasons not to wait.
 * epoll is level-triggered, so Mongoose's own zero-timeout wait that follows sees
 * the same readiness. When Mongoose would wait anyway (a connection
 * closing, TLS data pending: it then waits 1 ms), the GIL is not held. */
#if MG_ENABLE_EPOLL && defined(Py_PYTHON_H) && !defined(PYPY_VERSION)
#define PM_DISPATCH_WITH_GIL 1
#else
#define PM_DISPATCH_WITH_GIL 0
#endif

#if PM_DISPATCH_WITH_GIL
#include <poll.h>

#define PM_MAX_WRITERS 63

/* Waits for what mg_iotest() would: the epoll set (its fd turns readable when a
 * registered socket is ready) and writability of the sockets with output pending,
 * which Mongoose adds to the epoll set only inside mg_iotest(); poll() avoids
 * doing those epoll_ctl() calls twice. Returns false, without waiting, when
 * Mongoose should wait on its own. */
static bool pm_wait_for_io(struct mg_mgr *mgr, int ms) {
  struct pollfd fds[PM_MAX_WRITERS + 1];
  nfds_t n = 1;
  struct mg_connection *c;
  fds[0].fd = mgr->epoll_fd;
  fds[0].events = POLLIN;
  for (c = mgr->conns; c != NULL; c = c->next) {
    if (c->rtls.len > 0 || mg_tls_pending(c) > 0 || c->is_closing) return false;
    if (can_write(c)) {
      if (pm_epoll_out(c) < 0) {
        ms = 0;  // written right after the wait, which must not block
        continue;
      }
      if (n > PM_MAX_WRITERS) return false;
      fds[n].fd = (int) (size_t) c->fd;
      fds[n].events = POLLOUT;
      n++;
    }
  }
  if (ms > 0) poll(fds, n, ms);
  return true;
}
#endif

void pm_mgr_poll(struct mg_mgr *mgr, int ms) {
#if PM_DISPATCH_WITH_GIL
  if (pm_wait_for_io(mgr, ms)) {
    PyGILState_STATE gil = PyGILState_Ensure();
    mg_mgr_poll(mgr, 0);
    pm_flush(mgr);
    PyGILState_Release(gil);
    return;
  }
#endif
  mg_mgr_poll(mgr, ms);
  pm_flush(mgr);
}
