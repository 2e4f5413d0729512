/* ---- measuring the crossing into Python (benchmarks/) ---------------------------- */

/* Delivers event ev to connection id n times, as Mongoose would, so the cost of one
 * crossing into Python can be measured without the network. Returns the number
 * delivered (0 if the connection is not open). */
unsigned pm_bench_events(struct mg_mgr *mgr, unsigned long id, int ev,
                         void *ev_data, unsigned n) {
  struct mg_connection *c = pm_conn(mgr, id);
  unsigned i;
#if PM_DISPATCH_WITH_GIL
  PyGILState_STATE gil = PyGILState_Ensure();  // as pm_mgr_poll dispatches
#endif
  for (i = 0; c != NULL && i < n && c->fn_data != NULL; i++) {
    pm_event_handler(c, ev, ev_data);
  }
  pm_flush(mgr);
#if PM_DISPATCH_WITH_GIL
  PyGILState_Release(gil);
#endif
  return i;
}
