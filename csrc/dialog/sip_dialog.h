/* Dialogs (RFC 3261 §12, §13.2.2.4, §13.3.1.4), on the transaction user
 * core (sip_tu.h). Below any binding: no Lua.
 *
 *  - a dialog's state: early / confirmed / terminated, its id (Call-ID,
 *    local and remote tags), local and remote URI, remote target, route
 *    set, local and remote CSeq (§12.1.1 UAS, §12.1.2 UAC);
 *  - a set of dialogs keyed by Call-ID and local tag, so the several early
 *    dialogs of one forked INVITE (same Call-ID and From tag, one remote
 *    tag each) live side by side (§13.2.2.4);
 *  - the UAC side of a response (§12.2.1.2: confirmation, route set
 *    recomputed from a 2xx, remote target refresh, 481/408 end it);
 *  - the UAS side of a request (§12.2.2: CSeq order, remote target
 *    refresh) and the 481 for a request with a To tag that matches no
 *    dialog;
 *  - a request within a dialog built from its state (§12.2.1.1, loose and
 *    strict routing), sent over a client transaction (sip_tu_request);
 *  - the ACK for a 2xx, built and sent by the UAC core outside any
 *    transaction (§13.2.2.4), and sent again for each retransmission of
 *    that 2xx.
 *
 * Memory: a dialog is one malloc'd block: the struct, then its fixed
 * strings (Call-ID, tags, local and remote URI, local Contact), each
 * NUL-terminated; the remote target and the route set (both refreshed) and
 * the UAC's last ACK are malloc'd apart.
 * Threading: the loop's thread only. Errors: negative codes of
 * sip_error.h, libuv codes passed through. */
#ifndef SIP_DIALOG_H
#define SIP_DIALOG_H

#include <stdint.h>

#include "sip_msg.h"
#include "sip_tree.h"
#include "sip_tu.h"

enum sip_dialog_role { SIP_DLG_UAC = 0, SIP_DLG_UAS = 1 };
enum sip_dialog_state {
  SIP_DLG_EARLY = 1,
  SIP_DLG_CONFIRMED = 2,
  SIP_DLG_TERMINATED = 3,
};

typedef struct sip_dialog {
  struct sip_dialog *next; /* the set's chain */
  uint8_t role, state;
  uint8_t has_local_cseq, has_remote_cseq;
  uint32_t local_cseq, remote_cseq;
  uint32_t invite_cseq; /* the INVITE that made (or last re-INVITEd) it */
  sip_str call_id, local_tag, remote_tag;
  sip_str local_uri, remote_uri; /* name-addr: [display] <uri> */
  sip_str remote_target;         /* a URI */
  sip_str local_contact;         /* a Contact value (name-addr) */
  uint32_t nroutes;
  sip_str *routes; /* route set, name-addr values in the order to use */
  /* the last ACK for a 2xx (§13.2.2.4): sent again for its retransmission
   * (UAC only: NULL until the first) */
  struct sip_dialog_ack *ack;
  /* RFC 3262: UAS: RSeq of the last reliable 1xx sent (0: none yet), the
   * INVITE server transaction whose reliable 1xx awaits its PRACK (a
   * reference) and that INVITE's CSeq; UAC: the last RSeq acknowledged */
  uint32_t rseq_local, rel_cseq, rseq_remote;
  uint8_t has_rseq_remote;
  sip_txn *rel_txn;
  void *udata; /* the binding's */
} sip_dialog;

/* ---- one dialog -------------------------------------------------------- */

/* §12.1.2: the UAC's dialog from the request it sent (req: INVITE or another
 * dialog-creating request, as sent: its From tag, Contact, CSeq) and a
 * response resp (101-199 with a To tag: early; 2xx: confirmed). Route set:
 * resp's Record-Route reversed; remote target: resp's Contact URI (a 1xx
 * without one: the To URI). Returns 0 and *out, SIP_EINVAL (not a response
 * that creates a dialog: no To tag, no From tag, a 100 or a failure, a 2xx
 * without Contact), the header's parse error, or SIP_ENOMEM. */
int sip_dialog_uac_new(sip_msg *req, sip_msg *resp, sip_dialog **out);

/* §12.1.1: the UAS's dialog from the request req received, answered with a
 * To tag local_tag and the Contact local_contact (a name-addr, e.g.
 * "<sip:bob@127.0.0.1:5062>"); state SIP_DLG_EARLY (a 1xx) or
 * SIP_DLG_CONFIRMED (a 2xx). Route set: req's Record-Route in order; remote
 * target: req's Contact URI; remote CSeq: req's. Returns 0 and *out,
 * SIP_EINVAL (no From tag, no Contact, an empty tag), a parse error or
 * SIP_ENOMEM. */
int sip_dialog_uas_new(sip_msg *req, sip_str local_tag, sip_str local_contact,
                       int state, sip_dialog **out);

/* Free d and what it owns (NULL allowed). d must not be in a set. */
void sip_dialog_free(sip_dialog *d);

/* Does m belong to d? A request received: Call-ID, To tag = local tag, From
 * tag = remote tag; a response received: From tag = local, To tag =
 * remote. 1 or 0. */
int sip_dialog_matches(const sip_dialog *d, sip_msg *m);

/* §12.2.1.2 / §13.2.2.4: a response within d (it matches d) to a request d
 * sent. A 2xx to the INVITE of an early dialog confirms it (route set
 * recomputed from the response, remote target from its Contact); a 1xx or
 * 2xx to a target refresh request (INVITE, UPDATE, SUBSCRIBE, NOTIFY,
 * REFER) with a Contact replaces the remote target; a 481 or 408 to any
 * request but a CANCEL... terminates d (state SIP_DLG_TERMINATED); so does
 * a 300-699 to the INVITE of an early dialog. Returns 0, or a parse error
 * (d unchanged), or SIP_ENOMEM. */
int sip_dialog_uac_response(sip_dialog *d, sip_msg *resp);

/* §12.2.2: a request req received within d (it matches d). ACK changes
 * nothing; a CSeq lower than the remote CSeq returns SIP_ERANGE (the
 * caller answers 500), otherwise the remote CSeq becomes req's and a target
 * refresh request with a Contact replaces the remote target. A BYE
 * terminates d. Returns 0, SIP_ERANGE, a parse error or SIP_ENOMEM. */
int sip_dialog_uas_request(sip_dialog *d, sip_msg *req);

/* §12.2.1.1: request `method` within d, without a Via (sip_tu adds it):
 * Request-URI and Route from the remote target and route set (a strict
 * router first: its URI is the Request-URI, the remote target the last
 * Route), To, From, Call-ID, CSeq, Max-Forwards: 70, Contact for target
 * refresh methods, then extra (complete header lines, e.g. a Content-Type)
 * and body with its Content-Length. cseq 0: the next local CSeq (counted in
 * d; not allowed for ACK and CANCEL); otherwise that number (ACK: the
 * INVITE's). A new INVITE sets d->invite_cseq. Into a malloc'd *out
 * (NUL-terminated). Returns its length, SIP_EINVAL (a method that is not
 * a token, ACK/CANCEL without cseq, extra not ending in CRLF) or
 * SIP_ENOMEM. */
int sip_dialog_request(sip_dialog *d, const char *method, uint32_t cseq,
                       sip_str extra, sip_str body, char **out);

/* sip_dialog_request sent over a new client transaction of tu
 * (sip_tu_request: Via, branch, next hop from the route set or remote
 * target, or dest when given). cb/arg/branch/out as sip_tu_request's.
 * Returns 0 or a negative code (UV_EAI_NONAME: the next hop is a host name,
 * resolve it and pass dest). */
int sip_dialog_send(sip_tu *tu, sip_dialog *d, const char *method,
                    sip_str extra, sip_str body, const sip_dest *dest,
                    sip_txn_response_cb cb, void *arg,
                    char branch[SIP_TXN_BRANCH_SIZE], sip_txn **out);

/* §13.2.2.4: the ACK for a 2xx to the INVITE of CSeq cseq in d, sent by the
 * UAC core (not a transaction): built by sip_dialog_request (extra, body:
 * an offer in the ACK), a new Via and branch, to dest or d's next hop, and
 * kept in d so that a retransmission of the 2xx gets the same ACK
 * (sip_dialog_ack_again). Returns 0 or a negative code (as
 * sip_dialog_send). */
int sip_dialog_ack(sip_tu *tu, sip_dialog *d, uint32_t cseq, sip_str extra,
                   sip_str body, const sip_dest *dest);

/* A 2xx with CSeq cseq came again: the ACK kept for it is sent again.
 * Returns 1 when sent, 0 when d has no ACK for cseq, or a send error. */
int sip_dialog_ack_again(sip_tu *tu, sip_dialog *d, uint32_t cseq);

/* ---- reliable provisional responses (RFC 3262) ------------------------- */

/* Does m list option tag `tag` in its Supported (or, require set, its
 * Require) header? 1 or 0. */
int sip_dialog_has_option(sip_msg *m, int require, const char *tag);

/* §3 at a UAS: the header lines of a reliable 1xx to the INVITE invite
 * (received on the INVITE server transaction ist) in d, a UAS's early
 * dialog: "Require: 100rel\r\nRSeq: N\r\n" into out (N: a random first
 * value in 1..2^31-1, then one more each time). d keeps ist (a reference)
 * until the PRACK (sip_dialog_prack) or sip_dialog_reliable_end. The caller
 * sends the 1xx with SIP_TU_RELIABLE (sip_tu.h). Returns the length,
 * SIP_ENOTFOUND (invite lists 100rel in neither Supported nor Require: send
 * it unreliably), SIP_EINVAL (d is not an early UAS dialog), UV_EBUSY (§3: the
 * previous reliable 1xx awaits its PRACK) or SIP_ERANGE (cap too small). */
int sip_dialog_reliable(sip_dialog *d, sip_msg *invite, sip_txn *ist, char *out,
                        size_t cap);

/* d forgets its reliable 1xx (its send failed, or the INVITE got its final
 * response); the layer's re-sending, if any, stops. */
void sip_dialog_reliable_end(sip_dialog *d);

/* §3: a PRACK received within d. Its RAck names the reliable 1xx awaiting
 * its PRACK: 0, that 1xx is no longer re-sent (answer 200). Otherwise
 * SIP_ENOTFOUND (answer 481), or SIP_EVALUE (no RAck, or a malformed one:
 * answer 400). */
int sip_dialog_prack(sip_dialog *d, sip_msg *prack);

/* §4 at a UAC: a 101-199 response resp received in d (early). When it is
 * reliable (Require: 100rel and an RSeq) and its RSeq is the first one or
 * one more than the last acknowledged: the RAck line of its PRACK ("RAck:
 * <rseq> <cseq> <method>\r\n") into out, its length, and d counts it
 * acknowledged. 0 when no PRACK is due (not reliable, a retransmission, out
 * of order: §4 says it is not processed further). SIP_EVALUE (a malformed
 * RSeq), SIP_ERANGE (cap too small). */
int sip_dialog_rack(sip_dialog *d, sip_msg *resp, char *out, size_t cap);

/* A UAS's early dialog is confirmed (its 2xx sent, §12.1.1); its reliable
 * 1xx, if any, is forgotten. */
void sip_dialog_confirm(sip_dialog *d);

/* ---- session timers (RFC 4028) ------------------------------------------ */

/* Who refreshes, in the terms of the transaction that negotiated it. */
enum { SIP_SE_UAC = 1, SIP_SE_UAS = 2 };

/* m's Session-Expires: delta-seconds (1..2^31-1) and the refresher
 * parameter (SIP_SE_UAC, SIP_SE_UAS, 0 when absent). 0, SIP_ENOTFOUND, or
 * SIP_EVALUE (malformed, or a refresher that is neither uac nor uas). */
int sip_dialog_session_expires(sip_msg *m, uint32_t *delta, int *refresher);

/* m's Min-SE (delta-seconds): 0, SIP_ENOTFOUND or SIP_EVALUE. */
int sip_dialog_min_se(sip_msg *m, uint32_t *out);

/* §9 at the UAS of a session refresh request req (INVITE, UPDATE) with
 * our minimum min_se and the interval we want when req asks for none
 * (want; 0: no timer then):
 *  - 422: req's Session-Expires is below min_se; out is "Min-SE: N\r\n";
 *  - 200: a session timer runs; out is the 2xx's "Session-Expires: N;
 *    refresher=uac|uas\r\n" (and "Require: timer\r\n" when req supports
 *    timer), *expires its interval, *refresher who refreshes (req's choice;
 *    else the UAC when it supports timer, the UAS otherwise: §9);
 *  - 0: no session timer (out empty).
 * SIP_EVALUE: a malformed Session-Expires or Min-SE (answer 400);
 * SIP_ERANGE: cap too small. */
int sip_dialog_session_uas(sip_msg *req, uint32_t min_se, uint32_t want,
                           char *out, size_t cap, uint32_t *expires,
                           int *refresher);

/* §7.2 at the UAC: the 2xx resp to a session refresh request we sent.
 * 1 with *expires and *refresher (a 2xx without refresher parameter: the
 * UAC, §7.2), 0 when it has no Session-Expires (no timer), SIP_EVALUE. */
int sip_dialog_session_uac(sip_msg *resp, uint32_t *expires, int *refresher);

/* When to act, in ms from the 2xx (§10): the refresher sends its refresh
 * at half the interval; the other side sends BYE when none came by
 * expires - min(32, expires / 3) seconds. */
uint64_t sip_dialog_session_due_ms(uint32_t expires, int we_refresh);

/* ---- a set of dialogs -------------------------------------------------- */

typedef struct sip_dialogs {
  sip_dialog **buckets;
  size_t nbuckets, count;
} sip_dialogs;

/* An empty set (a power of two of buckets; 0: 1024). 0 or SIP_ENOMEM. */
int sip_dialogs_init(sip_dialogs *s, size_t nbuckets);
/* Free every dialog in s and the table. */
void sip_dialogs_free(sip_dialogs *s);
/* Add d (not in a set). Never fails. */
void sip_dialogs_add(sip_dialogs *s, sip_dialog *d);
/* Take d out of s (not freed). 1 when it was there, 0 otherwise. */
int sip_dialogs_remove(sip_dialogs *s, sip_dialog *d);
/* The dialog m (a request or a response received) belongs to, or NULL. */
sip_dialog *sip_dialogs_find(sip_dialogs *s, sip_msg *m);

/* What to do with a request received (§12.2.2, §8.2.2.2 aside): */
enum sip_dialogs_verdict {
  SIP_DLG_OUTSIDE = 0, /* no To tag: outside any dialog, *out NULL */
  SIP_DLG_INSIDE = 1, /* *out is its dialog, updated (sip_dialog_uas_request) */
  SIP_DLG_NO_DIALOG = 2, /* a To tag and no dialog: answer 481 (an ACK: drop) */
  SIP_DLG_OUT_OF_ORDER = 3, /* a lower CSeq: answer 500 */
};
/* Sort request req into s. Returns an enum sip_dialogs_verdict (*out set
 * for SIP_DLG_INSIDE and SIP_DLG_OUT_OF_ORDER), or a negative code: req's
 * To/From/Call-ID/CSeq do not parse (answer 400). */
int sip_dialogs_request(sip_dialogs *s, sip_msg *req, sip_dialog **out);

/* §13.2.2.4 at a UAC: a response resp to the dialog-creating request req
 * (sent with d's local tag): the dialog with resp's To tag, updated
 * (sip_dialog_uac_response), or a new one (early or confirmed) added to s.
 * A forked INVITE gets one dialog per remote tag. Returns 1 (new), 0
 * (existing), or a negative code (sip_dialog_uac_new's; SIP_EINVAL for a
 * response that makes no dialog, e.g. a 100 or a 1xx without To tag). */
int sip_dialogs_uac_response(sip_dialogs *s, sip_msg *req, sip_msg *resp,
                             sip_dialog **out);

/* The INVITE of Call-ID call_id, From tag local_tag, got a final answer:
 * every early dialog it made is terminated (not freed; state
 * SIP_DLG_TERMINATED), e.g. the other forks after a 2xx, or all of them
 * after a failure. Returns how many. */
size_t sip_dialogs_end_early(sip_dialogs *s, sip_str call_id,
                             sip_str local_tag);

/* ---- for the bindings ---------------------------------------------------- */

/* "early", "confirmed" or "terminated" (d NULL: a closed dialog). */
const char *sip_dialog_state_name(const sip_dialog *d);

/* d as a tree (the table dlg:info() returns, lua/luasip/ua.lua): role
 * ("uac" | "uas"), state, call_id, local_tag, remote_tag, local_uri,
 * remote_uri, remote_target, local_contact (strings, "" when absent),
 * local_cseq and remote_cseq (when known), invite_cseq, routes (a list),
 * put into e's current table. */
void sip_dialog_info(const sip_dialog *d, const sip_tree_emitter *e);

#endif
