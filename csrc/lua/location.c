/* Support of the location service (the luasip.location.* modules): the
 * wall clock binding expiry times are compared with.
 *
 *   core.location_clock() -> seconds since the epoch (float, microseconds)
 */
#include <sys/time.h>

#include "lsip.h"

static int l_clock(lua_State *L) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
  return 1;
}

void sip__lua_open_location(lua_State *L) {
  lua_pushcfunction(L, l_clock);
  lua_setfield(L, -2, "location_clock");
}
