/* jose: JWS verification with pinned algorithms, JWK/JWKS/PEM/secret keys, signing, and the
 * attacks a bearer-token verifier meets (alg none, alg confusion, hostile kids, stripped and
 * tampered signatures, lax base64url, crit/b64, keys smuggled in the header).
 *
 * Fixed vectors: RFC 7515 Appendix A.1 (HS256), A.2 (RS256), A.3 (ES256), and tokens made
 * outside this code with the openssl CLI (OpenSSL 3.0), roughly:
 *   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem   (and EC
 *     P-256, ED25519, RSA 1024, EC P-384; openssl req -x509 for the certificate)
 *   RS256: openssl dgst -sha256 -sign rsa.pem
 *   PS256: openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -sign
 *   ES256: openssl dgst -sha256 -sign ec.pem, DER (openssl asn1parse) turned into R||S
 *   EdDSA: openssl pkeyutl -sign -rawin -inkey ed.pem
 * over base64url(header) "." base64url(payload); n, x, y taken from the public keys' DER.
 * Attack tokens are built here with OpenSSL directly (not with jose_sign), so the verifier
 * is never only checked against its own signer. */
#include "check.h"
#include "luamcp/jose.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALL_ALGS 0x1fffu
#define CLAIMS   "{\"sub\":\"alice\",\"exp\":4102444800}"

/* Made with the openssl CLI (see the top of this file). */
#define CLI_RSA_N                                                                                  \
    "5cisoYk3xHlQS_svNVkmTU2u-5IIfHazxIVmQw3VAs36DFaJyzbjF8p2qZdL4UzQSuJjfcJWK9z4MjmUGXDSFl_M"     \
    "u8CnnoaaCisRqWHUfuOGy3dj-0Ur7Z2975bNJDXNpQcu1l5Nfe0UTjsLushHFRvs8ccSAREAcwHuU7-6rg09Pcrk"     \
    "xtXqkQZHheyeTjYAWOunk8bosGtjGqlA1FMVdygma0T0nshEEgMRMXiHr3Sq7TDHcNLNofF79p4W6H9TJCuPI5hc"     \
    "YSXqhFOZdR7xo5jS-8j5YFhhufn-cMWivG6cr50K31VpGKjhJBqXBdgWvVpDEFtGC_m1wG0-PFRJmw"

#define CLI_EC_X "nofRbh3Mw6uI_C0_n6vIFf-zminTm00MP9ymxBOMM2I"
#define CLI_EC_Y "E7D1q-OEv3k-_o92RGblLxitunlpZ1O_Ka-7LDqJ0qc"
#define CLI_ED_X "koVm4PqgLSSWiclApYt8n6aVf0LcYX_8w5CKTqlyLB4"

#define CLI_RSA1024_N                                                                              \
    "xfDiOXFDbPfasgoLih92Zno6SHumnknPGGRJuc_-Ubudndpqdb1FjrG8H6VZaN6fHYBZKzGbWGgsa8cYnWoxXmfe"     \
    "j_B2r-0HVhHmnwFhYHLJ95aaRcyp1VjWI98pVW-OQ11Y1LfLibiQ3pa8tkYXSCWlGj5PdTY8gYafz_L1xUE"

#define CLI_EC384_X "6Jn51HOFRJybWb3N9kRzb-ojUZuSTI8gLWII5dBUTDYd25qim7aobMA4Swc8NvJM"
#define CLI_EC384_Y "Vp51daT45PILj4k0OuAVJOaXmRBveFAhnfuTITQsUL-2_ULm-MF6QlPFK0PLnx7F"

static const char CLI_RS256[] =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS1jbGkiLCJ0eXAiOiJKV1QifQ.eyJpc3MiOiJodHRwczovL2lkcC5le"
    "GFtcGxlIiwic3ViIjoiY2xpIiwiYXVkIjoibWNwIiwiZXhwIjo0MTAyNDQ0ODAwfQ.DOELrK2GgMZHCehFxo0amY"
    "dhglYZOj-AWmLseRNyjnt-9NX8JHgVGeTWFL2PKsdXekFwbKDUp9PKJyh5sZwxajdqT-Ol0IeKzOywCrgFACiKPK"
    "6XkTwfeMf1N2awVOFyRjqdVE2eHWaIa4MLIKdastpdOJ27TCNPmuYSvDpOtEOMyiUYFWMJcTTeMZBzDPd1Qcvp3Y"
    "uCMbEoqkbhxkZx4pCyY9l-Z0ROc9DmrvxEOuduFDwDRLMoxrRv0aLbOxkCxy957sBhzFj3TLBgddQiRGnVnUIy--"
    "J3kpEjQ_m9sA3zm-y4EE2sXJ524Jf5IsVBXbqTwT5jUNA1XvhZkuzQRw";

static const char CLI_PS256[] =
    "eyJhbGciOiJQUzI1NiIsImtpZCI6InJzYS1jbGkiLCJ0eXAiOiJKV1QifQ.eyJpc3MiOiJodHRwczovL2lkcC5le"
    "GFtcGxlIiwic3ViIjoiY2xpIiwiYXVkIjoibWNwIiwiZXhwIjo0MTAyNDQ0ODAwfQ.U9ktLksAtT6dTCKAS8ueYf"
    "HYo0V6-4nufpNyyKD1tYPW4rG6bIyX4yBUOloZc8GOf5CT3YWtdcXr-kzSrrseBh4Z6WDMYkuK6mjbNhv3bgmhg7"
    "OxvqaNGOOsbF1Js8Co-RsHCluKYFfF3WPM0mUtW2009qLUvkbNdJ_VUoV6elkv2SNUXyaR3DPikgCiqGMAVUWtg3"
    "14W0ujT0-26gEgE2R2ML4U0R8QvEncsqbuwTCKQriHcStfNeCH8MpVQAnbAlR9Pb9vttaE0jXSk10a_LHC7DixxC"
    "QKDhK0TmRtWd4TrZfcYBnwkRMSaZn0OfJHm12mX8bHoIR946zmanB7Nw";

static const char CLI_ES256[] =
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjLWNsaSIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGF"
    "tcGxlIiwic3ViIjoiY2xpIiwiYXVkIjoibWNwIiwiZXhwIjo0MTAyNDQ0ODAwfQ.UXm2jA3h5Xh2i5Bews3cmJT1"
    "VS4vtmlUd_KdvKl1LqVU45yzx0paLDgVHGBMk_65Xryv2jpzi8UfYuIz6ZcyaA";

static const char CLI_EDDSA[] =
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImVkLWNsaSIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGF"
    "tcGxlIiwic3ViIjoiY2xpIiwiYXVkIjoibWNwIiwiZXhwIjo0MTAyNDQ0ODAwfQ.k6djuyy3vlwpZgn7k64kAipg"
    "2DAUFqwyzQzWyobXW8mrCYAvbZXtkS780UC0NckAS7yfFZCLC3ZS2C-tXI6-Dg";

static const char CLI_RSA_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA5cisoYk3xHlQS/svNVkm\n"
    "TU2u+5IIfHazxIVmQw3VAs36DFaJyzbjF8p2qZdL4UzQSuJjfcJWK9z4MjmUGXDS\n"
    "Fl/Mu8CnnoaaCisRqWHUfuOGy3dj+0Ur7Z2975bNJDXNpQcu1l5Nfe0UTjsLushH\n"
    "FRvs8ccSAREAcwHuU7+6rg09PcrkxtXqkQZHheyeTjYAWOunk8bosGtjGqlA1FMV\n"
    "dygma0T0nshEEgMRMXiHr3Sq7TDHcNLNofF79p4W6H9TJCuPI5hcYSXqhFOZdR7x\n"
    "o5jS+8j5YFhhufn+cMWivG6cr50K31VpGKjhJBqXBdgWvVpDEFtGC/m1wG0+PFRJ\n"
    "mwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char CLI_RSA_CERT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDDzCCAfegAwIBAgIUUkgKpDs9GTdLJPf9LVfUNnt2bvcwDQYJKoZIhvcNAQEL\n"
    "BQAwFjEUMBIGA1UEAwwLbHVhbWNwLXRlc3QwIBcNMjYxMTI2MTA0OTA2WhgPMjEy\n"
    "NjExMDIxMDQ5MDZaMBYxFDASBgNVBAMMC2x1YW1jcC10ZXN0MIIBIjANBgkqhkiG\n"
    "9w0BAQEFAAOCAQ8AMIIBCgKCAQEA5cisoYk3xHlQS/svNVkmTU2u+5IIfHazxIVm\n"
    "Qw3VAs36DFaJyzbjF8p2qZdL4UzQSuJjfcJWK9z4MjmUGXDSFl/Mu8CnnoaaCisR\n"
    "qWHUfuOGy3dj+0Ur7Z2975bNJDXNpQcu1l5Nfe0UTjsLushHFRvs8ccSAREAcwHu\n"
    "U7+6rg09PcrkxtXqkQZHheyeTjYAWOunk8bosGtjGqlA1FMVdygma0T0nshEEgMR\n"
    "MXiHr3Sq7TDHcNLNofF79p4W6H9TJCuPI5hcYSXqhFOZdR7xo5jS+8j5YFhhufn+\n"
    "cMWivG6cr50K31VpGKjhJBqXBdgWvVpDEFtGC/m1wG0+PFRJmwIDAQABo1MwUTAd\n"
    "BgNVHQ4EFgQUf5AmvyWvkIoi+yOQZztLvuIqJUUwHwYDVR0jBBgwFoAUf5AmvyWv\n"
    "kIoi+yOQZztLvuIqJUUwDwYDVR0TAQH/BAUwAwEB/zANBgkqhkiG9w0BAQsFAAOC\n"
    "AQEAlLhsH8dwUdjmW8L5N4C/1nipJpI8pZcGZ3TPD2wTMqsa3a934ny+/dEgUipi\n"
    "Zj3KbTKLctHkwpviZxnQUdnxuoq8hTBZARLUMbp8TxT0TYKPQbK76fBd8ej65Xhr\n"
    "W/OnAN5CghJzJut4d6IUL577Mrk6NJo0HRQESb+yyzVQ7IyjsXJgu80LGgqgfkCH\n"
    "t3pbDKKSPtNdhKX6PeyrXC340iSinfzIkYJR91GUj+LBB3WXWZnYvErtSMO9sQiH\n"
    "H8nQv8cwoo1czvjHV/nrMeUP0AYh23CglNzR0n2MAbwVXGBp5uthP44mq+4K1wO3\n"
    "omuW9t+Mgb+tbtmOskH6iiFXlg==\n"
    "-----END CERTIFICATE-----\n";

static const char CLI_EC_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEnofRbh3Mw6uI/C0/n6vIFf+zminT\n"
    "m00MP9ymxBOMM2ITsPWr44S/eT7+j3ZEZuUvGK26eWlnU78pr7ssOonSpw==\n"
    "-----END PUBLIC KEY-----\n";

static const char CLI_ED_PUB[] = "-----BEGIN PUBLIC KEY-----\n"
                                 "MCowBQYDK2VwAyEAkoVm4PqgLSSWiclApYt8n6aVf0LcYX/8w5CKTqlyLB4=\n"
                                 "-----END PUBLIC KEY-----\n";

static const char CLI_RSA1024_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDF8OI5cUNs99qyCguKH3ZmejpI\n"
    "e6aeSc8YZEm5z/5Ru52d2mp1vUWOsbwfpVlo3p8dgFkrMZtYaCxrxxidajFeZ96P\n"
    "8Hav7QdWEeafAWFgcsn3lppFzKnVWNYj3ylVb45DXVjUt8uJuJDelry2RhdIJaUa\n"
    "Pk91NjyBhp/P8vXFQQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char CLI_EC_PRIVATE[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgrxH8CFP049zF4Uzq\n"
    "k7WDkuKtQKQ7OhLrars0prE/c1ehRANCAASeh9FuHczDq4j8LT+fq8gV/7OaKdOb\n"
    "TQw/3KbEE4wzYhOw9avjhL95Pv6PdkRm5S8Yrbp5aWdTvymvuyw6idKn\n"
    "-----END PRIVATE KEY-----\n";

/* ---- RFC 7515 Appendix A ---------------------------------------------------------------- */

#define RFC_PAYLOAD                                                                                \
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"     \
    "cnVlfQ"
#define RFC_A1_K                                                                                   \
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
static const char RFC_A1_TOKEN[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." RFC_PAYLOAD
                                   ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
#define RFC_A2_N                                                                                   \
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt"     \
    "0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSX"     \
    "ndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5"     \
    "IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
static const char RFC_A2_TOKEN[] =
    "eyJhbGciOiJSUzI1NiJ9." RFC_PAYLOAD
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W"
    "2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkS"
    "jtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnv"
    "Wh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
#define RFC_A3_X "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
#define RFC_A3_Y "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
static const char RFC_A3_TOKEN[] =
    "eyJhbGciOiJFUzI1NiJ9." RFC_PAYLOAD
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

#define RSA_JWK(kid, n, e) "{\"kty\":\"RSA\",\"kid\":\"" kid "\",\"n\":\"" n "\",\"e\":\"" e "\"}"
#define EC_JWK(kid, crv, x, y)                                                                     \
    "{\"kty\":\"EC\",\"kid\":\"" kid "\",\"crv\":\"" crv "\",\"x\":\"" x "\",\"y\":\"" y "\"}"
#define OKP_JWK(kid, crv, x)                                                                       \
    "{\"kty\":\"OKP\",\"kid\":\"" kid "\",\"crv\":\"" crv "\",\"x\":\"" x "\"}"

static const char CLI_JWKS[] =
    "{\"keys\":["
    "{\"kty\":\"RSA\",\"kid\":\"rsa-cli\",\"use\":\"sig\",\"n\":\"" CLI_RSA_N
    "\",\"e\":\"AQAB\"}," EC_JWK("ec-cli", "P-256", CLI_EC_X,
                                 CLI_EC_Y) "," OKP_JWK("ed-cli", "Ed25519", CLI_ED_X) "]}";

/* ---- helpers ------------------------------------------------------------------------------ */

/* Everything a test allocates goes here and is freed after each test group. */
static void *kept[8192];
static size_t nkept;

static char *keep(char *p)
{
    if (p && nkept < sizeof kept / sizeof kept[0])
        kept[nkept++] = p;
    return p;
}

static void drop_all(void)
{
    while (nkept)
        free(kept[--nkept]);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    if (vasprintf(&s, f, ap) < 0)
        s = NULL;
    va_end(ap);
    return keep(s);
}

/* base64url the independent way: OpenSSL's padded base64, then translated and trimmed. */
static char *b64u(const void *data, size_t len)
{
    char *s = malloc(4 * ((len + 2) / 3) + 1);
    int n = EVP_EncodeBlock((unsigned char *)s, data, (int)len);
    while (n > 0 && s[n - 1] == '=')
        n--;
    s[n] = '\0';
    for (char *p = s; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return keep(s);
}

static char *seg(const char *json)
{
    return b64u(json, strlen(json));
}

static size_t unb64u(const char *in, unsigned char *out)
{
    size_t len = strlen(in);
    char *s = calloc(1, len + 4);
    for (size_t i = 0; i < len; i++)
        s[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    while (len % 4)
        s[len++] = '=';
    int n = EVP_DecodeBlock(out, (unsigned char *)s, (int)len);
    size_t pad = len >= 2 ? (s[len - 1] == '=') + (s[len - 2] == '=') : 0;
    free(s);
    return n < 0 ? 0 : (size_t)n - pad;
}

static char *hs_token(const char *hdr, const char *payload, const void *key, size_t keylen,
                      const EVP_MD *md)
{
    char *input = fmt("%s.%s", seg(hdr), seg(payload));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(md, key, (int)keylen, (unsigned char *)input, strlen(input), mac, &maclen);
    return fmt("%s.%s", input, b64u(mac, maclen));
}

/* PS256 with a chosen salt length and MGF1 digest, with OpenSSL directly. */
static char *pss_token(const char *hdr, const char *payload, EVP_PKEY *priv, int salt,
                       const char *mgf1)
{
    char *input = fmt("%s.%s", seg(hdr), seg(payload));
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    EVP_DigestSignInit_ex(ctx, &pctx, "SHA256", NULL, NULL, priv, NULL);
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt);
    EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, mgf1, NULL);
    int ok = EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)input, strlen(input));
    EVP_MD_CTX_free(ctx);
    return ok == 1 ? fmt("%s.%s", input, b64u(sig, siglen)) : NULL;
}

/* RS256 (or PS256 with pss) with OpenSSL directly, over any header. */
static char *rsa_token(const char *hdr, const char *payload, EVP_PKEY *priv, bool pss)
{
    char *input = fmt("%s.%s", seg(hdr), seg(payload));
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    EVP_DigestSignInit_ex(ctx, &pctx, "SHA256", NULL, NULL, priv, NULL);
    if (pss) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    int ok = EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)input, strlen(input));
    EVP_MD_CTX_free(ctx);
    return ok == 1 ? fmt("%s.%s", input, b64u(sig, siglen)) : NULL;
}

static EVP_PKEY *signer_pkey(const jose_signer_t *s)
{
    char *pem = jose_signer_private_pem(s);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    free(pem);
    return pkey;
}

/* Segment i (0..2) of tok replaced by repl. */
static char *with_segment(const char *tok, int i, const char *repl)
{
    const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    int l0 = (int)(d1 - tok), l1 = (int)(d2 - d1 - 1);
    if (i == 0)
        return fmt("%s%s", repl, d1);
    if (i == 1)
        return fmt("%.*s.%s%s", l0, tok, repl, d2);
    return fmt("%.*s.%.*s.%s", l0, tok, l1, d1 + 1, repl);
}

static const char *segment(const char *tok, int i)
{
    const char *p = tok;
    for (int k = 0; k < i; k++)
        p = strchr(p, '.') + 1;
    const char *end = strchr(p, '.');
    return fmt("%.*s", end ? (int)(end - p) : (int)strlen(p), p);
}

/* The same bytes, spelled with nonzero unused bits in the last character. */
static char *noncanonical(const char *b64)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *s = fmt("%s", b64);
    size_t n = strlen(s);
    s[n - 1] = abc[(strchr(abc, s[n - 1]) - abc) | 1];
    return s;
}

static jose_status_t V(const jose_keyset_t *ks, const char *tok, unsigned allow)
{
    return jose_verify(ks, tok, strlen(tok), allow, NULL, NULL, NULL, 0);
}

static jose_keyset_t *jwks(const char *doc, char **warnings)
{
    char *err = NULL, *w = NULL;
    jose_keyset_t *ks = jose_keyset_from_jwks(doc, strlen(doc), &w, &err);
    if (!ks && err)
        keep(err);
    else
        free(err);
    if (warnings)
        *warnings = keep(w);
    else
        free(w);
    return ks;
}

/* The error from loading a JWKS that must fail ("" when it unexpectedly loaded). */
static const char *jwks_err(const char *doc)
{
    char *err = NULL, *w = NULL;
    jose_keyset_t *ks = jose_keyset_from_jwks(doc, strlen(doc), &w, &err);
    CHECK(w == NULL);
    free(w);
    if (ks) {
        jose_keyset_unref(ks);
        return "";
    }
    return err ? keep(err) : "(no message)";
}

static jose_keyset_t *pem_keyset(const char *pem, const char *kid)
{
    char *err = NULL;
    jose_keyset_t *ks = jose_keyset_from_pem(pem, strlen(pem), kid, &err);
    free(err);
    return ks;
}

static const unsigned char SECRET64[] =
    "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789ABCDEF";

/* ---- tests -------------------------------------------------------------------------------- */

static void test_alg_names(void)
{
    static const char *const names[] = {"RS256", "RS384", "RS512", "PS256", "PS384",
                                        "PS512", "ES256", "ES384", "ES512", "EdDSA",
                                        "HS256", "HS384", "HS512"};
    for (unsigned i = 0; i < 13; i++) {
        CHECK_INT(jose_alg_parse(names[i]), 1u << i);
        CHECK_STR(jose_alg_name(1u << i), names[i]);
    }
    CHECK_INT(jose_alg_parse("none"), 0);
    CHECK_INT(jose_alg_parse("None"), 0);
    CHECK_INT(jose_alg_parse("rs256"), 0);
    CHECK_INT(jose_alg_parse("RS256 "), 0);
    CHECK_INT(jose_alg_parse(""), 0);
    CHECK_INT(jose_alg_parse(NULL), 0);
    CHECK(jose_alg_name(0) == NULL);
    CHECK(jose_alg_name(JOSE_RS256 | JOSE_ES256) == NULL);
    CHECK(jose_alg_name(1u << 13) == NULL);

    char *err = NULL;
    CHECK_INT(jose_algs_parse("RS256,ES256", &err), JOSE_RS256 | JOSE_ES256);
    CHECK(err == NULL);
    CHECK_INT(jose_algs_parse(" RS256 , EdDSA,PS512 ", &err), JOSE_RS256 | JOSE_EDDSA | JOSE_PS512);
    CHECK_INT(jose_algs_parse("HS256", NULL), JOSE_HS256);
    CHECK_INT(jose_algs_parse("RS256,none", &err), 0);
    CHECK(err && strstr(err, "none"));
    free(err);
    CHECK_INT(jose_algs_parse("RS256,,ES256", &err), 0);
    CHECK(err != NULL);
    free(err);
    CHECK_INT(jose_algs_parse("", &err), 0);
    free(err);
    CHECK_INT(
        jose_algs_parse("RS256,XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", &err), 0);
    CHECK(err && strlen(err) < 200);
    free(err);
    CHECK_INT(jose_algs_parse(NULL, NULL), 0);

    CHECK_STR(jose_status_name(JOSE_OK), "ok");
    CHECK_STR(jose_status_name(JOSE_KEY_MISMATCH), "key mismatch");
    CHECK_STR(jose_status_name(JOSE_BAD_SIGNATURE), "bad signature");
    CHECK_STR(jose_status_name((jose_status_t)99), "unknown status");
}

/* Every signing algorithm: generate, publish, sign, verify; and the PEM round trip. */
static void test_roundtrip(void)
{
    static const unsigned algs[] = {JOSE_RS256, JOSE_RS384, JOSE_RS512, JOSE_PS256, JOSE_PS384,
                                    JOSE_PS512, JOSE_ES256, JOSE_ES384, JOSE_ES512, JOSE_EDDSA};
    json_t *claims = json_pack("{s:s, s:I, s:[s,s]}", "sub", "alice", "exp", (json_int_t)4102444800,
                               "aud", "a", "b");
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        unsigned alg = algs[i];
        char *err = NULL;
        jose_signer_t *s = jose_signer_generate(alg, fmt("k-%s", jose_alg_name(alg)), &err);
        if (!CHECK(s != NULL)) {
            free(err);
            continue;
        }
        CHECK_STR(jose_signer_kid(s), fmt("k-%s", jose_alg_name(alg)));
        json_t *doc = jose_signer_jwks(s);
        json_t *jwk = json_array_get(json_object_get(doc, "keys"), 0);
        CHECK_STR(json_string_value(json_object_get(jwk, "alg")), jose_alg_name(alg));
        CHECK_STR(json_string_value(json_object_get(jwk, "use")), "sig");
        CHECK_STR(json_string_value(json_object_get(jwk, "kid")), jose_signer_kid(s));
        CHECK(json_object_get(jwk, "d") == NULL);
        char *text = keep(json_dumps(doc, JSON_COMPACT));
        CHECK(strchr(text, '=') == NULL);
        jose_keyset_t *ks = jwks(text, NULL);
        CHECK(ks != NULL);

        char *tok = keep(jose_sign(s, "at+jwt", claims));
        json_t *h = NULL, *c = NULL;
        char why[128];
        CHECK(tok != NULL);
        if (tok && ks) {
            CHECK_INT(jose_verify(ks, tok, strlen(tok), alg, &h, &c, why, sizeof why), JOSE_OK);
            CHECK_STR(why, "");
            CHECK_STR(json_string_value(json_object_get(h, "typ")), "at+jwt");
            CHECK_STR(json_string_value(json_object_get(h, "alg")), jose_alg_name(alg));
            CHECK(json_equal(c, claims));
            CHECK_INT(V(ks, tok, JOSE_ASYMMETRIC & ~alg), JOSE_ALG_REFUSED);
        }
        json_decref(h);
        json_decref(c);

        /* private PEM round trip: the reloaded signer's tokens verify with the old JWKS */
        char *pem = keep(jose_signer_private_pem(s));
        CHECK(pem && strstr(pem, "-----BEGIN PRIVATE KEY-----"));
        jose_signer_t *s2 = pem ? jose_signer_from_pem(pem, strlen(pem), alg, NULL, &err) : NULL;
        CHECK(s2 != NULL);
        if (s2) {
            CHECK_INT(strlen(jose_signer_kid(s2)), 43); /* a thumbprint: see test_thumbprint */
            char *tok2 = keep(jose_sign(s2, NULL, claims));
            /* kid differs (thumbprint), so only the kid-less fallback could pick the key:
             * it must not, the JWKS key has a kid */
            CHECK_INT(V(ks, tok2, alg), JOSE_UNKNOWN_KID);
            json_t *hh = NULL;
            json_t *d2 = jose_signer_jwks(s2);
            char *t2 = keep(json_dumps(d2, JSON_COMPACT));
            jose_keyset_t *ks2 = jwks(t2, NULL);
            CHECK_INT(jose_verify(ks2, tok2, strlen(tok2), alg, &hh, NULL, NULL, 0), JOSE_OK);
            CHECK(json_object_get(hh, "typ") == NULL);
            json_decref(hh);
            json_decref(d2);
            jose_keyset_unref(ks2);
            jose_signer_free(s2);
        }
        free(err);
        err = NULL;
        json_decref(doc);
        jose_keyset_unref(ks);
        jose_signer_free(s);
    }
    json_decref(claims);
    drop_all();
}

/* The generated kid is the RFC 7638 thumbprint, recomputed here from the published JWK. */
static void test_thumbprint(void)
{
    jose_signer_t *s = jose_signer_generate(JOSE_ES256, NULL, NULL);
    json_t *doc = jose_signer_jwks(s);
    json_t *jwk = json_array_get(json_object_get(doc, "keys"), 0);
    char *canon = fmt("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                      json_string_value(json_object_get(jwk, "x")),
                      json_string_value(json_object_get(jwk, "y")));
    CHECK_INT(strlen(json_string_value(json_object_get(jwk, "x"))), 43);
    CHECK_INT(strlen(json_string_value(json_object_get(jwk, "y"))), 43);
    unsigned char md[32];
    EVP_Digest(canon, strlen(canon), md, NULL, EVP_sha256(), NULL);
    CHECK_STR(jose_signer_kid(s), b64u(md, 32));
    json_decref(doc);
    jose_signer_free(s);

    s = jose_signer_generate(JOSE_RS256, NULL, NULL);
    doc = jose_signer_jwks(s);
    jwk = json_array_get(json_object_get(doc, "keys"), 0);
    CHECK_STR(json_string_value(json_object_get(jwk, "e")), "AQAB");
    CHECK_INT(strlen(json_string_value(json_object_get(jwk, "n"))), 342);
    canon = fmt("{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"%s\"}",
                json_string_value(json_object_get(jwk, "n")));
    EVP_Digest(canon, strlen(canon), md, NULL, EVP_sha256(), NULL);
    CHECK_STR(jose_signer_kid(s), b64u(md, 32));
    json_decref(doc);
    jose_signer_free(s);

    s = jose_signer_generate(JOSE_EDDSA, NULL, NULL);
    doc = jose_signer_jwks(s);
    jwk = json_array_get(json_object_get(doc, "keys"), 0);
    CHECK_STR(json_string_value(json_object_get(jwk, "kty")), "OKP");
    CHECK_STR(json_string_value(json_object_get(jwk, "crv")), "Ed25519");
    canon = fmt("{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}",
                json_string_value(json_object_get(jwk, "x")));
    EVP_Digest(canon, strlen(canon), md, NULL, EVP_sha256(), NULL);
    CHECK_STR(jose_signer_kid(s), b64u(md, 32));
    json_decref(doc);
    jose_signer_free(s);
    drop_all();
}

static void test_signer_refusals(void)
{
    char *err = NULL;
    CHECK(jose_signer_generate(JOSE_HS256, "k", &err) == NULL);
    CHECK(err != NULL);
    free(err);
    CHECK(jose_signer_generate(JOSE_RS256 | JOSE_ES256, "k", &err) == NULL);
    free(err);
    CHECK(jose_signer_generate(0, "k", NULL) == NULL);
    /* the key decides: an EC private key cannot become an RS256 or ES384 signer */
    CHECK(jose_signer_from_pem(CLI_EC_PRIVATE, strlen(CLI_EC_PRIVATE), JOSE_RS256, "k", &err) ==
          NULL);
    free(err);
    CHECK(jose_signer_from_pem(CLI_EC_PRIVATE, strlen(CLI_EC_PRIVATE), JOSE_ES384, "k", &err) ==
          NULL);
    free(err);
    CHECK(jose_signer_from_pem(CLI_RSA_PUB, strlen(CLI_RSA_PUB), JOSE_RS256, "k", &err) == NULL);
    CHECK(err != NULL);
    free(err);

    /* the CLI EC private key signs tokens the CLI JWKS verifies */
    jose_signer_t *s =
        jose_signer_from_pem(CLI_EC_PRIVATE, strlen(CLI_EC_PRIVATE), JOSE_ES256, "ec-cli", &err);
    CHECK(s != NULL);
    jose_keyset_t *ks = jwks(CLI_JWKS, NULL);
    json_t *claims = json_pack("{s:s}", "sub", "x");
    char *tok = keep(jose_sign(s, "JWT", claims));
    CHECK(tok && V(ks, tok, JOSE_ES256) == JOSE_OK);
    /* never mint what we would refuse: claims must be an object, the token <= JOSE_MAX_TOKEN */
    json_t *arr = json_array();
    CHECK(jose_sign(s, NULL, arr) == NULL);
    CHECK(jose_sign(s, NULL, NULL) == NULL);
    char *big = calloc(1, 7000);
    memset(big, 'a', 6999);
    json_object_set_new(claims, "pad", json_string(big));
    CHECK(jose_sign(s, NULL, claims) == NULL);
    free(big);
    json_decref(arr);
    json_decref(claims);
    jose_keyset_unref(ks);
    jose_signer_free(s);
    free(err);
    drop_all();
}

/* Tokens and keys made by the openssl CLI, as JWKS and as PEM. */
static void test_cli_vectors(void)
{
    char *warn = NULL;
    jose_keyset_t *ks = jwks(CLI_JWKS, &warn);
    if (!CHECK(ks != NULL))
        return;
    CHECK(warn == NULL);
    CHECK_INT(jose_keyset_size(ks), 3);
    CHECK(jose_keyset_has_kid(ks, "rsa-cli"));
    CHECK(jose_keyset_has_kid(ks, "ed-cli"));
    CHECK(!jose_keyset_has_kid(ks, "rsa"));
    CHECK(!jose_keyset_has_kid(ks, NULL));
    const char *toks[] = {CLI_RS256, CLI_PS256, CLI_ES256, CLI_EDDSA};
    for (int i = 0; i < 4; i++) {
        json_t *c = NULL;
        CHECK_INT(jose_verify(ks, toks[i], strlen(toks[i]), JOSE_ASYMMETRIC, NULL, &c, NULL, 0),
                  JOSE_OK);
        CHECK_STR(json_string_value(json_object_get(c, "sub")), "cli");
        json_decref(c);
    }
    CHECK_INT(V(ks, CLI_PS256, JOSE_RS256), JOSE_ALG_REFUSED);
    /* RS and PS are not interchangeable: same key, other padding */
    CHECK_INT(V(ks, with_segment(CLI_PS256, 2, segment(CLI_RS256, 2)), ALL_ALGS),
              JOSE_BAD_SIGNATURE);
    jose_keyset_unref(ks);

    /* the same keys as PEM: without a kid they serve tokens that name one */
    struct {
        const char *pem, *tok;
    } pems[] = {{CLI_RSA_PUB, CLI_RS256},
                {CLI_RSA_PUB, CLI_PS256},
                {CLI_RSA_CERT, CLI_RS256},
                {CLI_EC_PUB, CLI_ES256},
                {CLI_ED_PUB, CLI_EDDSA}};
    for (size_t i = 0; i < sizeof pems / sizeof pems[0]; i++) {
        ks = pem_keyset(pems[i].pem, NULL);
        CHECK(ks != NULL);
        CHECK_INT(V(ks, pems[i].tok, JOSE_ASYMMETRIC), JOSE_OK);
        jose_keyset_unref(ks);
    }
    ks = pem_keyset(CLI_RSA_PUB, "rsa-cli");
    CHECK_INT(V(ks, CLI_RS256, JOSE_ASYMMETRIC), JOSE_OK);
    CHECK(jose_keyset_has_kid(ks, "rsa-cli"));
    jose_keyset_unref(ks);
    ks = pem_keyset(CLI_RSA_PUB, "other");
    CHECK_INT(V(ks, CLI_RS256, JOSE_ASYMMETRIC), JOSE_UNKNOWN_KID);
    CHECK_INT(V(ks, CLI_ES256, JOSE_ASYMMETRIC), JOSE_UNKNOWN_KID);
    jose_keyset_unref(ks);
    ks = pem_keyset(CLI_EC_PUB, NULL);
    CHECK_INT(V(ks, CLI_RS256, JOSE_ASYMMETRIC), JOSE_KEY_MISMATCH);
    jose_keyset_unref(ks);

    /* PEM refusals: private key, weak RSA, garbage, empty, oversized kid */
    char *err = NULL;
    CHECK(jose_keyset_from_pem(CLI_EC_PRIVATE, strlen(CLI_EC_PRIVATE), NULL, &err) == NULL);
    CHECK(err != NULL);
    free(err);
    CHECK(jose_keyset_from_pem(CLI_RSA1024_PUB, strlen(CLI_RSA1024_PUB), NULL, &err) == NULL);
    CHECK(err && strstr(err, "2048"));
    free(err);
    CHECK(jose_keyset_from_pem("hello", 5, NULL, &err) == NULL);
    free(err);
    CHECK(jose_keyset_from_pem("", 0, NULL, &err) == NULL);
    free(err);
    char longkid[300];
    memset(longkid, 'k', sizeof longkid - 1);
    longkid[sizeof longkid - 1] = '\0';
    CHECK(jose_keyset_from_pem(CLI_RSA_PUB, strlen(CLI_RSA_PUB), longkid, &err) == NULL);
    free(err);
    drop_all();
}

static void test_rfc7515(void)
{
    /* A.1: HS256 with the 64-byte key */
    unsigned char k[128];
    size_t klen = unb64u(RFC_A1_K, k);
    CHECK_INT(klen, 64);
    jose_keyset_t *ks = jose_keyset_from_secret(k, klen, NULL, NULL);
    json_t *h = NULL, *c = NULL;
    CHECK_INT(jose_verify(ks, RFC_A1_TOKEN, strlen(RFC_A1_TOKEN), JOSE_HS256, &h, &c, NULL, 0),
              JOSE_OK);
    CHECK_STR(json_string_value(json_object_get(c, "iss")), "joe");
    CHECK(json_is_true(json_object_get(c, "http://example.com/is_root")));
    CHECK_STR(json_string_value(json_object_get(h, "typ")), "JWT");
    json_decref(h);
    json_decref(c);
    CHECK_INT(V(ks, RFC_A1_TOKEN, JOSE_ASYMMETRIC), JOSE_ALG_REFUSED);
    jose_keyset_unref(ks);

    /* A.2: RS256, key without kid, token without kid */
    char *warn = NULL;
    ks = jwks("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"" RFC_A2_N "\",\"e\":\"AQAB\"}]}", &warn);
    CHECK(ks != NULL);
    CHECK(warn == NULL);
    CHECK_INT(V(ks, RFC_A2_TOKEN, JOSE_RS256), JOSE_OK);
    CHECK_INT(V(ks, RFC_A2_TOKEN, JOSE_PS256 | JOSE_ES256), JOSE_ALG_REFUSED);
    jose_keyset_unref(ks);

    /* A.3: ES256; the JWK carries its private "d", which is ignored with a warning */
    ks = jwks("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" RFC_A3_X
              "\",\"y\":\"" RFC_A3_Y "\",\"d\":\"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI\"}]}",
              &warn);
    CHECK(ks != NULL);
    CHECK(warn && strstr(warn, "private"));
    CHECK_INT(V(ks, RFC_A3_TOKEN, JOSE_ES256), JOSE_OK);
    CHECK_INT(V(ks, RFC_A2_TOKEN, JOSE_RS256), JOSE_KEY_MISMATCH);
    jose_keyset_unref(ks);
    drop_all();
}

static void test_alg_none(void)
{
    jose_keyset_t *ks = jwks(CLI_JWKS, NULL);
    jose_keyset_t *hs = jose_keyset_from_secret(SECRET64, 64, NULL, NULL);
    const char *payload = seg(CLAIMS);
    const char *hdrs[] = {"{\"alg\":\"none\"}", "{\"alg\":\"NoNe\"}", "{\"alg\":\"NONE\"}",
                          "{\"alg\":\"none\",\"kid\":\"rsa-cli\"}",
                          "{\"alg\":\"nOnE\",\"typ\":\"JWT\"}"};
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        char *unsigned_tok = fmt("%s.%s.", seg(hdrs[i]), payload);
        char *signed_tok = fmt("%s.%s.%s", seg(hdrs[i]), payload, segment(CLI_RS256, 2));
        char *hs_tok = hs_token(hdrs[i], CLAIMS, SECRET64, 64, EVP_sha256());
        for (unsigned allow = JOSE_ASYMMETRIC; allow <= ALL_ALGS; allow = allow * 2 + 1) {
            CHECK_INT(V(ks, unsigned_tok, allow), JOSE_ALG_REFUSED);
            CHECK_INT(V(ks, signed_tok, allow), JOSE_ALG_REFUSED);
            CHECK_INT(V(hs, hs_tok, allow), JOSE_ALG_REFUSED);
        }
    }
    char why[64];
    char *tok = fmt("%s.%s.", seg("{\"alg\":\"none\"}"), payload);
    CHECK_INT(jose_verify(ks, tok, strlen(tok), ALL_ALGS, NULL, NULL, why, sizeof why),
              JOSE_ALG_REFUSED);
    CHECK_STR(why, "alg none refused");
    /* other alg shapes */
    CHECK_INT(V(ks, fmt("%s.%s.", seg("{\"alg\":\"\"}"), payload), ALL_ALGS), JOSE_ALG_REFUSED);
    /* jansson refuses \u0000 outright, so a NUL never reaches the alg or kid checks */
    CHECK_INT(V(ks, fmt("%s.%s.", seg("{\"alg\":\"none\\u0000\"}"), payload), ALL_ALGS),
              JOSE_MALFORMED);
    CHECK_INT(V(ks, fmt("%s.%s.AAAA", seg("{\"alg\":\"RS256\\u0000x\"}"), payload), ALL_ALGS),
              JOSE_MALFORMED);
    CHECK_INT(V(ks, fmt("%s.%s.AAAA", seg("{\"alg\":\"rs256\"}"), payload), ALL_ALGS),
              JOSE_ALG_REFUSED);
    CHECK_INT(V(ks, fmt("%s.%s.AAAA", seg("{\"alg\":\"RSA-OAEP\"}"), payload), ALL_ALGS),
              JOSE_ALG_REFUSED);
    CHECK_INT(V(ks, fmt("%s.%s.AAAA", seg("{\"alg\":null}"), payload), ALL_ALGS), JOSE_BAD_HEADER);
    CHECK_INT(V(ks, fmt("%s.%s.AAAA", seg("{\"alg\":256}"), payload), ALL_ALGS), JOSE_BAD_HEADER);
    CHECK_INT(V(ks, fmt("%s.%s.AAAA", seg("{\"alg\":[\"RS256\"]}"), payload), ALL_ALGS),
              JOSE_BAD_HEADER);
    CHECK_INT(V(ks, fmt("%s.%s.AAAA", seg("{\"typ\":\"JWT\"}"), payload), ALL_ALGS),
              JOSE_BAD_HEADER);
    CHECK_INT(V(ks, CLI_RS256, 0), JOSE_ALG_REFUSED);
    jose_keyset_unref(hs);
    jose_keyset_unref(ks);
    drop_all();
}

/* The classic confusion: an HS256 token whose HMAC key is the server's public key, in every
 * form an attacker could guess. Must never verify. */
static void test_alg_confusion(void)
{
    jose_keyset_t *ks = jwks(CLI_JWKS, NULL);
    jose_keyset_t *pem = pem_keyset(CLI_RSA_PUB, NULL);
    jose_keyset_t *rsa_only = jwks("{\"keys\":[" RSA_JWK("rsa-cli", CLI_RSA_N, "AQAB") "]}", NULL);
    BIO *bio = BIO_new_mem_buf(CLI_RSA_PUB, -1);
    EVP_PKEY *pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    unsigned char *der = NULL;
    int derlen = i2d_PUBKEY(pub, &der);
    CHECK(derlen > 0);
    struct {
        const void *key;
        size_t len;
    } keys[] = {
        {CLI_RSA_PUB, strlen(CLI_RSA_PUB)},
        {CLI_RSA_PUB, strlen(CLI_RSA_PUB) - 1}, /* without the final newline */
        {der, (size_t)derlen},
        {RSA_JWK("rsa-cli", CLI_RSA_N, "AQAB"), strlen(RSA_JWK("rsa-cli", CLI_RSA_N, "AQAB"))},
        {CLI_JWKS, strlen(CLI_JWKS)},
        {CLI_EC_PUB, strlen(CLI_EC_PUB)},
        {CLI_RSA_N, strlen(CLI_RSA_N)},
    };
    const char *hdrs[] = {"{\"alg\":\"HS256\",\"kid\":\"rsa-cli\"}", "{\"alg\":\"HS256\"}",
                          "{\"alg\":\"HS256\",\"kid\":\"ec-cli\"}",
                          "{\"alg\":\"HS512\",\"kid\":\"rsa-cli\"}"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        for (size_t h = 0; h < sizeof hdrs / sizeof hdrs[0]; h++) {
            const EVP_MD *md = strstr(hdrs[h], "HS512") ? EVP_sha512() : EVP_sha256();
            char *tok = hs_token(hdrs[h], CLAIMS, keys[k].key, keys[k].len, md);
            CHECK_INT(V(ks, tok, JOSE_ASYMMETRIC), JOSE_ALG_REFUSED);
            CHECK_INT(V(ks, tok, ALL_ALGS), JOSE_KEY_MISMATCH);
            CHECK_INT(V(rsa_only, tok, ALL_ALGS),
                      strstr(hdrs[h], "ec-cli") ? JOSE_UNKNOWN_KID : JOSE_KEY_MISMATCH);
            CHECK_INT(V(pem, tok, ALL_ALGS), JOSE_KEY_MISMATCH);
            CHECK_INT(V(pem, tok, JOSE_HS256 | JOSE_HS512), JOSE_KEY_MISMATCH);
        }
    }
    char why[64];
    char *tok = hs_token("{\"alg\":\"HS256\",\"kid\":\"rsa-cli\"}", CLAIMS, CLI_RSA_PUB,
                         strlen(CLI_RSA_PUB), EVP_sha256());
    CHECK_INT(jose_verify(ks, tok, strlen(tok), JOSE_RS256, NULL, NULL, why, sizeof why),
              JOSE_ALG_REFUSED);
    CHECK_STR(why, "alg HS256 not allowed");
    CHECK_INT(jose_verify(ks, tok, strlen(tok), ALL_ALGS, NULL, NULL, why, sizeof why),
              JOSE_KEY_MISMATCH);
    CHECK_STR(why, "no selected key for alg HS256");

    /* algs that do not fit the selected key's type or curve */
    const char *payload = seg(CLAIMS);
    struct {
        const char *hdr;
        jose_status_t want;
    } cases[] = {
        {"{\"alg\":\"ES256\",\"kid\":\"rsa-cli\"}", JOSE_KEY_MISMATCH},
        {"{\"alg\":\"EdDSA\",\"kid\":\"rsa-cli\"}", JOSE_KEY_MISMATCH},
        {"{\"alg\":\"RS256\",\"kid\":\"ec-cli\"}", JOSE_KEY_MISMATCH},
        {"{\"alg\":\"PS256\",\"kid\":\"ed-cli\"}", JOSE_KEY_MISMATCH},
        {"{\"alg\":\"ES384\",\"kid\":\"ec-cli\"}", JOSE_KEY_MISMATCH},
        {"{\"alg\":\"ES512\",\"kid\":\"ec-cli\"}", JOSE_KEY_MISMATCH},
        {"{\"alg\":\"ES256\",\"kid\":\"ed-cli\"}", JOSE_KEY_MISMATCH},
        {"{\"alg\":\"ES384\"}", JOSE_KEY_MISMATCH},  /* no kid: no key of that curve at all */
        {"{\"alg\":\"ES256\"}", JOSE_BAD_SIGNATURE}, /* the P-256 key fits, signature does not */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_INT(
            V(ks, fmt("%s.%s.%s", seg(cases[i].hdr), payload, segment(CLI_ES256, 2)), ALL_ALGS),
            cases[i].want);
    /* the CLI ES256 signature under an ES256 header naming the RSA key */
    CHECK_INT(
        V(ks, with_segment(CLI_ES256, 0, seg("{\"alg\":\"ES256\",\"kid\":\"rsa-cli\"}")), ALL_ALGS),
        JOSE_KEY_MISMATCH);

    /* a JWK's own "alg" narrows its key: RS256-only refuses PS256 */
    jose_keyset_t *pinned =
        jwks("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa-cli\",\"alg\":\"RS256\","
             "\"n\":\"" CLI_RSA_N "\",\"e\":\"AQAB\"}]}",
             NULL);
    CHECK_INT(V(pinned, CLI_RS256, ALL_ALGS), JOSE_OK);
    CHECK_INT(V(pinned, CLI_PS256, ALL_ALGS), JOSE_KEY_MISMATCH);
    jose_keyset_unref(pinned);

    OPENSSL_free(der);
    EVP_PKEY_free(pub);
    jose_keyset_unref(rsa_only);
    jose_keyset_unref(pem);
    jose_keyset_unref(ks);
    drop_all();
}

static void test_kids(void)
{
    jose_keyset_t *ks = jwks(CLI_JWKS, NULL);
    const char *payload = seg(CLAIMS);
    const char *sig = segment(CLI_RS256, 2);
    char why[64];
#define KID_TOKEN(kidjson)                                                                         \
    fmt("%s.%s.%s", seg("{\"alg\":\"RS256\",\"kid\":" kidjson "}"), payload, sig)
    char *tok = KID_TOKEN("\"../../etc/passwd\"");
    CHECK_INT(jose_verify(ks, tok, strlen(tok), ALL_ALGS, NULL, NULL, why, sizeof why),
              JOSE_UNKNOWN_KID);
    CHECK_STR(why, "kid not found");
    CHECK_INT(V(ks, KID_TOKEN("\"nope\""), ALL_ALGS), JOSE_UNKNOWN_KID);
    CHECK_INT(V(ks, KID_TOKEN("\"RSA-CLI\""), ALL_ALGS), JOSE_UNKNOWN_KID);
    CHECK_INT(V(ks, KID_TOKEN("\"rsa-cli \""), ALL_ALGS), JOSE_UNKNOWN_KID);
    CHECK_INT(V(ks, KID_TOKEN("\"\""), ALL_ALGS), JOSE_UNKNOWN_KID);
    CHECK_INT(V(ks, KID_TOKEN("\"' OR 1=1 --\""), ALL_ALGS), JOSE_UNKNOWN_KID);
    CHECK_INT(V(ks, KID_TOKEN("\"%s%s%n\""), ALL_ALGS), JOSE_UNKNOWN_KID);
    CHECK_INT(V(ks, KID_TOKEN("42"), ALL_ALGS), JOSE_BAD_HEADER);
    CHECK_INT(V(ks, KID_TOKEN("{}"), ALL_ALGS), JOSE_BAD_HEADER);
    CHECK_INT(V(ks, KID_TOKEN("{\"kid\":\"rsa-cli\"}"), ALL_ALGS), JOSE_BAD_HEADER);
    CHECK_INT(V(ks, KID_TOKEN("null"), ALL_ALGS), JOSE_BAD_HEADER);
    CHECK_INT(V(ks, KID_TOKEN("[\"rsa-cli\"]"), ALL_ALGS), JOSE_BAD_HEADER);
    CHECK_INT(V(ks, KID_TOKEN("true"), ALL_ALGS), JOSE_BAD_HEADER);
    CHECK_INT(V(ks, KID_TOKEN("\"rsa-cli\\u0000\""), ALL_ALGS), JOSE_MALFORMED);
    CHECK_INT(V(ks, KID_TOKEN("\"rsa-cli\\u0000evil\""), ALL_ALGS), JOSE_MALFORMED);
    /* the real kid with a valid signature, for contrast */
    CHECK_INT(V(ks, KID_TOKEN("\"rsa-cli\""), ALL_ALGS), JOSE_BAD_SIGNATURE);
#undef KID_TOKEN

    /* long kids: 256 is the limit; 5000 fits in a token but is refused; 10 KB makes the
     * token itself too long */
    size_t lens[] = {256, 257, 5000, 10240};
    jose_status_t want[] = {JOSE_UNKNOWN_KID, JOSE_BAD_HEADER, JOSE_BAD_HEADER, JOSE_MALFORMED};
    for (int i = 0; i < 4; i++) {
        char *kid = calloc(1, lens[i] + 1);
        memset(kid, 'A', lens[i]);
        char *hdr = fmt("{\"alg\":\"RS256\",\"kid\":\"%s\"}", kid);
        free(kid);
        tok = fmt("%s.%s.%s", seg(hdr), payload, sig);
        CHECK_INT(jose_verify(ks, tok, strlen(tok), ALL_ALGS, NULL, NULL, why, sizeof why),
                  want[i]);
        CHECK(strlen(why) < 40);
    }
    jose_keyset_unref(ks);
    drop_all();
}

/* Without a kid every key that fits the alg is tried; a key with a kid is only chosen by it. */
static void test_key_selection(void)
{
    jose_signer_t *a = jose_signer_generate(JOSE_RS256, "a", NULL);
    jose_signer_t *b = jose_signer_generate(JOSE_RS256, "b", NULL);
    jose_signer_t *e = jose_signer_generate(JOSE_ES256, "e", NULL);
    json_t *ja = jose_signer_jwks(a), *jb = jose_signer_jwks(b), *je = jose_signer_jwks(e);
    json_t *keys = json_pack("[O,O,O]", json_array_get(json_object_get(je, "keys"), 0),
                             json_array_get(json_object_get(ja, "keys"), 0),
                             json_array_get(json_object_get(jb, "keys"), 0));
    json_t *doc = json_pack("{s:o}", "keys", keys);
    jose_keyset_t *ks = jwks(keep(json_dumps(doc, 0)), NULL);
    CHECK_INT(jose_keyset_size(ks), 3);
    EVP_PKEY *pb = signer_pkey(b), *pb2 = signer_pkey(b);
    CHECK_INT(V(ks, rsa_token("{\"alg\":\"RS256\"}", CLAIMS, pb, false), JOSE_RS256), JOSE_OK);
    CHECK_INT(V(ks, rsa_token("{\"alg\":\"RS256\",\"kid\":\"b\"}", CLAIMS, pb, false), JOSE_RS256),
              JOSE_OK);
    CHECK_INT(V(ks, rsa_token("{\"alg\":\"RS256\",\"kid\":\"a\"}", CLAIMS, pb, false), JOSE_RS256),
              JOSE_BAD_SIGNATURE);
    CHECK_INT(V(ks, rsa_token("{\"alg\":\"RS256\",\"kid\":\"e\"}", CLAIMS, pb, false), JOSE_RS256),
              JOSE_KEY_MISMATCH);
    /* the published JWKs say "alg":"RS256", which pins them: PS256 by the same key fails */
    CHECK_INT(V(ks, rsa_token("{\"alg\":\"PS256\"}", CLAIMS, pb, true), JOSE_PS256),
              JOSE_KEY_MISMATCH);
    /* an empty keyset-like situation: NULL keyset */
    CHECK_INT(V(NULL, rsa_token("{\"alg\":\"RS256\"}", CLAIMS, pb, false), JOSE_RS256),
              JOSE_UNKNOWN_KID);
    EVP_PKEY_free(pb);

    /* a JWKS mixing keys with and without kid: an unknown kid may be served by a kid-less
     * key; when none verifies, the answer stays "unknown kid" (a refetch may help) */
    jose_signer_t *nk = jose_signer_generate(JOSE_ES256, "nk", NULL);
    json_t *jnk = jose_signer_jwks(nk);
    json_t *nkjwk = json_array_get(json_object_get(jnk, "keys"), 0);
    json_object_del(nkjwk, "kid");
    json_t *mixed =
        json_pack("{s:[O,O]}", "keys", json_array_get(json_object_get(ja, "keys"), 0), nkjwk);
    jose_keyset_t *kmix = jwks(keep(json_dumps(mixed, 0)), NULL);
    CHECK_INT(jose_keyset_size(kmix), 2);
    json_t *cl = json_pack("{s:s}", "sub", "x");
    char *by_nk = keep(jose_sign(nk, NULL, cl)); /* header kid "nk", unknown to kmix */
    CHECK_INT(V(kmix, by_nk, JOSE_ASYMMETRIC), JOSE_OK);
    char *by_e = keep(jose_sign(e, NULL, cl)); /* kid "e": unknown, and nk does not verify */
    CHECK_INT(V(kmix, by_e, JOSE_ASYMMETRIC), JOSE_UNKNOWN_KID);
    CHECK_INT(V(kmix, with_segment(by_e, 0, seg("{\"alg\":\"ES256\"}")), JOSE_ASYMMETRIC),
              JOSE_BAD_SIGNATURE);
    CHECK_INT(V(kmix, rsa_token("{\"alg\":\"RS256\",\"kid\":\"zz\"}", CLAIMS, pb2, false),
                JOSE_ASYMMETRIC),
              JOSE_KEY_MISMATCH); /* the kid-less key is EC: nothing could verify RS256 */
    json_decref(cl);
    jose_keyset_unref(kmix);
    json_decref(mixed);
    json_decref(jnk);
    jose_signer_free(nk);

    /* PS256 is RSASSA-PSS with salt = hash length and MGF1 with the same hash (RFC 7518
     * 3.5); other parameters are other signatures */
    jose_signer_t *ps = jose_signer_generate(JOSE_PS256, "ps", NULL);
    json_t *jps = jose_signer_jwks(ps);
    jose_keyset_t *kps = jwks(keep(json_dumps(jps, 0)), NULL);
    EVP_PKEY *pp = signer_pkey(ps);
    const char *hps = "{\"alg\":\"PS256\",\"kid\":\"ps\"}";
    CHECK_INT(V(kps, pss_token(hps, CLAIMS, pp, 32, "SHA256"), JOSE_PS256), JOSE_OK);
    CHECK_INT(V(kps, pss_token(hps, CLAIMS, pp, 20, "SHA256"), JOSE_PS256), JOSE_BAD_SIGNATURE);
    CHECK_INT(V(kps, pss_token(hps, CLAIMS, pp, 0, "SHA256"), JOSE_PS256), JOSE_BAD_SIGNATURE);
    CHECK_INT(V(kps, pss_token(hps, CLAIMS, pp, RSA_PSS_SALTLEN_MAX, "SHA256"), JOSE_PS256),
              JOSE_BAD_SIGNATURE);
    CHECK_INT(V(kps, pss_token(hps, CLAIMS, pp, 32, "SHA1"), JOSE_PS256), JOSE_BAD_SIGNATURE);
    CHECK_INT(V(kps, rsa_token(hps, CLAIMS, pp, false), JOSE_PS256), JOSE_BAD_SIGNATURE);
    EVP_PKEY_free(pp);
    jose_keyset_unref(kps);
    json_decref(jps);
    jose_signer_free(ps);

    json_decref(doc);
    json_decref(ja);
    json_decref(jb);
    json_decref(je);
    EVP_PKEY_free(pb2);
    jose_keyset_unref(ks);
    jose_signer_free(a);
    jose_signer_free(b);
    jose_signer_free(e);
    drop_all();
}

static void test_tampering(void)
{
    jose_keyset_t *ks = jwks(CLI_JWKS, NULL);
    char why[64];
    const char *toks[] = {CLI_RS256, CLI_PS256, CLI_ES256, CLI_EDDSA};
    for (int i = 0; i < 4; i++) {
        const char *t = toks[i];
        /* stripped signature: empty third segment is a bad signature, two segments malformed */
        char *stripped = with_segment(t, 2, "");
        CHECK_INT(
            jose_verify(ks, stripped, strlen(stripped), ALL_ALGS, NULL, NULL, why, sizeof why),
            JOSE_BAD_SIGNATURE);
        CHECK_STR(why, "empty signature");
        CHECK_INT(V(ks, fmt("%s.%s", segment(t, 0), segment(t, 1)), ALL_ALGS), JOSE_MALFORMED);
        /* payload tampered: other claims, same header and signature */
        char *payload = with_segment(t, 1,
                                     seg("{\"iss\":\"https://idp.example\",\"sub\":\"admin\","
                                         "\"aud\":\"mcp\",\"exp\":4102444800}"));
        CHECK_INT(jose_verify(ks, payload, strlen(payload), ALL_ALGS, NULL, NULL, why, sizeof why),
                  JOSE_BAD_SIGNATURE);
        CHECK_STR(why, "signature does not verify");
        /* header tampered: same alg and kid, one more member */
        unsigned char raw[256];
        size_t rl = unb64u(segment(t, 0), raw);
        raw[rl] = '\0';
        char *hdr = fmt("%.*s,\"x\":1}", (int)rl - 1, (char *)raw);
        CHECK_INT(V(ks, with_segment(t, 0, seg(hdr)), ALL_ALGS), JOSE_BAD_SIGNATURE);
        /* signature tampered: one bit, truncated, extended */
        const char *s = segment(t, 2);
        char *flip = fmt("%s", s);
        flip[5] = flip[5] == 'A' ? 'B' : 'A';
        CHECK_INT(V(ks, with_segment(t, 2, flip), ALL_ALGS), JOSE_BAD_SIGNATURE);
        unsigned char raw_sig[300];
        size_t raw_len = unb64u(s, raw_sig);
        CHECK_INT(V(ks, with_segment(t, 2, b64u(raw_sig, raw_len - 3)), ALL_ALGS),
                  JOSE_BAD_SIGNATURE);
        CHECK_INT(V(ks, with_segment(t, 2, fmt("%sAAAA", s)), ALL_ALGS), JOSE_BAD_SIGNATURE);
        CHECK_INT(V(ks, with_segment(t, 2, fmt("AAAA%s", s)), ALL_ALGS), JOSE_BAD_SIGNATURE);
        /* signature of another token */
        CHECK_INT(V(ks, with_segment(t, 2, segment(toks[(i + 2) % 4], 2)), ALL_ALGS),
                  JOSE_BAD_SIGNATURE);
        /* a lenient decoder maps a non-canonical last character to the same bytes: refused,
         * or every signature would have several accepted spellings */
        CHECK_INT(strlen(s) % 4, 2);
        CHECK_INT(V(ks, with_segment(t, 2, noncanonical(s)), ALL_ALGS), JOSE_MALFORMED);
    }
    /* ES256 signatures must be exactly 64 bytes: DER or a 0-prefixed R||S are refused */
    const char *es = segment(CLI_ES256, 2);
    unsigned char rs[80];
    size_t rl = unb64u(es, rs);
    CHECK_INT(rl, 64);
    unsigned char longer[66] = {0};
    memcpy(longer + 1, rs, 32);
    memcpy(longer + 34, rs + 32, 32);
    CHECK_INT(V(ks, with_segment(CLI_ES256, 2, b64u(longer, 66)), ALL_ALGS), JOSE_BAD_SIGNATURE);
    CHECK_INT(V(ks, with_segment(CLI_ES256, 2, b64u(rs, 63)), ALL_ALGS), JOSE_BAD_SIGNATURE);
    unsigned char zero[64] = {0};
    CHECK_INT(V(ks, with_segment(CLI_ES256, 2, b64u(zero, 64)), ALL_ALGS), JOSE_BAD_SIGNATURE);
    /* RSA: a signature one byte short (leading zero dropped) is refused by length */
    const char *rsig = segment(CLI_RS256, 2);
    unsigned char rsa[300];
    size_t rsal = unb64u(rsig, rsa);
    CHECK_INT(rsal, 256);
    CHECK_INT(V(ks, with_segment(CLI_RS256, 2, b64u(rsa + 1, 255)), ALL_ALGS), JOSE_BAD_SIGNATURE);
    jose_keyset_unref(ks);
    drop_all();
}

static void test_malformed(void)
{
    jose_keyset_t *ks = jwks(CLI_JWKS, NULL);
    const char *h = segment(CLI_RS256, 0), *p = segment(CLI_RS256, 1), *s = segment(CLI_RS256, 2);
    char why[64];
    CHECK_INT(jose_verify(ks, NULL, 0, ALL_ALGS, NULL, NULL, why, sizeof why), JOSE_MALFORMED);
    CHECK_INT(jose_verify(ks, "", 0, ALL_ALGS, NULL, NULL, NULL, 0), JOSE_MALFORMED);
    const char *bad[] = {"a",
                         ".",
                         "..",
                         "...",
                         "a.b",
                         "a.b.c.d",
                         fmt("%s.%s.%s.", h, p, s),
                         fmt("%s.%s.%s.%s", h, p, s, s),
                         fmt(".%s.%s", p, s),
                         fmt("%s.%s", h, p)};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_INT(V(ks, bad[i], ALL_ALGS), JOSE_MALFORMED);
    /* a token longer than JOSE_MAX_TOKEN is refused before parsing, even 64 KiB of it */
    char *huge = calloc(1, 65537);
    memset(huge, 'A', 65536);
    memcpy(huge, CLI_RS256, strlen(CLI_RS256));
    CHECK_INT(jose_verify(ks, huge, 65536, ALL_ALGS, NULL, NULL, why, sizeof why), JOSE_MALFORMED);
    CHECK_STR(why, "token too long");
    free(huge);
    /* the length given is what counts: a valid token with a shorter len is cut */
    CHECK_INT(jose_verify(ks, CLI_RS256, strlen(CLI_RS256) - 1, ALL_ALGS, NULL, NULL, NULL, 0),
              JOSE_MALFORMED); /* 341 characters: 1 mod 4 */
    CHECK_INT(jose_verify(ks, CLI_RS256, strlen(CLI_RS256) - 2, ALL_ALGS, NULL, NULL, NULL, 0),
              JOSE_BAD_SIGNATURE);
    /* an empty payload is only looked at after the signature, which cannot hold */
    CHECK_INT(V(ks, fmt("%s..%s", h, s), ALL_ALGS), JOSE_BAD_SIGNATURE);
    CHECK_INT(jose_verify(ks, CLI_RS256, strlen(CLI_RS256) + 1, ALL_ALGS, NULL, NULL, NULL, 0),
              JOSE_MALFORMED); /* includes the NUL */

    /* strict base64url in each segment */
    static const struct {
        const char *pre, *post;
    } variants[] = {{"", "="},  {"", "=="},   {"=", ""},    {" ", ""},   {"", " "},
                    {"", "\n"}, {"", "\r\n"}, {"", "\t"},   {"+", ""},   {"/", ""},
                    {"", "*"},  {"", "%3D"},  {"", "\x80"}, {"\x01", ""}};
    for (int segi = 0; segi < 3; segi++) {
        const char *orig = segment(CLI_RS256, segi);
        for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
            char *bent = fmt("%s%s%s", variants[v].pre, orig, variants[v].post);
            CHECK_INT(V(ks, with_segment(CLI_RS256, segi, bent), ALL_ALGS), JOSE_MALFORMED);
        }
        /* a space in the middle, '+' and '/' in place of '-' and '_' */
        char *mid = fmt("%s", orig);
        mid[4] = ' ';
        CHECK_INT(V(ks, with_segment(CLI_RS256, segi, mid), ALL_ALGS), JOSE_MALFORMED);
        char *std = fmt("%s", orig);
        for (char *c = std; *c; c++)
            *c = *c == '-' ? '+' : *c == '_' ? '/' : *c;
        if (strcmp(std, orig) != 0)
            CHECK_INT(V(ks, with_segment(CLI_RS256, segi, std), ALL_ALGS), JOSE_MALFORMED);
    }
    /* padded the standard way ("=" up to a multiple of 4) */
    CHECK_INT(V(ks, with_segment(CLI_RS256, 2, fmt("%s==", s)), ALL_ALGS), JOSE_MALFORMED);
    /* non-canonical trailing bits in the header: {"alg":"RS256"} is 15 bytes -> 20 chars,
     * so use a 16-byte header (22 chars, 4 unused bits) */
    const char *h16 = seg("{\"alg\":\"RS256\"} ");
    CHECK_INT(strlen(h16) % 4, 2);
    CHECK_INT(V(ks, fmt("%s.%s.%s", noncanonical(h16), p, s), ALL_ALGS), JOSE_MALFORMED);
    CHECK_INT(V(ks, fmt("%s.%s.%s", h16, p, s), ALL_ALGS), JOSE_BAD_SIGNATURE); /* canonical */
    /* length 1 mod 4 is never base64 */
    CHECK_INT(V(ks, fmt("%sA.%s.%s", h, p, s), ALL_ALGS), JOSE_MALFORMED);

    /* header content: not JSON, not an object, trailing bytes, duplicates */
    struct {
        const char *json;
        jose_status_t want;
    } hdrs[] = {
        {"not json", JOSE_MALFORMED},
        {"", JOSE_MALFORMED},
        {"[\"alg\",\"RS256\"]", JOSE_MALFORMED},
        {"\"RS256\"", JOSE_MALFORMED},
        {"42", JOSE_MALFORMED},
        {"null", JOSE_MALFORMED},
        {"{\"alg\":\"RS256\"}x", JOSE_MALFORMED},
        {"{\"alg\":\"RS256\"}{}", JOSE_MALFORMED},
        {"{\"alg\":\"RS256\"", JOSE_MALFORMED},
        {"{'alg':'RS256'}", JOSE_MALFORMED},
        {"{\"alg\":\"RS256\",\"alg\":\"none\"}", JOSE_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":\"a\",\"kid\":\"rsa-cli\"}", JOSE_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"crit\":[\"exp\"],\"exp\":1}", JOSE_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"crit\":[]}", JOSE_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"crit\":\"b64\"}", JOSE_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"b64\":false,\"crit\":[\"b64\"]}", JOSE_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"b64\":false}", JOSE_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"b64\":0}", JOSE_BAD_HEADER},
        {"{\"alg\":\"RS256\",\"b64\":\"false\"}", JOSE_BAD_HEADER},
    };
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++)
        CHECK_INT(V(ks, fmt("%s.%s.%s", seg(hdrs[i].json), p, s), ALL_ALGS), hdrs[i].want);
    jose_keyset_unref(ks);
    drop_all();
}

/* Claims are checked only after the signature, with a valid HMAC so the parse is reached. */
static void test_claims_and_secret(void)
{
    char *err = NULL;
    jose_keyset_t *ks = jose_keyset_from_secret(SECRET64, 64, "hk", &err);
    CHECK(ks != NULL);
    const EVP_MD *md256 = EVP_sha256();
    const char *hdr = "{\"alg\":\"HS256\",\"kid\":\"hk\"}";
    char why[64];
    char *tok = hs_token(hdr, "{\"sub\":\"a\",\"sub\":\"b\"}", SECRET64, 64, md256);
    CHECK_INT(jose_verify(ks, tok, strlen(tok), ALL_ALGS, NULL, NULL, why, sizeof why),
              JOSE_MALFORMED);
    CHECK_STR(why, "duplicate key in claims");
    CHECK_INT(V(ks, hs_token(hdr, "[1,2]", SECRET64, 64, md256), ALL_ALGS), JOSE_MALFORMED);
    CHECK_INT(V(ks, hs_token(hdr, "not json", SECRET64, 64, md256), ALL_ALGS), JOSE_MALFORMED);
    CHECK_INT(V(ks, hs_token(hdr, "", SECRET64, 64, md256), ALL_ALGS), JOSE_MALFORMED);
    CHECK_INT(V(ks, hs_token(hdr, "\"sub\"", SECRET64, 64, md256), ALL_ALGS), JOSE_MALFORMED);
    CHECK_INT(V(ks, hs_token(hdr, "{\"a\":{\"b\":1,\"b\":2}}", SECRET64, 64, md256), ALL_ALGS),
              JOSE_MALFORMED);
    CHECK_INT(V(ks, hs_token(hdr, "{}", SECRET64, 64, md256), ALL_ALGS), JOSE_OK);
    /* typ may be anything here; b64 true is the default and allowed; unknown members pass */
    CHECK_INT(
        V(ks, hs_token("{\"alg\":\"HS256\",\"typ\":42}", CLAIMS, SECRET64, 64, md256), ALL_ALGS),
        JOSE_OK);
    CHECK_INT(V(ks,
                hs_token("{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"b64\":true}", CLAIMS, SECRET64,
                         64, md256),
                ALL_ALGS),
              JOSE_OK);
    CHECK_INT(
        V(ks, hs_token("{\"alg\":\"HS256\",\"b64\":false}", CLAIMS, SECRET64, 64, md256), ALL_ALGS),
        JOSE_BAD_HEADER);
    CHECK_INT(
        V(ks, hs_token("{\"alg\":\"HS256\",\"crit\":[\"x\"],\"x\":1}", CLAIMS, SECRET64, 64, md256),
          ALL_ALGS),
        JOSE_BAD_HEADER);
    /* every HS size, wrong secret, other kid, truncated MAC */
    CHECK_INT(V(ks, hs_token("{\"alg\":\"HS384\"}", CLAIMS, SECRET64, 64, EVP_sha384()), ALL_ALGS),
              JOSE_OK);
    CHECK_INT(V(ks, hs_token("{\"alg\":\"HS512\"}", CLAIMS, SECRET64, 64, EVP_sha512()), ALL_ALGS),
              JOSE_OK);
    CHECK_INT(V(ks, hs_token("{\"alg\":\"HS512\"}", CLAIMS, SECRET64, 64, EVP_sha256()), ALL_ALGS),
              JOSE_BAD_SIGNATURE);
    CHECK_INT(V(ks, hs_token("{\"alg\":\"HS256\"}", CLAIMS, SECRET64, 63, md256), ALL_ALGS),
              JOSE_BAD_SIGNATURE);
    CHECK_INT(V(ks, hs_token("{\"alg\":\"HS256\",\"kid\":\"other\"}", CLAIMS, SECRET64, 64, md256),
                ALL_ALGS),
              JOSE_UNKNOWN_KID);
    tok = hs_token(hdr, CLAIMS, SECRET64, 64, md256);
    unsigned char mac[64];
    size_t ml = unb64u(segment(tok, 2), mac);
    CHECK_INT(ml, 32);
    CHECK_INT(V(ks, with_segment(tok, 2, b64u(mac, 31)), ALL_ALGS), JOSE_BAD_SIGNATURE);
    CHECK_INT(V(ks, with_segment(tok, 2, b64u(mac, 16)), ALL_ALGS), JOSE_BAD_SIGNATURE);
    CHECK_INT(V(ks, with_segment(tok, 2, ""), ALL_ALGS), JOSE_BAD_SIGNATURE);
    CHECK_INT(V(ks, tok, ALL_ALGS), JOSE_OK);
    CHECK_INT(V(ks, tok, JOSE_ASYMMETRIC), JOSE_ALG_REFUSED);
    /* an RSA token against an HMAC keyset */
    CHECK_INT(V(ks, with_segment(CLI_RS256, 0, seg("{\"alg\":\"RS256\"}")), ALL_ALGS),
              JOSE_KEY_MISMATCH);
    jose_keyset_unref(ks);

    /* sizes: under 32 bytes refused; 32 bytes allow HS256 only (RFC 7518 3.2) */
    CHECK(jose_keyset_from_secret(SECRET64, 31, NULL, &err) == NULL);
    CHECK(err != NULL);
    free(err);
    CHECK(jose_keyset_from_secret(NULL, 32, NULL, &err) == NULL);
    free(err);
    ks = jose_keyset_from_secret(SECRET64, 32, NULL, NULL);
    CHECK_INT(
        V(ks, hs_token("{\"alg\":\"HS256\",\"kid\":\"x\"}", CLAIMS, SECRET64, 32, md256), ALL_ALGS),
        JOSE_OK); /* no kid on the secret: tokens naming one still verify */
    CHECK_INT(V(ks, hs_token("{\"alg\":\"HS384\"}", CLAIMS, SECRET64, 32, EVP_sha384()), ALL_ALGS),
              JOSE_KEY_MISMATCH);
    CHECK_INT(V(ks, hs_token("{\"alg\":\"HS512\"}", CLAIMS, SECRET64, 32, EVP_sha512()), ALL_ALGS),
              JOSE_KEY_MISMATCH);
    jose_keyset_unref(ks);
    drop_all();
}

/* Exactly JOSE_MAX_TOKEN bytes verifies; one more is refused. */
static void test_length_limit(void)
{
    jose_keyset_t *ks = jose_keyset_from_secret(SECRET64, 64, NULL, NULL);
    char *at = NULL;
    for (size_t pad = 5900; pad < 6200 && !at; pad++) {
        for (int k = 1; k <= 3 && !at; k++) {
            char *padding = calloc(1, pad + 1);
            memset(padding, 'p', pad);
            char *tok = hs_token(fmt("{\"alg\":\"HS256\",\"kid\":\"%.*s\"}", k, "kkk"),
                                 fmt("{\"pad\":\"%s\"}", padding), SECRET64, 64, EVP_sha256());
            free(padding);
            if (strlen(tok) == JOSE_MAX_TOKEN)
                at = tok;
        }
    }
    if (CHECK(at != NULL)) {
        CHECK_INT(V(ks, at, ALL_ALGS), JOSE_OK);
        char *over = fmt("%s ", at);
        CHECK_INT(V(ks, over, ALL_ALGS), JOSE_MALFORMED);
        CHECK_INT(jose_verify(ks, over, JOSE_MAX_TOKEN, ALL_ALGS, NULL, NULL, NULL, 0), JOSE_OK);
    }
    jose_keyset_unref(ks);
    drop_all();
}

/* "jwk", "jku", "x5u", "x5c" in the header never supply a key. */
static void test_header_keys_ignored(void)
{
    jose_keyset_t *ks = jwks(CLI_JWKS, NULL);
    jose_signer_t *evil = jose_signer_generate(JOSE_RS256, "evil", NULL);
    json_t *ej = jose_signer_jwks(evil);
    char *evil_jwk = keep(json_dumps(json_array_get(json_object_get(ej, "keys"), 0), JSON_COMPACT));
    char *evil_jwks = keep(json_dumps(ej, JSON_COMPACT));
    EVP_PKEY *pk = signer_pkey(evil);
    struct {
        const char *hdr;
        jose_status_t want;
    } cases[] = {
        {fmt("{\"alg\":\"RS256\",\"jwk\":%s}", evil_jwk), JOSE_BAD_SIGNATURE},
        {fmt("{\"alg\":\"RS256\",\"kid\":\"evil\",\"jwk\":%s}", evil_jwk), JOSE_UNKNOWN_KID},
        {fmt("{\"alg\":\"RS256\",\"kid\":\"rsa-cli\",\"jwk\":%s}", evil_jwk), JOSE_BAD_SIGNATURE},
        {"{\"alg\":\"RS256\",\"jku\":\"https://evil.example/jwks.json\"}", JOSE_BAD_SIGNATURE},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-cli\",\"jku\":\"https://evil.example/jwks.json\"}",
         JOSE_BAD_SIGNATURE},
        {"{\"alg\":\"RS256\",\"x5u\":\"https://evil.example/cert.pem\"}", JOSE_BAD_SIGNATURE},
        {"{\"alg\":\"RS256\",\"x5c\":[\"MIIBIjAN\"]}", JOSE_BAD_SIGNATURE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tok = rsa_token(cases[i].hdr, CLAIMS, pk, false);
        CHECK_INT(V(ks, tok, ALL_ALGS), cases[i].want);
    }
    /* the same token verifies against the attacker's own JWKS: the refusal is the keyset's */
    jose_keyset_t *eks = jwks(evil_jwks, NULL);
    CHECK_INT(V(eks, rsa_token(cases[1].hdr, CLAIMS, pk, false), ALL_ALGS), JOSE_OK);
    jose_keyset_unref(eks);
    EVP_PKEY_free(pk);
    json_decref(ej);
    jose_signer_free(evil);
    jose_keyset_unref(ks);
    drop_all();
}

static void test_jwks_documents(void)
{
    /* not a JWKS at all */
    CHECK(strstr(jwks_err("not json"), "not JSON") != NULL);
    CHECK(*jwks_err("[]") != '\0');
    CHECK(*jwks_err("{}") != '\0');
    CHECK(*jwks_err("{\"keys\":{}}") != '\0');
    CHECK(*jwks_err("{\"keys\":\"x\"}") != '\0');
    CHECK(strstr(jwks_err("{\"keys\":[]}"), "no usable key") != NULL);
    CHECK(strstr(jwks_err("{\"keys\":[1,\"x\",null,[]]}"), "no usable key") != NULL);
    CHECK(*jwks_err("{\"keys\":[],\"keys\":[]}") != '\0');
    char *err = NULL, *w = NULL;
    CHECK(jose_keyset_from_jwks(NULL, 0, &w, &err) == NULL);
    free(err);
    /* huge: 2 MiB of whitespace around a valid document, and 101 keys */
    size_t big = 2 * 1024 * 1024;
    char *doc = malloc(big + sizeof CLI_JWKS);
    memset(doc, ' ', big);
    memcpy(doc + big, CLI_JWKS, sizeof CLI_JWKS);
    CHECK(jose_keyset_from_jwks(doc, strlen(doc), &w, &err) == NULL);
    CHECK(err && strstr(err, "larger"));
    free(err);
    free(doc);
    char *many = fmt("{\"keys\":[%s", OKP_JWK("k", "Ed25519", CLI_ED_X));
    for (int i = 0; i < 100; i++)
        many = fmt("%s,%s", many, OKP_JWK("k", "Ed25519", CLI_ED_X));
    many = fmt("%s]}", many);
    CHECK(strstr(jwks_err(many), "100") != NULL);
    drop_all();
}

/* One bad key next to a good one: skipped with a warning naming it; alone: no usable key. */
static void check_skipped(const char *jwk, const char *why_part)
{
    char *warn = NULL;
    jose_keyset_t *ks =
        jwks(fmt("{\"keys\":[%s,%s]}", jwk, OKP_JWK("good", "Ed25519", CLI_ED_X)), &warn);
    if (!CHECK(ks != NULL))
        return;
    CHECK_INT(jose_keyset_size(ks), 1);
    CHECK(jose_keyset_has_kid(ks, "good"));
    if (!CHECK(warn && strstr(warn, "key 0") && strstr(warn, why_part)))
        fprintf(stderr, "    jwk %.60s...: warnings \"%s\", want \"%s\"\n", jwk,
                warn ? warn : "(none)", why_part);
    jose_keyset_unref(ks);
    const char *err = jwks_err(fmt("{\"keys\":[%s]}", jwk));
    if (!CHECK(strstr(err, "no usable key") && strstr(err, why_part)))
        fprintf(stderr, "    alone: \"%s\"\n", err);
}

static void test_jwk_refusals(void)
{
    check_skipped(RSA_JWK("weak", CLI_RSA1024_N, "AQAB"), "2048");
    check_skipped(RSA_JWK("e1", CLI_RSA_N, "AQ"), "exponent");
    check_skipped(RSA_JWK("e2", CLI_RSA_N, "Ag"), "exponent");
    check_skipped(RSA_JWK("e65536", CLI_RSA_N, "AQAA"), "exponent");
    check_skipped(RSA_JWK("epad", CLI_RSA_N, "AQAB="), "RSA e");
    check_skipped(RSA_JWK("nstd", "5cisoYk3xHlQS/svNVkm", "AQAB"), "RSA n");
    check_skipped("{\"kty\":\"RSA\",\"kid\":\"non\",\"e\":\"AQAB\"}", "RSA n");
    check_skipped(
        EC_JWK("offcurve", "P-256", CLI_EC_X, "E7D1q-OEv3k-_o92RGblLxitunlpZ1O_Ka-7LDqJ0qY"),
        "not on the curve");
    check_skipped(EC_JWK("x33", "P-256", "AJ6H0W4dzMOriPwtP5-ryBX_s5op05tNDD_cpsQTjDNi", CLI_EC_Y),
                  "EC x");
    check_skipped(EC_JWK("x31", "P-256", "h9FuHczDq4j8LT-fq8gV_7OaKdObTQw_3KbEE4wzYg", CLI_EC_Y),
                  "EC x");
    check_skipped(EC_JWK("y31", "P-256", CLI_EC_X, "h9FuHczDq4j8LT-fq8gV_7OaKdObTQw_3KbEE4wzYg"),
                  "EC y");
    check_skipped(EC_JWK("p384coords", "P-256", CLI_EC384_X, CLI_EC384_Y), "EC x");
    check_skipped(EC_JWK("p256on384", "P-384", CLI_EC_X, CLI_EC_Y), "EC x");
    check_skipped(EC_JWK("k1", "secp256k1", CLI_EC_X, CLI_EC_Y), "curve");
    check_skipped("{\"kty\":\"EC\",\"kid\":\"nocrv\",\"x\":\"" CLI_EC_X "\",\"y\":\"" CLI_EC_Y
                  "\"}",
                  "curve");
    check_skipped(OKP_JWK("x25519", "X25519", CLI_ED_X), "Ed25519");
    check_skipped(OKP_JWK("ed448", "Ed448", CLI_ED_X), "Ed25519");
    check_skipped(OKP_JWK("short", "Ed25519", "koVm4PqgLSSWiclApYt8n6aVf0LcYX_8w5CKTqlyLA"),
                  "32 bytes");
    check_skipped("{\"kty\":\"oct\",\"kid\":\"hmac\",\"k\":\"" RFC_A1_K "\"}", "secret");
    check_skipped("{\"kty\":\"oct\",\"kid\":\"hmac\",\"alg\":\"HS256\",\"k\":\"" RFC_A1_K "\"}",
                  "alg");
    check_skipped("{\"kty\":\"FOO\",\"kid\":\"foo\"}", "kty");
    check_skipped("{\"kid\":\"nokty\"}", "kty");
    check_skipped("[]", "object");
    check_skipped("{\"kty\":\"RSA\",\"kid\":\"enc\",\"use\":\"enc\",\"n\":\"" CLI_RSA_N
                  "\",\"e\":\"AQAB\"}",
                  "use");
    check_skipped("{\"kty\":\"RSA\",\"kid\":\"ops\",\"key_ops\":[\"encrypt\"],\"n\":\"" CLI_RSA_N
                  "\",\"e\":\"AQAB\"}",
                  "key_ops");
    check_skipped("{\"kty\":\"RSA\",\"kid\":\"a\",\"alg\":\"ES256\",\"n\":\"" CLI_RSA_N
                  "\",\"e\":\"AQAB\"}",
                  "fit");
    check_skipped("{\"kty\":\"RSA\",\"kid\":\"a\",\"alg\":\"HS256\",\"n\":\"" CLI_RSA_N
                  "\",\"e\":\"AQAB\"}",
                  "alg");
    check_skipped("{\"kty\":\"RSA\",\"kid\":\"a\",\"alg\":\"none\",\"n\":\"" CLI_RSA_N
                  "\",\"e\":\"AQAB\"}",
                  "alg");
    check_skipped("{\"kty\":\"RSA\",\"kid\":\"a\",\"alg\":\"RSA-OAEP\",\"n\":\"" CLI_RSA_N
                  "\",\"e\":\"AQAB\"}",
                  "alg");
    check_skipped(
        "{\"kty\":\"EC\",\"kid\":\"a\",\"alg\":\"ES384\",\"crv\":\"P-256\",\"x\":\"" CLI_EC_X
        "\",\"y\":\"" CLI_EC_Y "\"}",
        "fit");
    check_skipped("{\"kty\":\"RSA\",\"kid\":7,\"n\":\"" CLI_RSA_N "\",\"e\":\"AQAB\"}", "kid");
    CHECK(strstr(jwks_err("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\\u0000b\",\"n\":\"" CLI_RSA_N
                          "\",\"e\":\"AQAB\"}]}"),
                 "not JSON"));
    drop_all();
}

/* The inverse: what a JWK may carry and still be used. */
static void test_jwk_accepted(void)
{
    char *warn = NULL;
    jose_keyset_t *ks = jwks("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"rsa-cli\",\"use\":\"sig\","
                             "\"key_ops\":[\"verify\"],\"alg\":\"PS256\",\"x5c\":[\"ignored\"],"
                             "\"n\":\"AAAA" CLI_RSA_N "\",\"e\":\"AAEAAQ\",\"ext\":true}],"
                             "\"other\":1}",
                             &warn);
    CHECK(ks != NULL);
    CHECK(warn == NULL);
    CHECK_INT(V(ks, CLI_PS256, ALL_ALGS), JOSE_OK);
    CHECK_INT(V(ks, CLI_RS256, ALL_ALGS), JOSE_KEY_MISMATCH);
    jose_keyset_unref(ks);
    /* the ref count: two owners, two unrefs */
    ks = jwks(CLI_JWKS, NULL);
    CHECK(jose_keyset_ref(ks) == ks);
    jose_keyset_unref(ks);
    CHECK_INT(V(ks, CLI_ES256, ALL_ALGS), JOSE_OK);
    jose_keyset_unref(ks);
    jose_keyset_unref(NULL);
    CHECK(jose_keyset_ref(NULL) == NULL);
    CHECK_INT(jose_keyset_size(NULL), 0);
    drop_all();
}

static void test_why(void)
{
    jose_keyset_t *ks = jwks(CLI_JWKS, NULL);
    char why[8];
    memset(why, 'x', sizeof why);
    const char *tok = fmt("%s.%s.%s", seg("{\"alg\":\"RS256\",\"kid\":\"SECRETKIDVALUE\"}"),
                          seg("{\"sub\":\"SECRETCLAIM\"}"), segment(CLI_RS256, 2));
    CHECK_INT(jose_verify(ks, tok, strlen(tok), ALL_ALGS, NULL, NULL, why, sizeof why),
              JOSE_UNKNOWN_KID);
    CHECK_STR(why, "kid not"); /* truncated, terminated */
    char big[256];
    CHECK_INT(jose_verify(ks, tok, strlen(tok), ALL_ALGS, NULL, NULL, big, sizeof big),
              JOSE_UNKNOWN_KID);
    CHECK(strstr(big, "SECRET") == NULL);
    CHECK_INT(jose_verify(ks, tok, strlen(tok), ALL_ALGS, NULL, NULL, big, 0), JOSE_UNKNOWN_KID);
    const char *tok2 = fmt("%s.%s.%s", seg("{\"alg\":\"SECRETALG\"}"), seg("{}"), "AAAA");
    CHECK_INT(jose_verify(ks, tok2, strlen(tok2), ALL_ALGS, NULL, NULL, big, sizeof big),
              JOSE_ALG_REFUSED);
    CHECK_STR(big, "unknown alg");
    /* outputs are set to NULL on failure */
    json_t *h = json_object(), *c = json_object();
    json_t *h0 = h, *c0 = c;
    CHECK_INT(jose_verify(ks, tok, strlen(tok), ALL_ALGS, &h, &c, NULL, 0), JOSE_UNKNOWN_KID);
    CHECK(h == NULL && c == NULL);
    json_decref(h0);
    json_decref(c0);
    jose_keyset_unref(ks);
    drop_all();
}

/* Unverified claims, only for routing to an issuer: same strictness, no signature check. */
static void test_peek(void)
{
    json_t *c = jose_peek_claims(CLI_RS256, strlen(CLI_RS256));
    CHECK_STR(json_string_value(json_object_get(c, "iss")), "https://idp.example");
    json_decref(c);
    /* a forged signature still peeks (that is the point: it verifies nothing) */
    const char *forged = with_segment(CLI_ES256, 2, "AAAA");
    c = jose_peek_claims(forged, strlen(forged));
    CHECK_STR(json_string_value(json_object_get(c, "sub")), "cli");
    json_decref(c);
    const char *h = segment(CLI_RS256, 0), *s = segment(CLI_RS256, 2);
    const char *bad[] = {"",
                         "a.b",
                         fmt("%s.%s", h, seg(CLAIMS)),
                         fmt("%s.%s.%s.", h, seg(CLAIMS), s),
                         fmt("%s.%s=.%s", h, seg(CLAIMS), s),
                         fmt("%s.%s.%s", h, seg("{\"iss\":\"a\",\"iss\":\"b\"}"), s),
                         fmt("%s.%s.%s", h, seg("[\"iss\"]"), s),
                         fmt("%s.%s.%s", h, seg("not json"), s),
                         fmt("%s.%s.%s", h, seg(CLAIMS), "A")};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(jose_peek_claims(bad[i], strlen(bad[i])) == NULL);
    CHECK(jose_peek_claims(NULL, 10) == NULL);
    char *huge = calloc(1, JOSE_MAX_TOKEN + 2);
    memset(huge, 'A', JOSE_MAX_TOKEN + 1);
    memcpy(huge, CLI_RS256, strlen(CLI_RS256));
    CHECK(jose_peek_claims(huge, JOSE_MAX_TOKEN + 1) == NULL);
    free(huge);
    drop_all();
}

struct thread_arg {
    jose_keyset_t *ks;
    int ok;
};

static void *verify_many(void *p)
{
    struct thread_arg *a = p;
    const char *toks[] = {CLI_RS256, CLI_PS256, CLI_ES256, CLI_EDDSA};
    jose_keyset_t *ks = a->ks;
    for (int i = 0; i < 100; i++)
        a->ok += jose_verify(ks, toks[i % 4], strlen(toks[i % 4]), JOSE_ASYMMETRIC, NULL, NULL,
                             NULL, 0) == JOSE_OK;
    jose_keyset_unref(ks);
    return NULL;
}

/* One keyset, shared by threads that take and drop their own references. */
static void test_threads(void)
{
    struct thread_arg args[4];
    pthread_t th[4];
    jose_keyset_t *ks = jwks(CLI_JWKS, NULL);
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){jose_keyset_ref(ks), 0}; /* each thread owns one ref */
        pthread_create(&th[i], NULL, verify_many, &args[i]);
    }
    jose_keyset_unref(ks); /* the threads' references keep it alive */
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(args[i].ok, 100);
    }
    drop_all();
}

int main(void)
{
    test_alg_names();
    test_roundtrip();
    test_thumbprint();
    test_signer_refusals();
    test_cli_vectors();
    test_rfc7515();
    test_alg_none();
    test_alg_confusion();
    test_kids();
    test_key_selection();
    test_tampering();
    test_malformed();
    test_claims_and_secret();
    test_length_limit();
    test_header_keys_ignored();
    test_jwks_documents();
    test_jwk_refusals();
    test_jwk_accepted();
    test_why();
    test_peek();
    test_threads();
    return check_report();
}
