/* schema — a compiled subset of JSON Schema (2020-12 keywords) for tool input/output.
 *
 * Supported: type (string or array of types; "integer" means a JSON integer or a real with no
 * fractional part), required, properties, additionalProperties (bool or schema), enum, const,
 * minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength (in Unicode code
 * points), pattern (POSIX extended regex, unanchored as JSON Schema says), items (schema),
 * minItems, maxItems, and nesting of all of these. Validation keywords outside this set (anyOf,
 * $ref, uniqueItems, ...) are refused at compile: ignoring them would accept what the author
 * meant to refuse. Annotations ("description", "title", "default", "$schema", "format", ...)
 * are accepted and ignored.
 */
#ifndef LUAMCP_SCHEMA_H
#define LUAMCP_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

typedef struct schema schema_t;

/* Compiles a schema (borrowed; the compiled form keeps no reference to it). Returns NULL
 * with *err set (caller frees) when a keyword has the wrong shape, e.g.
 * "properties.n.minimum: must be a number", or a pattern does not compile. */
schema_t *schema_compile(const json_t *schema, char **err);

/* 0 when instance (borrowed) is valid. -1 when not, with a message in buf naming the path of
 * the first violation in JSON-pointer-ish form, e.g. "$.items[2].name: expected string, got
 * integer" or "$: missing required property \"text\"". */
int schema_validate(const schema_t *s, const json_t *instance, char *buf, size_t buflen);

void schema_free(schema_t *s);

#endif
