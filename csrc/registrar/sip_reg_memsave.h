/* The registrar's fast path: the flow of sip_reg_plan.h (steps A to D) on
 * the C memory store (sip_memstore.h), with no hook between its steps, for
 * the common REGISTER (Path, `*` and a key given twice included): no
 * +sip.instance or reg-id; every stored binding of the AOR a plain one (no
 * instance or GRUU). Everything is
 * decided first (sip_reg_mem_plan), then written in one all-or-nothing
 * update (sip_reg_mem_commit): a plan that is not committed leaves no
 * trace. The caller (csrc/lua/registrar.c) sends the answer. */
#ifndef SIP_REG_MEMSAVE_H
#define SIP_REG_MEMSAVE_H

#include "sip_binding.h"
#include "sip_memstore.h"
#include "sip_reg_plan.h"

#define SIP_REG_MEM_CHANGES 16 /* Contacts in one request */
#define SIP_REG_MEM_CURRENT 64 /* stored bindings of one AOR */

/* A stored binding as the fast path reads it. */
typedef struct sip_reg_stored {
  sip_breader rd;
  int live;
  sip_str call_id, contact, params;
  double cseq; /* -1 when none */
  double q, updated;
  int64_t expires; /* integral (checked) */
  int listed;      /* live and unchanged: in the 200 */
  int remove;      /* live and removed (step C) */
} sip_reg_stored;

typedef struct sip_reg_mem {
  sip_reg_req rq;
  sip_str user_agent;
  sip_reg_change ch[SIP_REG_MEM_CHANGES];
  size_t nch;
  int star; /* "Contact: *": every binding removed */
  sip_reg_stored cur[SIP_REG_MEM_CURRENT];
  size_t ncur;
  sip_str rec[SIP_REG_MEM_CHANGES]; /* the record of each save; absent
                                       for a removal */
  sip_str list[SIP_REG_MEM_CURRENT + SIP_REG_MEM_CHANGES]; /* the records
                                       the 200 lists, in its order */
  size_t nlist;
  sip_str headers; /* the 200's header lines */
  sip_memstore_op ops[SIP_REG_MEM_CHANGES + SIP_REG_MEM_CURRENT]; /* the
                                       saves, then the removals */
  size_t nops;
  char text[8192];    /* AOR, keys, kept parameters */
  char recmem[16384]; /* copies of the stored records: the store may
                         change between plan and commit */
  char newmem[16384]; /* the new records */
  char hdrmem[8192];  /* the 200's header lines */
} sip_reg_mem;

/* Plan a REGISTER: received ("udp:192.0.2.1:5060", the source) and socket
 * (the local address of a UDP request, absent otherwise: conn_id is stored
 * instead) go into the records with the User-Agent; now: seconds since the
 * epoch (os.time), t: the store's clock. Returns 1 (planned: f->headers and
 * f->list for the 200, f->ops for the commit), 2 (*ans decided by a step:
 * the answer to send, nothing to write), 0 (not a case it takes: the
 * general flow runs) or the conf's serves callback's negative code. */
int sip_reg_mem_plan(sip_reg_mem *f, sip_msg *m, const sip_reg_conf *c,
                     const sip_memstore *ms, sip_str received, sip_str socket,
                     int64_t conn_id, int64_t now, double t,
                     sip_reg_answer *ans);

/* The one write of a plan: 0, or sip_memstore_update's error (the store
 * unchanged). */
int sip_reg_mem_commit(const sip_reg_mem *f, sip_memstore *ms);

#endif
