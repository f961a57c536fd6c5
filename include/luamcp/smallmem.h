/* smallmem — the small blocks a request makes and drops by the dozen (jansson's values, Lua's
 * tables and strings), kept on per-thread free lists instead of going back to malloc.
 *
 * glibc keeps only seven freed blocks of a size per thread; a request frees a dozen or more of
 * the same size at once, and the rest go through the arena's atomic free lists. These lists
 * are the thread's own, longer and without atomics. Every block is an ordinary malloc block:
 * free() and realloc() take it, and a block may be dropped on another thread than the one
 * that made it. A thread's lists are returned to malloc when it exits.
 *
 * A block freed twice on the same thread aborts, as glibc's own check would have; one freed
 * twice on two threads is not caught. Under AddressSanitizer, and under valgrind when the
 * build found valgrind's header, the lists are off (plain malloc and free), so a use after
 * free or a double free is still reported; MALLOC_PERTURB_ does not see inside a recycled
 * block. */
#ifndef LUAMCP_SMALLMEM_H
#define LUAMCP_SMALLMEM_H

#include <stdbool.h>
#include <stddef.h>

/* Whether the lists are in use (not under ASan or valgrind). */
bool smallmem_on(void);
void *smallmem_alloc(size_t n);
void smallmem_free(void *p);
/* Blocks on the calling thread's lists (for tests; 0 with the lists off). */
size_t smallmem_held(void);

#endif
