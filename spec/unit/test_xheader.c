/* x-mcp-header (xheader.c): which annotations a tool may carry, and how Mcp-Param-* headers
 * are held against the arguments — the specification's encoding table case by case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "luamcp/xheader.h"

/* The annotations of the schema in `text`, or the error (caller frees) */
static char *read_err(const char *text, xheaders_t *h)
{
    json_t *schema = json_loads(text, 0, NULL);
    char *err = NULL;
    if (!CHECK(schema != NULL))
        return strdup("bad JSON in the test");
    if (xheaders_read(schema, h, &err) != 0 && !err)
        err = strdup("(no message)");
    json_decref(schema);
    return err;
}

static void refused(const char *text, const char *want)
{
    xheaders_t h;
    char *err = read_err(text, &h);
    if (!CHECK(err && strstr(err, want)))
        fprintf(stderr, "    schema: %s\n    want: %s\n    got:  %s\n", text, want,
                err ? err : "(accepted)");
    free(err);
}

/* headers for the check: "Name: value" pairs */
static const char *const *sent;

static const char *get(void *ctx, const char *name)
{
    (void)ctx;
    for (int i = 0; sent && sent[i]; i += 2)
        if (strcasecmp(sent[i], name) == 0)
            return strcmp(sent[i + 1], "(twice)") == 0 ? XHEADER_REPEATED : sent[i + 1];
    return NULL;
}

static const char *check(const xheaders_t *h, const char *args_text, const char *const *headers)
{
    static char buf[256];
    json_t *args = json_loads(args_text, 0, NULL);
    sent = headers;
    const char *why = xheaders_check(h, args, get, NULL, buf, sizeof buf);
    json_decref(args);
    return why;
}

#define SCHEMA                                                                                     \
    "{\"type\":\"object\",\"properties\":{"                                                        \
    "\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"                                \
    "\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"N\"},"                                         \
    "\"flag\":{\"type\":\"boolean\",\"x-mcp-header\":\"Flag\"},"                                   \
    "\"opts\":{\"type\":\"object\",\"properties\":{"                                               \
    "  \"tenant\":{\"type\":\"string\",\"x-mcp-header\":\"Tenant\"}}},"                            \
    "\"query\":{\"type\":\"string\"}}}"

int main(void)
{
    xheaders_t h;
    char *err = read_err(SCHEMA, &h);
    if (!CHECK(err == NULL)) {
        fprintf(stderr, "    %s\n", err);
        return check_report();
    }
    CHECK_INT((int)h.n, 4);

    /* accepted: plain, base64 (the spec's table), integers numerically, booleans, nested */
    const char *plain[] = {"Mcp-Param-Region", "us-west1", NULL};
    CHECK(check(&h, "{\"region\":\"us-west1\",\"query\":\"q\"}", plain) == NULL);
    const char *ows[] = {"Mcp-Param-Region", "  us-west1\t", NULL};
    CHECK(check(&h, "{\"region\":\"us-west1\"}", ows) == NULL);
    const char *lower[] = {"mcp-param-region", "us-west1", NULL};
    CHECK(check(&h, "{\"region\":\"us-west1\"}", lower) == NULL);
    const char *utf8[] = {"Mcp-Param-Region", "=?base64?SGVsbG8sIOS4lueVjA==?=", NULL};
    CHECK(check(&h, "{\"region\":\"Hello, \\u4e16\\u754c\"}", utf8) == NULL);
    const char *padded[] = {"Mcp-Param-Region", "=?base64?IHBhZGRlZCA=?=", NULL};
    CHECK(check(&h, "{\"region\":\" padded \"}", padded) == NULL);
    const char *newline[] = {"Mcp-Param-Region", "=?base64?bGluZTEKbGluZTI=?=", NULL};
    CHECK(check(&h, "{\"region\":\"line1\\nline2\"}", newline) == NULL);
    const char *sentinel[] = {"Mcp-Param-Region", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=", NULL};
    CHECK(check(&h, "{\"region\":\"=?base64?literal?=\"}", sentinel) == NULL);
    const char *no_suffix[] = {"Mcp-Param-Region", "=?base64?SGVsbG8=", NULL};
    CHECK(check(&h, "{\"region\":\"=?base64?SGVsbG8=\"}", no_suffix) == NULL); /* literal */
    const char *num[] = {"Mcp-Param-N", "42.0", "Mcp-Param-Flag", "false", NULL};
    CHECK(check(&h, "{\"n\":42,\"flag\":false}", num) == NULL);
    const char *neg[] = {"Mcp-Param-N", "-7", NULL};
    CHECK(check(&h, "{\"n\":-7}", neg) == NULL);
    const char *nested[] = {"Mcp-Param-Tenant", "acme", NULL};
    CHECK(check(&h, "{\"opts\":{\"tenant\":\"acme\"}}", nested) == NULL);
    /* null or absent: no header expected */
    CHECK(check(&h, "{\"region\":null,\"query\":\"q\"}", NULL) == NULL);
    CHECK(check(&h, "{}", NULL) == NULL);
    CHECK(check(&h, "{\"opts\":{}}", NULL) == NULL);

    /* refused, each with its reason */
    const char *why;
    why = check(&h, "{\"region\":\"us-west1\"}", NULL);
    CHECK(why && strstr(why, "Mcp-Param-Region is missing"));
    const char *other[] = {"Mcp-Param-Region", "eu-west1", NULL};
    why = check(&h, "{\"region\":\"us-west1\"}", other);
    CHECK(why && strstr(why, "does not match"));
    const char *case_differs[] = {"Mcp-Param-Region", "US-WEST1", NULL};
    CHECK(check(&h, "{\"region\":\"us-west1\"}", case_differs) != NULL); /* values keep case */
    const char *bad_pad[] = {"Mcp-Param-Region", "=?base64?SGVsbG8?=", NULL};
    why = check(&h, "{\"region\":\"Hello\"}", bad_pad);
    CHECK(why && strstr(why, "invalid base64"));
    const char *bad_chars[] = {"Mcp-Param-Region", "=?base64?SGVs!!!bG8=?=", NULL};
    why = check(&h, "{\"region\":\"Hello\"}", bad_chars);
    CHECK(why && strstr(why, "invalid base64"));
    const char *raw_utf8[] = {"Mcp-Param-Region", "h\xc3\xa9", NULL};
    why = check(&h, "{\"region\":\"h\\u00e9\"}", raw_utf8);
    CHECK(why && strstr(why, "characters a header value may not carry"));
    const char *unasked[] = {"Mcp-Param-Region", "us-west1", NULL};
    why = check(&h, "{\"query\":\"q\"}", unasked);
    CHECK(why && strstr(why, "no value for it"));
    const char *not_int[] = {"Mcp-Param-N", "42abc", NULL};
    CHECK(check(&h, "{\"n\":42}", not_int) != NULL);
    const char *bool_case[] = {"Mcp-Param-Flag", "True", NULL};
    CHECK(check(&h, "{\"flag\":true}", bool_case) != NULL);
    /* integers: numbers as JSON writes them, compared exactly */
    const char *hex[] = {"Mcp-Param-N", "0x2a", NULL};
    CHECK(check(&h, "{\"n\":42}", hex) != NULL);
    const char *spaced[] = {"Mcp-Param-N", "=?base64?IDQy?=", NULL}; /* " 42" */
    CHECK(check(&h, "{\"n\":42}", spaced) != NULL);
    const char *with_nul[] = {"Mcp-Param-N", "=?base64?NDIAeHg=?=", NULL}; /* "42\0xx" */
    CHECK(check(&h, "{\"n\":42}", with_nul) != NULL);
    const char *rounded[] = {"Mcp-Param-N", "9007199254740992", NULL};
    CHECK(check(&h, "{\"n\":9007199254740993}", rounded) != NULL);
    const char *big[] = {"Mcp-Param-N", "9007199254740993", NULL};
    CHECK(check(&h, "{\"n\":9007199254740993}", big) == NULL);
    const char *rounded_dec[] = {"Mcp-Param-N", "9007199254740992.0", NULL};
    CHECK(check(&h, "{\"n\":9007199254740993}", rounded_dec) != NULL);
    const char *expo[] = {"Mcp-Param-N", "4.2e1", NULL};
    CHECK(check(&h, "{\"n\":42}", expo) == NULL);
    const char *infinite[] = {"Mcp-Param-N", "inf", NULL};
    CHECK(check(&h, "{\"n\":42}", infinite) != NULL);
    const char *real_body[] = {"Mcp-Param-N", "42", NULL};
    CHECK(check(&h, "{\"n\":42.0}", real_body) == NULL);
    /* a header sent twice: a proxy may have read the other one (get says so) */
    const char *twice[] = {"Mcp-Param-Region", "(twice)", NULL};
    why = check(&h, "{\"region\":\"us-west1\"}", twice);
    CHECK(why && strstr(why, "was sent more than once"));
    const char *nul[] = {"Mcp-Param-Region", "=?base64?YQBi?=", NULL}; /* "a\0b" */
    CHECK(check(&h, "{\"region\":\"a\"}", nul) != NULL);
    xheaders_clear(&h);

    /* what a tool may not declare (the loader refuses the tool, naming why) */
    refused(
        "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"x-mcp-header\":\"\"}}}",
        "x-mcp-header must be an HTTP token");
    refused("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"x-mcp-header\":\"A "
            "B\"}}}",
            "must be an HTTP token");
    refused("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"x-mcp-header\":"
            "\"A\\r\\nX: y\"}}}",
            "must be an HTTP token");
    refused("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"x-mcp-header\":7}}}",
            "must be an HTTP token");
    refused(
        "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\",\"x-mcp-header\":\"A\"}}}",
        "needs type = \"string\", \"integer\" or \"boolean\"");
    refused("{\"type\":\"object\",\"properties\":{\"a\":{\"x-mcp-header\":\"A\"}}}", "needs type");
    refused("{\"type\":\"object\",\"properties\":{"
            "\"a\":{\"type\":\"string\",\"x-mcp-header\":\"Same\"},"
            "\"b\":{\"type\":\"string\",\"x-mcp-header\":\"sAME\"}}}",
            "used twice");
    refused("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"items\":"
            "{\"type\":\"string\",\"x-mcp-header\":\"A\"}}}}",
            "reached through 'properties' only");
    refused("{\"type\":\"object\",\"anyOf\":[{\"properties\":{\"a\":{\"type\":\"string\","
            "\"x-mcp-header\":\"A\"}}}]}",
            "reached through 'properties' only");
    refused("{\"type\":\"object\",\"x-mcp-header\":\"Top\"}", "reached through 'properties' only");
    /* a property that happens to be named x-mcp-header is just a property */
    err = read_err("{\"type\":\"object\",\"properties\":{\"x-mcp-header\":{\"type\":\"string\"}}}",
                   &h);
    CHECK(err == NULL && h.n == 0);
    free(err);
    xheaders_clear(&h);
    return check_report();
}
