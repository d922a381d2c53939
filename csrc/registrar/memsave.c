/* The registrar's fast path on the memory store: see sip_reg_memsave.h. */
#include <math.h>
#include <string.h>

#include "sip_error.h"
#include "sip_reg_memsave.h"

/* What the 200 and step C need from a stored binding. Returns 0, or -1
 * when the general flow must handle this AOR (an instance or GRUU, no q, a
 * fractional expiry, a corrupt record). */
static int read_stored(sip_reg_stored *s, double t) {
  s->cseq = -1;
  s->live = s->rd.expires > t;
  if (!s->live)
    return 0;
  if (s->rd.expires != floor(s->rd.expires) || fabs(s->rd.expires) > 9e15)
    return -1;
  s->expires = (int64_t)s->rd.expires;
  int has_q = 0, has_contact = 0;
  sip_bfield f;
  int rc;
  while ((rc = sip_binding_next(&s->rd, &f)) == 1) {
    int is_str =
        f.type == SIP_BT_STR || f.type == SIP_BT_LSTR || f.type == SIP_BT_KEY;
    int is_num =
        f.type == SIP_BT_I32 || f.type == SIP_BT_I64 || f.type == SIP_BT_DBL;
    double num = f.type == SIP_BT_DBL ? f.d : (double)f.i;
    switch (f.id) {
    case SIP_BF_INSTANCE:
    case SIP_BF_PUB_GRUU:
    case SIP_BF_TEMP_GRUU:
      return -1;
    case SIP_BF_CONTACT:
    case SIP_BF_PARAMS:
    case SIP_BF_CALL_ID:
      if (!is_str)
        return -1;
      *(f.id == SIP_BF_CONTACT  ? &s->contact
        : f.id == SIP_BF_PARAMS ? &s->params
                                : &s->call_id) = f.str;
      has_contact |= f.id == SIP_BF_CONTACT;
      break;
    case SIP_BF_CSEQ:
    case SIP_BF_Q:
    case SIP_BF_UPDATED:
      if (!is_num)
        return -1;
      *(f.id == SIP_BF_CSEQ ? &s->cseq
        : f.id == SIP_BF_Q  ? &s->q
                            : &s->updated) = num;
      has_q |= f.id == SIP_BF_Q;
      break;
    default:
      break;
    }
  }
  return rc < 0 || !has_q || !has_contact ? -1 : 0;
}

/* Steps A and B: 1 to go on, 0, 2, or the callback's code. */
static int plan_request(sip_reg_mem *f, sip_msg *m, const sip_reg_conf *c,
                        sip_obuf *text, sip_reg_answer *ans) {
  int rc = sip_reg_check(m, c, text, &f->rq, ans);
  if (rc != 0)
    return rc < 0 ? (rc == SIP_ENOMEM ? 0 : rc) : 2;
  uint64_t inl[1024 / 8]; /* used only by a Contact whose expires is beyond
                             2^32-1: rare */
  sip_arena a;
  sip_arena_init(&a, inl, sizeof inl);
  const char *start = a.cur;
  sip_reg_contacts cs = {f->ch, 0, SIP_REG_MEM_CHANGES, 0, 0};
  rc = sip_reg_contacts_plan(m, c, &a, text, &cs, ans);
  /* a slice into the arena (a Contact re-read): the general flow */
  int reread = a.cur != start || a.chunks != NULL;
  sip_arena_free(&a);
  if (rc != 0)
    return rc < 0 ? (rc == SIP_ENOMEM ? 0 : rc) : 2;
  if (cs.outbound || reread)
    return 0;
  f->nch = cs.n;
  f->star = cs.star;
  for (size_t k = 0; k < f->nch; k++)
    if (f->ch[k].instance.p)
      return 0;
  if (sip_reg_user_agent(m, &f->user_agent) < 0)
    return 0;
  return 1;
}

/* Step C against the AOR's stored records: 1, 0 or 2. */
static int plan_store(sip_reg_mem *f, const sip_memstore *ms,
                      const sip_reg_conf *c, double t, sip_reg_answer *ans) {
  sip_str recs[SIP_REG_MEM_CURRENT];
  size_t n = sip_memstore_records(ms, f->rq.aor, recs, SIP_REG_MEM_CURRENT);
  if (n > SIP_REG_MEM_CURRENT)
    return 0;
  f->ncur = n;
  size_t used = 0;
  sip_reg_current cur[SIP_REG_MEM_CURRENT];
  size_t map[SIP_REG_MEM_CURRENT], nlive = 0;
  for (size_t i = 0; i < n; i++) {
    sip_reg_stored *s = &f->cur[i];
    memset(s, 0, sizeof *s);
    size_t len = recs[i].len;
    if (len > sizeof f->recmem - used)
      return 0;
    char *p = f->recmem + used;
    memcpy(p, recs[i].p, len);
    used += len;
    if (sip_binding_open(&s->rd, p, len) < 0 || read_stored(s, t) < 0)
      return 0;
    sip_binding_open(&s->rd, p, len); /* rewound: the list reads it */
    if (!s->live)
      continue;
    map[nlive] = i;
    cur[nlive++] = (sip_reg_current){
        s->rd.key, s->call_id, SIP_STR_NULL, s->cseq, 0, 0, 0};
  }
  sip_reg_contacts cs = {f->ch, f->nch, SIP_REG_MEM_CHANGES, f->star, 0};
  if (sip_reg_update(c, f->rq.call_id, f->rq.cseq, &cs, cur, nlive, ans))
    return 2;
  for (size_t j = 0; j < nlive; j++) {
    f->cur[map[j]].listed = cur[j].keep;
    f->cur[map[j]].remove = cur[j].remove;
  }
  for (size_t k = 0; k < f->nch; k++) /* old: an index into f->cur */
    if (f->ch[k].old >= 0)
      f->ch[k].old = (int)map[f->ch[k].old];
  return 1;
}

int sip_reg_mem_plan(sip_reg_mem *f, sip_msg *m, const sip_reg_conf *c,
                     const sip_memstore *ms, sip_str received, sip_str socket,
                     int64_t conn_id, int64_t now, double t,
                     sip_reg_answer *ans) {
  sip_obuf text;
  sip_obuf_init(&text, f->text, sizeof f->text);
  int rc = plan_request(f, m, c, &text, ans);
  if (rc == 1)
    rc = plan_store(f, ms, c, t, ans);
  if (rc != 1)
    return rc;

  /* the new records, and the one update: the saves in the order of the
   * Contacts, then the removals step C decided (`*`, a change to 0), as
   * the general flow writes them (a key given twice ends the same) */
  sip_obuf recs;
  sip_obuf_init(&recs, f->newmem, sizeof f->newmem);
  f->nops = 0;
  for (size_t k = 0; k < f->nch; k++) {
    const sip_reg_change *ch = &f->ch[k];
    f->rec[k] = SIP_STR_NULL;
    if (ch->expires == 0 || ch->superseded)
      continue;
    size_t at = recs.len;
    sip_reg_new nb = {ch,
                      f->rq.aor,
                      f->rq.call_id,
                      f->rq.cseq,
                      c->path ? f->rq.paths : NULL,
                      received,
                      socket,
                      conn_id,
                      f->user_agent,
                      SIP_STR_NULL,
                      now,
                      t};
    if (sip_reg_record(&recs, &nb) < 0)
      return 0;
    f->rec[k] = (sip_str){recs.p + at, recs.len - at};
    f->ops[f->nops++] = (sip_memstore_op){f->rec[k], SIP_STR_NULL};
  }
  for (size_t i = 0; i < f->ncur; i++)
    if (f->cur[i].live && f->cur[i].remove)
      f->ops[f->nops++] = (sip_memstore_op){SIP_STR_NULL, f->cur[i].rd.key};

  /* Step D: the 200 lists every binding (idx: a change k, or the stored
   * binding -1 - i) */
  sip_reg_binding items[SIP_REG_MEM_CURRENT + SIP_REG_MEM_CHANGES];
  size_t ni = 0;
  for (size_t i = 0; i < f->ncur; i++) {
    const sip_reg_stored *s = &f->cur[i];
    if (s->live && s->listed)
      items[ni++] = (sip_reg_binding){
          s->contact,         s->params, SIP_STR_NULL, SIP_STR_NULL,
          (double)s->expires, s->q,      s->updated,   -1 - (int)i};
  }
  for (size_t k = 0; k < f->nch; k++) {
    const sip_reg_change *ch = &f->ch[k];
    if (ch->expires > 0 && !ch->superseded)
      items[ni++] = (sip_reg_binding){ch->contact,
                                      ch->params,
                                      SIP_STR_NULL,
                                      SIP_STR_NULL,
                                      (double)(now + ch->expires),
                                      ch->q / 1000.0,
                                      (double)now,
                                      (int)k};
  }
  sip_reg_sort(items, ni);
  sip_obuf hdr;
  sip_obuf_init(&hdr, f->hdrmem, sizeof f->hdrmem);
  if (sip_reg_ok_headers(m, c, items, ni, now, 0, &hdr) < 0)
    return 0;
  f->headers = (sip_str){hdr.p, hdr.len};
  f->nlist = ni;
  for (size_t i = 0; i < ni; i++) {
    const sip_reg_stored *s =
        items[i].idx < 0 ? &f->cur[-1 - items[i].idx] : NULL;
    f->list[i] = s ? (sip_str){s->rd.p, s->rd.len} : f->rec[items[i].idx];
  }
  return 1;
}

int sip_reg_mem_commit(const sip_reg_mem *f, sip_memstore *ms) {
  return sip_memstore_update(ms, f->rq.aor, f->ops, f->nops);
}
