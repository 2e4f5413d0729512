// The ceiling: a plain-C hello-world server on the same Mongoose build as
// pymongoose (same defines, same patched source), answering exactly the bytes the
// Python benchmark servers answer. Built by benchmarks/run.py (see README.md).
//
//   ./benchmarks/c_baseline PORT [plain]
//
// Without "plain" it answers server.py's hello (JSON, its own Content-Type); with
// it, server.py's plain.
#include <signal.h>
#include <stdlib.h>

#include "mongoose.h"

static const char json_response[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 27\r\n"
    "\r\n"
    "{\"message\":\"Hello, World!\"}";

static const char plain_response[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "Hello, World!";

static const char *response = json_response;
static size_t response_len = sizeof(json_response) - 1;

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void) sig;
  stop = 1;
}

static void handler(struct mg_connection *c, int ev, void *ev_data) {
  if (ev == MG_EV_HTTP_MSG) {
    mg_send(c, response, response_len);
    c->is_resp = 0;
  }
  (void) ev_data;
}

int main(int argc, char *argv[]) {
  struct mg_mgr mgr;
  char url[64];
  if (argc < 2 || argc > 3) return 2;
  if (argc == 3) response = plain_response, response_len = sizeof(plain_response) - 1;
  mg_log_set(MG_LL_NONE);
  mg_mgr_init(&mgr);
  mg_snprintf(url, sizeof(url), "http://127.0.0.1:%s", argv[1]);
  if (mg_http_listen(&mgr, url, handler, NULL) == NULL) return 1;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  MG_INFO(("ready"));
  printf("ready on %s\n", argv[1]);
  fflush(stdout);
  while (!stop) mg_mgr_poll(&mgr, 1000);
  mg_mgr_free(&mgr);
  return 0;
}
