/* Helpers over the sip_tree callbacks, shared by the C layers that read or
 * make a Lua API's table shape (dns, proxy, sdp). */
#include "sip_tree.h"

void sip_tree_put_counters(const sip_tree_emitter *e, const sip_tree_counter *c,
                           size_t n) {
  for (size_t i = 0; i < n; i++) {
    sip_tree_val v = {.kind = SIP_TREE_UINT, .n = c[i].v};
    e->put(e->ud, c[i].name, &v);
  }
}
