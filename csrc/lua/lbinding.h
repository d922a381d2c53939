/* The location binding codec for Lua (binding.c): a binding table to
 * its stored record and back, the one copy of the format being
 * csrc/registrar/binding.c.
 *
 *   core.binding_encode(b, saved) -> string
 *   core.binding_decode(s) -> binding table, saved
 *   core.binding_times(s) -> expires, saved
 *   core.binding_key(s) -> key
 *   core.location_clock() -> seconds since the epoch (float, microseconds)
 */
#ifndef LBINDING_H
#define LBINDING_H

#include <stddef.h>

#include "lsip.h"

/* Put the functions above in the module table at the top of the stack
 * (called by sip__lua_open_registrar). */
void sip__lua_open_binding(lua_State *L);

/* Push record p[0..len) as a binding table, then its saved time; -1 (and
 * nothing pushed) when it is corrupt. */
int sip__lua_push_binding(lua_State *L, const char *p, size_t len);

#endif
