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
