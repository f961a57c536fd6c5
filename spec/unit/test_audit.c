/* The per-call audit record (audit_begin ... audit_end): always one whole line of valid JSON,
 * whatever the client put in the fields it controls; a field too long for the line is dropped
 * (KEY_dropped: true), never the record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "luamcp/audit.h"

static char path[64] = "/tmp/luamcp-test-audit-XXXXXX";

/* Writes one record whose request id is a string of n bytes (and a reason with bytes that are
 * not UTF-8 and control characters); returns the file's last line parsed (caller decrefs). */
static json_t *record_with_id(audit_t *a, size_t n)
{
    audit_buf_t *b = audit_buf_new(a);
    char *id = malloc(n + 1);
    memset(id, 'x', n);
    id[n] = '\0';
    json_t *jid = json_string(id);
    text_out *o = audit_begin(b);
    audit_str(o, "decision", "allow");
    audit_str(o, "reason", "bad \xff\xfe bytes,\x01 \x7f \"quotes\" and \\ too");
    audit_str(o, "tool", "echo");
    audit_json(o, "request_id", jid);
    audit_int(o, "bundle", 3);
    audit_fixed2(o, "latency_us", 0.25);
    audit_end(b);
    audit_buf_free(b); /* flushes */
    json_decref(jid);
    free(id);
    FILE *f = fopen(path, "r");
    static char line[1 << 20];
    char *last = NULL;
    while (fgets(line, sizeof line, f))
        last = line;
    fclose(f);
    json_error_t e;
    json_t *v = last ? json_loads(last, 0, &e) : NULL;
    if (!v)
        fprintf(stderr, "    not JSON (%s): %.200s\n", last ? e.text : "no line", last ? last : "");
    return v;
}

static const char *last_line(void)
{
    FILE *f = fopen(path, "r");
    static char line[1 << 20];
    line[0] = '\0';
    while (f && fgets(line, sizeof line, f))
        ;
    if (f)
        fclose(f);
    return line;
}

/* numbers are written by hand (not snprintf): every edge spelt as JSON wants it */
static void test_numbers(audit_t *a)
{
    audit_buf_t *b = audit_buf_new(a);
    text_out *o = audit_begin(b);
    audit_int(o, "i0", 0);
    audit_int(o, "i1", -9223372036854775807LL - 1);
    audit_int(o, "i2", 9223372036854775807LL);
    audit_int(o, "i3", -42);
    audit_fixed2(o, "f0", 0);
    audit_fixed2(o, "f1", 1.25);
    audit_fixed2(o, "f2", -0.5);
    audit_fixed2(o, "f3", 12345.678);
    audit_fixed2(o, "f4", 0.004);
    audit_fixed2(o, "f5", 1e15);
    audit_fixed2(o, "f6", 0.0 / 0.0);
    audit_fixed2(o, "f7", -1.0 / 0.0);
    audit_end(b);
    audit_buf_free(b);
    const char *line = last_line();
    const char *want = "{\"i0\":0,\"i1\":-9223372036854775808,\"i2\":9223372036854775807,"
                       "\"i3\":-42,\"f0\":0.00,\"f1\":1.25,\"f2\":-0.50,\"f3\":12345.68,"
                       "\"f4\":0.00,\"f5\":1000000000000000.00,\"f6\":null,\"f7\":null,"
                       "\"time\":\"";
    if (!CHECK(strncmp(line, want, strlen(want)) == 0)) {
        fprintf(stderr, "    got:  %s    want: %s...\n", line, want);
        return;
    }
    const char *t = line + strlen(want); /* YYYY-MM-DDTHH:MM:SS.mmmZ */
    bool shaped = strlen(t) >= 27 && t[4] == '-' && t[7] == '-' && t[10] == 'T' &&
                  t[13] == ':' && t[16] == ':' && t[19] == '.' && t[23] == 'Z' &&
                  t[24] == '"' && t[25] == '}';
    for (int i = 20; shaped && i < 23; i++)
        shaped = t[i] >= '0' && t[i] <= '9';
    if (!CHECK(shaped))
        fprintf(stderr, "    time: %s", t);
    json_t *v = json_loads(line, 0, NULL);
    CHECK(v != NULL);
    json_decref(v);
    /* the largest doubles take the slow path, whole (309 digits) */
    b = audit_buf_new(a);
    o = audit_begin(b);
    audit_fixed2(o, "huge", -1.7976931348623157e308);
    audit_end(b);
    audit_buf_free(b);
    v = json_loads(last_line(), 0, NULL);
    CHECK(v && json_real_value(json_object_get(v, "huge")) == -1.7976931348623157e308);
    json_decref(v);
}

int main(void)
{
    int fd = mkstemp(path);
    if (!CHECK(fd >= 0))
        return check_report();
    close(fd);
    char *err = NULL;
    audit_t *a = audit_open(path, &err);
    if (!CHECK(a != NULL))
        return check_report();

    json_t *v = record_with_id(a, 10);
    CHECK(v && strcmp(json_string_value(json_object_get(v, "decision")), "allow") == 0);
    CHECK(v && strcmp(json_string_value(json_object_get(v, "reason")),
                      "bad \xef\xbf\xbd\xef\xbf\xbd bytes,\x01 \x7f \"quotes\" and \\ too") == 0);
    /* control characters and DEL escaped in the line itself, so a log viewer shows them */
    CHECK(strstr(last_line(), "bytes,\\u0001 \\u007f \\\"quotes\\\" and \\\\ too") != NULL);
    CHECK(v && json_string_length(json_object_get(v, "request_id")) == 10);
    CHECK(v && json_integer_value(json_object_get(v, "bundle")) == 3);
    CHECK(v && json_real_value(json_object_get(v, "latency_us")) == 0.25);
    CHECK(v && json_is_string(json_object_get(v, "time")));
    json_decref(v);

    /* ids around every size where the line runs out: the record stays, the id goes */
    for (size_t n = 30000; n <= 33500; n += 7) {
        v = record_with_id(a, n);
        if (!CHECK(v != NULL)) {
            fprintf(stderr, "    id of %zu bytes\n", n);
            break;
        }
        bool kept = json_string_length(json_object_get(v, "request_id")) == n;
        bool dropped = json_is_true(json_object_get(v, "request_id_dropped"));
        CHECK(kept != dropped);
        CHECK(json_integer_value(json_object_get(v, "bundle")) == 3 &&
              json_is_string(json_object_get(v, "time")));
        json_decref(v);
    }
    v = record_with_id(a, 1 << 19);
    CHECK(v && json_is_true(json_object_get(v, "request_id_dropped")));
    json_decref(v);

    test_numbers(a);
    audit_close(a);
    unlink(path);
    return check_report();
}
