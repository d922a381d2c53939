/* The one table of header fields the parser knows by name.
 *
 * X(ID, "Canonical-Name", 'compact form' or 0, flags)
 *
 * Flags:
 *   SIP_HF_LIST      the value is a comma-separated list (RFC 3261 §7.3.1), so
 *                    several header lines combine into one list
 *   SIP_HF_SINGLE    at most one instance is allowed in a message
 *   SIP_HF_REQUIRED  mandatory in every request (§8.1.1); Max-Forwards too
 *   SIP_HF_ADDR      values are name-addr / addr-spec (with header params)
 *   SIP_HF_AUTH      credentials or a challenge: commas inside are not a list
 *
 * Adding a header is one line here; the name lookup, compact forms and the
 * canonical spelling used when serializing all come from this table. */
#ifndef SIP_HEADERS_H
#define SIP_HEADERS_H

#define SIP_HF_LIST 0x01u
#define SIP_HF_SINGLE 0x02u
#define SIP_HF_REQUIRED 0x04u
#define SIP_HF_ADDR 0x08u
#define SIP_HF_AUTH 0x10u

#define SIP_HEADER_TABLE(X)                                                    \
  X(ACCEPT, "Accept", 0, SIP_HF_LIST)                                          \
  X(ACCEPT_CONTACT, "Accept-Contact", 'a', SIP_HF_LIST)                        \
  X(ACCEPT_ENCODING, "Accept-Encoding", 0, SIP_HF_LIST)                        \
  X(ACCEPT_LANGUAGE, "Accept-Language", 0, SIP_HF_LIST)                        \
  X(ALERT_INFO, "Alert-Info", 0, SIP_HF_LIST)                                  \
  X(ALLOW, "Allow", 0, SIP_HF_LIST)                                            \
  X(ALLOW_EVENTS, "Allow-Events", 'u', SIP_HF_LIST)                            \
  X(AUTHENTICATION_INFO, "Authentication-Info", 0, 0)                          \
  X(AUTHORIZATION, "Authorization", 0, SIP_HF_AUTH)                            \
  X(CALL_ID, "Call-ID", 'i', SIP_HF_SINGLE | SIP_HF_REQUIRED)                  \
  X(CALL_INFO, "Call-Info", 0, SIP_HF_LIST)                                    \
  X(CONTACT, "Contact", 'm', SIP_HF_LIST | SIP_HF_ADDR)                        \
  X(CONTENT_DISPOSITION, "Content-Disposition", 0, SIP_HF_SINGLE)              \
  X(CONTENT_ENCODING, "Content-Encoding", 'e', SIP_HF_LIST)                    \
  X(CONTENT_LANGUAGE, "Content-Language", 0, SIP_HF_LIST)                      \
  X(CONTENT_LENGTH, "Content-Length", 'l', SIP_HF_SINGLE)                      \
  X(CONTENT_TYPE, "Content-Type", 'c', SIP_HF_SINGLE)                          \
  X(CSEQ, "CSeq", 0, SIP_HF_SINGLE | SIP_HF_REQUIRED)                          \
  X(DATE, "Date", 0, SIP_HF_SINGLE)                                            \
  X(ERROR_INFO, "Error-Info", 0, SIP_HF_LIST)                                  \
  X(EVENT, "Event", 'o', SIP_HF_SINGLE)                                        \
  X(EXPIRES, "Expires", 0, SIP_HF_SINGLE)                                      \
  X(FROM, "From", 'f', SIP_HF_SINGLE | SIP_HF_REQUIRED | SIP_HF_ADDR)          \
  X(IDENTITY, "Identity", 'y', 0)                                              \
  X(IDENTITY_INFO, "Identity-Info", 'n', 0)                                    \
  X(IN_REPLY_TO, "In-Reply-To", 0, SIP_HF_LIST)                                \
  X(MAX_FORWARDS, "Max-Forwards", 0, SIP_HF_SINGLE | SIP_HF_REQUIRED)          \
  X(MIME_VERSION, "MIME-Version", 0, SIP_HF_SINGLE)                            \
  X(MIN_EXPIRES, "Min-Expires", 0, SIP_HF_SINGLE)                              \
  X(ORGANIZATION, "Organization", 0, SIP_HF_SINGLE)                            \
  X(PATH, "Path", 0, SIP_HF_LIST | SIP_HF_ADDR)                                \
  X(PRIORITY, "Priority", 0, SIP_HF_SINGLE)                                    \
  X(PROXY_AUTHENTICATE, "Proxy-Authenticate", 0, SIP_HF_AUTH)                  \
  X(PROXY_AUTHORIZATION, "Proxy-Authorization", 0, SIP_HF_AUTH)                \
  X(PROXY_REQUIRE, "Proxy-Require", 0, SIP_HF_LIST)                            \
  X(RACK, "RAck", 0, SIP_HF_SINGLE)                                            \
  X(REASON, "Reason", 0, SIP_HF_LIST)                                          \
  X(RECORD_ROUTE, "Record-Route", 0, SIP_HF_LIST | SIP_HF_ADDR)                \
  X(REFER_TO, "Refer-To", 'r', SIP_HF_SINGLE | SIP_HF_ADDR)                    \
  X(REFERRED_BY, "Referred-By", 'b', SIP_HF_SINGLE | SIP_HF_ADDR)              \
  X(REJECT_CONTACT, "Reject-Contact", 'j', SIP_HF_LIST)                        \
  X(REPLY_TO, "Reply-To", 0, SIP_HF_SINGLE | SIP_HF_ADDR)                      \
  X(REQUEST_DISPOSITION, "Request-Disposition", 'd', SIP_HF_LIST)              \
  X(REQUIRE, "Require", 0, SIP_HF_LIST)                                        \
  X(RETRY_AFTER, "Retry-After", 0, SIP_HF_SINGLE)                              \
  X(ROUTE, "Route", 0, SIP_HF_LIST | SIP_HF_ADDR)                              \
  X(RSEQ, "RSeq", 0, SIP_HF_SINGLE)                                            \
  X(SERVER, "Server", 0, SIP_HF_SINGLE)                                        \
  X(SESSION_EXPIRES, "Session-Expires", 'x', SIP_HF_SINGLE)                    \
  X(SUBJECT, "Subject", 's', SIP_HF_SINGLE)                                    \
  X(SUBSCRIPTION_STATE, "Subscription-State", 0, SIP_HF_SINGLE)                \
  X(SUPPORTED, "Supported", 'k', SIP_HF_LIST)                                  \
  X(TIMESTAMP, "Timestamp", 0, SIP_HF_SINGLE)                                  \
  X(TO, "To", 't', SIP_HF_SINGLE | SIP_HF_REQUIRED | SIP_HF_ADDR)              \
  X(UNSUPPORTED, "Unsupported", 0, SIP_HF_LIST)                                \
  X(USER_AGENT, "User-Agent", 0, SIP_HF_SINGLE)                                \
  X(VIA, "Via", 'v', SIP_HF_LIST | SIP_HF_REQUIRED)                            \
  X(WARNING, "Warning", 0, SIP_HF_LIST)                                        \
  X(WWW_AUTHENTICATE, "WWW-Authenticate", 0, SIP_HF_AUTH)

/* SIP_H_OTHER (0) is any header not in the table. */
enum sip_hdr_id {
  SIP_H_OTHER = 0,
#define SIP__HDR_ENUM(id, name, compact, flags) SIP_H_##id,
  SIP_HEADER_TABLE(SIP__HDR_ENUM)
#undef SIP__HDR_ENUM
      SIP_H__COUNT
};

#endif
