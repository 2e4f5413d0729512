"""Changes to mbed TLS 3.6 made at build time, as vendor/mongoose_patches.py does
for Mongoose: the verified tree in ``vendor/mbedtls/`` is never modified; the build
compiles patched copies of the files named here (``build/mbedtls-patched/``). On
the pinned release a patch that does not apply stops the build; on another tree
(``MBEDTLS_SRC``) it is skipped with a note.
"""

from __future__ import annotations

from typing import Dict, List

from mongoose_patches import Patch, apply_patches

__all__ = ["PATCHES", "Patch", "apply_patches"]

# library/<file> -> its patches
PATCHES: Dict[str, List[Patch]] = {
    "ecp.c": [
        Patch(
            name="x25519-fast",
            why=(
                "mbed TLS multiplies on Curve25519 with its generic bignum code: three "
                "multiplications per TLS 1.3 handshake with X25519 (the key pair, its "
                "public half again, the shared secret), 58% of a server's CPU per new "
                "connection. The fast code mbed TLS ships (3rdparty/everest) is "
                "Apache-2.0 only, which cannot be combined with Mongoose's GPLv2. Hand "
                "the multiplication, once mbed TLS has checked its inputs, to "
                "pymongoose/_native/x25519.c (through pm_ecp_mul_montgomery in tls.c), "
                "which falls back to mbed TLS's code where it cannot run."
            ),
            old="""\
    if (mbedtls_ecp_get_type(grp) == MBEDTLS_ECP_TYPE_MONTGOMERY) {
        MBEDTLS_MPI_CHK(ecp_mul_mxz(grp, R, m, P, f_rng, p_rng));
    }
""",
            new="""\
    if (mbedtls_ecp_get_type(grp) == MBEDTLS_ECP_TYPE_MONTGOMERY) {
        /* pymongoose: see vendor/mbedtls_patches.py */
        extern int pm_ecp_mul_montgomery(const mbedtls_ecp_group *grp, mbedtls_ecp_point *R,
                                         const mbedtls_mpi *m, const mbedtls_ecp_point *P);
        ret = pm_ecp_mul_montgomery(grp, R, m, P);
        if (ret == MBEDTLS_ERR_ECP_FEATURE_UNAVAILABLE) {
            ret = ecp_mul_mxz(grp, R, m, P, f_rng, p_rng);
        }
        MBEDTLS_MPI_CHK(ret);
    }
""",
        ),
    ],
    "ssl_tls12_client.c": [
        Patch(
            name="tls12-client-rsa-pss",
            why=(
                "mbed TLS 3.6.6's client offers rsa_pss_rsae_* signature algorithms "
                "(valid in TLS 1.2 too: RFC 8446, 4.2.3) and then refuses them in a TLS "
                "1.2 ServerKeyExchange, so it cannot talk to an OpenSSL server held to "
                "TLS 1.2 with an RSA certificate (ILLEGAL_PARAMETER). Upstream fixed it "
                "after 3.6.6 (Mbed-TLS/mbedtls pull request 10674, 'ssl: accept TLS 1.2 "
                "rsa_pss_rsae signature algorithms'). Same effect here: admit the code "
                "points that map to RSASSA-PSS; the verification below already handles "
                "them (with MBEDTLS_X509_RSASSA_PSS_SUPPORT, on by default)."
            ),
            old="""\
    if (!mbedtls_ssl_sig_alg_is_supported(ssl, sig_alg)) {
""",
            new="""\
#if defined(MBEDTLS_X509_RSASSA_PSS_SUPPORT)  /* pymongoose: see vendor/mbedtls_patches.py */
    if (!mbedtls_ssl_sig_alg_is_supported(ssl, sig_alg) && *pk_alg != MBEDTLS_PK_RSASSA_PSS) {
#else
    if (!mbedtls_ssl_sig_alg_is_supported(ssl, sig_alg)) {
#endif
""",
        ),
    ],
}
