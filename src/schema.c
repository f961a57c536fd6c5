/* schema — compile a JSON Schema subset into a tree of nodes, then validate instances.
 *
 * Compiling checks every supported keyword's shape once, compiles patterns once, and copies
 * what validation needs, so validation itself never fails for reasons other than the
 * instance. Validation stops at the first violation, in this order per node: type,
 * enum/const, then the checks for the instance's type (objects: required, properties in
 * schema order, additionalProperties in instance order; arrays: minItems, maxItems, items in
 * index order; strings: minLength, maxLength, pattern; numbers: minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum).
 *
 * Depth: schemas are refused past SCHEMA_MAX_DEPTH nested levels. Validation recursion only
 * descends where schema and instance both nest, so it is bounded by the schema depth, and
 * the numeric-aware equality used by enum/const is bounded by the depth of the schema's
 * value, which compile also checks.
 */
#include "luamcp/schema.h"
#include "luamcp/text.h"

#include <assert.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_MAX_DEPTH 64
#define PATH_TEXT_MAX 512    /* longest rendered path in a message; longer ones end in "..." */
#define VALUE_SHOW_MAX 120   /* bytes of an enum/const value shown in a message */

enum {
    TYPE_STRING = 1 << 0,
    TYPE_NUMBER = 1 << 1,
    TYPE_INTEGER = 1 << 2,
    TYPE_BOOLEAN = 1 << 3,
    TYPE_OBJECT = 1 << 4,
    TYPE_ARRAY = 1 << 5,
    TYPE_NULL = 1 << 6,
};

/* Also the order in which "expected X or Y" lists them. */
static const struct {
    const char *name;
    unsigned bit;
} type_names[] = {
    {"string", TYPE_STRING}, {"number", TYPE_NUMBER}, {"integer", TYPE_INTEGER},
    {"boolean", TYPE_BOOLEAN}, {"object", TYPE_OBJECT}, {"array", TYPE_ARRAY},
    {"null", TYPE_NULL},
};

/* A JSON number as jansson holds it: integers stay exact. */
typedef struct {
    bool is_integer;
    json_int_t integer;
    double real;
} number_t;

typedef struct {
    bool present;
    number_t value;
} bound_t;

typedef struct {
    char *name; /* owned; may contain NUL, hence name_len */
    size_t name_len;
    schema_t *schema;
} property_t;

typedef enum { ADDITIONAL_ANY, ADDITIONAL_NONE, ADDITIONAL_SCHEMA } additional_mode;

struct schema {
    bool reject_all; /* the boolean schema `false` */
    unsigned types;  /* TYPE_* bits; 0 = any type */
    json_t *enum_values;
    char *enum_text; /* enum_values rendered for messages */
    json_t *const_value;
    char *const_text;
    bound_t minimum, maximum, exclusive_minimum, exclusive_maximum;
    json_int_t min_length, max_length, min_items, max_items; /* -1 when absent */
    char *pattern_text; /* non-NULL exactly when `pattern` holds a compiled regex */
    regex_t pattern;
    schema_t *items;
    property_t *properties; /* in schema order */
    size_t property_count;
    json_t *property_names; /* same names as keys, for additionalProperties lookups */
    json_t *required;       /* array of strings, in schema order */
    additional_mode additional;
    schema_t *additional_schema;
    /* applicators (JSON Schema 2020-12): a local $ref (compiled in place), the combinators
     * and the conditional */
    schema_t *ref;
    schema_t **all_of, **any_of, **one_of;
    size_t n_all_of, n_any_of, n_one_of;
    schema_t *not_schema, *if_schema, *then_schema, *else_schema;
};

/* ---- text helpers ---------------------------------------------------------------------- */

/* Length of the UTF-8 sequence starting with lead byte c; jansson strings are valid UTF-8. */
static size_t utf8_lead_length(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* Formats s quoted into buf (for "property \"x\""-style messages). */
static const char *quote(char *buf, size_t cap, const char *s, size_t len)
{
    text_out o = {buf, cap, 0, false};

    buf[0] = '\0';
    text_put_quoted(&o, s, len);
    return buf;
}

/* After snprintf truncation, drops a UTF-8 sequence cut in half at the end of buf, so a
 * message stays valid UTF-8 (it may travel inside JSON). */
static void utf8_trim_partial(char *buf)
{
    size_t len = strlen(buf);
    size_t start = len;

    while (start > 0 && len - start < 3 && ((unsigned char)buf[start - 1] & 0xC0) == 0x80)
        start--;
    if (start > 0 && (unsigned char)buf[start - 1] >= 0xC0 &&
        len - (start - 1) < utf8_lead_length((unsigned char)buf[start - 1]))
        buf[start - 1] = '\0';
}

/* Shortest "%.*g" form that reads back as the same double. */
static void format_number(const number_t *n, char *buf, size_t cap)
{
    if (n->is_integer) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, n->integer);
        return;
    }
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(buf, cap, "%.*g", precision, n->real);
        if (strtod(buf, NULL) == n->real)
            return;
    }
}

/* ---- numbers --------------------------------------------------------------------------- */

static number_t number_of(const json_t *v)
{
    if (json_is_integer(v))
        return (number_t){true, json_integer_value(v), 0};
    return (number_t){false, 0, json_real_value(v)};
}

/* Exact comparison of an integer with a double, without going through a type that might
 * round either (long double is no wider than double on some targets). */
static int compare_integer_real(json_int_t i, double d)
{
    const double two_63 = 9223372036854775808.0;

    if (d >= two_63)
        return -1;
    if (d < -two_63)
        return 1;
    json_int_t whole = (json_int_t)d; /* in range, so exact truncation toward zero */
    if (i != whole)
        return i < whole ? -1 : 1;
    double fraction = d - (double)whole; /* exact: whole is d's own integral part */
    return fraction > 0 ? -1 : fraction < 0 ? 1 : 0;
}

/* <0, 0, >0 as a is less than, equal to, greater than b. */
static int compare_numbers(const number_t *a, const number_t *b)
{
    if (a->is_integer && b->is_integer)
        return (a->integer > b->integer) - (a->integer < b->integer);
    if (!a->is_integer && !b->is_integer)
        return (a->real > b->real) - (a->real < b->real);
    if (a->is_integer)
        return compare_integer_real(a->integer, b->real);
    return -compare_integer_real(b->integer, a->real);
}

/* json_equal, except that numbers compare by value (1 equals 1.0), also when nested.
 * Recursion continues only while both sides are containers; `expected` comes from the
 * schema, whose depth compile bounded. */
static bool values_equal(const json_t *expected, const json_t *actual)
{
    if (json_is_number(expected) && json_is_number(actual)) {
        number_t a = number_of(expected), b = number_of(actual);
        return compare_numbers(&a, &b) == 0;
    }
    if (json_typeof(expected) != json_typeof(actual))
        return false;
    if (json_is_array(expected)) {
        size_t n = json_array_size(expected);
        if (json_array_size(actual) != n)
            return false;
        for (size_t i = 0; i < n; i++)
            if (!values_equal(json_array_get(expected, i), json_array_get(actual, i)))
                return false;
        return true;
    }
    if (json_is_object(expected)) {
        const char *key;
        size_t key_len;
        json_t *member;
        if (json_object_size(actual) != json_object_size(expected))
            return false;
        json_object_keylen_foreach((json_t *)expected, key, key_len, member)
        {
            const json_t *other = json_object_getn(actual, key, key_len);
            if (other == NULL || !values_equal(member, other))
                return false;
        }
        return true;
    }
    return json_equal(expected, actual);
}

/* ---- compiling ------------------------------------------------------------------------- */

typedef struct {
    const char *text; /* a keyword, or a property name (borrowed from the schema) */
    size_t len;
    bool is_property;
} compile_segment;

typedef struct {
    compile_segment path[2 * SCHEMA_MAX_DEPTH]; /* "properties" + name per level */
    int segments;
    int depth; /* schema nodes on the current path, the root being 1 */
    char **err;
    const json_t *root; /* for $ref */
    long nodes;         /* compiled so far: $ref copies count, so sharing cannot explode */
} compile_ctx;

static schema_t *compile_node(compile_ctx *cc, const json_t *schema);

/* Keywords joined by dots, property names as ".name" or ["odd name"]; the root is "schema". */
static void render_compile_path(const compile_ctx *cc, const char *keyword, char *buf,
                                size_t cap)
{
    text_out o = {buf, cap - 3, 0, false}; /* keep room for "..." */

    buf[0] = '\0';
    for (int i = 0; i < cc->segments; i++) {
        const compile_segment *seg = &cc->path[i];
        if (seg->is_property) {
            text_put_key(&o, seg->text, seg->len);
            continue;
        }
        if (o.len > 0)
            text_put(&o, ".", 1);
        text_put(&o, seg->text, seg->len);
    }
    if (keyword != NULL) {
        if (o.len > 0)
            text_put(&o, ".", 1);
        text_put_str(&o, keyword);
    }
    if (o.full)
        strcpy(buf + o.len, "...");
    else if (o.len == 0)
        text_put_str(&o, "schema");
}

/* Records "properties.n.minimum: message" (keyword may be NULL for the node itself) and
 * returns -1. If even the message cannot be allocated, *err stays NULL. */
static int compile_error(compile_ctx *cc, const char *keyword, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int compile_error(compile_ctx *cc, const char *keyword, const char *fmt, ...)
{
    char path[PATH_TEXT_MAX];
    char message[256];
    va_list ap;

    if (cc->err == NULL || *cc->err != NULL) /* the first error wins */
        return -1;
    render_compile_path(cc, keyword, path, sizeof path);
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    utf8_trim_partial(message);
    size_t size = strlen(path) + 2 + strlen(message) + 1;
    *cc->err = malloc(size);
    if (*cc->err != NULL)
        snprintf(*cc->err, size, "%s: %s", path, message);
    return -1;
}

static void compile_push(compile_ctx *cc, const char *text, size_t len, bool is_property)
{
    assert(cc->segments < (int)(sizeof cc->path / sizeof cc->path[0]));
    cc->path[cc->segments++] = (compile_segment){text, len, is_property};
}

/* Compiles the schema under keyword (and property name, if any) as a child node. */
static schema_t *compile_child(compile_ctx *cc, const char *keyword, const char *name,
                               size_t name_len, const json_t *schema)
{
    int saved = cc->segments;

    compile_push(cc, keyword, strlen(keyword), false);
    if (name != NULL)
        compile_push(cc, name, name_len, true);
    cc->depth++;
    schema_t *child = compile_node(cc, schema);
    cc->depth--;
    cc->segments = saved;
    return child;
}

/* True when v nests deeper than limit containers (a scalar has depth 0). */
static bool deeper_than(const json_t *v, int limit)
{
    size_t index;
    const char *key;
    json_t *member;

    if (!json_is_array(v) && !json_is_object(v))
        return false;
    if (limit == 0)
        return true;
    if (json_is_array(v)) {
        json_array_foreach(v, index, member)
        {
            if (deeper_than(member, limit - 1))
                return true;
        }
    } else {
        json_object_foreach((json_t *)v, key, member)
        {
            if (deeper_than(member, limit - 1))
                return true;
        }
    }
    return false;
}

/* A compact rendering of v for messages, cut at VALUE_SHOW_MAX bytes. Caller frees. */
static char *render_value(const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

    if (text != NULL && strlen(text) > VALUE_SHOW_MAX) {
        text[VALUE_SHOW_MAX - 3] = '\0';
        utf8_trim_partial(text);
        strcat(text, "..."); /* fits: the dump was longer than VALUE_SHOW_MAX */
    }
    return text;
}

static unsigned type_bit(const json_t *name)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (json_string_length(name) == strlen(type_names[i].name) &&
            strcmp(json_string_value(name), type_names[i].name) == 0)
            return type_names[i].bit;
    return 0;
}

static int compile_one_type(compile_ctx *cc, schema_t *node, const json_t *name)
{
    char shown[TEXT_QUOTED_SIZE];
    unsigned bit = json_is_string(name) ? type_bit(name) : 0;

    if (!json_is_string(name))
        return compile_error(cc, "type", "must be a string or an array of strings");
    if (bit == 0)
        return compile_error(cc, "type", "unknown type %s",
                             quote(shown, sizeof shown, json_string_value(name),
                                   json_string_length(name)));
    node->types |= bit;
    return 0;
}

static int compile_type(compile_ctx *cc, schema_t *node, const json_t *schema)
{
    const json_t *type = json_object_get(schema, "type");
    size_t index;
    json_t *name;

    if (type == NULL)
        return 0;
    if (!json_is_array(type))
        return compile_one_type(cc, node, type);
    if (json_array_size(type) == 0)
        return compile_error(cc, "type", "must not be an empty array");
    json_array_foreach(type, index, name)
    {
        if (compile_one_type(cc, node, name) != 0)
            return -1;
    }
    return 0;
}

/* enum and const keep a private copy of the value plus its rendering for messages. */
static int compile_value(compile_ctx *cc, const char *keyword, const json_t *v, json_t **copy,
                         char **text)
{
    if (deeper_than(v, SCHEMA_MAX_DEPTH))
        return compile_error(cc, keyword, "value nested deeper than %d levels",
                             SCHEMA_MAX_DEPTH);
    *copy = json_deep_copy(v);
    *text = render_value(v);
    if (*copy == NULL || *text == NULL)
        return compile_error(cc, keyword, "out of memory");
    return 0;
}

static int compile_enum_const(compile_ctx *cc, schema_t *node, const json_t *schema)
{
    const json_t *values = json_object_get(schema, "enum");
    const json_t *constant = json_object_get(schema, "const");

    if (values != NULL) {
        if (!json_is_array(values) || json_array_size(values) == 0)
            return compile_error(cc, "enum", "must be a non-empty array");
        if (compile_value(cc, "enum", values, &node->enum_values, &node->enum_text) != 0)
            return -1;
    }
    if (constant != NULL &&
        compile_value(cc, "const", constant, &node->const_value, &node->const_text) != 0)
        return -1;
    return 0;
}

static int compile_bound(compile_ctx *cc, const json_t *schema, const char *keyword,
                         bound_t *bound)
{
    const json_t *v = json_object_get(schema, keyword);

    if (v == NULL)
        return 0;
    if (!json_is_number(v))
        return compile_error(cc, keyword, "must be a number");
    *bound = (bound_t){true, number_of(v)};
    return 0;
}

/* minLength & co: a non-negative integer (a real with no fraction counts, as in JSON
 * Schema's data model). */
static int compile_count(compile_ctx *cc, const json_t *schema, const char *keyword,
                         json_int_t *count)
{
    const json_t *v = json_object_get(schema, keyword);

    if (v == NULL)
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *count = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= 0 && d < 9223372036854775808.0 && d == trunc(d)) {
            *count = (json_int_t)d;
            return 0;
        }
    }
    return compile_error(cc, keyword, "must be a non-negative integer");
}

static bool is_class_opener(char ch)
{
    return ch == ':' || ch == '.' || ch == '=';
}

/* p[i] is the '[' of "[:name:]" (or "[.x.]", "[=x=]") inside a bracket expression: returns
 * the index of its closing ']', or i when it is not closed (regcomp will say so). */
static size_t skip_bracket_class(const char *p, size_t len, size_t i)
{
    char opener = p[i + 1];

    for (size_t k = i + 2; k + 1 < len; k++)
        if (p[k] == opener && p[k + 1] == ']')
            return k + 1;
    return i;
}

/* What is wrong with the escape "\next" outside brackets, or NULL if POSIX reads it as an
 * ECMA-262 author means it. */
static const char *escape_problem(char next, char *buf, size_t cap)
{
    bool alnum = (next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
                 (next >= '0' && next <= '9');
    bool same_meaning = alnum ? strchr("wWsSbB", next) != NULL
                              : strchr("<>`'", next) == NULL; /* \< etc. are GNU anchors */

    if (same_meaning)
        return NULL;
    if (next >= '1' && next <= '9') {
        /* regexec backtracks over back-references, in exponential time, outside any budget:
         * a caller could hang a worker with one argument */
        snprintf(buf, cap,
                 "the back-reference \\%c is not allowed: a pattern must be a regular "
                 "expression (matching one with back-references can take exponential "
                 "time)",
                 next);
        return buf;
    }
    char shown[8]; /* a byte that is not printable ASCII is shown as \xNN: the message stays UTF-8 */
    if ((unsigned char)next >= 0x20 && (unsigned char)next < 0x7f)
        snprintf(shown, sizeof shown, "%c", next);
    else
        snprintf(shown, sizeof shown, "\\x%02X", (unsigned char)next);
    snprintf(buf, cap, "\\%s is not supported (patterns are POSIX extended regular expressions)%s",
             shown, next == 'd' ? "; use [0-9]" : "");
    return buf;
}

/* POSIX ERE and the ECMA-262 dialect schema authors usually have in mind agree on most
 * syntax, but glibc reads "\d" as a plain 'd' and a backslash inside [...] as a literal
 * backslash, so "^\d+$" or "[\w.-]" would compile and then quietly mis-validate. Refuse
 * the forms the two read differently (word and space classes, boundaries, backreferences
 * and escaped punctuation mean the same in both). Returns NULL when the pattern is fine. */
static const char *pattern_dialect_problem(const char *p, size_t len, char *buf, size_t cap)
{
    bool in_bracket = false;

    for (size_t i = 0; i < len; i++) {
        if (in_bracket) {
            if (p[i] == '\\')
                return "a backslash inside [...] is literal in POSIX regular expressions; "
                       "write the characters or a class like [[:digit:]] instead";
            if (p[i] == '[' && i + 1 < len && is_class_opener(p[i + 1]))
                i = skip_bracket_class(p, len, i);
            else if (p[i] == ']')
                in_bracket = false;
        } else if (p[i] == '\\' && i + 1 < len) {
            const char *problem = escape_problem(p[++i], buf, cap);
            if (problem != NULL)
                return problem;
        } else if (p[i] == '[') {
            in_bracket = true;
            /* "[]...]" and "[^]...]" start with a literal ']' */
            if (i + 1 < len && p[i + 1] == '^')
                i++;
            if (i + 1 < len && p[i + 1] == ']')
                i++;
        }
    }
    return NULL;
}

#define PATTERN_MAX 512
#define PATTERN_WEIGHT_MAX 2000 /* atoms regcomp builds once {m,n} are expanded */

static size_t saturating_mul(size_t a, size_t b)
{
    return a && b > (PATTERN_WEIGHT_MAX + 1) / a ? PATTERN_WEIGHT_MAX + 1 : a * b;
}

/* The number of atoms the regex p[*i..] (up to an unmatched ')') has once regcomp expands its
 * counted repetitions: "(a{1,100}){1,100}" is 512 bytes at most, but 10,000 atoms, and then
 * regexec's work per input byte grows with them. An upper estimate; it saturates. */
static size_t pattern_weight(const char *p, size_t len, size_t *i, int depth)
{
    size_t total = 0, atom = 0;
    while (*i < len && p[*i] != ')' && total <= PATTERN_WEIGHT_MAX) {
        char c = p[(*i)++];
        if (c == '{') {
            size_t m = 0, n = 0;
            bool comma = false;
            for (; *i < len && p[*i] != '}'; (*i)++) {
                if (p[*i] == ',')
                    comma = true;
                else if (p[*i] >= '0' && p[*i] <= '9')
                    *(comma ? &n : &m) =
                        saturating_mul(*(comma ? &n : &m), 10) + (size_t)(p[*i] - '0');
            }
            (*i)++;
            size_t rep = comma && n ? n : m + (comma ? 1 : 0);
            total += saturating_mul(atom, rep ? rep - 1 : 0);
            atom = saturating_mul(atom, rep);
            continue;
        }
        if (c == '*' || c == '+' || c == '?' || c == '|' || c == '^' || c == '$')
            continue;
        atom = 1;
        if (c == '\\') {
            (*i)++;
        } else if (c == '[') {
            if (*i < len && p[*i] == '^')
                (*i)++;
            if (*i < len && p[*i] == ']')
                (*i)++;
            while (*i < len && p[*i] != ']') {
                if (p[*i] == '[' && *i + 1 < len && is_class_opener(p[*i + 1]))
                    *i = skip_bracket_class(p, len, *i);
                (*i)++;
            }
            (*i)++;
        } else if (c == '(' && depth < 64) {
            atom = pattern_weight(p, len, i, depth + 1);
            (*i)++; /* its ')' */
        }
        total += atom;
    }
    return total;
}

/* True when a quantifier (* + ? or {m,n}) directly follows another, outside brackets. */
static bool stacked_quantifier(const char *p, size_t len)
{
    bool in_bracket = false, after_quantifier = false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (in_bracket) {
            if (c == ']')
                in_bracket = false;
            continue;
        }
        if (c == '\\') {
            i++;
            after_quantifier = false;
            continue;
        }
        bool quantifier = c == '*' || c == '+' || c == '?' || c == '{';
        if (quantifier && after_quantifier)
            return true;
        if (c == '{') {
            while (i < len && p[i] != '}')
                i++;
        }
        if (c == '[') {
            in_bracket = true;
            if (i + 1 < len && p[i + 1] == '^')
                i++;
            if (i + 1 < len && p[i + 1] == ']')
                i++;
        }
        after_quantifier = quantifier;
    }
    return false;
}

static int compile_pattern(compile_ctx *cc, schema_t *node, const json_t *schema)
{
    const json_t *v = json_object_get(schema, "pattern");
    char problem_buf[192], regex_error[128];

    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return compile_error(cc, "pattern", "must be a string");
    const char *text = json_string_value(v);
    size_t len = json_string_length(v);
    if (strlen(text) != len)
        return compile_error(cc, "pattern", "must not contain NUL characters");
    const char *problem = pattern_dialect_problem(text, len, problem_buf, sizeof problem_buf);
    if (problem != NULL)
        return compile_error(cc, "pattern", "%s", problem);
    /* glibc's regcomp copies the tree for every repetition: stacked quantifiers ("a+++",
     * undefined in POSIX ERE anyway) or a huge pattern can make it take gigabytes (found by
     * fuzz_conv_schema). Bound both before compiling. */
    if (len > PATTERN_MAX)
        return compile_error(cc, "pattern", "longer than %d bytes", PATTERN_MAX);
    if (stacked_quantifier(text, len))
        return compile_error(cc, "pattern", "a quantifier follows a quantifier (as in \"a++\"), "
                                            "which POSIX extended regular expressions leave "
                                            "undefined");
    size_t at = 0;
    if (pattern_weight(text, len, &at, 0) > PATTERN_WEIGHT_MAX)
        return compile_error(cc, "pattern",
                             "its counted repetitions expand to more than %d "
                             "atoms (as \"(a{1,100}){1,100}\" does); simplify it",
                             PATTERN_WEIGHT_MAX);
    int rc = regcomp(&node->pattern, text, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        regerror(rc, &node->pattern, regex_error, sizeof regex_error);
        return compile_error(cc, "pattern", "invalid regular expression (%s)", regex_error);
    }
    node->pattern_text = strdup(text);
    if (node->pattern_text == NULL) {
        regfree(&node->pattern);
        return compile_error(cc, "pattern", "out of memory");
    }
    return 0;
}

static int compile_items(compile_ctx *cc, schema_t *node, const json_t *schema)
{
    const json_t *items = json_object_get(schema, "items");

    if (items == NULL)
        return 0;
    if (!json_is_object(items) && !json_is_boolean(items))
        return compile_error(cc, "items", "must be a schema (an object or a boolean)");
    node->items = compile_child(cc, "items", NULL, 0, items);
    return node->items != NULL ? 0 : -1;
}

static int add_property(compile_ctx *cc, schema_t *node, const char *name, size_t name_len,
                        const json_t *schema)
{
    property_t *p = &node->properties[node->property_count];

    p->schema = compile_child(cc, "properties", name, name_len, schema);
    if (p->schema == NULL)
        return -1;
    p->name = malloc(name_len + 1);
    if (p->name == NULL ||
        json_object_setn_new(node->property_names, name, name_len, json_null()) != 0) {
        free(p->name);
        schema_free(p->schema);
        return compile_error(cc, "properties", "out of memory");
    }
    memcpy(p->name, name, name_len + 1);
    p->name_len = name_len;
    node->property_count++;
    return 0;
}

static int compile_properties(compile_ctx *cc, schema_t *node, const json_t *schema)
{
    const json_t *properties = json_object_get(schema, "properties");
    const char *name;
    size_t name_len;
    json_t *sub;

    if (properties == NULL)
        return 0;
    if (!json_is_object(properties))
        return compile_error(cc, "properties", "must be an object");
    node->properties = calloc(json_object_size(properties) + 1, sizeof *node->properties);
    node->property_names = json_object();
    if (node->properties == NULL || node->property_names == NULL)
        return compile_error(cc, "properties", "out of memory");
    json_object_keylen_foreach((json_t *)properties, name, name_len, sub)
    {
        if (add_property(cc, node, name, name_len, sub) != 0)
            return -1;
    }
    return 0;
}

static int compile_required(compile_ctx *cc, schema_t *node, const json_t *schema)
{
    const json_t *required = json_object_get(schema, "required");
    size_t index;
    json_t *name;

    if (required == NULL)
        return 0;
    if (!json_is_array(required))
        return compile_error(cc, "required", "must be an array of strings");
    json_array_foreach(required, index, name)
    {
        if (!json_is_string(name))
            return compile_error(cc, "required", "must be an array of strings");
    }
    node->required = json_deep_copy(required);
    return node->required != NULL ? 0 : compile_error(cc, "required", "out of memory");
}

static int compile_additional(compile_ctx *cc, schema_t *node, const json_t *schema)
{
    const json_t *v = json_object_get(schema, "additionalProperties");

    if (v == NULL || json_is_true(v))
        return 0;
    if (json_is_false(v)) {
        node->additional = ADDITIONAL_NONE;
        return 0;
    }
    if (!json_is_object(v))
        return compile_error(cc, "additionalProperties", "must be a boolean or a schema object");
    node->additional_schema = compile_child(cc, "additionalProperties", NULL, 0, v);
    if (node->additional_schema == NULL)
        return -1;
    node->additional = ADDITIONAL_SCHEMA;
    return 0;
}

static schema_t *new_node(void)
{
    schema_t *node = calloc(1, sizeof *node);

    if (node != NULL)
        node->min_length = node->max_length = node->min_items = node->max_items = -1;
    return node;
}

/* Validation keywords this validator does not implement. Ignoring them would let through
 * arguments the author meant to refuse, so a schema using one is refused at load. */
static int refuse_unsupported(compile_ctx *cc, const json_t *schema)
{
    static const char *const unsupported[] = {
        "$dynamicRef", "$recursiveRef",
        "patternProperties", "propertyNames", "minProperties", "maxProperties", "uniqueItems",
        "multipleOf", "prefixItems", "additionalItems", "contains", "minContains",
        "maxContains", "dependentRequired", "dependentSchemas", "dependencies",
        "unevaluatedProperties", "unevaluatedItems", NULL};
    for (int i = 0; unsupported[i]; i++)
        if (json_object_get(schema, unsupported[i]))
            return compile_error(cc, unsupported[i],
                                 "keyword not supported by luamcp's validator (supported: type, "
                                 "enum, const, minimum, maximum, exclusiveMinimum, "
                                 "exclusiveMaximum, minLength, maxLength, pattern, items, "
                                 "minItems, maxItems, required, properties, "
                                 "additionalProperties, $ref, allOf, anyOf, oneOf, not, "
                                 "if/then/else); check it in the handler instead");
    return 0;
}

/* The target of a local $ref: "#", "#/json/pointer" (~0 ~1 escapes) or "#anchor" (an
 * "$anchor" anywhere under $defs or definitions). */
static const json_t *resolve_ref(const json_t *root, const char *ref)
{
    if (ref[0] != '#')
        return NULL;
    if (ref[1] == '\0')
        return root;
    if (ref[1] != '/') {
        const char *defs_keys[] = {"$defs", "definitions"};
        for (int k = 0; k < 2; k++) {
            const char *name;
            json_t *def;
            json_object_foreach(json_object_get(root, defs_keys[k]), name, def)
            {
                const char *anchor = json_string_value(json_object_get(def, "$anchor"));
                if (anchor && strcmp(anchor, ref + 1) == 0)
                    return def;
            }
        }
        return NULL;
    }
    const json_t *at = root;
    const char *p = ref + 2;
    while (at) {
        char token[256];
        size_t n = 0;
        for (; *p && *p != '/'; p++) {
            char c = *p;
            if (c == '~' && (p[1] == '0' || p[1] == '1'))
                c = *++p == '0' ? '~' : '/';
            if (n + 1 >= sizeof token)
                return NULL;
            token[n++] = c;
        }
        token[n] = '\0';
        if (json_is_object(at)) {
            at = json_object_get(at, token);
        } else if (json_is_array(at)) {
            char *end;
            unsigned long i = strtoul(token, &end, 10);
            at = *end || !n ? NULL : json_array_get(at, i);
        } else {
            return NULL;
        }
        if (!*p)
            return at;
        p++;
    }
    return NULL;
}

static int compile_list(compile_ctx *cc, const json_t *schema, const char *keyword,
                        schema_t ***out, size_t *n)
{
    const json_t *list = json_object_get(schema, keyword);
    if (!list)
        return 0;
    if (!json_is_array(list) || json_array_size(list) == 0)
        return compile_error(cc, keyword, "must be a non-empty array of schemas");
    *out = calloc(json_array_size(list), sizeof **out);
    if (!*out)
        return compile_error(cc, keyword, "out of memory");
    size_t i;
    json_t *sub;
    json_array_foreach(list, i, sub)
    {
        char at[32];
        snprintf(at, sizeof at, "%zu", i);
        int saved = cc->segments;
        compile_push(cc, keyword, strlen(keyword), false);
        schema_t *child = compile_child(cc, at, NULL, 0, sub);
        cc->segments = saved;
        if (!child)
            return -1;
        (*out)[(*n)++] = child;
    }
    return 0;
}

static int compile_one(compile_ctx *cc, const json_t *schema, const char *keyword,
                       schema_t **out)
{
    const json_t *sub = json_object_get(schema, keyword);
    if (!sub)
        return 0;
    *out = compile_child(cc, keyword, NULL, 0, sub);
    return *out ? 0 : -1;
}

static int compile_applicators(compile_ctx *cc, schema_t *node, const json_t *schema)
{
    const json_t *ref = json_object_get(schema, "$ref");
    if (ref) {
        const json_t *target = json_is_string(ref) ? resolve_ref(cc->root, json_string_value(ref))
                                                   : NULL;
        if (!target)
            return compile_error(cc, "$ref", "must be a local reference (\"#/$defs/name\" or "
                                             "\"#anchor\") to a schema in this document");
        /* compiled in place: a reference that leads back to itself meets the depth limit */
        node->ref = compile_child(cc, "$ref", NULL, 0, target);
        if (!node->ref)
            return -1;
    }
    const char *defs_keys[] = {"$defs", "definitions"};
    for (int k = 0; k < 2; k++) { /* checked once, so an unused definition is still valid */
        const json_t *defs = json_object_get(schema, defs_keys[k]);
        if (defs && !json_is_object(defs))
            return compile_error(cc, defs_keys[k], "must be an object of schemas");
        const char *name;
        size_t name_len;
        json_t *def;
        json_object_keylen_foreach((json_t *)defs, name, name_len, def)
        {
            schema_t *check = compile_child(cc, defs_keys[k], name, name_len, def);
            if (!check)
                return -1;
            schema_free(check);
        }
    }
    /* then and else without if are ignored, as the specification says */
    return compile_list(cc, schema, "allOf", &node->all_of, &node->n_all_of) ||
                   compile_list(cc, schema, "anyOf", &node->any_of, &node->n_any_of) ||
                   compile_list(cc, schema, "oneOf", &node->one_of, &node->n_one_of) ||
                   compile_one(cc, schema, "not", &node->not_schema) ||
                   (json_object_get(schema, "if") &&
                    (compile_one(cc, schema, "if", &node->if_schema) ||
                     compile_one(cc, schema, "then", &node->then_schema) ||
                     compile_one(cc, schema, "else", &node->else_schema)))
               ? -1
               : 0;
}

#define SCHEMA_MAX_NODES 10000

static schema_t *compile_node(compile_ctx *cc, const json_t *schema)
{
    if (++cc->nodes > SCHEMA_MAX_NODES) {
        compile_error(cc, NULL, "schema too large (more than %d subschemas once each $ref is "
                      "expanded)", SCHEMA_MAX_NODES);
        return NULL;
    }
    if (cc->depth > SCHEMA_MAX_DEPTH) {
        compile_error(cc, NULL, "schema nested deeper than %d levels", SCHEMA_MAX_DEPTH);
        return NULL;
    }
    if (!json_is_object(schema) && !json_is_boolean(schema)) {
        compile_error(cc, NULL, "must be an object or a boolean");
        return NULL;
    }
    schema_t *node = new_node();
    if (node == NULL) {
        compile_error(cc, NULL, "out of memory");
        return NULL;
    }
    if (json_is_boolean(schema)) {
        node->reject_all = json_is_false(schema);
        return node;
    }
    if (refuse_unsupported(cc, schema) != 0 || compile_type(cc, node, schema) != 0 ||
        compile_enum_const(cc, node, schema) != 0 ||
        compile_bound(cc, schema, "minimum", &node->minimum) != 0 ||
        compile_bound(cc, schema, "maximum", &node->maximum) != 0 ||
        compile_bound(cc, schema, "exclusiveMinimum", &node->exclusive_minimum) != 0 ||
        compile_bound(cc, schema, "exclusiveMaximum", &node->exclusive_maximum) != 0 ||
        compile_count(cc, schema, "minLength", &node->min_length) != 0 ||
        compile_count(cc, schema, "maxLength", &node->max_length) != 0 ||
        compile_pattern(cc, node, schema) != 0 || compile_items(cc, node, schema) != 0 ||
        compile_count(cc, schema, "minItems", &node->min_items) != 0 ||
        compile_count(cc, schema, "maxItems", &node->max_items) != 0 ||
        compile_required(cc, node, schema) != 0 || compile_properties(cc, node, schema) != 0 ||
        compile_additional(cc, node, schema) != 0 ||
        compile_applicators(cc, node, schema) != 0) {
        schema_free(node);
        return NULL;
    }
    return node;
}

schema_t *schema_compile(const json_t *schema, char **err)
{
    compile_ctx cc = {.depth = 1, .err = err, .root = schema};

    if (err != NULL)
        *err = NULL;
    return compile_node(&cc, schema);
}

void schema_free(schema_t *s)
{
    if (s == NULL)
        return;
    json_decref(s->enum_values);
    free(s->enum_text);
    json_decref(s->const_value);
    free(s->const_text);
    if (s->pattern_text != NULL)
        regfree(&s->pattern);
    free(s->pattern_text);
    schema_free(s->items);
    for (size_t i = 0; i < s->property_count; i++) {
        free(s->properties[i].name);
        schema_free(s->properties[i].schema);
    }
    free(s->properties);
    json_decref(s->property_names);
    json_decref(s->required);
    schema_free(s->additional_schema);
    schema_free(s->ref);
    for (size_t i = 0; i < s->n_all_of; i++)
        schema_free(s->all_of[i]);
    for (size_t i = 0; i < s->n_any_of; i++)
        schema_free(s->any_of[i]);
    for (size_t i = 0; i < s->n_one_of; i++)
        schema_free(s->one_of[i]);
    free(s->all_of);
    free(s->any_of);
    free(s->one_of);
    schema_free(s->not_schema);
    schema_free(s->if_schema);
    schema_free(s->then_schema);
    schema_free(s->else_schema);
    free(s);
}

/* ---- validating ------------------------------------------------------------------------ */

typedef struct {
    text_path_segment path[SCHEMA_MAX_DEPTH]; /* keys borrowed from the instance */
    int depth;
    char *buf;
    size_t buflen;
} validate_ctx;

static int validate_node(validate_ctx *vc, const schema_t *node, const json_t *instance);

/* Writes "$.a[2]: message" into the caller's buffer (truncated, still valid UTF-8) and
 * returns -1. */
static int invalid(validate_ctx *vc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int invalid(validate_ctx *vc, const char *fmt, ...)
{
    char path[PATH_TEXT_MAX];
    va_list ap;

    if (vc->buf == NULL || vc->buflen == 0)
        return -1;
    text_json_path(path, sizeof path, vc->path, vc->depth);
    int n = snprintf(vc->buf, vc->buflen, "%s: ", path);
    if (n >= 0 && (size_t)n < vc->buflen) {
        va_start(ap, fmt);
        vsnprintf(vc->buf + n, vc->buflen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    utf8_trim_partial(vc->buf);
    return -1;
}

/* Validates a child value at key (or index, when key is NULL). */
static int validate_child(validate_ctx *vc, const schema_t *node, const json_t *value,
                          const char *key, size_t key_len, size_t index)
{
    assert(vc->depth < SCHEMA_MAX_DEPTH); /* one segment per schema level below the root */
    vc->path[vc->depth++] = (text_path_segment){key, key_len, index};
    int rc = validate_node(vc, node, value);
    vc->depth--;
    return rc;
}

static unsigned instance_types(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return TYPE_OBJECT;
    case JSON_ARRAY:
        return TYPE_ARRAY;
    case JSON_STRING:
        return TYPE_STRING;
    case JSON_INTEGER:
        return TYPE_INTEGER | TYPE_NUMBER;
    case JSON_REAL: {
        double d = json_real_value(v);
        return TYPE_NUMBER | (d == trunc(d) ? TYPE_INTEGER : 0);
    }
    case JSON_TRUE:
    case JSON_FALSE:
        return TYPE_BOOLEAN;
    case JSON_NULL:
        return TYPE_NULL;
    }
    return 0;
}

/* The name a message uses for the instance's type: reals are "number". */
static const char *instance_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

static int check_type(validate_ctx *vc, const schema_t *node, const json_t *instance)
{
    char expected[96] = "";
    size_t count = 0, total = 0;

    if (node->types == 0 || (node->types & instance_types(instance)) != 0)
        return 0;
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        total += (node->types & type_names[i].bit) != 0;
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
        if (!(node->types & type_names[i].bit))
            continue;
        count++;
        if (count > 1)
            strcat(expected, count == total ? " or " : ", ");
        strcat(expected, type_names[i].name); /* 7 names fit in 96 bytes */
    }
    return invalid(vc, "expected %s, got %s", expected, instance_type_name(instance));
}

static bool enum_contains(const json_t *allowed, const json_t *instance)
{
    size_t index;
    json_t *candidate;

    json_array_foreach(allowed, index, candidate)
    {
        if (values_equal(candidate, instance))
            return true;
    }
    return false;
}

static int check_enum_const(validate_ctx *vc, const schema_t *node, const json_t *instance)
{
    if (node->enum_values != NULL && !enum_contains(node->enum_values, instance))
        return invalid(vc, "must be one of %s", node->enum_text);
    if (node->const_value != NULL && !values_equal(node->const_value, instance))
        return invalid(vc, "must be equal to %s", node->const_text);
    return 0;
}

/* fails_when is the comparison result (value vs bound) that violates the bound; exclusive
 * bounds are violated by equality too. */
static int check_bound(validate_ctx *vc, const number_t *value, const bound_t *bound,
                       int fails_when, bool exclusive, const char *op)
{
    char shown[40];

    if (!bound->present)
        return 0;
    int cmp = compare_numbers(value, &bound->value);
    if (cmp != fails_when && !(exclusive && cmp == 0))
        return 0;
    format_number(&bound->value, shown, sizeof shown);
    return invalid(vc, "must be %s %s", op, shown);
}

static int check_number(validate_ctx *vc, const schema_t *node, const json_t *instance)
{
    number_t value = number_of(instance);

    if (check_bound(vc, &value, &node->minimum, -1, false, ">=") != 0 ||
        check_bound(vc, &value, &node->maximum, 1, false, "<=") != 0 ||
        check_bound(vc, &value, &node->exclusive_minimum, -1, true, ">") != 0 ||
        check_bound(vc, &value, &node->exclusive_maximum, 1, true, "<") != 0)
        return -1;
    return 0;
}

/* Matches the whole string, embedded NULs included where the platform allows. */
static bool pattern_matches(const regex_t *re, const char *s, size_t len)
{
#ifdef REG_STARTEND
    regmatch_t range = {.rm_so = 0, .rm_eo = (regoff_t)len};
    if ((size_t)range.rm_eo != len)
        return false; /* too long to describe to regexec */
    return regexec(re, s, 1, &range, REG_STARTEND) == 0;
#else
    /* regexec would stop at an embedded NUL and judge a prefix; refuse instead */
    return strlen(s) == len && regexec(re, s, 0, NULL, 0) == 0;
#endif
}

static int check_string(validate_ctx *vc, const schema_t *node, const json_t *instance)
{
    const char *s = json_string_value(instance);
    size_t len = json_string_length(instance);
    unsigned long long code_points = 0;

    if (node->min_length >= 0 || node->max_length >= 0)
        for (size_t i = 0; i < len; i++) /* count lead bytes, i.e. skip 10xxxxxx */
            code_points += ((unsigned char)s[i] & 0xC0) != 0x80;
    if (node->min_length >= 0 && code_points < (unsigned long long)node->min_length)
        return invalid(vc, "must be at least %" JSON_INTEGER_FORMAT " character%s long",
                       node->min_length, node->min_length == 1 ? "" : "s");
    if (node->max_length >= 0 && code_points > (unsigned long long)node->max_length)
        return invalid(vc, "must be at most %" JSON_INTEGER_FORMAT " character%s long",
                       node->max_length, node->max_length == 1 ? "" : "s");
    if (node->pattern_text != NULL && !pattern_matches(&node->pattern, s, len))
        return invalid(vc, "does not match pattern \"%s\"", node->pattern_text);
    return 0;
}

static int check_array(validate_ctx *vc, const schema_t *node, const json_t *instance)
{
    size_t n = json_array_size(instance);

    if (node->min_items >= 0 && n < (unsigned long long)node->min_items)
        return invalid(vc, "must have at least %" JSON_INTEGER_FORMAT " item%s",
                       node->min_items, node->min_items == 1 ? "" : "s");
    if (node->max_items >= 0 && n > (unsigned long long)node->max_items)
        return invalid(vc, "must have at most %" JSON_INTEGER_FORMAT " item%s",
                       node->max_items, node->max_items == 1 ? "" : "s");
    if (node->items != NULL)
        for (size_t i = 0; i < n; i++)
            if (validate_child(vc, node->items, json_array_get(instance, i), NULL, 0, i) != 0)
                return -1;
    return 0;
}

static int check_object(validate_ctx *vc, const schema_t *node, const json_t *instance)
{
    char shown[TEXT_QUOTED_SIZE];
    size_t index;
    json_t *name, *value;
    const char *key;
    size_t key_len;

    json_array_foreach(node->required, index, name)
    {
        const char *s = json_string_value(name);
        size_t len = json_string_length(name);
        if (json_object_getn(instance, s, len) == NULL)
            return invalid(vc, "missing required property %s", quote(shown, sizeof shown, s, len));
    }
    for (size_t i = 0; i < node->property_count; i++) {
        const property_t *p = &node->properties[i];
        value = json_object_getn(instance, p->name, p->name_len);
        if (value != NULL && validate_child(vc, p->schema, value, p->name, p->name_len, 0) != 0)
            return -1;
    }
    if (node->additional == ADDITIONAL_ANY)
        return 0;
    json_object_keylen_foreach((json_t *)instance, key, key_len, value)
    {
        if (node->property_names != NULL && json_object_getn(node->property_names, key, key_len))
            continue;
        if (node->additional == ADDITIONAL_NONE)
            return invalid(vc, "unexpected property %s", quote(shown, sizeof shown, key, key_len));
        if (validate_child(vc, node->additional_schema, value, key, key_len, 0) != 0)
            return -1;
    }
    return 0;
}

/* Whether instance matches s, without a message. */
static bool matches(validate_ctx *vc, const schema_t *s, const json_t *instance)
{
    char *buf = vc->buf;
    vc->buf = NULL; /* invalid() writes nothing */
    int depth = vc->depth;
    int rc = validate_node(vc, s, instance);
    vc->depth = depth;
    vc->buf = buf;
    return rc == 0;
}

static int check_applicators(validate_ctx *vc, const schema_t *node, const json_t *instance)
{
    if (node->ref && validate_node(vc, node->ref, instance) != 0)
        return -1;
    for (size_t i = 0; i < node->n_all_of; i++)
        if (validate_node(vc, node->all_of[i], instance) != 0)
            return -1;
    if (node->n_any_of) {
        bool any = false;
        for (size_t i = 0; i < node->n_any_of && !any; i++)
            any = matches(vc, node->any_of[i], instance);
        if (!any)
            return invalid(vc, "must match at least one of the anyOf schemas");
    }
    if (node->n_one_of) {
        size_t hits = 0;
        for (size_t i = 0; i < node->n_one_of; i++)
            hits += matches(vc, node->one_of[i], instance);
        if (hits == 0)
            return invalid(vc, "must match one of the oneOf schemas");
        if (hits > 1)
            return invalid(vc, "must match exactly one of the oneOf schemas, matches %zu", hits);
    }
    if (node->not_schema && matches(vc, node->not_schema, instance))
        return invalid(vc, "must not match the schema under \"not\"");
    if (node->if_schema) {
        const schema_t *branch = matches(vc, node->if_schema, instance) ? node->then_schema
                                                                         : node->else_schema;
        if (branch && validate_node(vc, branch, instance) != 0)
            return -1;
    }
    return 0;
}

static int validate_node(validate_ctx *vc, const schema_t *node, const json_t *instance)
{
    if (node->reject_all)
        return invalid(vc, "no value is allowed here");
    if (check_type(vc, node, instance) != 0 || check_enum_const(vc, node, instance) != 0 ||
        check_applicators(vc, node, instance) != 0)
        return -1;
    switch (json_typeof(instance)) {
    case JSON_INTEGER:
    case JSON_REAL:
        return check_number(vc, node, instance);
    case JSON_STRING:
        return check_string(vc, node, instance);
    case JSON_ARRAY:
        return check_array(vc, node, instance);
    case JSON_OBJECT:
        return check_object(vc, node, instance);
    default:
        return 0;
    }
}

int schema_validate(const schema_t *s, const json_t *instance, char *buf, size_t buflen)
{
    validate_ctx vc = {.buf = buf, .buflen = buflen};

    assert(s != NULL && instance != NULL);
    if (buf != NULL && buflen > 0)
        buf[0] = '\0';
    return validate_node(&vc, s, instance);
}
