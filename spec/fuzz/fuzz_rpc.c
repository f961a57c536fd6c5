/* libFuzzer target: a JSON-RPC body as the transport reads it (jsonio_parse) -> rpc_classify. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "luamcp/jsonio.h"
#include "luamcp/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *msg = jsonio_parse((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                             &jerr);
    if (!msg)
        return 0;
    rpc_msg_t out;
    json_t *error = NULL;
    if (rpc_classify(msg, &out, &error) == 0) {
        /* touch what was borrowed, so a dangling pointer shows up under ASan */
        if (out.method)
            (void)json_string_length(json_object_get(msg, "method"));
        if (out.id)
            (void)json_typeof(out.id);
        if (out.params)
            (void)json_typeof(out.params);
    } else if (error) {
        char *s = json_dumps(error, JSON_COMPACT);
        free(s);
    }
    json_decref(error);
    json_decref(msg);
    return 0;
}
