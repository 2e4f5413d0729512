"""Fixes to Mongoose 7.23 that cannot be made from the shim, applied at build time.

The verified ``mongoose.c`` in ``vendor/mongoose/`` is never modified: the build
compiles a patched copy. Each patch replaces one exact piece of upstream code and
says why. On the pinned release a patch that does not apply stops the build; on
another tree (``MONGOOSE_SRC``) it is skipped with a note, as that release may have
fixed the problem its own way.
"""

from __future__ import annotations

from typing import Callable, List, NamedTuple, Sequence


class Patch(NamedTuple):
    name: str
    why: str
    old: str
    new: str


PATCHES: List[Patch] = [
    Patch(
        name="bzero-memset",
        why=(
            "mg_bzero clears memory one volatile byte at a time, so that the compiler "
            "cannot drop it; Mongoose calls it on every buffer it trims, twice per "
            "HTTP request (about 700 instructions of a keep-alive request's 21,000). "
            "memset followed by a compiler barrier that takes the buffer cannot be "
            "dropped either, and runs a word or a vector at a time."
        ),
        old="""\
void mg_bzero(volatile unsigned char *buf, size_t len) {
  if (buf != NULL) {
    while (len--) *buf++ = 0;
  }
}
""",
        new="""\
void mg_bzero(volatile unsigned char *buf, size_t len) {
  if (buf != NULL) {
#if defined(__GNUC__)  // pymongoose: see vendor/mongoose_patches.py
    memset((unsigned char *) buf, 0, len);
    __asm__ __volatile__("" : : "r"(buf) : "memory");
#else
    while (len--) *buf++ = 0;
#endif
  }
}
""",
    ),
    Patch(
        name="epoll-mod-recorded",
        why=(
            "pymongoose registers sockets for writability only while they need it "
            "(the epollout-* patches below), which is correct only if it knows what "
            "the kernel has registered. Route every change through pm_epoll_mod "
            "(_native/wait.c), which records it in the connection's state: one "
            "record, kept where the change is made, that cannot disagree with the "
            "kernel's, and no system call when nothing changes."
        ),
        old="""\
#include "mongoose.h"
""",
        new="""\
#include "mongoose.h"
#if MG_ENABLE_EPOLL  // pymongoose: see vendor/mongoose_patches.py
#undef MG_EPOLL_MOD
void pm_epoll_mod(struct mg_connection *c, bool wr);
#define MG_EPOLL_MOD(c, wr) pm_epoll_mod((c), (wr))
#endif
""",
    ),
    Patch(
        name="tls-ecdsa-minimal-der",
        why=(
            "The built-in TLS server encodes the r and s of its ECDSA CertificateVerify "
            "signature as 32-byte DER INTEGERs even when they start with a zero byte; "
            "DER requires the minimal encoding, so OpenSSL peers fail about one "
            "handshake in 256 with BAD_SIGNATURE. Encode them minimally."
        ),
        old="""\
    neg1 = !!(sig[0] & 0x80);
    neg2 = !!(sig[32] & 0x80);
    verify[8] = 0x30;  // ASN.1 SEQUENCE
    verify[9] = (uint8_t) (68 + neg1 + neg2);
    verify[10] = 0x02;  // ASN.1 INTEGER
    verify[11] = (uint8_t) (32 + neg1);
    memmove(verify + 12 + neg1, sig, 32);
    verify[12 + 32 + neg1] = 0x02;  // ASN.1 INTEGER
    verify[13 + 32 + neg1] = (uint8_t) (32 + neg2);
    memmove(verify + 14 + 32 + neg1 + neg2, sig + 32, 32);

    sigsz = (size_t) (70 + neg1 + neg2);
""",
        new="""\
    {  // pymongoose: minimal DER, see vendor/mongoose_patches.py and _native/tls.c
      extern size_t pm_ecdsa_der(uint8_t *out, const uint8_t *sig);
      sigsz = pm_ecdsa_der(verify + 8, sig);
      neg1 = neg2 = 0;
      (void) neg1, (void) neg2;
    }
""",
    ),
    Patch(
        name="accept-all-pending",
        why=(
            "mg_mgr_poll accepts one connection per listener per iteration, so a burst "
            "of thousands of new connections waits thousands of iterations (each one "
            "visiting every open connection). Accept what is pending, up to a bound, in "
            "the iteration that sees the listener readable."
        ),
        old="""\
    } else if (c->is_listening && c->is_udp == 0) {
      if (c->is_readable) accept_conn(mgr, c);
""",
        new="""\
    } else if (c->is_listening && c->is_udp == 0) {
      // pymongoose: accept every pending connection (vendor/mongoose_patches.py);
      // accept_conn puts a new connection at the head of mgr->conns.
      if (c->is_readable) {
        struct mg_connection *head;
        unsigned accepted = 0;
        do {
          head = mgr->conns;
          accept_conn(mgr, c);
        } while (mgr->conns != head && ++accepted < 128 && !c->is_closing);
      }
""",
    ),
    Patch(
        name="accept-quiet-when-drained",
        why=(
            "With every pending connection accepted, the last accept() finds none "
            "(EAGAIN): that is the normal end of a burst, not an error to log."
        ),
        old="""\
  if (fd == MG_INVALID_SOCKET) {
#if MG_ARCH == MG_ARCH_THREADX || defined(__ECOS)
""",
        new="""\
  if (fd == MG_INVALID_SOCKET && MG_SOCK_PENDING(-1)) {
    // pymongoose: nothing left to accept (vendor/mongoose_patches.py)
  } else if (fd == MG_INVALID_SOCKET) {
#if MG_ARCH == MG_ARCH_THREADX || defined(__ECOS)
""",
    ),
    Patch(
        name="static-file-chunk",
        why=(
            "serve_dir/serve_file read a file into the send buffer MG_IO_SIZE (16 KiB) "
            "at a time, one chunk per loop iteration: a large file costs thousands of "
            "iterations, each paying the poll's fixed cost. Read 64 KiB at a time (only "
            "connections sending a file get the larger buffer)."
        ),
        old="""\
    size_t n, max = MG_IO_SIZE, space;
""",
        new="""\
    size_t n, max = 4 * MG_IO_SIZE, space;  // pymongoose: vendor/mongoose_patches.py
""",
    ),
    Patch(
        name="write-after-read",
        why=(
            "A reply made while handling a read waits for the next iteration: poll "
            "registers the socket for writability (epoll_ctl), waits, writes, then "
            "unregisters it (epoll_ctl again). Two system calls and one iteration per "
            "response. Write at once instead, in the iteration that made the data; the "
            "socket is registered for writability only if the kernel's buffer is full."
        ),
        old="""\
      if (c->is_readable) read_conn(c);
      if (c->is_writable) write_conn(c);
""",
        new="""\
      if (c->is_readable) read_conn(c);
      // pymongoose: write what is ready now (vendor/mongoose_patches.py);
      // TLS connections once their handshake is over.
      if (c->is_writable || (c->send.len > 0 && !c->is_tls_hs)) write_conn(c);
""",
    ),
    Patch(
        name="epollout-when-blocked",
        why=(
            "Data queued between iterations (by an asyncio task, a timer, another "
            "thread) made poll register the socket for writability, wait, write, then "
            "unregister it: two epoll_ctl calls per response. The write step after "
            "the wait (write-after-read) writes such data anyway, so for pymongoose's "
            "connections the wait only must not block; the socket is "
            "registered while output remains after a write step (its kernel buffer "
            "is full, or MG_EV_WRITE refilled it): pm_epoll_out, pm_epoll_written "
            "in _native/wait.c, which read the record of epoll-mod-recorded."
        ),
        old="""\
    if (can_write(c)) MG_EPOLL_MOD(c, 1);
""",
        new="""\
    if (can_write(c)) {  // pymongoose: see vendor/mongoose_patches.py
      extern int pm_epoll_out(struct mg_connection *);
      int how = pm_epoll_out(c);
      if (how > 0) MG_EPOLL_MOD(c, 1);
      if (how < 0) ms = 0;  // written right after the wait
    }
""",
    ),
    Patch(
        name="epollout-after-write",
        why="The other half of epollout-when-blocked: after each write step.",
        old="""\
      if (c->is_writable || (c->send.len > 0 && !c->is_tls_hs)) write_conn(c);
""",
        new="""\
      if (c->is_writable || (c->send.len > 0 && !c->is_tls_hs)) write_conn(c);
      {
        extern void pm_epoll_written(struct mg_connection *);
        pm_epoll_written(c);
      }
""",
    ),
    Patch(
        name="epollout-settled-after-write",
        why=(
            "A write that empties the send buffer unregisters the socket before "
            "MG_EV_WRITE, whose handler may refill it (Mongoose's static file handler "
            "does): the refill then waits for a registration. For pymongoose's "
            "connections the registration is settled once the write step is over "
            "(pm_epoll_emptied, pm_epoll_written in _native/wait.c)."
        ),
        old="""\
      if (c->send.len == 0) {
        MG_EPOLL_MOD(c, 0);
      }
""",
        new="""\
      if (c->send.len == 0) {  // pymongoose: see vendor/mongoose_patches.py
        extern void pm_epoll_emptied(struct mg_connection *);
        pm_epoll_emptied(c);
      }
""",
    ),
    Patch(
        name="epollout-stale",
        why=(
            "A socket registered for writability whose send buffer emptied outside a "
            "write step (the shim cuts what follows a WebSocket close frame) stays "
            "registered; level-triggered epoll would wake every iteration for it. "
            "Unregister it the first time the wait reports it with nothing to send."
        ),
        old="""\
      c->is_writable = can_write(c) && wr ? 1U : 0;
""",
        new="""\
      c->is_writable = can_write(c) && wr ? 1U : 0;
      if (wr && !can_write(c)) MG_EPOLL_MOD(c, 0);  // pymongoose: see patches
""",
    ),
    Patch(
        name="ws-pong-after-handler",
        why=(
            "Mongoose queues the PONG for a PING before the handler sees the ping. "
            "Messages that arrived before the ping may still wait in pymongoose's "
            "deferred queue, so the pong would overtake their replies. Raise "
            "MG_EV_WS_CTL first (it delivers the queue), then queue the pong."
        ),
        old="""\
        case WEBSOCKET_OP_PING:
          MG_DEBUG(("%s", "WS PONG"));
          mg_ws_send(c, s, msg.data_len, WEBSOCKET_OP_PONG);
          mg_call(c, MG_EV_WS_CTL, &m);
          break;
""",
        new="""\
        case WEBSOCKET_OP_PING:
          MG_DEBUG(("%s", "WS PONG"));
          mg_call(c, MG_EV_WS_CTL, &m);  // pymongoose: before the pong (see patches)
          mg_ws_send(c, s, msg.data_len, WEBSOCKET_OP_PONG);
          break;
""",
    ),
    Patch(
        name="ws-every-frame-seen",
        why=(
            "Mongoose raises no event for the first frame of a fragmented message and "
            "closes on a reserved opcode without a close frame, so the shim cannot fail "
            "a new message begun inside a fragmented one (RFC 6455 5.4), validate a "
            "fragmented text message as it arrives (8.1), or answer a reserved opcode "
            "with close code 1002 (5.2). Raise MG_EV_WS_CTL for both; the shim checks "
            "them (pm_ws_check) and never delivers them."
        ),
        old="""\
        case WEBSOCKET_OP_TEXT:
        case WEBSOCKET_OP_BINARY:
          if (final) mg_call(c, MG_EV_WS_MSG, &m);
          break;
""",
        new="""\
        case WEBSOCKET_OP_TEXT:
        case WEBSOCKET_OP_BINARY:
          // pymongoose: a first fragment goes to the shim (see patches)
          mg_call(c, final ? MG_EV_WS_MSG : MG_EV_WS_CTL, &m);
          break;
""",
    ),
    Patch(
        name="ws-reserved-opcode-close-frame",
        why="See ws-every-frame-seen: the shim fails the connection with close code 1002.",
        old="""\
        default:
          // Per RFC6455, close conn when an unknown op is recvd
          mg_error(c, "unknown WS op %d", op);
          break;
""",
        new="""\
        default:
          // Per RFC6455, close conn when an unknown op is recvd
          mg_call(c, MG_EV_WS_CTL, &m);  // pymongoose: the shim sends close 1002
          if (!c->is_draining) mg_error(c, "unknown WS op %d", op);
          break;
""",
    ),
    Patch(
        name="ws-stop-after-close",
        why=(
            "Mongoose goes on parsing the frames that follow a close frame in the same "
            "read, and answers a ping among them with a pong after its own close frame "
            "(RFC 6455 5.5.1: nothing may follow it). Parse no further frame once the "
            "connection is closing or draining (a close frame received or sent)."
        ),
        old="""\
    while (ws_process(c->recv.buf + ofs, c->recv.len - ofs, &msg) > 0) {
""",
        new="""\
    while (!c->is_draining && !c->is_closing &&  // pymongoose: see patches
           ws_process(c->recv.buf + ofs, c->recv.len - ofs, &msg) > 0) {
""",
    ),
    Patch(
        name="recv-grows-geometrically",
        why=(
            "The receive buffer grows by MG_IO_SIZE each time it fills, and each growth "
            "copies the whole buffer: receiving a 16 MiB WebSocket message copied about "
            "8 GiB. Grow by half the current size (at least MG_IO_SIZE) instead, so a "
            "message of n bytes costs O(n) copying."
        ),
        old="""\
  } else if (io->size <= io->len &&
             !mg_iobuf_resize(io, io->size + MG_IO_SIZE)) {
""",
        new="""\
  } else if (io->size <= io->len &&  // pymongoose: see patches
             !mg_iobuf_resize(io, io->size + (io->size / 2 > MG_IO_SIZE ? io->size / 2
                                                                      : MG_IO_SIZE))) {
""",
    ),
    Patch(
        name="page404-status",
        why=(
            "mg_http_serve_dir serves its page404 file with status 200 (or 206, or 304), "
            "so clients and crawlers take a missing page for a real one. Answer 404, "
            "with neither ranges nor conditional requests applied to it."
        ),
        old="""\
  // Failed to open, and page404 is configured? Open it, then
  if (fd == NULL && opts && opts->page404) {
    fd = mg_fs_open(fs, opts->page404, MG_FS_READ);
    path = opts->page404;
    mime = guess_content_type(mg_str(path), mime_types);
  }

  if (fd == NULL || fs->st(path, &size, &mtime) == 0) {
    mg_http_reply(c, 404, hdrs, "Not found\\n");
    mg_fs_close(fd);
    // NOTE: mg_http_etag() call should go first!
  } else if (mg_http_etag(etag, sizeof(etag), size, mtime) != NULL &&
             (inm = mg_http_get_header(hm, "If-None-Match")) != NULL &&
             mg_strcasecmp(*inm, mg_str(etag)) == 0) {
    mg_fs_close(fd);
    mg_http_reply(c, 304, hdrs, "");
  } else {
    int n, status = 200;
    char range[100];
    size_t r1 = 0, r2 = 0, cl = size;

    // Handle Range header
    struct mg_str *rh = mg_http_get_header(hm, "Range");
    range[0] = '\\0';
    if (rh != NULL && (n = getrange(rh, &r1, &r2)) > 0) {
""",
        new="""\
  // Failed to open, and page404 is configured? Open it, then
  bool pm_page404 = fd == NULL && opts && opts->page404;  // pymongoose: see patches
  if (pm_page404) {
    fd = mg_fs_open(fs, opts->page404, MG_FS_READ);
    path = opts->page404;
    mime = guess_content_type(mg_str(path), mime_types);
  }

  if (fd == NULL || fs->st(path, &size, &mtime) == 0) {
    mg_http_reply(c, 404, hdrs, "Not found\\n");
    mg_fs_close(fd);
    // NOTE: mg_http_etag() call should go first!
  } else if (mg_http_etag(etag, sizeof(etag), size, mtime) != NULL && !pm_page404 &&
             (inm = mg_http_get_header(hm, "If-None-Match")) != NULL &&
             mg_strcasecmp(*inm, mg_str(etag)) == 0) {
    mg_fs_close(fd);
    mg_http_reply(c, 304, hdrs, "");
  } else {
    int n, status = pm_page404 ? 404 : 200;
    char range[100];
    size_t r1 = 0, r2 = 0, cl = size;

    // Handle Range header
    struct mg_str *rh = pm_page404 ? NULL : mg_http_get_header(hm, "Range");
    range[0] = '\\0';
    if (rh != NULL && (n = getrange(rh, &r1, &r2)) > 0) {
""",
    ),
    Patch(
        name="listen-reuse-port",
        why=(
            "Mongoose cannot open a listener with SO_REUSEPORT, which lets several "
            "processes listen on one port (the kernel spreads connections across "
            "them: `python -m pymongoose --workers N`). Set it when the shim asks "
            "(pm_listen with reuse_port; a flag for the calling thread's listen)."
        ),
        old="""\
    if ((fd = socket(af, type, proto)) == MG_INVALID_SOCKET) {
      MG_ERROR(("socket: %d", MG_SOCK_ERR(-1)));
#if defined(SO_EXCLUSIVEADDRUSE)
""",
        new="""\
    extern _Thread_local bool pm_reuse_port;  // pymongoose: see patches
    if ((fd = socket(af, type, proto)) == MG_INVALID_SOCKET) {
      MG_ERROR(("socket: %d", MG_SOCK_ERR(-1)));
#if defined(SO_REUSEPORT)
    } else if (pm_reuse_port && (rc = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, (char *) &on,
                                                 sizeof(on))) != 0) {
      MG_ERROR(("setsockopt(SO_REUSEPORT): %d", MG_SOCK_ERR(rc)));
#endif
#if defined(SO_EXCLUSIVEADDRUSE)
""",
    ),
    Patch(
        name="listen-adopt-fd",
        why=(
            "Mongoose opens every listening socket itself, from an IP address. A "
            "server behind a service manager or a supervisor must listen on a "
            "descriptor it was given: systemd's socket activation, a Unix domain "
            "socket, or the one socket a supervisor shares with its workers so that "
            "none of them, stopping, drops the connections waiting to be accepted. "
            "pm_open_listener (connections.c) adopts that descriptor when pm_listen "
            "was given one, and answers -1 otherwise."
        ),
        old="""\
bool mg_open_listener(struct mg_connection *c, const char *url) {
  MG_SOCKET_TYPE fd = MG_INVALID_SOCKET;
  bool success = false;
""",
        new="""\
bool mg_open_listener(struct mg_connection *c, const char *url) {
  MG_SOCKET_TYPE fd = MG_INVALID_SOCKET;
  bool success = false;
  extern int pm_open_listener(struct mg_connection *c);  // pymongoose: see patches
  extern _Thread_local int pm_listen_backlog;
  int adopted = pm_open_listener(c);
  if (adopted >= 0) return adopted == 1;
""",
    ),
    Patch(
        name="listen-backlog",
        why=(
            "Mongoose's accept queue length is fixed when it is compiled (128). "
            "Servers take it as an option (--backlog: 2048 unless told, as uvicorn "
            "and gunicorn do) so that a burst of connections waits rather than being "
            "refused."
        ),
        old="(rc = listen(fd, MG_SOCK_LISTEN_BACKLOG_SIZE)) != 0)) {",
        new="(rc = listen(fd, pm_listen_backlog)) != 0)) {",
    ),
    Patch(
        name="unix-socket-address",
        why=(
            "A connection accepted on a Unix domain socket has no IP address: "
            "Mongoose would read the socket's path as one. Its addresses are left "
            "zero (the servers report no client address, as uvicorn does)."
        ),
        old="""\
static void tomgaddr(union usa *usa, struct mg_addr *a, bool is_ip6) {
  a->is_ip6 = is_ip6;
""",
        new="""\
static void tomgaddr(union usa *usa, struct mg_addr *a, bool is_ip6) {
  if (usa->sa.sa_family != AF_INET && usa->sa.sa_family != AF_INET6) {
    memset(a, 0, sizeof(*a));  // pymongoose: a Unix domain socket's peer
    return;
  }
  a->is_ip6 = is_ip6;
""",
    ),
    Patch(
        name="http-request-screened",
        why=(
            "Mongoose's parser closes without a word on a malformed request (a space "
            "before a colon, two Content-Lengths, Content-Length with "
            "Transfer-Encoding), serves an HTTP/1.1 request without Host, silently "
            "ignores header lines past its 30th (a Content-Length there would be "
            "lost: request smuggling), and has no limit on a head's size. RFC 9112 "
            "wants a 400 (414, 431, 501, 505) and a close. Let pm_http_screen "
            "(_native/httpd.c) see each request a server parses, before the parser "
            "acts on it, and answer those itself."
        ),
        old="""\
      size_t old_len = c->recv.len;
      if (n < 0) {
""",
        new="""\
      size_t old_len = c->recv.len;
      extern bool pm_http_screen(struct mg_connection *, const char *, size_t, int,
                                 struct mg_http_message *);  // pymongoose: see patches
      if (c->is_accepted && ev != MG_EV_CLOSE &&
          !pm_http_screen(c, buf, c->recv.len - ofs, n, &hm)) {
        return;
      }
      if (n < 0) {
""",
    ),
    Patch(
        name="http-detached-in-msg",
        why=(
            "Mongoose's HTTP handler lets go of a connection whose handler consumed "
            "the input in MG_EV_HTTP_HDRS, before it deletes the request it parsed. "
            "pymongoose delivers MG_EV_HTTP_HDRS of a request already whole together "
            "with its MG_EV_HTTP_MSG (one crossing into Python instead of two), so "
            "that can now happen inside MG_EV_HTTP_MSG: pm_http_detach lets go the "
            "same way, and the parser must then stop as it would have."
        ),
        old="""\
      mg_call(c, MG_EV_HTTP_MSG, &hm);     // User handler can clear is_resp
""",
        new="""\
      mg_call(c, MG_EV_HTTP_MSG, &hm);     // User handler can clear is_resp
      if (c->pfn == NULL) return;  // pymongoose: pm_http_detach (see patches)
""",
    ),
    Patch(
        name="tls-client-tickets-kept",
        why=(
            "A TLS 1.3 client's session is the ticket the server sends after the "
            "handshake. pymongoose asks mbed TLS to hand tickets over "
            "(pm_tls_client_begin in _native/tls.c), which makes mbedtls_ssl_read "
            "return MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET: keep the session "
            "(pm_tls_keep_session) and read on, as if tickets were not signalled."
        ),
        old="""\
  long n = mbedtls_ssl_read(&tls->ssl, (unsigned char *) buf, len);
""",
        new="""\
  long n = mbedtls_ssl_read(&tls->ssl, (unsigned char *) buf, len);
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
  while (n == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {  // pymongoose: see patches
    extern void pm_tls_keep_session(struct mg_connection *, bool);
    pm_tls_keep_session(c, true);
    n = mbedtls_ssl_read(&tls->ssl, (unsigned char *) buf, len);
  }
#endif
""",
    ),
    Patch(
        name="tls-client-tickets-kept-on-send",
        why=(
            "The other half of tls-client-tickets-kept: a ticket mbed TLS had read "
            "but not processed is processed by the next write, which returns "
            "MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET (Mongoose then writes again "
            "in the next iteration): keep that session too."
        ),
        old="""\
  if (n == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
    return MG_IO_WAIT;
""",
        new="""\
  if (n == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {  // pymongoose: see patches
    extern void pm_tls_keep_session(struct mg_connection *, bool);
    pm_tls_keep_session(c, true);
    return MG_IO_WAIT;
  }
""",
    ),
]


def apply_patches(source: str, required: bool, log: Callable[[str], None],
                  patches: Sequence[Patch] = PATCHES, where: str = "mongoose.c") -> str:
    """Return ``source`` (the text of ``where``) with every patch applied. A patch
    that does not apply raises (``required``) or is skipped with a note.
    vendor/mbedtls_patches.py uses it for mbed TLS's files."""
    for patch in patches:
        count = source.count(patch.old)
        if count == 1:
            source = source.replace(patch.old, patch.new)
        elif required:
            raise RuntimeError(f"patch {patch.name} matches {count} places in {where}, expected 1")
        else:
            log(f"pymongoose: patch {patch.name} does not apply to this {where}; skipped ({patch.why})")
    return source
