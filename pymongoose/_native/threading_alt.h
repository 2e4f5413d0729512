/* mbed TLS's mutex on Windows, which has no pthreads (MBEDTLS_THREADING_ALT, see
 * mbedtls_user_config.h): a slim reader/writer lock, set up by pm_init (tls.c). */
#ifndef PM_THREADING_ALT_H
#define PM_THREADING_ALT_H
#include <windows.h>

typedef struct mbedtls_threading_mutex_t {
  SRWLOCK lock;
} mbedtls_threading_mutex_t;

#endif
