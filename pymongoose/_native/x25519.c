// X25519 (RFC 7748) for mbed TLS's TLS 1.3 key exchange.
//
// Why: mbed TLS computes X25519 with its generic bignum code, three scalar
// multiplications per handshake (the key pair, its public half again, the shared
// secret), each about a millisecond: 58% of a TLS server's CPU per new connection
// (perf, see benchmarks/README.md). The fast implementation mbed TLS ships
// (3rdparty/everest) is Apache-2.0 only, which cannot be combined with Mongoose's
// GPLv2, so this is our own: the well-known radix-2^51 representation (five 64-bit
// limbs, 128-bit products), a constant-time Montgomery ladder, and the standard
// inversion chain. About 20 times faster; vendor/mbedtls_patches.py routes
// mbed TLS's Curve25519 multiplications here.
//
// Needs a 128-bit integer type (gcc and clang on 64-bit targets); elsewhere
// pm_x25519 reports that it is unavailable and mbed TLS keeps its own code.
//
// Tested against RFC 7748's vectors (including its iterated one) and a
// pure-Python ladder on random inputs: tests/test_tls.py.

#include <stdint.h>
#include <string.h>

#include "x25519.h"

#if defined(__SIZEOF_INT128__)

typedef unsigned __int128 pm_u128;
typedef uint64_t pm_fe[5];  // value = sum of limb[i] * 2^(51 i), mod 2^255 - 19

#define PM_MASK51 ((((uint64_t) 1) << 51) - 1)

static uint64_t pm_load64_le(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static void pm_store64_le(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++, v >>= 8) p[i] = (uint8_t) v;
}

// 32 little-endian bytes; the top bit is ignored (RFC 7748, section 5).
static void pm_fe_frombytes(pm_fe h, const uint8_t s[32]) {
  uint64_t x0 = pm_load64_le(s), x1 = pm_load64_le(s + 8), x2 = pm_load64_le(s + 16), x3 = pm_load64_le(s + 24);
  h[0] = x0 & PM_MASK51;
  h[1] = ((x0 >> 51) | (x1 << 13)) & PM_MASK51;
  h[2] = ((x1 >> 38) | (x2 << 26)) & PM_MASK51;
  h[3] = ((x2 >> 25) | (x3 << 39)) & PM_MASK51;
  h[4] = (x3 >> 12) & PM_MASK51;
}

// Carries every limb into 51 bits, folding 2^255 back in as 19.
static void pm_fe_carry(pm_fe h) {
  uint64_t c;
  for (int i = 0; i < 4; i++) {
    c = h[i] >> 51;
    h[i] &= PM_MASK51;
    h[i + 1] += c;
  }
  c = h[4] >> 51;
  h[4] &= PM_MASK51;
  h[0] += 19 * c;
}

// The canonical encoding: the value reduced below p.
static void pm_fe_tobytes(uint8_t s[32], const pm_fe f) {
  pm_fe t;
  memcpy(t, f, sizeof(t));
  pm_fe_carry(t);
  pm_fe_carry(t);  // now t < 2^255 + 19 * 2, well below 2p
  uint64_t q = (t[0] + 19) >> 51;  // q = 1 exactly when t >= p
  for (int i = 1; i < 5; i++) q = (t[i] + q) >> 51;
  t[0] += 19 * q;  // t - q p = t + 19 q - q 2^255; the 2^255 falls off below
  for (int i = 0; i < 4; i++) {
    t[i + 1] += t[i] >> 51;
    t[i] &= PM_MASK51;
  }
  t[4] &= PM_MASK51;
  pm_store64_le(s, t[0] | (t[1] << 51));
  pm_store64_le(s + 8, (t[1] >> 13) | (t[2] << 38));
  pm_store64_le(s + 16, (t[2] >> 26) | (t[3] << 25));
  pm_store64_le(s + 24, (t[3] >> 39) | (t[4] << 12));
}

static void pm_fe_add(pm_fe h, const pm_fe f, const pm_fe g) {
  for (int i = 0; i < 5; i++) h[i] = f[i] + g[i];
}

// f - g + 2p, so no limb goes negative (g's limbs are below 2^52 wherever used).
static void pm_fe_sub(pm_fe h, const pm_fe f, const pm_fe g) {
  h[0] = f[0] + 0xFFFFFFFFFFFDAULL - g[0];
  for (int i = 1; i < 5; i++) h[i] = f[i] + 0xFFFFFFFFFFFFEULL - g[i];
}

// The 128-bit limbs of a product back into 51 bits each (below 2^51 + 2^14 for h[1]).
static void pm_fe_carry_wide(pm_fe h, pm_u128 r[5]) {
  for (int i = 0; i < 4; i++) {
    r[i + 1] += r[i] >> 51;
    h[i] = (uint64_t) r[i] & PM_MASK51;
  }
  h[4] = (uint64_t) r[4] & PM_MASK51;
  pm_u128 low = (pm_u128) h[0] + (r[4] >> 51) * 19;  // 2^255 = 19 (mod p)
  h[0] = (uint64_t) low & PM_MASK51;
  h[1] += (uint64_t) (low >> 51);
}

// Inputs' limbs below 2^54 (products and sums of three stay below 2^128); the
// output's below 2^51 + 2^14. pm_fe_sq is the same for f = g, with fewer products.
static void pm_fe_mul(pm_fe h, const pm_fe f, const pm_fe g) {
  uint64_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4];
  uint64_t g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3], g4 = g[4];
  uint64_t g1_19 = 19 * g1, g2_19 = 19 * g2, g3_19 = 19 * g3, g4_19 = 19 * g4;
  pm_u128 r[5];
  r[0] = (pm_u128) f0 * g0 + (pm_u128) f1 * g4_19 + (pm_u128) f2 * g3_19 + (pm_u128) f3 * g2_19 +
         (pm_u128) f4 * g1_19;
  r[1] = (pm_u128) f0 * g1 + (pm_u128) f1 * g0 + (pm_u128) f2 * g4_19 + (pm_u128) f3 * g3_19 +
         (pm_u128) f4 * g2_19;
  r[2] = (pm_u128) f0 * g2 + (pm_u128) f1 * g1 + (pm_u128) f2 * g0 + (pm_u128) f3 * g4_19 +
         (pm_u128) f4 * g3_19;
  r[3] = (pm_u128) f0 * g3 + (pm_u128) f1 * g2 + (pm_u128) f2 * g1 + (pm_u128) f3 * g0 +
         (pm_u128) f4 * g4_19;
  r[4] = (pm_u128) f0 * g4 + (pm_u128) f1 * g3 + (pm_u128) f2 * g2 + (pm_u128) f3 * g1 +
         (pm_u128) f4 * g0;
  pm_fe_carry_wide(h, r);
}

static void pm_fe_sq(pm_fe h, const pm_fe f) {
  uint64_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4];
  uint64_t f0_2 = 2 * f0, f1_2 = 2 * f1, f3_19 = 19 * f3, f4_19 = 19 * f4;
  pm_u128 r[5];
  r[0] = (pm_u128) f0 * f0 + (pm_u128) f1_2 * f4_19 + (pm_u128) (2 * f2) * f3_19;
  r[1] = (pm_u128) f0_2 * f1 + (pm_u128) (2 * f2) * f4_19 + (pm_u128) f3 * f3_19;
  r[2] = (pm_u128) f0_2 * f2 + (pm_u128) f1 * f1 + (pm_u128) (2 * f3) * f4_19;
  r[3] = (pm_u128) f0_2 * f3 + (pm_u128) f1_2 * f2 + (pm_u128) f4 * f4_19;
  r[4] = (pm_u128) f0_2 * f4 + (pm_u128) f1_2 * f3 + (pm_u128) f2 * f2;
  pm_fe_carry_wide(h, r);
}

static void pm_fe_sq_times(pm_fe h, const pm_fe f, int n) {
  pm_fe_sq(h, f);
  while (--n > 0) pm_fe_sq(h, h);
}

// z^(p - 2) = 1/z, by the usual chain: 254 squarings and 11 multiplications.
static void pm_fe_invert(pm_fe out, const pm_fe z) {
  pm_fe z2, z9, z11, z2_5_0, z2_10_0, z2_20_0, z2_50_0, z2_100_0, t;
  pm_fe_sq(z2, z);                    // 2
  pm_fe_sq_times(t, z2, 2);           // 8
  pm_fe_mul(z9, t, z);                // 9
  pm_fe_mul(z11, z9, z2);             // 11
  pm_fe_sq(t, z11);                   // 22
  pm_fe_mul(z2_5_0, t, z9);           // 2^5 - 1
  pm_fe_sq_times(t, z2_5_0, 5);
  pm_fe_mul(z2_10_0, t, z2_5_0);      // 2^10 - 1
  pm_fe_sq_times(t, z2_10_0, 10);
  pm_fe_mul(z2_20_0, t, z2_10_0);     // 2^20 - 1
  pm_fe_sq_times(t, z2_20_0, 20);
  pm_fe_mul(t, t, z2_20_0);           // 2^40 - 1
  pm_fe_sq_times(t, t, 10);
  pm_fe_mul(z2_50_0, t, z2_10_0);     // 2^50 - 1
  pm_fe_sq_times(t, z2_50_0, 50);
  pm_fe_mul(z2_100_0, t, z2_50_0);    // 2^100 - 1
  pm_fe_sq_times(t, z2_100_0, 100);
  pm_fe_mul(t, t, z2_100_0);          // 2^200 - 1
  pm_fe_sq_times(t, t, 50);
  pm_fe_mul(t, t, z2_50_0);           // 2^250 - 1
  pm_fe_sq_times(t, t, 5);            // 2^255 - 2^5
  pm_fe_mul(out, t, z11);             // 2^255 - 21 = p - 2
}

// Swaps f and g when swap is 1, in the same time and memory accesses as when 0.
static void pm_fe_cswap(pm_fe f, pm_fe g, uint64_t swap) {
  uint64_t mask = (uint64_t) 0 - swap;
  for (int i = 0; i < 5; i++) {
    uint64_t x = mask & (f[i] ^ g[i]);
    f[i] ^= x;
    g[i] ^= x;
  }
}

int pm_x25519(uint8_t out[32], const uint8_t scalar[32], const uint8_t u[32]) {
  static const pm_fe a24 = {121665, 0, 0, 0, 0};  // (486662 - 2) / 4
  uint8_t k[32];
  memcpy(k, scalar, 32);
  k[0] &= 248;  // clamped (RFC 7748, section 5)
  k[31] &= 127;
  k[31] |= 64;
  pm_fe x1, x2 = {1, 0, 0, 0, 0}, z2 = {0}, x3, z3 = {1, 0, 0, 0, 0};
  pm_fe a, aa, b, bb, e, c, d, da, cb;
  pm_fe_frombytes(x1, u);
  memcpy(x3, x1, sizeof(x3));
  uint64_t swap = 0;
  for (int t = 254; t >= 0; t--) {
    uint64_t bit = (k[t >> 3] >> (t & 7)) & 1;
    swap ^= bit;
    pm_fe_cswap(x2, x3, swap);
    pm_fe_cswap(z2, z3, swap);
    swap = bit;
    pm_fe_add(a, x2, z2);
    pm_fe_sq(aa, a);
    pm_fe_sub(b, x2, z2);
    pm_fe_sq(bb, b);
    pm_fe_sub(e, aa, bb);
    pm_fe_add(c, x3, z3);
    pm_fe_sub(d, x3, z3);
    pm_fe_mul(da, d, a);
    pm_fe_mul(cb, c, b);
    pm_fe_add(x3, da, cb);
    pm_fe_sq(x3, x3);
    pm_fe_sub(z3, da, cb);
    pm_fe_sq(z3, z3);
    pm_fe_mul(z3, z3, x1);
    pm_fe_mul(x2, aa, bb);
    pm_fe_mul(z2, a24, e);
    pm_fe_add(z2, z2, aa);
    pm_fe_mul(z2, z2, e);
  }
  pm_fe_cswap(x2, x3, swap);
  pm_fe_cswap(z2, z3, swap);
  pm_fe_invert(z2, z2);
  pm_fe_mul(x2, x2, z2);
  pm_fe_tobytes(out, x2);
  memset(k, 0, sizeof(k));  // the secret scalar (best effort: not a guaranteed wipe)
  uint8_t any = 0;
  for (int i = 0; i < 32; i++) any |= out[i];
  return any ? PM_X25519_OK : PM_X25519_ZERO;  // zero: u was a low-order point
}

#else

int pm_x25519(uint8_t out[32], const uint8_t scalar[32], const uint8_t u[32]) {
  (void) scalar, (void) u;
  memset(out, 0, 32);
  return PM_X25519_UNAVAILABLE;
}

#endif
