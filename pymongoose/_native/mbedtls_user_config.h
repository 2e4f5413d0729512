/* Additions to mbed TLS's default configuration (mbedtls_config.h) for pymongoose,
 * read through MBEDTLS_USER_CONFIG_FILE (see build_mongoose.py).
 *
 * Managers may be polled by different threads at once, and TLS 1.3 goes through
 * PSA Crypto, whose key store and random generator are process-wide: make them
 * thread-safe. */
#define MBEDTLS_THREADING_C
#ifdef _WIN32
#define MBEDTLS_THREADING_ALT  // threading_alt.h; pm_init sets it up (tls.c)
#else
#define MBEDTLS_THREADING_PTHREAD
#endif

/* No debug output: Mongoose sets a debug callback, so with MBEDTLS_DEBUG_C every
 * record made a dozen calls that only compared a level and returned (1.3% of an
 * HTTPS keep-alive server's CPU, perf). Mongoose's own log still says what failed. */
#undef MBEDTLS_DEBUG_C
