/* The registrar's flow (RFC 3261 §10.3), the one copy: the Lua registrar
 * (lua/luasip/registrar.lua, through csrc/lua/registrar.c) and its C fast
 * path call these steps, and keep only hooks and store I/O between them.
 *
 *   step A  sip_reg_check     §10.3 steps 1, 2 and 5 and the fields the
 *                             flow reads: the address-of-record
 *   step B  sip_reg_contacts_plan  step 6: the Contacts as validated
 *                             changes
 *   step C  sip_reg_update    step 7: the changes against the current
 *                             bindings: what is saved, removed, kept; the
 *                             CSeq order, max_contacts, temp-GRUU numbers
 *   step D  sip_reg_ok_headers  step 8: the 200's header lines
 *
 * A step returns 0 (go on), 1 when the request is to be answered with
 * *ans (nothing decided is kept), or a negative code: SIP_ENOMEM when
 * `text` (a caller-owned buffer for the derived text: AOR, keys, kept
 * parameters) or the change array is too small, or the negative value the
 * `serves` callback returned (the caller's own failure, passed through).
 * Nothing here allocates but the RANGE re-reading of step B (in the
 * caller's arena), and nothing here logs. */
#ifndef SIP_REG_PLAN_H
#define SIP_REG_PLAN_H

#include <stdint.h>

#include "sip_fields.h"
#include "sip_msg.h"
#include "sip_registrar.h"

/* What a registrar serves and allows (registrar.save's options). */
typedef struct sip_reg_conf {
  int64_t default_expires, min_expires, max_expires;
  int64_t max_contacts, max_contact_size;
  int path, outbound, gruu; /* RFC 3327, 5626, 5627 on */
  /* Require option tags accepted beside path, outbound and gruu */
  const sip_str *supported;
  size_t nsupported;
  /* Is host (as written) a served domain? 1 / 0, or a negative code that
   * stops the step. NULL serves every domain. */
  int (*serves)(void *ud, sip_str host);
  void *ud;
} sip_reg_conf;

/* An answer a step decided: the status, its reason phrase and at most one
 * extra header (Unsupported, Min-Expires). */
typedef struct sip_reg_answer {
  int status;
  char reason[256];
  const char *hname; /* NULL: none */
  char hvalue[256];
} sip_reg_answer;

/* What step A read. Slices into the message, the AOR into `text`. */
typedef struct sip_reg_req {
  sip_str aor;
  sip_str call_id;
  uint32_t cseq;
  int nvias;
  const sip_addr *paths; /* the Path values, NULL when none */
} sip_reg_req;

/* Step A. */
int sip_reg_check(sip_msg *m, const sip_reg_conf *c, sip_obuf *text,
                  sip_reg_req *out, sip_reg_answer *ans);

/* One requested change of a binding. */
typedef struct sip_reg_change {
  sip_str key;      /* instance;reg-id, instance, or the Contact key (text) */
  sip_str contact;  /* the Contact URI as written */
  sip_str params;   /* the kept contact parameters (text) */
  sip_str instance; /* +sip.instance (unquoted); absent when none */
  int64_t expires;  /* seconds, 0 removes; within min/max */
  int32_t q;        /* thousandths, 1000 when absent */
  uint32_t reg_id;  /* 0: none */
  /* set by step C */
  int old;         /* the current binding with this key, or -1 */
  int superseded;  /* a later Contact has the same key: this one changes
                      nothing (§10.3 step 7 takes the Contacts in order) */
  int64_t tgruu_n; /* a save with an instance, GRUU on: the temp-GRUU
                      number (1: a new base; above: the old base's next);
                      0 otherwise */
} sip_reg_change;

typedef struct sip_reg_contacts {
  sip_reg_change *ch; /* caller-owned, cap entries */
  size_t n, cap;
  int star;     /* "Contact: *" (with Expires: 0): remove every binding */
  int outbound; /* a reg-id was used (RFC 5626): Require: outbound */
} sip_reg_contacts;

/* An upper bound of the number of Contact values (for out->cap). */
size_t sip_reg_contacts_max(const sip_msg *m);

/* Step B (after step A: the fields it read parse). a: for re-reading Contacts
 * whose expires is beyond 2^32-1 (taken as 2^32-1); the caller frees it. */
int sip_reg_contacts_plan(sip_msg *m, const sip_reg_conf *c, sip_arena *a,
                          sip_obuf *text, sip_reg_contacts *out,
                          sip_reg_answer *ans);

/* ---- step C: the update (§10.3 step 7) ----------------------------------
 * A current (live) binding of the AOR, as step C reads it. */
typedef struct sip_reg_current {
  sip_str key;
  sip_str call_id;    /* absent when none */
  sip_str tgruu_base; /* absent when none */
  double cseq;        /* -1 when none */
  int64_t tgruu_n;
  /* set by step C */
  int remove; /* removed from the store: `*`, or a change to 0 */
  int keep;   /* still bound, unchanged: listed in the 200 */
} sip_reg_current;

/* Step C: each change's old binding and temp-GRUU number; each current
 * binding's fate. Of the changes of one key only the last counts: the
 * others are `superseded` (neither saved nor listed), and a current
 * binding is removed when its key's last change is to 0. 1 and *ans for "500
 * Server Internal Error (CSeq out of order)" (a binding of this Call-ID with a
 * CSeq not lower: §10.3 step 7, nothing changes) or "503 Too Many Registered
 * Contacts" (more than max_contacts bindings after a request that saves any).
 * call_id, cseq: the request's. */
int sip_reg_update(const sip_reg_conf *c, sip_str call_id, uint32_t cseq,
                   sip_reg_contacts *cs, sip_reg_current *cur, size_t ncur,
                   sip_reg_answer *ans);

/* The GRUUs of RFC 5627 for an AOR ("sip:alice@example.com"): the public
 * one, aor;gr=<instance without its angle brackets> (§3.1), and a
 * temporary one, sip:tgruu.<base>.<n>@host;gr (its base random, made once
 * per registration and Call-ID; n the number of step C). */
void sip_reg_pub_gruu(sip_obuf *out, sip_str aor, sip_str instance);
void sip_reg_temp_gruu(sip_obuf *out, sip_str aor, sip_str base, int64_t n);

/* The inverse of sip_reg_temp_gruu: is u a temporary GRUU, a sip or sips
 * URI with a `gr` parameter without a value and the user (decoded)
 * "tgruu.<base>.<n>", base letters and digits, n digits? 1 and *base (a
 * slice of u) and *n (when n is not NULL; 2^63-1 for more digits than it
 * holds), else 0. */
int sip_reg_temp_gruu_parse(const sip_uri *u, sip_str *base, int64_t *n);

/* A new binding as stored (the codec of sip_binding.h), one writer for
 * both flows: a save of step C and what the request tells of the UA. */
typedef struct sip_reg_new {
  const sip_reg_change *ch;
  sip_str aor;
  sip_str call_id;
  uint32_t cseq;
  const sip_addr *paths; /* stored (each value) when not NULL */
  sip_str received;      /* "udp:192.0.2.1:5060" */
  sip_str socket;        /* the local address (UDP); absent: conn_id */
  int64_t conn_id;
  sip_str user_agent; /* absent when none */
  sip_str tgruu_base; /* with ch->tgruu_n: the GRUUs are stored */
  int64_t now;        /* updated; the expiry is now + ch->expires */
  double saved;       /* the store's clock */
} sip_reg_new;

/* Write the record of n: key, expiry, contact, q (0 and 1 as integers),
 * call_id, cseq, path, received, socket or conn_id, instance, reg_id,
 * user_agent, updated, params, and pub_gruu, temp_gruu, tgruu_base,
 * tgruu_n. Returns 0, or SIP_ENOMEM when out is too small. */
int sip_reg_record(sip_obuf *out, const sip_reg_new *n);

/* The User-Agent header, unfolded (absent when none). 0 or SIP_ENOMEM. */
int sip_reg_user_agent(sip_msg *m, sip_str *out);

/* ---- step D: the 200 (§10.3 step 8) -------------------------------------
 * What the 200 lists of a binding. */
typedef struct sip_reg_binding {
  sip_str contact, params; /* params: the kept contact parameters */
  sip_str pub_gruu, temp_gruu;
  double expires; /* absolute, on the clock of `now` */
  double q;       /* 1 when the binding has none */
  double updated; /* 0 when the binding has none */
  int idx;        /* the caller's */
} sip_reg_binding;

/* Sort the 200's list: q high first, then the most recently updated. */
void sip_reg_sort(sip_reg_binding *b, size_t n);

/* A Contact value for b: "<uri>;expires=N[;q=Q]params[;pub-gruu="..."
 * [;temp-gruu="..."]]", N the seconds left at `now` (not below 0), Q
 * printed with %g when not 1, the GRUUs when `gruu` (the UA supports
 * gruu). Overflow: out->overflow. */
void sip_reg_contact_value(sip_obuf *out, const sip_reg_binding *b, double now,
                           int gruu);

/* The date t (seconds since the epoch) as RFC 1123 writes it in GMT, the
 * form of the Date header (RFC 3261 §20.17): "Sat, 13 Nov 2010 23:29:00
 * GMT", English names whatever the locale. The one writer of the 200's Date
 * (step D) and of registrar.http_date. Returns 0, SIP_ENOMEM when out is too
 * small, or SIP_ERANGE (nothing written) for a t gmtime cannot represent. */
int sip_reg_http_date(sip_obuf *out, int64_t t);

/* The header lines of the 200 (each ending in CRLF): a Contact per binding
 * in the order given (sip_reg_sort), the Path values again when Path is on
 * (c->path), the request has Path and supports path (RFC 3327 §5.3),
 * Require: outbound when `outbound` (RFC 5626 §6), and Date (RFC 1123
 * form of `now`, GMT: sip_reg_http_date). pub-gruu/temp-gruu when GRUU is on
 * and the UA supports gruu. Returns 0, SIP_ENOMEM when out is too small, or
 * SIP_ERANGE for a `now` sip_reg_http_date cannot write. */
int sip_reg_ok_headers(sip_msg *m, const sip_reg_conf *c,
                       const sip_reg_binding *b, size_t n, int64_t now,
                       int outbound, sip_obuf *out);

#endif
