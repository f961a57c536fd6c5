/* Unit tests for src/schema.c: every keyword passing and failing, exact messages, bad
 * schemas refused at compile time, paths, limits. Public API only. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "luamcp/schema.h"

static json_t *parse(const char *text)
{
    json_error_t error;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);

    if (v == NULL)
        fprintf(stderr, "bad test JSON %s: %s\n", text, error.text);
    return v;
}

/* Compiles schema_text; returns NULL and sets *err (caller frees) when refused. */
static schema_t *compile_text(const char *schema_text, char **err)
{
    json_t *doc = parse(schema_text);
    schema_t *s;

    *err = NULL;
    if (doc == NULL)
        return NULL;
    s = schema_compile(doc, err);
    CHECK((s == NULL) == (*err != NULL));
    json_decref(doc);
    return s;
}

/* "" when instance_text is valid against schema_text, else the message. The message lives
 * in a static buffer until the next call. */
static const char *validate_text(const char *schema_text, const char *instance_text)
{
    static char message[512];
    char *err;
    schema_t *s = compile_text(schema_text, &err);
    json_t *instance = parse(instance_text);

    strcpy(message, "(test setup failed)");
    if (s == NULL)
        fprintf(stderr, "schema %s refused: %s\n", schema_text, err);
    if (s != NULL && instance != NULL) {
        int rc = schema_validate(s, instance, message, sizeof message);
        CHECK((rc == 0) == (message[0] == '\0'));
    }
    free(err);
    schema_free(s);
    json_decref(instance);
    return message;
}

#define EXPECT_VALID(schema, instance) CHECK_STR(validate_text((schema), (instance)), "")
#define EXPECT_INVALID(schema, instance, message)                                             \
    CHECK_STR(validate_text((schema), (instance)), (message))

#define EXPECT_BAD_SCHEMA(schema, message)                                                    \
    do {                                                                                      \
        char *err_;                                                                           \
        schema_t *s_ = compile_text((schema), &err_);                                         \
        CHECK_STR(err_, (message));                                                           \
        schema_free(s_);                                                                      \
        free(err_);                                                                           \
    } while (0)

#define EXPECT_BAD_SCHEMA_PREFIX(schema, prefix)                                              \
    do {                                                                                      \
        char *err_ = NULL;                                                                    \
        schema_t *s_ = compile_text((schema), &err_);                                         \
        CHECK(s_ == NULL);                                                                    \
        if (!CHECK(err_ && strncmp(err_, (prefix), strlen(prefix)) == 0))                     \
            fprintf(stderr, "    got: %s\n    want prefix: %s\n", err_ ? err_ : "NULL",       \
                    (prefix));                                                                \
        schema_free(s_);                                                                      \
        free(err_);                                                                           \
    } while (0)

static bool valid_utf8(const char *s)
{
    json_t *v = json_string(s); /* jansson refuses invalid UTF-8 */
    json_decref(v);
    return v != NULL;
}

/* ---- type ------------------------------------------------------------------------------ */

static void test_type(void)
{
    EXPECT_VALID("{\"type\": \"string\"}", "\"x\"");
    EXPECT_INVALID("{\"type\": \"string\"}", "1", "$: expected string, got integer");
    EXPECT_VALID("{\"type\": \"number\"}", "1");
    EXPECT_VALID("{\"type\": \"number\"}", "1.5");
    EXPECT_INVALID("{\"type\": \"number\"}", "\"1\"", "$: expected number, got string");
    EXPECT_VALID("{\"type\": \"boolean\"}", "false");
    EXPECT_INVALID("{\"type\": \"boolean\"}", "null", "$: expected boolean, got null");
    EXPECT_VALID("{\"type\": \"null\"}", "null");
    EXPECT_INVALID("{\"type\": \"null\"}", "0", "$: expected null, got integer");
    EXPECT_VALID("{\"type\": \"object\"}", "{}");
    EXPECT_INVALID("{\"type\": \"object\"}", "[]", "$: expected object, got array");
    EXPECT_VALID("{\"type\": \"array\"}", "[]");
    EXPECT_INVALID("{\"type\": \"array\"}", "{}", "$: expected array, got object");
    EXPECT_INVALID("{\"type\": \"string\"}", "true", "$: expected string, got boolean");
    EXPECT_VALID("{}", "[1, {\"a\": null}]"); /* no type: anything */
}

static void test_integer_type(void)
{
    EXPECT_VALID("{\"type\": \"integer\"}", "1");
    EXPECT_VALID("{\"type\": \"integer\"}", "-9223372036854775808");
    EXPECT_VALID("{\"type\": \"integer\"}", "1.0"); /* zero fraction counts */
    EXPECT_VALID("{\"type\": \"integer\"}", "1e300");
    EXPECT_INVALID("{\"type\": \"integer\"}", "1.5", "$: expected integer, got number");
    EXPECT_INVALID("{\"type\": \"integer\"}", "\"1\"", "$: expected integer, got string");
}

static void test_type_lists(void)
{
    EXPECT_VALID("{\"type\": [\"string\", \"null\"]}", "null");
    EXPECT_VALID("{\"type\": [\"string\", \"null\"]}", "\"\"");
    EXPECT_INVALID("{\"type\": [\"string\", \"null\"]}", "1",
                   "$: expected string or null, got integer");
    EXPECT_INVALID("{\"type\": [\"null\", \"integer\", \"string\"]}", "1.5",
                   "$: expected string, integer or null, got number");
}

/* ---- enum and const -------------------------------------------------------------------- */

static void test_enum(void)
{
    EXPECT_VALID("{\"enum\": [\"a\", \"b\"]}", "\"b\"");
    EXPECT_INVALID("{\"enum\": [\"a\", \"b\"]}", "\"c\"", "$: must be one of [\"a\",\"b\"]");
    EXPECT_INVALID("{\"enum\": [\"1\"]}", "1", "$: must be one of [\"1\"]");
    EXPECT_VALID("{\"enum\": [null, 2]}", "null");
    EXPECT_VALID("{\"enum\": [1]}", "1.0"); /* numbers compare by value */
    EXPECT_VALID("{\"enum\": [1.0]}", "1");
    EXPECT_INVALID("{\"enum\": [1]}", "1.5", "$: must be one of [1]");
    EXPECT_VALID("{\"enum\": [[1, {\"a\": 2}]]}", "[1.0, {\"a\": 2.0}]");
    EXPECT_INVALID("{\"enum\": [[1, 2]]}", "[1]", "$: must be one of [[1,2]]");
    EXPECT_INVALID("{\"enum\": [{\"a\": 1}]}", "{\"a\": 1, \"b\": 2}",
                   "$: must be one of [{\"a\":1}]");
    EXPECT_INVALID("{\"enum\": [true]}", "1", "$: must be one of [true]");
    /* a long enum is cut in the message */
    EXPECT_INVALID("{\"enum\": [\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", "
                   "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\", "
                   "\"cccccccccccccccccccccccccccccccccccccccc\"]}",
                   "\"d\"",
                   "$: must be one of [\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
                   "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\","
                   "\"ccccccccccccccccccccccccccccc...");
}

static void test_const(void)
{
    EXPECT_VALID("{\"const\": \"x\"}", "\"x\"");
    EXPECT_INVALID("{\"const\": \"x\"}", "\"y\"", "$: must be equal to \"x\"");
    EXPECT_VALID("{\"const\": 1}", "1.0");
    EXPECT_VALID("{\"const\": null}", "null");
    EXPECT_INVALID("{\"const\": null}", "false", "$: must be equal to null");
    EXPECT_INVALID("{\"const\": 0}", "false", "$: must be equal to 0");
    EXPECT_VALID("{\"const\": {\"a\": [1]}}", "{\"a\": [1]}");
}

/* ---- numbers --------------------------------------------------------------------------- */

static void test_number_bounds(void)
{
    EXPECT_VALID("{\"minimum\": 1}", "1");
    EXPECT_INVALID("{\"minimum\": 1}", "0", "$: must be >= 1");
    EXPECT_INVALID("{\"minimum\": 1}", "0.5", "$: must be >= 1");
    EXPECT_VALID("{\"maximum\": 10.5}", "10");
    EXPECT_INVALID("{\"maximum\": 10.5}", "11", "$: must be <= 10.5");
    EXPECT_INVALID("{\"exclusiveMinimum\": 0}", "0", "$: must be > 0");
    EXPECT_VALID("{\"exclusiveMinimum\": 0}", "1e-300");
    EXPECT_INVALID("{\"exclusiveMaximum\": 1}", "1.0", "$: must be < 1");
    EXPECT_VALID("{\"exclusiveMaximum\": 1}", "0.9999999");
    EXPECT_INVALID("{\"minimum\": -0.5}", "-1", "$: must be >= -0.5");
    EXPECT_VALID("{\"minimum\": -0.5}", "0");
    EXPECT_INVALID("{\"maximum\": 0.1}", "0.2", "$: must be <= 0.1");
    /* bounds apply to numbers only */
    EXPECT_VALID("{\"minimum\": 5}", "\"abc\"");
}

/* Integers and reals compare exactly, also where a double cannot hold the integer. */
static void test_number_precision(void)
{
    EXPECT_INVALID("{\"minimum\": 9007199254740993}", "9007199254740992",
                   "$: must be >= 9007199254740993");
    /* 2^53 as a real is below 2^53+1 even though (double)(2^53+1) == 2^53 */
    EXPECT_INVALID("{\"minimum\": 9007199254740993}", "9007199254740992.0",
                   "$: must be >= 9007199254740993");
    EXPECT_VALID("{\"maximum\": 9007199254740992.0}", "9007199254740992");
    EXPECT_INVALID("{\"maximum\": 9007199254740992.0}", "9007199254740993",
                   "$: must be <= 9007199254740992");
    EXPECT_INVALID("{\"maximum\": 9223372036854775807}", "9.3e18",
                   "$: must be <= 9223372036854775807");
    EXPECT_VALID("{\"minimum\": -9223372036854775808}", "-9223372036854775808");
    EXPECT_INVALID("{\"minimum\": -9223372036854775808}", "-1e19",
                   "$: must be >= -9223372036854775808");
    EXPECT_INVALID("{\"exclusiveMinimum\": 2.5}", "2", "$: must be > 2.5");
    EXPECT_VALID("{\"exclusiveMinimum\": 2.5}", "3");
    EXPECT_INVALID("{\"exclusiveMaximum\": -2.5}", "-2", "$: must be < -2.5");
}

/* ---- strings --------------------------------------------------------------------------- */

static void test_string_lengths(void)
{
    /* lengths count code points: é is 2 bytes, 日 3, 😀 4 */
    EXPECT_INVALID("{\"minLength\": 2}", "\"\xc3\xa9\"", "$: must be at least 2 characters long");
    EXPECT_VALID("{\"minLength\": 2}", "\"\xc3\xa9\xc3\xa9\"");
    EXPECT_INVALID("{\"minLength\": 1}", "\"\"", "$: must be at least 1 character long");
    EXPECT_VALID("{\"maxLength\": 3}", "\"\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5\"");
    EXPECT_INVALID("{\"maxLength\": 3}", "\"\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5!\"",
                   "$: must be at most 3 characters long");
    EXPECT_VALID("{\"maxLength\": 1}", "\"\xf0\x9f\x98\x80\"");
    EXPECT_VALID("{\"maxLength\": 3}", "\"a\\u0000b\""); /* NUL is a code point too */
    EXPECT_INVALID("{\"maxLength\": 2}", "\"a\\u0000b\"", "$: must be at most 2 characters long");
    EXPECT_VALID("{\"maxLength\": 0}", "\"\"");
    EXPECT_VALID("{\"minLength\": 2.0}", "\"ab\""); /* an integral real is an integer */
    EXPECT_VALID("{\"minLength\": 5}", "[1]");      /* strings only */
}

static void test_pattern(void)
{
    EXPECT_VALID("{\"pattern\": \"^[a-z]+$\"}", "\"abc\"");
    EXPECT_INVALID("{\"pattern\": \"^[a-z]+$\"}", "\"abC\"",
                   "$: does not match pattern \"^[a-z]+$\"");
    EXPECT_VALID("{\"pattern\": \"b\"}", "\"abc\""); /* unanchored */
    EXPECT_VALID("{\"pattern\": \"^[[:digit:]]{3}-[0-9]+$\"}", "\"123-4\"");
    EXPECT_VALID("{\"pattern\": \"^\\\\w+\\\\.txt$\"}", "\"a_1.txt\"");
    EXPECT_INVALID("{\"pattern\": \"^\\\\w+\\\\.txt$\"}", "\"a_1xtxt\"",
                   "$: does not match pattern \"^\\w+\\.txt$\"");
    EXPECT_VALID("{\"pattern\": \"^[]a]+$\"}", "\"]a\""); /* leading ] is literal */
    EXPECT_VALID("{\"pattern\": \"^(ab|cd)$\"}", "\"cd\"");
    /* the whole string is matched, past an embedded NUL */
    EXPECT_VALID("{\"pattern\": \"b$\"}", "\"a\\u0000b\"");
    EXPECT_INVALID("{\"pattern\": \"^a$\"}", "\"a\\u0000b\"", "$: does not match pattern \"^a$\"");
    EXPECT_VALID("{\"pattern\": \"^x\"}", "7"); /* strings only */
}

/* ---- arrays ---------------------------------------------------------------------------- */

static void test_arrays(void)
{
    EXPECT_INVALID("{\"minItems\": 1}", "[]", "$: must have at least 1 item");
    EXPECT_INVALID("{\"minItems\": 2}", "[1]", "$: must have at least 2 items");
    EXPECT_VALID("{\"minItems\": 2}", "[1, 2]");
    EXPECT_INVALID("{\"maxItems\": 2}", "[1, 2, 3]", "$: must have at most 2 items");
    EXPECT_VALID("{\"maxItems\": 2}", "[1, 2]");
    EXPECT_VALID("{\"items\": {\"type\": \"string\"}}", "[\"a\", \"b\"]");
    EXPECT_INVALID("{\"items\": {\"type\": \"string\"}}", "[\"a\", 1]",
                   "$[1]: expected string, got integer");
    EXPECT_VALID("{\"items\": false}", "[]");
    EXPECT_INVALID("{\"items\": false}", "[1]", "$[0]: no value is allowed here");
    EXPECT_VALID("{\"items\": true}", "[1, \"x\"]");
    /* counts come before items */
    EXPECT_INVALID("{\"maxItems\": 1, \"items\": {\"type\": \"string\"}}", "[1, 2]",
                   "$: must have at most 1 item");
}

/* ---- objects --------------------------------------------------------------------------- */

static void test_required(void)
{
    EXPECT_VALID("{\"required\": [\"a\"]}", "{\"a\": null}");
    EXPECT_INVALID("{\"required\": [\"a\", \"b\"]}", "{\"b\": 1}",
                   "$: missing required property \"a\"");
    EXPECT_INVALID("{\"required\": [\"a\", \"b\"]}", "{\"a\": 1}",
                   "$: missing required property \"b\"");
    EXPECT_INVALID("{\"required\": [\"say \\\"hi\\\"\"]}", "{}",
                   "$: missing required property \"say \\\"hi\\\"\"");
    EXPECT_VALID("{\"required\": [\"a\"]}", "[]"); /* objects only */
}

static void test_properties(void)
{
    const char *two = "{\"properties\": {\"a\": {\"type\": \"string\"}, "
                      "\"b\": {\"type\": \"string\"}}}";

    EXPECT_VALID(two, "{\"a\": \"x\", \"c\": 1}");
    EXPECT_VALID(two, "{}");
    /* schema order decides which violation is reported, not instance order */
    EXPECT_INVALID(two, "{\"b\": 1, \"a\": 2}", "$.a: expected string, got integer");
    EXPECT_INVALID(two, "{\"b\": 1}", "$.b: expected string, got integer");
    /* required before properties */
    EXPECT_INVALID("{\"required\": [\"c\"], \"properties\": {\"a\": {\"type\": \"string\"}}}",
                   "{\"a\": 1}", "$: missing required property \"c\"");
    EXPECT_INVALID("{\"properties\": {\"a b\": {\"type\": \"string\"}}}", "{\"a b\": 1}",
                   "$[\"a b\"]: expected string, got integer");
    EXPECT_INVALID("{\"properties\": {\"x\": false}}", "{\"x\": 1}",
                   "$.x: no value is allowed here");
}

static void test_additional_properties(void)
{
    EXPECT_INVALID("{\"properties\": {\"a\": {}}, \"additionalProperties\": false}",
                   "{\"a\": 1, \"x\": 2}", "$: unexpected property \"x\"");
    EXPECT_VALID("{\"properties\": {\"a\": {}}, \"additionalProperties\": false}", "{\"a\": 1}");
    EXPECT_INVALID("{\"additionalProperties\": false}", "{\"q\\\"\": 1}",
                   "$: unexpected property \"q\\\"\"");
    EXPECT_VALID("{\"additionalProperties\": true}", "{\"x\": 1}");
    EXPECT_INVALID("{\"properties\": {\"a\": {}}, \"additionalProperties\": "
                   "{\"type\": \"integer\"}}",
                   "{\"a\": \"s\", \"x\": \"s\"}", "$.x: expected integer, got string");
    EXPECT_INVALID("{\"additionalProperties\": {\"type\": \"string\"}}", "{\"a b\": 1}",
                   "$[\"a b\"]: expected string, got integer");
    /* properties before additionalProperties */
    EXPECT_INVALID("{\"properties\": {\"a\": {\"type\": \"string\"}}, "
                   "\"additionalProperties\": false}",
                   "{\"x\": 1, \"a\": 1}", "$.a: expected string, got integer");
}

/* ---- combinations ---------------------------------------------------------------------- */

static void test_nested_paths(void)
{
    const char *schema = "{\"type\": \"object\", \"properties\": {\"items\": {\"type\": \"array\", "
                         "\"items\": {\"type\": \"object\", \"required\": [\"name\"], "
                         "\"properties\": {\"name\": {\"type\": \"string\"}}}}}}";

    EXPECT_VALID(schema, "{\"items\": [{\"name\": \"a\"}]}");
    EXPECT_INVALID(schema, "{\"items\": [{\"name\": \"a\"}, {\"name\": \"b\"}, {\"name\": 3}]}",
                   "$.items[2].name: expected string, got integer");
    EXPECT_INVALID(schema, "{\"items\": [{}, {\"name\": 3}]}",
                   "$.items[0]: missing required property \"name\"");
    EXPECT_INVALID(schema, "{\"items\": {}}", "$.items: expected array, got object");
}

static void test_keyword_order(void)
{
    EXPECT_INVALID("{\"type\": \"string\", \"enum\": [\"a\"]}", "1",
                   "$: expected string, got integer");
    EXPECT_INVALID("{\"enum\": [\"abc\"], \"minLength\": 5}", "\"ab\"",
                   "$: must be one of [\"abc\"]");
    EXPECT_INVALID("{\"enum\": [\"ab\", \"abcdef\"], \"const\": \"abcdef\"}", "\"ab\"",
                   "$: must be equal to \"abcdef\"");
    EXPECT_INVALID("{\"minLength\": 3, \"pattern\": \"^x\"}", "\"ab\"",
                   "$: must be at least 3 characters long");
    EXPECT_INVALID("{\"minimum\": 5, \"maximum\": 1}", "3", "$: must be >= 5");
}

static void test_boolean_schemas(void)
{
    EXPECT_VALID("true", "{\"anything\": [1]}");
    EXPECT_INVALID("false", "null", "$: no value is allowed here");
}

static void test_ignored_keywords(void)
{
    EXPECT_VALID("{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", "
                 "\"title\": \"T\", \"description\": \"D\", \"default\": 1, "
                 "\"format\": \"email\", \"examples\": [1], \"x-custom\": {}}",
                 "\"not an email\"");
}

/* ---- bad schemas ----------------------------------------------------------------------- */

static void test_bad_schemas(void)
{
    EXPECT_BAD_SCHEMA("[]", "schema: must be an object or a boolean");
    EXPECT_BAD_SCHEMA("{\"type\": 5}", "type: must be a string or an array of strings");
    EXPECT_BAD_SCHEMA("{\"type\": \"strin\"}", "type: unknown type \"strin\"");
    EXPECT_BAD_SCHEMA("{\"type\": []}", "type: must not be an empty array");
    EXPECT_BAD_SCHEMA("{\"type\": [\"string\", 1]}",
                      "type: must be a string or an array of strings");
    EXPECT_BAD_SCHEMA("{\"enum\": []}", "enum: must be a non-empty array");
    EXPECT_BAD_SCHEMA("{\"enum\": \"a\"}", "enum: must be a non-empty array");
    EXPECT_BAD_SCHEMA("{\"minimum\": \"1\"}", "minimum: must be a number");
    EXPECT_BAD_SCHEMA("{\"exclusiveMinimum\": true}", "exclusiveMinimum: must be a number");
    EXPECT_BAD_SCHEMA("{\"exclusiveMaximum\": null}", "exclusiveMaximum: must be a number");
    EXPECT_BAD_SCHEMA("{\"maximum\": []}", "maximum: must be a number");
    EXPECT_BAD_SCHEMA("{\"minLength\": -1}", "minLength: must be a non-negative integer");
    EXPECT_BAD_SCHEMA("{\"maxLength\": 1.5}", "maxLength: must be a non-negative integer");
    EXPECT_BAD_SCHEMA("{\"minItems\": \"1\"}", "minItems: must be a non-negative integer");
    EXPECT_BAD_SCHEMA("{\"maxItems\": 1e300}", "maxItems: must be a non-negative integer");
    EXPECT_BAD_SCHEMA("{\"items\": [{}]}", "items: must be a schema (an object or a boolean)");
    EXPECT_BAD_SCHEMA("{\"properties\": []}", "properties: must be an object");
    EXPECT_BAD_SCHEMA("{\"properties\": {\"a\": 5}}",
                      "properties.a: must be an object or a boolean");
    EXPECT_BAD_SCHEMA("{\"required\": \"a\"}", "required: must be an array of strings");
    EXPECT_BAD_SCHEMA("{\"required\": [\"a\", 1]}", "required: must be an array of strings");
    EXPECT_BAD_SCHEMA("{\"additionalProperties\": 5}",
                      "additionalProperties: must be a boolean or a schema object");
}

static void test_unsupported_keywords(void)
{
    static const char *const kw[] = {"uniqueItems", "multipleOf", "patternProperties",
                                     "prefixItems", "minProperties", "$dynamicRef",
                                     "unevaluatedProperties", NULL};
    char schema[128], want[64];
    for (int i = 0; kw[i]; i++) {
        snprintf(schema, sizeof schema, "{\"%s\": 1}", kw[i]);
        snprintf(want, sizeof want, "%s: keyword not supported", kw[i]);
        EXPECT_BAD_SCHEMA_PREFIX(schema, want);
    }
    EXPECT_BAD_SCHEMA_PREFIX("{\"properties\": {\"a\": {\"uniqueItems\": true}}}",
                             "properties.a.uniqueItems: keyword not supported");
}

/* JSON Schema 2020-12 applicators: $ref (local), allOf, anyOf, oneOf, not, if/then/else. */
static void test_applicators(void)
{
    const char *ref = "{\"type\":\"object\",\"$defs\":{\"addr\":{\"$anchor\":\"A\","
                      "\"type\":\"object\",\"required\":[\"city\"],"
                      "\"properties\":{\"city\":{\"type\":\"string\"}}}},"
                      "\"properties\":{\"home\":{\"$ref\":\"#/$defs/addr\"},"
                      "\"work\":{\"$ref\":\"#A\"}}}";
    EXPECT_VALID(ref, "{\"home\":{\"city\":\"Paris\"},\"work\":{\"city\":\"Oslo\"}}");
    EXPECT_INVALID(ref, "{\"home\":{\"city\":3}}", "$.home.city: expected string, got integer");
    EXPECT_INVALID(ref, "{\"work\":{}}", "$.work: missing required property \"city\"");
    EXPECT_BAD_SCHEMA("{\"$ref\":\"#/$defs/nope\"}",
                      "$ref: must be a local reference (\"#/$defs/name\" or \"#anchor\") to a "
                      "schema in this document");
    EXPECT_BAD_SCHEMA_PREFIX("{\"$ref\":\"https://example.com/s.json\"}", "$ref: must be a local");
    EXPECT_BAD_SCHEMA_PREFIX("{\"$defs\":{\"loop\":{\"$ref\":\"#/$defs/loop\"}},"
                             "\"$ref\":\"#/$defs/loop\"}", "$ref.$ref.$ref");
    EXPECT_BAD_SCHEMA_PREFIX("{\"$defs\":{\"bad\":{\"type\":\"nope\"}}}",
                             "$defs.bad.type: unknown type");

    const char *all = "{\"allOf\":[{\"type\":\"integer\"},{\"minimum\":3}]}";
    EXPECT_VALID(all, "4");
    EXPECT_INVALID(all, "2", "$: must be >= 3");
    EXPECT_INVALID(all, "\"x\"", "$: expected integer, got string");

    const char *any = "{\"type\":\"object\",\"anyOf\":[{\"required\":[\"phone\"]},"
                      "{\"required\":[\"email\"]}]}";
    EXPECT_VALID(any, "{\"phone\":\"1\"}");
    EXPECT_VALID(any, "{\"phone\":\"1\",\"email\":\"e\"}");
    EXPECT_INVALID(any, "{}", "$: must match at least one of the anyOf schemas");

    const char *one = "{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":10}]}";
    EXPECT_VALID(one, "3");
    EXPECT_VALID(one, "10.5");
    EXPECT_INVALID(one, "12", "$: must match exactly one of the oneOf schemas, matches 2");
    EXPECT_INVALID(one, "2.5", "$: must match one of the oneOf schemas");

    EXPECT_VALID("{\"not\":{\"type\":\"string\"}}", "1");
    EXPECT_INVALID("{\"not\":{\"type\":\"string\"}}", "\"s\"",
                   "$: must not match the schema under \"not\"");

    const char *cond = "{\"type\":\"object\",\"if\":{\"properties\":{\"m\":{\"const\":\"phone\"}},"
                       "\"required\":[\"m\"]},\"then\":{\"required\":[\"phone\"]},"
                       "\"else\":{\"required\":[\"email\"]}}";
    EXPECT_VALID(cond, "{\"m\":\"phone\",\"phone\":\"1\"}");
    EXPECT_VALID(cond, "{\"m\":\"mail\",\"email\":\"e\"}");
    EXPECT_INVALID(cond, "{\"m\":\"phone\"}", "$: missing required property \"phone\"");
    EXPECT_INVALID(cond, "{}", "$: missing required property \"email\"");
    /* then without if is ignored */
    EXPECT_VALID("{\"then\":{\"type\":\"string\"}}", "1");
    /* a combinator's messages name the branch that broke */
    EXPECT_INVALID("{\"properties\":{\"a\":{\"allOf\":[{\"maxLength\":2}]}}}",
                   "{\"a\":\"long\"}", "$.a: must be at most 2 characters long");
    EXPECT_BAD_SCHEMA("{\"anyOf\":[]}", "anyOf: must be a non-empty array of schemas");
    EXPECT_BAD_SCHEMA_PREFIX("{\"allOf\":[{\"type\":5}]}", "allOf.0.type: must be a string");
}

static void test_pattern_bounds(void)
{
    EXPECT_BAD_SCHEMA_PREFIX("{\"pattern\": \"a++\"}", "pattern: a quantifier follows a quantifier");
    EXPECT_BAD_SCHEMA_PREFIX("{\"pattern\": \"(ab)*{2}\"}", "pattern: a quantifier follows");
    EXPECT_BAD_SCHEMA_PREFIX("{\"pattern\": \"x{1,2}+\"}", "pattern: a quantifier follows");
    char big[700];
    snprintf(big, sizeof big, "{\"pattern\": \"%0600d\"}", 0);
    EXPECT_BAD_SCHEMA_PREFIX(big, "pattern: longer than 512 bytes");
    /* not regular: glibc's regexec backtracks over back-references, exponentially (issue 15) */
    EXPECT_BAD_SCHEMA_PREFIX("{\"pattern\": \"^(a*)*\\\\1$\"}",
                             "pattern: the back-reference \\1 is not allowed");
    EXPECT_BAD_SCHEMA_PREFIX("{\"pattern\": \"(x)[a]\\\\9\"}",
                             "pattern: the back-reference \\9 is not allowed");
    EXPECT_BAD_SCHEMA_PREFIX("{\"pattern\": \"(a{1,100}){1,100}\"}",
                             "pattern: its counted repetitions expand to more than 2000 atoms");
    EXPECT_BAD_SCHEMA_PREFIX("{\"pattern\": \"((a|b){50}c){50}\"}",
                             "pattern: its counted repetitions expand");
    /* quantifiers after escapes and inside brackets are not stacked */
    char *err = NULL;
    schema_t *ok = compile_text("{\"pattern\": \"^a+\\\\+[+*]?b{2}$\"}", &err);
    if (!CHECK(ok != NULL))
        fprintf(stderr, "    %s\n", err ? err : "?");
    schema_free(ok);
    free(err);
    /* ordinary counted repetitions stay allowed, and "\\." is no back-reference */
    static const char *const fine[] = {
        "{\"pattern\": \"^[0-9]{4}-[0-9]{2}-[0-9]{2}$\"}",
        "{\"pattern\": \"^([a-z]{1,20}\\\\.){1,10}[a-z]{2,63}$\"}",
        "{\"pattern\": \"^[[:alnum:]_]{1,1000}$\"}", NULL};
    for (int i = 0; fine[i]; i++) {
        err = NULL;
        ok = compile_text(fine[i], &err);
        if (!CHECK(ok != NULL))
            fprintf(stderr, "    %s: %s\n", fine[i], err ? err : "?");
        schema_free(ok);
        free(err);
    }
}

static void test_bad_nested_schemas(void)
{
    EXPECT_BAD_SCHEMA("{\"properties\": {\"n\": {\"minimum\": \"x\"}}}",
                      "properties.n.minimum: must be a number");
    EXPECT_BAD_SCHEMA("{\"items\": {\"properties\": {\"a b\": {\"type\": \"x\"}}}}",
                      "items.properties[\"a b\"].type: unknown type \"x\"");
    EXPECT_BAD_SCHEMA("{\"additionalProperties\": {\"items\": {\"maxItems\": -2}}}",
                      "additionalProperties.items.maxItems: must be a non-negative integer");
    EXPECT_BAD_SCHEMA("{\"properties\": {\"ok\": {}, \"bad\": {\"pattern\": \"(\"}}}",
                      "properties.bad.pattern: invalid regular expression "
                      "(Unmatched ( or \\()");
}

static void test_bad_patterns(void)
{
    EXPECT_BAD_SCHEMA("{\"pattern\": 5}", "pattern: must be a string");
    EXPECT_BAD_SCHEMA("{\"pattern\": \"(\"}",
                      "pattern: invalid regular expression (Unmatched ( or \\()");
    EXPECT_BAD_SCHEMA("{\"pattern\": \"a\\u0000\"}", "pattern: must not contain NUL characters");
    /* ECMA-only escapes that POSIX would silently read differently */
    EXPECT_BAD_SCHEMA("{\"pattern\": \"^\\\\d+$\"}",
                      "pattern: \\d is not supported (patterns are POSIX extended regular "
                      "expressions); use [0-9]");
    EXPECT_BAD_SCHEMA("{\"pattern\": \"\\\\u00e9\"}",
                      "pattern: \\u is not supported (patterns are POSIX extended regular "
                      "expressions)");
    EXPECT_BAD_SCHEMA("{\"pattern\": \"\\\\<a\"}",
                      "pattern: \\< is not supported (patterns are POSIX extended regular "
                      "expressions)");
    EXPECT_BAD_SCHEMA("{\"pattern\": \"^[\\\\w.-]+$\"}",
                      "pattern: a backslash inside [...] is literal in POSIX regular "
                      "expressions; write the characters or a class like [[:digit:]] instead");
    /* [:class:] inside brackets and escaped punctuation are fine */
    char *err;
    schema_t *s =
        compile_text("{\"pattern\": \"^[[:alpha:]_][[:alnum:]_]*\\\\.\\\\$\\\\(x\\\\)$\"}", &err);
    CHECK_STR(err, NULL);
    schema_free(s);
}

/* Builds {"items": {"items": ... {}}} with `levels` schema objects. */
static char *nested_items_schema(int levels)
{
    size_t size = (size_t)levels * 12 + 8;
    char *text = malloc(size);
    size_t len = 0;

    for (int i = 1; i < levels; i++)
        len += (size_t)snprintf(text + len, size - len, "{\"items\": ");
    len += (size_t)snprintf(text + len, size - len, "{}");
    for (int i = 1; i < levels; i++)
        text[len++] = '}';
    text[len] = '\0';
    return text;
}

static char *nested_arrays(int levels)
{
    char *text = malloc((size_t)levels * 2 + 1);

    for (int i = 0; i < levels; i++) {
        text[i] = '[';
        text[levels * 2 - 1 - i] = ']';
    }
    text[levels * 2] = '\0';
    return text;
}

static void test_depth_limits(void)
{
    char *err;
    char *text = nested_items_schema(64);
    schema_t *s = compile_text(text, &err);
    CHECK_STR(err, NULL);
    /* an instance deeper than the schema costs nothing extra: 1000 levels */
    char *deep = nested_arrays(1000);
    json_t *instance = parse(deep);
    char message[128];
    CHECK_INT(schema_validate(s, instance, message, sizeof message), 0);
    json_decref(instance);
    free(deep);
    schema_free(s);
    free(text);

    text = nested_items_schema(65);
    s = compile_text(text, &err);
    CHECK(s == NULL);
    char want[512] = "";
    for (int i = 0; i < 64; i++)
        strcat(want, i == 0 ? "items" : ".items");
    strcat(want, ": schema nested deeper than 64 levels");
    CHECK_STR(err, want);
    free(err);
    free(text);

    /* enum/const values are bounded too (they are compared recursively) */
    deep = nested_arrays(64);
    text = malloc(strlen(deep) + 32);
    sprintf(text, "{\"const\": %s}", deep);
    EXPECT_VALID(text, deep);
    free(text);
    free(deep);
    deep = nested_arrays(65);
    text = malloc(strlen(deep) + 32);
    sprintf(text, "{\"const\": %s}", deep);
    EXPECT_BAD_SCHEMA(text, "const: value nested deeper than 64 levels");
    free(text);
    free(deep);
}

/* ---- the message buffer ---------------------------------------------------------------- */

static void test_message_buffer(void)
{
    char *err;
    schema_t *s = compile_text("{\"enum\": [\"\xe6\x97\xa5\xe6\x97\xa5\"]}", &err);
    json_t *instance = json_string("x");
    char small[8];

    CHECK_INT(schema_validate(s, instance, NULL, 0), -1);
    CHECK_INT(schema_validate(s, instance, small, 1), -1);
    CHECK_STR(small, "");
    /* "$: must be one of [\"日日\"]": cut inside a character, the tail is dropped */
    char message[64];
    for (size_t cap = 1; cap <= sizeof message; cap++) {
        CHECK_INT(schema_validate(s, instance, message, cap), -1);
        CHECK(strlen(message) < cap && valid_utf8(message));
    }
    CHECK_STR(message, "$: must be one of [\"\xe6\x97\xa5\xe6\x97\xa5\"]");
    json_decref(instance);
    schema_free(s);
    schema_free(NULL);
}

static long allocations_left;

static void *failing_malloc(size_t size)
{
    return allocations_left-- > 0 ? malloc(size) : NULL;
}

/* Every jansson allocation made while compiling fails in turn: compile must refuse with a
 * message and free what it built (ASan's leak checker watches), until it succeeds. */
static void test_out_of_memory_at_compile(void)
{
    json_t *doc = parse("{\"type\": \"object\", \"required\": [\"a\"], \"properties\": "
                        "{\"a\": {\"enum\": [1, \"x\"]}, \"b\": {\"const\": {\"k\": [1]}, "
                        "\"items\": {\"pattern\": \"^a\"}}}, \"additionalProperties\": "
                        "{\"properties\": {\"c\": {}}}}");
    schema_t *s = NULL;
    long limit;

    for (limit = 0; s == NULL && limit < 1000; limit++) {
        char *err = NULL;
        allocations_left = limit;
        json_set_alloc_funcs(failing_malloc, free);
        s = schema_compile(doc, &err);
        json_set_alloc_funcs(malloc, free);
        if (s == NULL && !CHECK(err != NULL && strstr(err, ": out of memory") != NULL))
            fprintf(stderr, "    limit %ld: %s\n", limit, err ? err : "NULL");
        free(err);
    }
    CHECK(s != NULL && limit > 5);
    json_t *instance = parse("{\"a\": 1.0, \"z\": {\"c\": 0}}");
    char message[128];
    CHECK_INT(schema_validate(s, instance, message, sizeof message), 0);
    json_decref(instance);
    json_decref(doc);
    schema_free(s);
}

static void test_compile_resets_err(void)
{
    char *err = (char *)"stale";
    json_t *doc = parse("{}");
    schema_t *s = schema_compile(doc, &err);

    CHECK(s != NULL);
    CHECK_STR(err, NULL);
    schema_free(s);
    json_decref(doc);
}

int main(void)
{
    test_type();
    test_integer_type();
    test_type_lists();
    test_enum();
    test_const();
    test_number_bounds();
    test_number_precision();
    test_string_lengths();
    test_pattern();
    test_arrays();
    test_required();
    test_properties();
    test_additional_properties();
    test_nested_paths();
    test_keyword_order();
    test_boolean_schemas();
    test_ignored_keywords();
    test_bad_schemas();
    test_unsupported_keywords();
    test_applicators();
    test_pattern_bounds();
    test_bad_nested_schemas();
    test_bad_patterns();
    test_depth_limits();
    test_message_buffer();
    test_compile_resets_err();
    test_out_of_memory_at_compile();
    return check_report();
}
