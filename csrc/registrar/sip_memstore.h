/* The memory location store: address-of-record -> its bindings, each the
 * encoded record of sip_binding.h (the bytes the SQLite and Redis backends
 * store too), in C memory outside any garbage collector (it backs
 * lua/luasip/location/memory.lua and the registrar's fast path).
 *
 * - A hash table of AORs; each AOR holds an array of records (insertion
 *   order; a save with a stored key replaces that record in place).
 * - Expiry: one min-heap of (time, AOR) items and ONE uv timer, unref'd (it
 *   keeps no loop alive), armed for the earliest item. An AOR has one item
 *   pending for its earliest expiry (a save that expires sooner adds an
 *   earlier one; a later item left behind is skipped when it comes). A
 *   timer run takes at most SIP_MEMSTORE_BATCH due items, drops their
 *   expired records, then re-arms at once (1 ms) when more are due, so the
 *   loop keeps serving. Each dropped record goes to the expire callback
 *   once the structure is consistent again: the callback may save, remove
 *   or close the store.
 * - Lookups skip expired records (time <= now), so a record is never
 *   returned after its expiry while the timer catches up; the count
 *   includes them until the timer drops them.
 *
 * The store owns every byte it holds (copies of the records) and frees
 * them on close. Errors are negative codes of sip_error.h. */
#ifndef SIP_MEMSTORE_H
#define SIP_MEMSTORE_H

#include <stddef.h>
#include <uv.h>

#include "sip_types.h"

#define SIP_MEMSTORE_BATCH 20000

typedef struct sip_memstore sip_memstore;

/* A record expired: aor and blob are valid during the call only. */
typedef void (*sip_memstore_expire_fn)(void *ud, sip_str aor, sip_str blob);
/* The clock records are compared with: seconds since the epoch. */
typedef double (*sip_memstore_clock_fn)(void *ud);

/* One change of sip_memstore_update: blob.p set: insert or replace the
 * record (its key and expiry are read from its header); blob.p NULL: remove
 * the record with this key. */
typedef struct sip_memstore_op {
  sip_str blob;
  sip_str key;
} sip_memstore_op;

/* A new empty store whose timer runs on loop. 0 and *out, or SIP_ENOMEM or
 * a libuv error. */
int sip_memstore_new(uv_loop_t *loop, sip_memstore **out);
/* Drop everything, stop the timer, free the store (the timer handle is
 * freed by its close callback: the loop must run once more). Called from
 * the expire callback, it takes effect when the callback returns, and no
 * further callback runs. */
void sip_memstore_close(sip_memstore *s);

void sip_memstore_on_expire(sip_memstore *s, sip_memstore_expire_fn fn,
                            void *ud);
/* Default: gettimeofday. For tests; setting it re-arms the timer. */
void sip_memstore_set_clock(sip_memstore *s, sip_memstore_clock_fn fn,
                            void *ud);
double sip_memstore_now(sip_memstore *s);

/* Apply ops to one AOR in order, all or nothing: 0, SIP_EVALUE (a corrupt
 * record), SIP_EINVAL (an empty key or AOR, a record over 4 GiB) or
 * SIP_ENOMEM (the store unchanged). */
int sip_memstore_update(sip_memstore *s, sip_str aor,
                        const sip_memstore_op *ops, size_t n);
/* sip_memstore_update with one save / one removal. */
int sip_memstore_save(sip_memstore *s, sip_str aor, sip_str blob);
int sip_memstore_remove(sip_memstore *s, sip_str aor, sip_str key);
/* Every record of the AOR goes (no expire callback). */
void sip_memstore_remove_all(sip_memstore *s, sip_str aor);

/* The AOR's records, expired ones included, in store order: the number of
 * them (may exceed max; out gets the first max). The slices stay valid
 * until the store changes. */
size_t sip_memstore_records(const sip_memstore *s, sip_str aor, sip_str *out,
                            size_t max);
/* The same, only the records that expire after now. */
size_t sip_memstore_lookup(const sip_memstore *s, sip_str aor, double now,
                           sip_str *out, size_t max);
/* The number of records (expired ones until the timer drops them). */
size_t sip_memstore_count(const sip_memstore *s);
/* The number of AORs with an entry, and of pending heap items. */
size_t sip_memstore_aors(const sip_memstore *s);
size_t sip_memstore_pending(const sip_memstore *s);

#endif
