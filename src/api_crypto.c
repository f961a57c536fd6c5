/* api_crypto — mcp.crypto (OpenSSL digests, HMAC, random bytes) and mcp.encoding (hex and
 * base64 codecs written here, strict on input).
 *
 * Error policy: a wrong argument type, an unknown algorithm or an oversized input to an
 * encoder or digest is a bug in the script and raises. The decoders take text that usually
 * comes from a client, so every bad input, including an oversized one, is nil, err. */
#include "luamcp/api_crypto.h"

#include <lauxlib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdio.h>
#include <string.h>

#define CRYPTO_MAX_INPUT ((size_t)16 * 1024 * 1024) /* per argument, for every function here */
#define CRYPTO_MAX_RANDOM 1024

/* --- mcp.crypto --------------------------------------------------------------------------- */

struct digest_alg {
    const char *name;
    const EVP_MD *(*md)(void);
};

static const struct digest_alg digest_algs[] = {
    {"sha1", EVP_sha1},     {"sha256", EVP_sha256}, {"sha384", EVP_sha384},
    {"sha512", EVP_sha512}, {"md5", EVP_md5},
};

/* Raises for an unknown name: asking for one is a bug in the script, not bad input. */
static const EVP_MD *check_digest(lua_State *L, int arg, const char *fname)
{
    const char *name = luaL_checkstring(L, arg);
    for (size_t i = 0; i < sizeof digest_algs / sizeof digest_algs[0]; i++)
        if (strcmp(name, digest_algs[i].name) == 0)
            return digest_algs[i].md();
    luaL_error(L, "%s: unknown algorithm '%s' (use sha1, sha256, sha384, sha512, md5)", fname,
               name);
    return NULL; /* not reached */
}

/* luaL_checklstring with the size bound. (lua_pushfstring knows no %zu, hence the cast.) */
static const char *check_input(lua_State *L, int arg, const char *fname, size_t *len)
{
    const char *s = luaL_checklstring(L, arg, len);
    if (*len > CRYPTO_MAX_INPUT)
        luaL_error(L, "%s: argument #%d is too large (%I bytes, the limit is 16 MiB)", fname,
                   arg, (lua_Integer)*len);
    return s;
}

/* mcp.crypto.digest(alg, data) -> raw digest bytes */
static int crypto_digest(lua_State *L)
{
    const EVP_MD *md = check_digest(L, 1, "mcp.crypto.digest");
    size_t len;
    const char *data = check_input(L, 2, "mcp.crypto.digest", &len);

    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int out_len = 0;
    if (md == NULL || EVP_Digest(data, len, out, &out_len, md, NULL) != 1)
        return luaL_error(L, "mcp.crypto.digest: %s is not available in this OpenSSL",
                          lua_tostring(L, 1));
    lua_pushlstring(L, (const char *)out, out_len);
    return 1;
}

/* mcp.crypto.hmac(alg, key, data) -> raw MAC bytes */
static int crypto_hmac(lua_State *L)
{
    const EVP_MD *md = check_digest(L, 1, "mcp.crypto.hmac");
    size_t key_len, len;
    const char *key = check_input(L, 2, "mcp.crypto.hmac", &key_len);
    const char *data = check_input(L, 3, "mcp.crypto.hmac", &len);

    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int out_len = 0;
    if (md == NULL || HMAC(md, key, (int)key_len, (const unsigned char *)data, len, out,
                           &out_len) == NULL)
        return luaL_error(L, "mcp.crypto.hmac: HMAC-%s is not available in this OpenSSL",
                          lua_tostring(L, 1));
    lua_pushlstring(L, (const char *)out, out_len);
    return 1;
}

/* mcp.crypto.random(n) -> n bytes from the OpenSSL CSPRNG, 1 <= n <= 1024 */
static int crypto_random(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 1 || n > CRYPTO_MAX_RANDOM)
        return luaL_error(L, "mcp.crypto.random: n must be between 1 and %d (got %I)",
                          CRYPTO_MAX_RANDOM, n);

    unsigned char buf[CRYPTO_MAX_RANDOM];
    if (RAND_bytes(buf, (int)n) != 1)
        return luaL_error(L, "mcp.crypto.random: the random generator failed");
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    return 1;
}

/* --- codecs (no Lua in here) -------------------------------------------------------------- */

static const char hex_digits[] = "0123456789abcdef";
static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* One base64 flavour: its alphabet, whether output is padded and input must be. */
struct b64_variant {
    const char *name; /* used in error messages */
    const char *alphabet;
    int pad;
};

static const struct b64_variant b64_variant_std = {"base64", b64_std, 1};
static const struct b64_variant b64_variant_url = {"base64url", b64_url, 0};

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int b64_value(const struct b64_variant *v, unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (unsigned char)v->alphabet[62])
        return 62;
    if (c == (unsigned char)v->alphabet[63])
        return 63;
    return -1;
}

/* Describes byte c for an error message; printable ASCII is quoted, the rest is in hex so the
 * message stays valid UTF-8. */
static void describe_byte(char *buf, size_t size, unsigned char c)
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, size, "character '%c'", c);
    else
        snprintf(buf, size, "byte 0x%02X", c);
}

/* Writes 2 * n bytes to out. */
static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 0x0f];
    }
}

/* Writes n / 2 bytes to out. Returns 0, or -1 with a message in err. */
static int hex_decode(const char *in, size_t n, unsigned char *out, char *err, size_t err_size)
{
    if (n % 2 != 0) {
        snprintf(err, err_size, "invalid hex: odd length (%zu characters)", n);
        return -1;
    }
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_value((unsigned char)in[i]);
        int lo = hex_value((unsigned char)in[i + 1]);
        if (hi < 0 || lo < 0) {
            size_t bad = hi < 0 ? i : i + 1;
            char what[32];
            describe_byte(what, sizeof what, (unsigned char)in[bad]);
            snprintf(err, err_size, "invalid hex: unexpected %s at position %zu", what, bad + 1);
            return -1;
        }
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static size_t b64_encoded_len(const struct b64_variant *v, size_t n)
{
    return v->pad ? (n + 2) / 3 * 4 : n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

/* Writes b64_encoded_len(v, n) bytes to out. */
static void b64_encode(const struct b64_variant *v, const unsigned char *in, size_t n, char *out)
{
    const char *a = v->alphabet;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned long w = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[w >> 18 & 63];
        out[o++] = a[w >> 12 & 63];
        out[o++] = a[w >> 6 & 63];
        out[o++] = a[w & 63];
    }
    if (i == n)
        return;
    unsigned long w = (unsigned long)in[i] << 16;
    if (n - i == 2)
        w |= (unsigned long)in[i + 1] << 8;
    out[o++] = a[w >> 18 & 63];
    out[o++] = a[w >> 12 & 63];
    if (n - i == 2)
        out[o++] = a[w >> 6 & 63];
    else if (v->pad)
        out[o++] = '=';
    if (v->pad)
        out[o++] = '=';
}

/* Returns the number of data characters (input without trailing '='), or (size_t)-1 with a
 * message in err. Checks the characters first, so a stray newline is reported as such rather
 * than as a bad length. */
static size_t b64_check(const struct b64_variant *v, const char *in, size_t n, char *err,
                        size_t err_size)
{
    size_t data = n;
    while (data > 0 && in[data - 1] == '=')
        data--;
    for (size_t i = 0; i < data; i++) {
        if (b64_value(v, (unsigned char)in[i]) < 0) {
            char what[32];
            describe_byte(what, sizeof what, (unsigned char)in[i]);
            snprintf(err, err_size, "invalid %s: unexpected %s at position %zu", v->name, what,
                     i + 1);
            return (size_t)-1;
        }
    }
    size_t npad = n - data;
    if (npad > 2) {
        snprintf(err, err_size, "invalid %s: too much padding", v->name);
        return (size_t)-1;
    }
    if ((v->pad || npad > 0) && n % 4 != 0) {
        snprintf(err, err_size, "invalid %s: length %zu is not a multiple of 4%s", v->name, n,
                 npad > 0 ? " (bad padding)" : "");
        return (size_t)-1;
    }
    if (data % 4 == 1) {
        snprintf(err, err_size, "invalid %s: length %zu is not a valid encoded length",
                 v->name, n);
        return (size_t)-1;
    }
    return data;
}

/* Decodes into out (room for n / 4 * 3 + 2 bytes) and stores the byte count in *out_len.
 * Besides b64_check, refuses unused low bits that are not zero, so every byte string has
 * exactly one accepted encoding per variant (plus, for base64url, its padded form).
 * Returns 0, or -1 with a message in err. */
static int b64_decode(const struct b64_variant *v, const char *in, size_t n, unsigned char *out,
                      size_t *out_len, char *err, size_t err_size)
{
    size_t data = b64_check(v, in, n, err, err_size);
    if (data == (size_t)-1)
        return -1;

    unsigned long w = 0;
    size_t o = 0;
    for (size_t i = 0; i < data; i++) {
        w = w << 6 | (unsigned long)b64_value(v, (unsigned char)in[i]);
        if (i % 4 == 3) {
            out[o++] = (unsigned char)(w >> 16);
            out[o++] = (unsigned char)(w >> 8);
            out[o++] = (unsigned char)w;
            w = 0;
        }
    }
    size_t tail = data % 4; /* 0, 2 (one byte, 4 spare bits) or 3 (two bytes, 2 spare bits) */
    if (tail != 0) {
        unsigned spare = tail == 2 ? 4 : 2;
        if ((w & ((1ul << spare) - 1)) != 0) {
            snprintf(err, err_size, "invalid %s: non-zero bits after the last byte", v->name);
            return -1;
        }
        w >>= spare;
        if (tail == 3)
            out[o++] = (unsigned char)(w >> 8);
        out[o++] = (unsigned char)w;
    }
    *out_len = o;
    return 0;
}

int crypto_b64_decode(const char *in, size_t n, unsigned char *out, size_t *out_len, char *err,
                      size_t err_size)
{
    return b64_decode(&b64_variant_std, in, n, out, out_len, err, err_size);
}

/* --- mcp.encoding ------------------------------------------------------------------------- */

#define CRYPTO_ERR_SIZE 128

/* For decoders: the input, or NULL after pushing nil, err when it is over the bound. */
static const char *check_encoded(lua_State *L, const char *what, size_t *len)
{
    const char *s = luaL_checklstring(L, 1, len);
    if (*len <= CRYPTO_MAX_INPUT)
        return s;
    lua_pushnil(L);
    lua_pushfstring(L, "invalid %s: input is too large (the limit is 16 MiB)", what);
    return NULL;
}

/* mcp.encoding.hex(s) -> lowercase hex */
static int encoding_hex(lua_State *L)
{
    size_t len;
    const char *s = check_input(L, 1, "mcp.encoding.hex", &len);

    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, 2 * len);
    hex_encode((const unsigned char *)s, len, out);
    luaL_pushresultsize(&b, 2 * len);
    return 1;
}

/* mcp.encoding.unhex(s) -> bytes | nil, err (either case accepted) */
static int encoding_unhex(lua_State *L)
{
    size_t len;
    const char *s = check_encoded(L, "hex", &len);
    if (s == NULL)
        return 2;

    char err[CRYPTO_ERR_SIZE];
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, len / 2);
    if (hex_decode(s, len, out, err, sizeof err) != 0) {
        lua_pushnil(L); /* the unfinished buffer stays below; only the top two are returned */
        lua_pushstring(L, err);
        return 2;
    }
    luaL_pushresultsize(&b, len / 2);
    return 1;
}

static int encode_b64(lua_State *L, const struct b64_variant *v, const char *fname)
{
    size_t len;
    const char *s = check_input(L, 1, fname, &len);

    size_t out_len = b64_encoded_len(v, len);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, out_len);
    b64_encode(v, (const unsigned char *)s, len, out);
    luaL_pushresultsize(&b, out_len);
    return 1;
}

static int decode_b64(lua_State *L, const struct b64_variant *v)
{
    size_t len;
    const char *s = check_encoded(L, v->name, &len);
    if (s == NULL)
        return 2;

    char err[CRYPTO_ERR_SIZE];
    size_t out_len = 0;
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, len / 4 * 3 + 2);
    if (b64_decode(v, s, len, out, &out_len, err, sizeof err) != 0) {
        lua_pushnil(L); /* as in encoding_unhex */
        lua_pushstring(L, err);
        return 2;
    }
    luaL_pushresultsize(&b, out_len);
    return 1;
}

/* mcp.encoding.base64(s) -> RFC 4648 section 4, padded */
static int encoding_base64(lua_State *L)
{
    return encode_b64(L, &b64_variant_std, "mcp.encoding.base64");
}

/* mcp.encoding.unbase64(s) -> bytes | nil, err (padding required) */
static int encoding_unbase64(lua_State *L)
{
    return decode_b64(L, &b64_variant_std);
}

/* mcp.encoding.base64url(s) -> RFC 4648 section 5, without padding */
static int encoding_base64url(lua_State *L)
{
    return encode_b64(L, &b64_variant_url, "mcp.encoding.base64url");
}

/* mcp.encoding.unbase64url(s) -> bytes | nil, err (padding optional, but correct if present) */
static int encoding_unbase64url(lua_State *L)
{
    return decode_b64(L, &b64_variant_url);
}

/* --- tables ------------------------------------------------------------------------------- */

int api_crypto_push(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"digest", crypto_digest},
        {"hmac", crypto_hmac},
        {"random", crypto_random},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs); /* stack: +1 table */
    return 1;
}

int api_encoding_push(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"hex", encoding_hex},
        {"unhex", encoding_unhex},
        {"base64", encoding_base64},
        {"unbase64", encoding_unbase64},
        {"base64url", encoding_base64url},
        {"unbase64url", encoding_unbase64url},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs); /* stack: +1 table */
    return 1;
}
