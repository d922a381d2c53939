/* Error codes shared by every layer of the C core.
 *
 * Functions return int: >= 0 is success, a negative value is one of the codes
 * below. One X-macro generates the enum, the names and the messages so they
 * cannot drift apart. libuv codes (also negative, but far smaller in magnitude
 * than SIP__EBASE) pass through the upper layers unchanged. */
#ifndef SIP_ERROR_H
#define SIP_ERROR_H

#define SIP_ERRORS(X)                                                          \
  X(NEEDMORE, "incomplete message, more bytes needed")                         \
  X(NOMEM, "out of memory")                                                    \
  X(TOOBIG, "message exceeds the size limit")                                  \
  X(TOOMANY, "too many header fields")                                         \
  X(LINELEN, "line exceeds the length limit")                                  \
  X(STARTLINE, "malformed start line")                                         \
  X(VERSION, "malformed SIP version")                                          \
  X(HEADER, "malformed header field")                                          \
  X(CLEN, "invalid Content-Length")                                            \
  X(SHORTBODY, "body shorter than Content-Length")                             \
  X(URI, "malformed URI")                                                      \
  X(ADDR, "malformed name-addr or addr-spec")                                  \
  X(VIA, "malformed Via")                                                      \
  X(CSEQ, "malformed CSeq")                                                    \
  X(PARAM, "malformed parameter")                                              \
  X(QUOTE, "unterminated quoted string")                                       \
  X(VALUE, "malformed header value")                                           \
  X(CTL, "control character in a header field")                                \
  X(RANGE, "value out of range")                                               \
  X(MULTIPART, "malformed multipart body")                                     \
  X(STALE, "nonce expired")                                                    \
  X(REPLAY, "nonce count already used")                                        \
  X(NOTFOUND, "not found")                                                     \
  X(CERT, "peer certificate refused")                                          \
  X(SDP, "malformed session description")                                      \
  X(INVAL, "invalid argument")

/* Codes count up from SIP__EBASE, so all of them are negative and far below
 * libuv's (which are errno values, > -4096). */
enum sip_errno {
  SIP__EBASE = -1000,
#define SIP__ERR_ENUM(name, msg) SIP_E##name,
  SIP_ERRORS(SIP__ERR_ENUM)
#undef SIP__ERR_ENUM
      SIP__ELIMIT
};

/* "NEEDMORE", ... for a SIP code, "UNKNOWN" otherwise; never NULL. The parser
 * does not link libuv: layers that can see libuv codes map those first. */
const char *sip_errname(int err);
/* Human-readable message; never NULL. */
const char *sip_strerror(int err);

#endif
