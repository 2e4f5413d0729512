/* X25519 (RFC 7748), the Diffie-Hellman function TLS 1.3 offers first: x25519.c. */
#ifndef PM_X25519_H
#define PM_X25519_H

#include <stdint.h>

enum {
  PM_X25519_OK = 0,
  PM_X25519_ZERO = 1,         /* the result is all zeros: u is a point of small order */
  PM_X25519_UNAVAILABLE = 2,  /* not built here (no 128-bit integers): out is zeros */
};

/* out = X25519(scalar, u): 32 little-endian bytes each; the scalar is clamped and
 * u's top bit ignored, as RFC 7748 says. Constant time in scalar and u. */
int pm_x25519(uint8_t out[32], const uint8_t scalar[32], const uint8_t u[32]);

#endif
