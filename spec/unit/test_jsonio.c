/* jsonio: the request path's JSON reader and writer, case by case and against jansson. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "luamcp/jsonio.h"

#define REQ (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

/* the compact text of what jsonio reads from text, or "ERR: <reason>"; static buffer */
static const char *roundtrip(const char *text, size_t len, unsigned flags)
{
    static char out[4096];
    json_error_t e;
    json_t *v = jsonio_parse(text, len, flags, &e);
    if (!v) {
        snprintf(out, sizeof out, "ERR: %s", e.text);
        return out;
    }
    char *s = jsonio_dump(v, NULL);
    snprintf(out, sizeof out, "%s", s ? s : "(cannot write)");
    free(s);
    json_decref(v);
    return out;
}

#define RT(text) roundtrip(text, strlen(text), REQ)

static void test_accepts(void)
{
    CHECK_STR(RT("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"echo\",\"arguments\":{\"text\":\"hello, world\"}}}"),
              "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
              "\"echo\",\"arguments\":{\"text\":\"hello, world\"}}}");
    CHECK_STR(RT(" \t\r\n[ 1 , true,false ,null,{ } ,[ ] ] \n"), "[1,true,false,null,{},[]]");
    CHECK_STR(RT("\"alone\""), "\"alone\"");
    CHECK_STR(RT("-0"), "0");
    CHECK_STR(RT("9223372036854775807"), "9223372036854775807");
    CHECK_STR(RT("-9223372036854775808"), "-9223372036854775808");
    CHECK_STR(RT("[0.1, 1.5, -2.5e-3, 1E2, 1e-400, 1e20, 2.0, -0.0]"),
              "[0.1,1.5,-0.0025,100.0,0.0,1e20,2.0,-0.0]");
    CHECK_STR(RT("[1.7976931348623157e308, 5e-324, 0.30000000000000004]"),
              "[1.7976931348623157e308,4.94065645841247e-324,0.30000000000000004]");
    /* escapes, surrogate pairs and UTF-8 as it is */
    CHECK_STR(RT("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\""),
              "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001F\x7f\"");
    CHECK_STR(RT("\"\\u00e9t\\u00C9 caf\xc3\xa9 \\ud83d\\ude00 \xf0\x9f\x98\x80\""),
              "\"\xc3\xa9t\xc3\x89 caf\xc3\xa9 \xf0\x9f\x98\x80 \xf0\x9f\x98\x80\"");
    /* a key decoded into scratch keeps its text while its value is decoded there too */
    CHECK_STR(RT("{\"k\\n\":{\"\\u00e9\":\"v\\t\",\"x\":[\"\\r\"]},\"plain\":\"\\\"\"}"),
              "{\"k\\n\":{\"\xc3\xa9\":\"v\\t\",\"x\":[\"\\r\"]},\"plain\":\"\\\"\"}");
    char longkey[300] = "{\"";
    for (int i = 0; i < 100; i++)
        strcat(longkey, "\\n");
    strcat(longkey, "\":\"\\t\\t\\t\"}");
    const char *got = RT(longkey);
    CHECK(strncmp(got, "{\"\\n\\n", 6) == 0 && strstr(got, "\":\"\\t\\t\\t\"}"));
    /* the last of two equal keys wins without JSON_REJECT_DUPLICATES */
    const char *dup = "{\"a\":1,\"b\":2,\"a\":3}";
    CHECK_STR(roundtrip(dup, strlen(dup), JSON_DECODE_ANY), "{\"a\":3,\"b\":2}");
    /* \u0000 only with JSON_ALLOW_NUL, in values */
    const char *nul = "[\"a\\u0000b\"]";
    CHECK_STR(roundtrip(nul, strlen(nul), REQ | JSON_ALLOW_NUL), "[\"a\\u0000b\"]");
}

static void test_refuses(void)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"", "unexpected end of input"},
        {"   ", "unexpected end of input"},
        {"{", "unexpected end of input"},
        {"[1,]", "invalid token"},
        {"{\"a\":1,}", "expected a key"},
        {"{\"a\" 1}", "expected ':'"},
        {"{\"a\":1 \"b\":2}", "expected ',' or '}'"},
        {"[1 2]", "expected ',' or ']'"},
        {"{\"a\":1,\"a\":2}", "duplicate object key"},
        {"{a:1}", "expected a key"},
        {"[01]", "invalid token: a number with a leading zero"},
        {"[-01]", "invalid token: a number with a leading zero"},
        {"[1.]", "invalid token: no digit after '.'"},
        {"[.5]", "invalid token"},
        {"[+1]", "invalid token"},
        {"[1e]", "invalid token: no digit in the exponent"},
        {"[1e+]", "invalid token: no digit in the exponent"},
        {"[-]", "invalid token"},
        {"[NaN]", "invalid token"},
        {"[Infinity]", "invalid token"},
        {"[tru]", "invalid token"},
        {"[nul]", "invalid token"},
        {"9223372036854775808", "too big integer"},
        {"-9223372036854775809", "too big negative integer"},
        {"[1e400]", "real number overflow"},
        {"[-1e400]", "real number overflow"},
        {"\"abc", "unterminated string"},
        {"\"abc\\", "unterminated string"},
        {"\"a\tb\"", "control character in a string"},
        {"\"\\x41\"", "invalid escape"},
        {"\"\\u12\"", "invalid \\u escape"},
        {"\"\\u12g4\"", "invalid \\u escape"},
        {"\"\\ud800\"", "invalid Unicode: a high surrogate without its low one"},
        {"\"\\ud800\\u0041\"", "invalid Unicode: a high surrogate without its low one"},
        {"\"\\udc00\"", "invalid Unicode: a low surrogate alone"},
        {"\"\\u0000\"", "\\u0000 is not allowed in a string"},
        {"\"\xc0\xaf\"", "invalid UTF-8 in a string"},       /* overlong '/' */
        {"\"\xed\xa0\x80\"", "invalid UTF-8 in a string"},   /* a surrogate in UTF-8 */
        {"\"\xf4\x90\x80\x80\"", "invalid UTF-8 in a string"}, /* above U+10FFFF */
        {"\"\xe2\x82\"", "invalid UTF-8 in a string"},       /* cut short */
        {"\xef\xbb\xbf{}", "invalid token"},                 /* a byte order mark */
        {"{} {}", "end of input expected after the value"},
        {"[1] x", "end of input expected after the value"},
        {"/* c */ {}", "invalid token"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[200];
        snprintf(want, sizeof want, "ERR: %s", bad[i].why);
        if (!CHECK_STR(RT(bad[i].text), want))
            fprintf(stderr, "    text: %s\n", bad[i].text);
    }
    /* a NUL character in a key, even when values may hold one */
    const char *nulkey = "{\"a\\u0000\":1}";
    CHECK_STR(roundtrip(nulkey, strlen(nulkey), REQ | JSON_ALLOW_NUL),
              "ERR: NUL character in an object key");
    /* a raw NUL byte, which jansson would take for the end of the text */
    CHECK_STR(roundtrip("{}\0garbage", 10, REQ), "ERR: end of input expected after the value");
    CHECK_STR(roundtrip("[1\0]", 4, REQ), "ERR: expected ',' or ']'");
    /* without JSON_DECODE_ANY the text must be an object or an array */
    CHECK_STR(roundtrip("1", 1, 0), "ERR: '[' or '{' expected");
    CHECK_STR(roundtrip(" []", 3, 0), "[]");
}

static void test_where(void)
{
    json_error_t e;
    const char *text = "{\n  \"a\": 1,\n  \"b\": tru\n}";
    CHECK(jsonio_parse(text, strlen(text), REQ, &e) == NULL);
    CHECK_INT(e.line, 3);
    CHECK_INT(e.column, 8);
    CHECK_INT(e.position, (long long)(strstr(text, "tru") - text));
    CHECK(jsonio_parse(text, strlen(text), REQ, NULL) == NULL); /* err may be NULL */
}

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    memset(s, '[', (size_t)depth);
    memset(s + depth, ']', (size_t)depth);
    s[depth * 2] = '\0';
    return s;
}

static void test_depth(void)
{
    char *ok = nested(JSONIO_MAX_DEPTH), *deep = nested(JSONIO_MAX_DEPTH + 1);
    json_t *v = jsonio_parse(ok, strlen(ok), REQ, NULL);
    CHECK(v != NULL);
    char *back = jsonio_dump(v, NULL);
    CHECK_STR(back, ok);
    free(back);
    json_error_t e;
    CHECK(jsonio_parse(deep, strlen(deep), REQ, &e) == NULL);
    CHECK_STR(e.text, "nested too deeply");
    /* one more level built by hand cannot be written either */
    json_t *outer = json_array();
    json_array_append_new(outer, v);
    CHECK(jsonio_dump(outer, NULL) == NULL);
    json_decref(outer);
    free(ok);
    free(deep);
}

static void test_writer(void)
{
    /* a string jansson was told not to check is refused, as json_dumps refuses it */
    json_t *bad = json_pack("{s:o}", "k", json_stringn_nocheck("\xff", 1));
    CHECK(jsonio_dump(bad, NULL) == NULL);
    CHECK(json_dumps(bad, JSON_COMPACT) == NULL);
    json_decref(bad);
    /* keys with a NUL, and values, written whole */
    json_t *o = json_object();
    json_object_setn_new(o, "a\0b", 3, json_stringn("x\0y", 3));
    json_object_set_new(o, "n", json_integer(-9223372036854775807LL - 1));
    size_t len;
    char *s = jsonio_dump(o, &len);
    CHECK_STR(s, "{\"a\\u0000b\":\"x\\u0000y\",\"n\":-9223372036854775808}");
    CHECK_INT((long long)len, (long long)strlen(s));
    /* into a fixed buffer: exactly its length and the NUL, and not a byte less */
    char buf[64];
    memset(buf, 'z', sizeof buf);
    CHECK_INT((long long)jsonio_dump_into(o, buf, len + 1), (long long)len);
    CHECK_STR(buf, s);
    CHECK(jsonio_dump_into(o, buf, len) == (size_t)-1);
    CHECK(jsonio_dump_into(o, buf, 0) == (size_t)-1);
    CHECK(jsonio_dump_into(NULL, buf, sizeof buf) == (size_t)-1);
    CHECK(jsonio_dump(NULL, NULL) == NULL);
    free(s);
    json_decref(o);
    /* a text longer than the first buffer grows it */
    json_t *big = json_array();
    for (int i = 0; i < 1000; i++)
        json_array_append_new(big, json_string("0123456789"));
    char *text = jsonio_dump(big, &len);
    char *theirs = json_dumps(big, JSON_COMPACT);
    CHECK_STR(text, theirs);
    free(text);
    free(theirs);
    json_decref(big);
}

/* Small random texts, half of them JSON and half a byte changed: jsonio and jansson must
 * accept and refuse the same ones and read the same values (the fuzz target does this at
 * length; this keeps it in every run, under the sanitizers too). */
static unsigned long long rng = 0x2545F4914F6CDD1DULL;
static unsigned next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

static void gen(char *s, size_t *n, size_t cap, int depth)
{
    static const char *atoms[] = {"1", "-0", "0.5", "1e3", "-12.5E-2", "true", "false", "null",
                                  "\"a\"", "\"\\u00e9\"", "\"\\ud83d\\ude00\"", "\"\\n\\t\"",
                                  "\"caf\xc3\xa9\"", "9223372036854775807", "\"\""};
    if (*n + 64 >= cap)
        return;
    unsigned pick = next() % (depth > 4 ? 1 : 4);
    if (pick == 0) {
        const char *a = atoms[next() % (sizeof atoms / sizeof atoms[0])];
        *n += (size_t)snprintf(s + *n, cap - *n, "%s", a);
        return;
    }
    bool obj = pick == 1;
    s[(*n)++] = obj ? '{' : '[';
    unsigned items = next() % 4;
    for (unsigned i = 0; i < items && *n + 64 < cap; i++) {
        if (i)
            s[(*n)++] = ',';
        if (obj)
            *n += (size_t)snprintf(s + *n, cap - *n, "\"k%u\":", next() % 3);
        gen(s, n, cap, depth + 1);
    }
    s[(*n)++] = obj ? '}' : ']';
}

static void test_against_jansson(void)
{
    static const char noise[] = "{}[],:\"\\u0123456789.eE+-tfn \x01\xc3\xff";
    int accepted = 0, refused = 0;
    for (int round = 0; round < 20000; round++) {
        char text[1024];
        size_t n = 0;
        gen(text, &n, sizeof text, 0);
        if (round % 2 && n)
            text[next() % n] = noise[next() % (sizeof noise - 1)];
        unsigned flags = round % 3 ? REQ : JSON_DECODE_ANY;
        json_t *ours = jsonio_parse(text, n, flags, NULL);
        json_t *theirs = json_loadb(text, n, flags, NULL);
        if (!CHECK((ours == NULL) == (theirs == NULL)) ||
            !CHECK(!ours || json_equal(ours, theirs))) {
            fprintf(stderr, "    text: %.*s\n", (int)n, text);
            json_decref(ours);
            json_decref(theirs);
            return;
        }
        ours ? accepted++ : refused++;
        json_decref(ours);
        json_decref(theirs);
    }
    CHECK(accepted > 5000 && refused > 2000); /* both sides of the question were asked */
}

int main(void)
{
    test_accepts();
    test_refuses();
    test_where();
    test_depth();
    test_writer();
    test_against_jansson();
    return check_report();
}
