/* avail — tools, prompts and resources switched off at run time (mcp.disable, mcp.enable).
 *
 * A switched-off entry is not listed and is answered exactly like one that does not exist.
 * The switches are the process's, not a bundle's: every worker sees a flip at once, and they
 * outlive reloads (an entry keeps its switch across edits of its script). Any thread. */
#ifndef LUAMCP_AVAIL_H
#define LUAMCP_AVAIL_H

#include <jansson.h>
#include <stdbool.h>

typedef enum avail_kind { AVAIL_TOOL, AVAIL_PROMPT, AVAIL_RESOURCE, AVAIL_KINDS } avail_kind_t;

#define AVAIL_MAX 1024       /* entries switched off at once */
#define AVAIL_NAME_MAX 2048  /* bytes of a name (a resource's URI or URI template) */

/* Whether the entry named `name` of that kind is on (everything is, until switched off). */
bool avail_on(avail_kind_t kind, const char *name);

/* Switches an entry on or off: 1 when that changed something (the hook ran), 0 when it was
 * already so, -1 when AVAIL_MAX entries are already off. */
int avail_set(avail_kind_t kind, const char *name, bool on);

/* Called after every change, with the kind whose lists changed (the server sets it to send
 * list_changed; unset in mcp.so and `luamcp check`). */
void avail_set_hook(void (*changed)(avail_kind_t kind));

/* What is switched off: { "tool": [names], "prompt": [...], "resource": [...] } (kinds with
 * nothing off are left out). A new object. */
json_t *avail_status(void);

/* "tool", "prompt", "resource" → the kind, or -1. */
int avail_kind_of(const char *word);

#endif
