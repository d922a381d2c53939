/* Building a response to a request without any script (RFC 3261 §8.2.6):
 * sanity rejects, 100 Trying, 408/503 from the transaction layer, stateless
 * replies.
 *
 * The response is, in this order:
 *   SIP/2.0 <status> <reason>           reason.p == NULL: sip_reason_phrase
 *   Via: ...                            every live Via line of the request,
 *                                       in order, values as they are now (a
 *                                       received/rport the transport added
 *                                       by an edit included)
 *   From: ... / To: ... / Call-ID: ... / CSeq: ...
 *                                       the first live line of each; To gets
 *                                       ";tag=<to_tag>" when it has no tag,
 *                                       status > 100 and to_tag.p != NULL
 *   Timestamp: ...                      status 100 only (§8.2.6.1)
 *   <extra>                             verbatim
 *   Content-Length: <body.len>
 *   <empty line> <body>
 *
 * Header names are the canonical long names. Values are copied as received
 * except that folds (and any other CR/LF run with the blanks around it)
 * become one SP, so every output line is clean. Absent headers are left out:
 * the request may be only partially parsed (the transport's on_bad hook gets
 * the header index up to the parse error), and nothing here needs a
 * structured getter to succeed; whether To has a tag is a scan for a "tag"
 * parameter outside quotes and angle brackets.
 *
 * Argument rules (anything else makes the size 0 and the write SIP_EINVAL):
 * status 100..699; reason without CR, LF or other control bytes (HTAB is
 * fine); to_tag a non-empty token when given; extra empty or complete header
 * lines, each ending in CRLF, no empty line, no bare CR or LF (folded
 * continuation lines are fine); no control character other than HTAB in a
 * value the response copies from the request (see sip__ctl_find: such a
 * request, which failed to parse with SIP_ECTL, gets no answer). */
#ifndef SIP_REPLY_H
#define SIP_REPLY_H

#include "sip_msg.h"

/* Exact number of bytes sip_reply_write produces for these arguments, or 0
 * when they are invalid (see above). */
size_t sip_reply_size(const sip_msg *req, int status, sip_str reason,
                      sip_str to_tag, sip_str extra, sip_str body);

/* Write the response into out[0..cap). Returns the number of bytes written,
 * or SIP_EINVAL when the arguments are invalid or cap is too small (nothing
 * is written then). No NUL is appended. */
int sip_reply_write(const sip_msg *req, int status, sip_str reason,
                    sip_str to_tag, sip_str extra, sip_str body, char *out,
                    size_t cap);

/* The default reason phrase of a status code: RFC 3261 §21 and the codes of
 * later RFCs in common use (202, 204, 412, 417, 421-423, 428, 429, 433,
 * 436-440, 469, 470, 489, 491, 493, 494, 580, 603, 607, 608, ...); for
 * another code of 100..699 its class ("Client Error" for 499); "Unknown"
 * for any other code. Never NULL. */
const char *sip_reason_phrase(int status);

#endif
