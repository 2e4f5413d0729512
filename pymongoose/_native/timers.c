/* ---- timers ---------------------------------------------------------------------- */

/* A Mongoose timer with what its callback needs to reach Python. The mg_timer comes
 * first: Mongoose frees a fired one-shot timer, and every timer in mg_mgr_free(),
 * with mg_free() on its address, which is this whole struct's. */
struct pm_timer {
  struct mg_timer timer;
  struct mg_mgr *mgr;
  unsigned long id;
};

static void pm_timer_fn(void *arg) {
  struct pm_timer *t = (struct pm_timer *) arg;
  if (t->mgr->userdata != NULL) pm_forward(t->mgr, t->id, PM_EV_TIMER, NULL, false);
}

bool pm_timer_add(struct mg_mgr *mgr, uint64_t period_ms, bool repeat,
                  bool run_now, unsigned long id) {
  struct pm_timer *t = (struct pm_timer *) mg_calloc(1, sizeof(*t));
  unsigned flags = MG_TIMER_AUTODELETE | (repeat ? MG_TIMER_REPEAT : 0) |
                   (run_now ? MG_TIMER_RUN_NOW : 0);
  if (t == NULL) return false;
  t->mgr = mgr;
  t->id = id;
  mg_timer_init(&mgr->timers, &t->timer, period_ms, flags, pm_timer_fn, t);
  // Due one period from now. Mongoose would start the period at the next poll,
  // after a wait that the period itself bounds (pm_timers_wait): two periods.
  if (!run_now) t->timer.expire = mg_millis() + period_ms;
  return true;
}

/* Unlinks and frees the timer with this id, if it is still there. Must not run
 * inside mg_timer_poll(): Python defers cancels made during a poll. */
void pm_timer_cancel(struct mg_mgr *mgr, unsigned long id) {
  struct mg_timer *t;
  for (t = mgr->timers; t != NULL; t = t->next) {
    if (t->fn == pm_timer_fn && ((struct pm_timer *) t)->id == id) {
      mg_timer_free(&mgr->timers, t);
      mg_free(t);
      return;
    }
  }
}
