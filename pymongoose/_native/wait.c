/* The I/O wait of one loop iteration (Manager.poll), and the wakeup. */

/* ---- writability: one record of what the kernel has registered ------------------
 *
 * Mongoose registers a socket for writability (EPOLLOUT) in every wait where it has
 * output, and unregisters it once a write empties its buffer: two epoll_ctl() calls
 * per response. pymongoose writes output at once instead (the patch
 * write-after-read), so a plain TCP connection is registered only while output
 * remains after the write step: the kernel's buffer is full, or a handler of
 * MG_EV_WRITE refilled it (Mongoose's static file handler does, 64 KiB at a time).
 *
 * Every change of a registration goes through pm_epoll_mod() (the patch
 * epoll-mod-recorded redirects MG_EPOLL_MOD here), which records it in the
 * connection's state: the record is the kernel's registration, never a guess
 * beside it. Connections that are not pymongoose's own (Mongoose's wakeup pipe,
 * DNS) keep no record and upstream's way. */

/* Whether c has a socket to wait on (not while its name resolves). */
static bool pm_has_socket(const struct mg_connection *c) {
  return !c->is_resolving && FD(c) != MG_INVALID_SOCKET;
}

/* A connection whose registration is settled after each write step
 * (pm_epoll_written) rather than in each wait. */
static struct pm_conn *pm_settled(const struct mg_connection *c) {
  if (c->is_connecting || c->is_listening || !pm_has_socket(c)) return NULL;
  return pm_own_state(c);
}

void pm_epoll_mod(struct mg_connection *c, bool wr) {
#if MG_ENABLE_EPOLL
  struct pm_conn *st = pm_own_state(c);
  struct epoll_event ev = {EPOLLIN | EPOLLERR | EPOLLHUP, {c}};
  if (st != NULL) {
    if (st->epollout == wr) return;  // no system call for no change
    st->epollout = wr;
  }
  if (wr) ev.events |= EPOLLOUT;
  epoll_ctl(c->mgr->epoll_fd, EPOLL_CTL_MOD, (int) (size_t) c->fd, &ev);
#else
  (void) c, (void) wr;
#endif
}

/* Before the wait, for a socket with output: 1 register it for writability
 * (upstream's way), 0 it is registered, -1 do not wait: the connection's output is
 * written by the write step right after the wait (a TLS connection's once its
 * handshake is over: can_write is false until then). */
int pm_epoll_out(struct mg_connection *c) {
  struct pm_conn *st = pm_own_state(c);
  if (st != NULL && st->epollout) return 0;
  return pm_settled(c) != NULL ? -1 : 1;
}

/* A write emptied the send buffer (Mongoose's iolog, before it raises MG_EV_WRITE,
 * whose handler may refill it): upstream unregisters the socket here; a settled
 * connection waits for the end of the write step. */
void pm_epoll_emptied(struct mg_connection *c) {
  if (pm_settled(c) == NULL) {
    MG_EPOLL_MOD(c, 0);  // nothing in the poll() build
  }
}

/* After the write step: a settled socket is registered exactly while it has output
 * (over TLS, writing waits for the wait to report room, as upstream). */
void pm_epoll_written(struct mg_connection *c) {
  if (pm_settled(c) != NULL) pm_epoll_mod(c, can_write(c));
}

/* ---- how long a wait may last ---------------------------------------------------- */

/* The milliseconds until the first timer or connection timeout is due, at most ms:
 * Mongoose runs them once its wait is over, so a wait must not outlast them. */
static int pm_timers_wait(struct mg_mgr *mgr, int ms) {
  uint64_t now = 0, *deadline = &((struct pm_mgr *) mgr)->next_deadline;
  struct mg_timer *t;
  if (*deadline != 0) {  // a connection's timeout (dispatch.c), as the last poll saw them
    now = mg_millis();
    if (*deadline <= now) {
      ms = 0;
    } else if (*deadline - now < (uint64_t) ms) {
      ms = (int) (*deadline - now);
    }
    *deadline = 0;  // this poll's MG_EV_POLL pass notes them again
  }
  for (t = mgr->timers; t != NULL && ms > 0; t = t->next) {
    uint64_t left;
    if ((t->flags & MG_TIMER_CALLED) && !(t->flags & MG_TIMER_REPEAT)) continue;  // spent
    if (t->expire == 0) {  // not polled yet: its first poll starts its period
      left = (t->flags & MG_TIMER_RUN_NOW) ? 0 : t->period_ms;
    } else {
      if (now == 0) now = mg_millis();
      left = t->expire > now ? t->expire - now : 0;
    }
    if (left < (uint64_t) ms) ms = (int) left;
  }
  return ms;
}

/* ---- for an event loop that runs Mongoose (AsyncManager) -------------------------
 *
 * With epoll the loop watches the epoll descriptor (pm_mgr_wait_fd). The poll()
 * build has no descriptor that stands for all the sockets, so the loop watches each
 * socket, as pm_mgr_sockets says after every poll. Either way, pm_mgr_due says
 * when to poll for what no descriptor shows. */

/* The milliseconds until Mongoose must run again for what the watched descriptors
 * cannot show, at most ms: output no registration covers (epoll: 0), a connection
 * to close (0), TLS data already read (1, as mg_iotest waits), the next timer. */
int pm_mgr_due(struct mg_mgr *mgr, int ms) {
  struct mg_connection *c;
  for (c = mgr->conns; c != NULL && ms > 0; c = c->next) {
    if (c->is_closing) return 0;
    if (!pm_has_socket(c)) continue;
#if MG_ENABLE_EPOLL
    if (can_write(c) && pm_epoll_out(c) != 0) return 0;
#endif
    if (c->rtls.len > 0 || mg_tls_pending(c) > 0) ms = 1;
  }
  return pm_timers_wait(mgr, ms);
}

#define PM_WANT_READ 1
#define PM_WANT_WRITE 2

/* What each socket waits for, as mg_iotest() would ask poll(): (fd, connection id,
 * PM_WANT_* bits) triples in out, up to cap of them; returns how many sockets there
 * are. The id tells a socket from a later one that got the same fd. */
size_t pm_mgr_sockets(struct mg_mgr *mgr, int64_t *out, size_t cap) {
  size_t n = 0;
  struct mg_connection *c;
  for (c = mgr->conns; c != NULL; c = c->next) {
    if (skip_iotest(c)) continue;  // closing, resolving, no socket, or waits for nothing
    if (n < cap) {
      out[3 * n] = (int64_t) FD(c);
      out[3 * n + 1] = (int64_t) c->id;
      out[3 * n + 2] = (can_read(c) ? PM_WANT_READ : 0) | (can_write(c) ? PM_WANT_WRITE : 0);
    }
    n++;
  }
  return n;
}

/* Runs one iteration of the event loop (Python's Manager.poll).
 *
 * It is called with the GIL held (held_gil.h). It waits for I/O without it, as
 * other threads should run meanwhile, then lets Mongoose dispatch with the GIL
 * held: taking it back for each event crossing into Python would cost about a
 * third of a crossing on CPython.
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
 * registered socket is ready) and writability of the sockets with output that
 * Mongoose registers only inside mg_iotest() (TLS output queued since the last
 * write step, clients connecting); poll() avoids doing those epoll_ctl() calls
 * twice. Returns false, without waiting, when Mongoose should wait on its own. */
static bool pm_wait_for_io(struct mg_mgr *mgr, int ms) {
  struct pollfd fds[PM_MAX_WRITERS + 1];
  nfds_t n = 1;
  struct mg_connection *c;
  fds[0].fd = mgr->epoll_fd;
  fds[0].events = POLLIN;
  for (c = mgr->conns; c != NULL; c = c->next) {
    if (c->rtls.len > 0 || mg_tls_pending(c) > 0 || c->is_closing) return false;
    if (can_write(c)) {
      int how = pm_epoll_out(c);
      if (how < 0) ms = 0;  // written right after the wait, which must not block
      if (how <= 0) continue;  // or registered already: the epoll set has it
      if (n > PM_MAX_WRITERS) return false;
      fds[n].fd = (int) (size_t) c->fd;  // mg_iotest registers it only after this wait
      fds[n].events = POLLOUT;
      n++;
    }
  }
  if (ms > 0) poll(fds, n, ms);
  return true;
}
#endif

/* The wait never outlasts the next timer (pm_timers_wait). */
void pm_mgr_poll(struct mg_mgr *mgr, int ms) {
  ms = pm_timers_wait(mgr, ms);
#if PM_DISPATCH_WITH_GIL
  bool waited;
  PM_WITHOUT_GIL(waited = pm_wait_for_io(mgr, ms));
  if (waited) {
    mg_mgr_poll(mgr, 0);
    pm_flush(mgr);
    return;
  }
#endif
  PM_WITHOUT_GIL(mg_mgr_poll(mgr, ms); pm_flush(mgr));
}
