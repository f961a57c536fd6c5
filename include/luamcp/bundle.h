/* bundle — the tools of a scripts directory loaded into one vm: validated, sorted by name,
 * immutable once built. A worker owns one bundle (its vm is single-threaded). */
#ifndef LUAMCP_BUNDLE_H
#define LUAMCP_BUNDLE_H

#include <stddef.h>

#include "luamcp/config.h"
#include "luamcp/tool.h"
#include "luamcp/vm.h"

typedef struct bundle {
    vm_t *vm;
    tool_t *tools; /* sorted by name */
    size_t n_tools;
} bundle_t;

/* Loads every *.lua directly in cfg->scripts_dir (sorted; scripts_dir/lib holds modules for
 * require). Returns NULL with *err listing every problem as "file:line: what" lines. */
bundle_t *bundle_load(const config_t *cfg, char **err);
void bundle_free(bundle_t *b);
const tool_t *bundle_find(const bundle_t *b, const char *name);

#endif
