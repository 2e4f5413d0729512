/* TLS: the options a listener shares with the connections it accepts, checked
 * before use, and the DER signature fix that vendor/mongoose_patches.py calls. */

/* ---- TLS signature encoding (used by vendor/mongoose_patches.py) -------------- */

/* Writes an ECDSA P-256 signature (r and s, 32 bytes each, big-endian) as the DER
 * SEQUENCE of two INTEGERs that TLS expects: minimal (leading zero bytes dropped)
 * and positive (a zero byte added before a high bit). Returns its length (<= 72). */
size_t pm_ecdsa_der(uint8_t *out, const uint8_t *sig) {
  size_t i, n = 2;
  for (i = 0; i < 2; i++) {
    const uint8_t *v = sig + 32 * i;
    size_t skip = 0, len;
    while (skip < 31 && v[skip] == 0 && !(v[skip + 1] & 0x80)) skip++;
    len = 32 - skip;
    out[n++] = 0x02;  // INTEGER
    out[n++] = (uint8_t) (len + (v[skip] >> 7));
    if (v[skip] & 0x80) out[n++] = 0;
    memmove(out + n, v + skip, len);
    n += len;
  }
  out[0] = 0x30;  // SEQUENCE
  out[1] = (uint8_t) (n - 2);
  return n;
}

/* ---- mbed TLS's mutexes where there are no pthreads (Windows) ----------------- */

#if MG_TLS == MG_TLS_MBED
#include <mbedtls/threading.h>
#endif
#if MG_TLS == MG_TLS_MBED && defined(MBEDTLS_THREADING_ALT)  // threading_alt.h
static void pm_mutex_init(mbedtls_threading_mutex_t *m) { InitializeSRWLock(&m->lock); }
static void pm_mutex_free(mbedtls_threading_mutex_t *m) { (void) m; }
static int pm_mutex_lock(mbedtls_threading_mutex_t *m) {
  AcquireSRWLockExclusive(&m->lock);
  return 0;
}
static int pm_mutex_unlock(mbedtls_threading_mutex_t *m) {
  ReleaseSRWLockExclusive(&m->lock);
  return 0;
}
/* Once, at import, before any other mbed TLS call (pm_init). */
static void pm_tls_threading_init(void) {
  mbedtls_threading_set_alt(pm_mutex_init, pm_mutex_free, pm_mutex_lock, pm_mutex_unlock);
}
#else
static void pm_tls_threading_init(void) {}
#endif

/* ---- X25519 for mbed TLS (called from vendor/mbedtls_patches.py's ecp.c) ------ */

#include "x25519.h"

#if MG_TLS == MG_TLS_MBED
#include <mbedtls/ecp.h>
#include <mbedtls/platform_util.h>

/* R = m P on Curve25519 by pm_x25519 (x25519.c), for mbed TLS's ecp_mul once it has
 * checked m and P. MBEDTLS_ERR_ECP_FEATURE_UNAVAILABLE for another curve, or where
 * x25519.c has no fast code: mbed TLS then uses its own. */
int pm_ecp_mul_montgomery(const mbedtls_ecp_group *grp, mbedtls_ecp_point *R, const mbedtls_mpi *m,
                          const mbedtls_ecp_point *P) {
  uint8_t k[32], u[32], out[32];
  int ret;
  if (grp->id != MBEDTLS_ECP_DP_CURVE25519) return MBEDTLS_ERR_ECP_FEATURE_UNAVAILABLE;
  // P is read whole before R is written: R may be P.
  if ((ret = mbedtls_mpi_write_binary_le(m, k, sizeof(k))) == 0 &&
      (ret = mbedtls_mpi_write_binary_le(&P->MBEDTLS_PRIVATE(X), u, sizeof(u))) == 0) {
    switch (pm_x25519(out, k, u)) {
      case PM_X25519_OK:  // x only, Z = 1, as mbed TLS's own result
        ret = mbedtls_mpi_read_binary_le(&R->MBEDTLS_PRIVATE(X), out, sizeof(out));
        if (ret == 0) ret = mbedtls_mpi_lset(&R->MBEDTLS_PRIVATE(Z), 1);
        mbedtls_mpi_free(&R->MBEDTLS_PRIVATE(Y));
        break;
      case PM_X25519_ZERO:  // mbed TLS refuses small-order points before this; kept in case
        ret = MBEDTLS_ERR_ECP_INVALID_KEY;
        break;
      default:
        ret = MBEDTLS_ERR_ECP_FEATURE_UNAVAILABLE;
    }
  }
  mbedtls_platform_zeroize(k, sizeof(k));
  mbedtls_platform_zeroize(out, sizeof(out));
  return ret;
}
#endif

/* ---- TLS clients' sessions, kept per manager to resume -------------------------- */

/* A client's session (TLS 1.2: its id or ticket; TLS 1.3: the last ticket the server
 * sent) is kept by its manager under the server's name, address and port, and offered
 * again on the next connection there: the server can then skip the certificate and
 * its signature (TLS 1.3 still agrees on fresh keys, psk_dhe_ke). mbed TLS serializes it (mbedtls_ssl_session_save), so a slot owns
 * plain bytes. Off per connection with TlsOpts(resume=False); no-ops with built-in TLS. */
#define PM_TLS_SESSIONS 32  // per manager; the least recently stored goes first

struct pm_tls_session {
  char host[256];         // the server name the client sent ("" for none)
  struct mg_addr addr;    // and the server's address and port
  unsigned char *saved;   // mbedtls_ssl_session_save's bytes; NULL: a free slot
  size_t len;
  uint64_t stored;        // when, on the owner's counter
};

struct pm_tls_sessions {
  struct pm_tls_session slot[PM_TLS_SESSIONS];
  uint64_t counter;
};

static void pm_tls_sessions_free(struct pm_tls_sessions *sessions) {
  if (sessions == NULL) return;
  for (size_t i = 0; i < PM_TLS_SESSIONS; i++) {
    if (sessions->slot[i].saved != NULL) {
      mg_bzero(sessions->slot[i].saved, sessions->slot[i].len);  // it holds a secret
      free(sessions->slot[i].saved);
    }
  }
  free(sessions);
}

#if MG_TLS == MG_TLS_MBED
#include <mbedtls/ssl.h>

/* The name the client sends: Mongoose set it with mbedtls_ssl_set_hostname (NULL,
 * or mbed TLS's own "" for none). */
static const char *pm_tls_host(struct mg_connection *c) {
  const char *host = ((struct mg_tls *) c->tls)->ssl.MBEDTLS_PRIVATE(hostname);
  return host == NULL ? "" : host;
}

static bool pm_same_server(const struct pm_tls_session *s, const char *host, const struct mg_addr *a) {
  return s->saved != NULL && strcmp(s->host, host) == 0 && s->addr.port == a->port &&
         s->addr.is_ip6 == a->is_ip6 && memcmp(&s->addr.addr, &a->addr, sizeof(a->addr)) == 0;
}

static struct pm_tls_session *pm_tls_find(struct pm_mgr *pm, struct mg_connection *c) {
  const char *host = pm_tls_host(c);
  if (pm->tls_sessions == NULL) return NULL;
  for (size_t i = 0; i < PM_TLS_SESSIONS; i++) {
    if (pm_same_server(&pm->tls_sessions->slot[i], host, &c->rem)) return &pm->tls_sessions->slot[i];
  }
  return NULL;
}

static bool pm_tls_resumes(struct mg_connection *c) {
  struct pm_conn *st = pm_own_state(c);
  return c->is_client && c->is_tls && c->tls != NULL && st != NULL && !st->tls_no_resume;
}

/* Right after mg_tls_init on a client: offer the session kept for this server, and
 * ask mbed TLS to hand over TLS 1.3 tickets (pm_tls_keep_session, from mg_tls_recv). */
static void pm_tls_client_begin(struct mg_connection *c) {
  struct pm_tls_session *kept;
  mbedtls_ssl_session session;
  struct mg_tls *tls = (struct mg_tls *) c->tls;
  if (!pm_tls_resumes(c)) return;
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_PROTO_TLS1_3)
  mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(&tls->conf,
                                                          MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
#endif
  if ((kept = pm_tls_find((struct pm_mgr *) c->mgr, c)) == NULL) return;
  mbedtls_ssl_session_init(&session);
  // A session that no longer loads or applies (expired, another version) is dropped.
  if (mbedtls_ssl_session_load(&session, kept->saved, kept->len) != 0 ||
      mbedtls_ssl_set_session(&tls->ssl, &session) != 0) {
    mg_bzero(kept->saved, kept->len);
    free(kept->saved);
    kept->saved = NULL;
  }
  mbedtls_ssl_session_free(&session);
}

/* After a client's handshake (ticket false: TLS 1.2 sessions; a TLS 1.3 session is
 * its ticket, which comes later) and each TLS 1.3 ticket (from Mongoose's
 * mg_tls_recv and mg_tls_send, vendor/mongoose_patches.py): keep the session for the
 * next connection to this server. Best effort: no memory, no slot. */
void pm_tls_keep_session(struct mg_connection *c, bool ticket) {
  struct pm_mgr *pm = (struct pm_mgr *) c->mgr;
  struct pm_tls_session *slot;
  mbedtls_ssl_session session;
  unsigned char *saved = NULL;
  size_t len = 0;
  const char *host;
  if (!pm_tls_resumes(c) || strlen(host = pm_tls_host(c)) >= sizeof(slot->host)) return;
  if (!ticket && mbedtls_ssl_get_version_number(&((struct mg_tls *) c->tls)->ssl) != MBEDTLS_SSL_VERSION_TLS1_2) {
    return;
  }
  if (pm->tls_sessions == NULL &&
      (pm->tls_sessions = (struct pm_tls_sessions *) calloc(1, sizeof(*pm->tls_sessions))) == NULL) {
    return;
  }
  mbedtls_ssl_session_init(&session);
  if (mbedtls_ssl_get_session(&((struct mg_tls *) c->tls)->ssl, &session) == 0 &&
      mbedtls_ssl_session_save(&session, NULL, 0, &len) == MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL &&
      (saved = (unsigned char *) malloc(len)) != NULL &&
      mbedtls_ssl_session_save(&session, saved, len, &len) == 0) {
    if ((slot = pm_tls_find(pm, c)) == NULL) {  // else the oldest (or a free) slot
      slot = &pm->tls_sessions->slot[0];
      for (size_t i = 1; i < PM_TLS_SESSIONS && slot->saved != NULL; i++) {
        struct pm_tls_session *s = &pm->tls_sessions->slot[i];
        if (s->saved == NULL || s->stored < slot->stored) slot = s;
      }
    }
    if (slot->saved != NULL) {
      mg_bzero(slot->saved, slot->len);
      free(slot->saved);
    }
    strcpy(slot->host, host);
    slot->addr = c->rem;
    slot->saved = saved, slot->len = len, saved = NULL;
    slot->stored = ++pm->tls_sessions->counter;
  }
  free(saved);
  mbedtls_ssl_session_free(&session);
}
#else
static void pm_tls_client_begin(struct mg_connection *c) { (void) c; }
void pm_tls_keep_session(struct mg_connection *c, bool ticket) { (void) c, (void) ticket; }
#endif

/* TlsOpts(resume=False) on a client connection. */
void pm_conn_tls_resume(struct mg_connection *c, bool resume) {
  struct pm_conn *st = c == NULL ? NULL : pm_own_state(c);
  if (st != NULL) st->tls_no_resume = !resume;
}

/* ---- TLS options a listener shares with the connections it accepts ------------ */

/* A deep copy of struct mg_tls_opts, reference-counted: a listener and each
 * connection it accepted hold one reference, since accepted connections may outlive
 * their listener. Mongoose copies what it needs in mg_tls_init(). */
struct pm_sni;  // below

struct pm_tls {
  unsigned refs;
  struct mg_tls_opts opts;
  const char **alpn;  // ALPN protocols, NULL-terminated, as mbed TLS takes them; or NULL
  struct pm_sni **sni;  // a server's certificates by name (SNI), sni_count of them
  size_t sni_count;
};

static void pm_sni_free(struct pm_sni **sni, size_t count);

/* Each copy is followed by a NUL: with mbed TLS, Mongoose hands PEM text to the
 * parser with its terminating NUL (it reads one byte past .len). */
static struct mg_str pm_copy_into(char **cursor, struct mg_str s) {
  struct mg_str copy = {NULL, 0};  // Mongoose tests .buf == NULL for "not given"
  if (s.len > 0) {
    memcpy(*cursor, s.buf, s.len);
    copy.buf = *cursor;
    copy.len = s.len;
    *cursor += s.len + 1;  // calloc'd: the NUL is there
  }
  return copy;
}

static struct pm_tls *pm_tls_new(const struct mg_tls_opts *o) {
  size_t size = o->ca.len + o->cert.len + o->key.len + o->name.len + 4;
  struct pm_tls *t = (struct pm_tls *) calloc(1, sizeof(*t) + size);
  char *cursor = (char *) (t + 1);
  if (t == NULL) return NULL;
  t->refs = 1;
  t->opts.ca = pm_copy_into(&cursor, o->ca);
  t->opts.cert = pm_copy_into(&cursor, o->cert);
  t->opts.key = pm_copy_into(&cursor, o->key);
  t->opts.name = pm_copy_into(&cursor, o->name);
  t->opts.skip_verification = o->skip_verification;
  return t;
}

static void pm_tls_release(struct pm_tls *t) {
  if (t != NULL && --t->refs == 0) {
    free((void *) t->alpn);
    pm_sni_free(t->sni, t->sni_count);
    free(t);
  }
}

struct pm_tls_error {
  char *buf;
  size_t len;
};

static void pm_record_error(struct mg_connection *c, int ev, void *ev_data) {
  struct pm_tls_error *error = (struct pm_tls_error *) c->fn_data;
  if (ev == MG_EV_ERROR && error->buf[0] == '\0') {
    snprintf(error->buf, error->len, "%s", (const char *) ev_data);
  }
}

/* Parses opts as mg_tls_init() would, on a throwaway connection, so bad PEM or a
 * missing key is reported when the options are given, not at the first accept.
 * Returns false and fills err on failure. */
bool pm_tls_check(struct mg_mgr *mgr, const struct mg_tls_opts *opts, bool client,
                  char *err, size_t err_len) {
  struct mg_connection probe;
  struct pm_tls_error error = {err, err_len};
  bool ok;
  memset(&probe, 0, sizeof(probe));
  err[0] = '\0';
  probe.mgr = mgr;
  probe.is_client = client;
  probe.fn = pm_record_error;
  probe.fn_data = &error;
  mg_tls_init(&probe, opts);
  // mbed TLS's mg_tls_init only logs a certificate or key it cannot parse, and
  // leaves no TLS state behind: that is a failure too (Python has the log line).
  ok = err[0] == '\0' && !probe.is_closing && probe.tls != NULL;
  mg_tls_free(&probe);
  return ok;
}

/* ---- ALPN -------------------------------------------------------------------- */

/* The protocols c's TLS options offer (a client) or accept (a server, in its order
 * of preference): list holds them NUL-separated, len bytes ("h2\0http/1.1").
 * Accepted connections share their listener's options. False: no TLS options on c,
 * no memory, or the built-in TLS, which has no ALPN. */
bool pm_conn_tls_alpn(struct mg_connection *c, const char *list, size_t len) {
#if MG_TLS == MG_TLS_MBED
  struct pm_conn *st = c == NULL ? NULL : pm_own_state(c);
  size_t count = 1;
  const char **alpn;
  char *copy;
  if (st == NULL || st->tls == NULL || len == 0) return false;
  for (size_t i = 0; i < len; i++) count += list[i] == '\0';
  // One allocation: the pointers, their NULL, then the names (NUL-terminated).
  if ((alpn = (const char **) calloc(1, (count + 1) * sizeof(*alpn) + len + 1)) == NULL) return false;
  copy = (char *) (alpn + count + 1);
  memcpy(copy, list, len);
  for (size_t i = 0, n = 0; n < count; n++) {
    alpn[n] = copy + i;
    i += strlen(copy + i) + 1;
  }
  free((void *) st->tls->alpn);
  st->tls->alpn = alpn;
  return true;
#else
  (void) c, (void) list, (void) len;
  return false;
#endif
}

/* The protocol the handshake agreed on, or NULL (none, not yet, or no TLS). */
const char *pm_tls_alpn_chosen(struct mg_connection *c) {
#if MG_TLS == MG_TLS_MBED
  if (c == NULL || c->tls == NULL || !c->is_tls || c->is_tls_hs) return NULL;
  return mbedtls_ssl_get_alpn_protocol(&((struct mg_tls *) c->tls)->ssl);
#else
  (void) c;
  return NULL;
#endif
}

/* ---- SNI: a server's certificates chosen by the name the client asks for -------- */

/* Parsed once, when given (pm_conn_tls_sni), and shared by the listener's
 * connections with the rest of its options. */
struct pm_sni {
  char name[254];  // lower case
#if MG_TLS == MG_TLS_MBED
  mbedtls_x509_crt cert;
  mbedtls_pk_context key;
#endif
};

static void pm_sni_entry_free(struct pm_sni *entry) {
#if MG_TLS == MG_TLS_MBED
  mbedtls_x509_crt_free(&entry->cert);
  mbedtls_pk_free(&entry->key);
#endif
  free(entry);
}

static void pm_sni_free(struct pm_sni **sni, size_t count) {
  for (size_t i = 0; i < count; i++) pm_sni_entry_free(sni[i]);
  free(sni);
}

/* Adds a certificate for clients asking for name (case-insensitive) to c's TLS
 * options, right after pm_conn_set_tls made them (no connection shares them yet;
 * each entry is allocated alone, as a handshake holds pointers into it). cert and
 * key are PEM followed by a NUL, or DER. False, with Mongoose's log saying why, if
 * they do not parse; false too with the built-in TLS, which has no SNI. */
bool pm_conn_tls_sni(struct mg_connection *c, const char *name, size_t name_len, const char *cert,
                     size_t cert_len, const char *key, size_t key_len) {
#if MG_TLS == MG_TLS_MBED
  struct pm_conn *st = c == NULL ? NULL : pm_own_state(c);
  struct pm_sni **grown, *entry;
  if (st == NULL || st->tls == NULL || name_len == 0 || name_len >= sizeof(entry->name)) return false;
  grown = (struct pm_sni **) realloc(st->tls->sni, (st->tls->sni_count + 1) * sizeof(*grown));
  if (grown == NULL) return false;
  st->tls->sni = grown;
  if ((entry = (struct pm_sni *) calloc(1, sizeof(*entry))) == NULL) return false;
  for (size_t i = 0; i < name_len; i++) entry->name[i] = (char) tolower((unsigned char) name[i]);
  mbedtls_x509_crt_init(&entry->cert);
  mbedtls_pk_init(&entry->key);
  if (!mg_load_cert(mg_str_n(cert, cert_len), &entry->cert) || !mg_load_key(mg_str_n(key, key_len), &entry->key) ||
      entry->cert.version == 0 || mbedtls_pk_get_type(&entry->key) == MBEDTLS_PK_NONE) {
    pm_sni_entry_free(entry);
    return false;
  }
  grown[st->tls->sni_count++] = entry;
  return true;
#else
  (void) c, (void) name, (void) name_len, (void) cert, (void) cert_len, (void) key, (void) key_len;
  return false;
#endif
}

#if MG_TLS == MG_TLS_MBED
/* mbed TLS asks during the handshake (c is the connection): remember the name, and
 * present its certificate; an unknown name gets the default (the options' own cert),
 * or, with none, a failed handshake. */
static int pm_sni_pick(void *param, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len) {
  struct mg_connection *c = (struct mg_connection *) param;
  struct pm_conn *st = pm_own_state(c);
  if (st == NULL || st->tls == NULL) return -1;
  free(st->tls_server_name);
  if ((st->tls_server_name = (char *) malloc(len + 1)) != NULL) {
    memcpy(st->tls_server_name, name, len);
    st->tls_server_name[len] = '\0';
  }
  for (size_t i = 0; i < st->tls->sni_count; i++) {
    struct pm_sni *entry = st->tls->sni[i];
    if (strlen(entry->name) == len && mg_ncasecmp(entry->name, (const char *) name, len) == 0) {
      return mbedtls_ssl_set_hs_own_cert(ssl, &entry->cert, &entry->key);
    }
  }
  return st->tls->opts.cert.len > 0 ? 0 : -1;
}
#endif

/* The name a client asked this server connection for (SNI), or NULL. */
const char *pm_tls_server_name(struct mg_connection *c) {
  struct pm_conn *st = c == NULL ? NULL : pm_own_state(c);
  return st == NULL ? NULL : st->tls_server_name;
}

/* Starts TLS on c with its options: Mongoose's mg_tls_init, then what Mongoose has no
 * option for: ALPN, and a client's kept session (pm_tls_client_begin). Each
 * connection has its own mbed TLS configuration, so this changes c's alone. */
void pm_tls_start(struct mg_connection *c) {
  struct pm_conn *st = pm_own_state(c);
  if (st == NULL || st->tls == NULL) return;
  mg_tls_init(c, &st->tls->opts);
  if (c->tls == NULL) return;  // it failed, said why and closes c
#if MG_TLS == MG_TLS_MBED
  if (st->tls->alpn != NULL) {
    mbedtls_ssl_conf_alpn_protocols(&((struct mg_tls *) c->tls)->conf, st->tls->alpn);
  }
  if (st->tls->sni_count > 0 && !c->is_client) {
    mbedtls_ssl_conf_sni(&((struct mg_tls *) c->tls)->conf, pm_sni_pick, c);
  }
#endif
  if (c->is_client) pm_tls_client_begin(c);
}

/* The TLS library's words for one of its error codes (Mongoose logs only the
 * number, as "key err 0x3d00"); empty with the built-in TLS. */
void pm_tls_strerror(int code, char *buf, size_t len) {
  buf[0] = '\0';
#if MG_TLS == MG_TLS_MBED
  mbedtls_strerror(-code, buf, len);
#else
  (void) code, (void) len;
#endif
}

/* Use these TLS options from now on: a listener starts TLS on each connection it
 * accepts, a client when its TCP connection is established. */
bool pm_conn_set_tls(struct mg_connection *c, const struct mg_tls_opts *opts) {
  struct pm_conn *st = (struct pm_conn *) c->fn_data;
  struct pm_tls *tls = pm_tls_new(opts);
  if (st == NULL || tls == NULL) {
    pm_tls_release(tls);
    return false;
  }
  pm_tls_release(st->tls);
  st->tls = tls;
  return true;
}
