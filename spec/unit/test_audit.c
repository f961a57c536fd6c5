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
    audit_str(o, "reason", "bad \xff\xfe bytes,\x01 \"quotes\" and \\ too");
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
                      "bad \xef\xbf\xbd\xef\xbf\xbd bytes,\x01 \"quotes\" and \\ too") == 0);
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

    audit_close(a);
    unlink(path);
    return check_report();
}
