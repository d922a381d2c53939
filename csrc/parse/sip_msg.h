/* A SIP message: framing, the header index, lazily parsed fields, edits and
 * serialization. This is the parser's public entry point.
 *
 * Zero-copy: the message does not own its input bytes; the caller keeps them
 * alive and unchanged for the message's lifetime (the Lua binding holds a
 * reference to the Lua string). Every header name, value and parsed field is
 * a slice into them. Decoded text, parsed structures and edited values live in
 * the message's arena, freed with sip_msg_free(). */
#ifndef SIP_MSG_H
#define SIP_MSG_H

#include "sip_fields.h"
#include "sip_headers.h"
#include "sip_types.h"
#include "sip_uri.h"

/* Explicit limits; every one is a setting with this default. */
typedef struct sip_limits {
  uint32_t max_size;    /* whole message incl. body, bytes (default 65535) */
  uint32_t max_headers; /* header field lines (default 256) */
  uint32_t
      max_line; /* one start line or header line incl. folds (default 16384) */
} sip_limits;

extern const sip_limits sip_default_limits;

enum sip_parse_mode {
  SIP_MODE_DATAGRAM =
      0,               /* one message per buffer; bytes after the body are
                          ignored (§18.3); no Content-Length = rest of buffer */
  SIP_MODE_STREAM = 1, /* TCP/TLS: SIP_ENEEDMORE until a whole message is
                          there; no Content-Length means an empty body */
};

enum sip_hdr_state {
  SIP_HS_ORIG = 0, /* as received: serialized from raw */
  SIP_HS_ADDED,    /* added by an edit */
  SIP_HS_CHANGED,  /* value replaced by an edit */
  SIP_HS_REMOVED,  /* removed by an edit (kept in place, not serialized) */
};

typedef struct sip_hdr {
  sip_str name;  /* as written ("v", "MaX-fOrWaRdS") or as added */
  sip_str value; /* trimmed of LWS at both ends; may contain folds */
  sip_str raw;   /* the whole field incl. its line end, as received */
  uint16_t id;   /* enum sip_hdr_id (SIP_H_OTHER for unknown names) */
  uint8_t state; /* enum sip_hdr_state */
  void *parsed;  /* lazily parsed value, owned by the arena */
} sip_hdr;

#define SIP_MSG_INLINE_HDRS 32

_Static_assert(SIP_H__COUNT <= 64, "sip_msg.cached is a 64-bit mask");
#define SIP_MSG_INLINE_ARENA 4096

typedef struct sip_msg {
  const char *buf; /* the message bytes (start line .. end of body) */
  size_t len;      /* excluding datagram junk after the body */
  const sip_limits *limits;

  uint8_t is_request;
  uint16_t status;    /* responses: 100..699 */
  sip_str method;     /* requests */
  sip_str ruri;       /* requests: Request-URI as written */
  sip_str version;    /* "SIP/2.0" as written (may be another version) */
  sip_str reason;     /* responses: reason phrase (may be empty) */
  sip_str start_line; /* without its line end */
  sip_str head_end;   /* the empty line ending the header section */

  sip_hdr *hdr; /* header fields in wire order */
  uint32_t nhdr;
  uint32_t hdr_cap;

  sip_str body;
  uint8_t has_clen; /* a Content-Length header was present */
  uint64_t present; /* bit id: a header of that kind was indexed or added
                       (removals leave it set: it only rules absence in) */

  /* where parsing failed: offset into the input and what was being parsed */
  size_t err_off;
  const char *err_what;

  sip_arena arena;

  /* caches of lazily parsed fields (NULL = not parsed yet): the Request-URI,
   * and per header kind the parsed list of all its values (sip_via,
   * sip_addr, sip_cseq, sip_ctype) or the multipart parts for CONTENT_TYPE's
   * body. Edits drop the entry of the kind they touch. */
  sip_uri *ruri_parsed;
  sip_part *parts;
  uint64_t cached; /* bit id set: cache[id] is valid (cheaper to reset) */

  /* edits */
  uint8_t dirty;        /* anything changed: serialize from parts */
  uint8_t body_changed; /* Content-Length is rewritten */
  sip_str new_start_line;

  void *cache[SIP_H__COUNT]; /* not cleared on reset: see cached */
  sip_hdr hdr_inline[SIP_MSG_INLINE_HDRS];
  uint64_t arena_inline[SIP_MSG_INLINE_ARENA / 8];
} sip_msg;

/* Prepare an empty message. limits may be NULL for sip_default_limits; the
 * pointer is kept. Never fails. */
void sip_msg_init(sip_msg *m, const sip_limits *limits);
/* Free the arena; the message is empty and may be parsed into again. */
void sip_msg_free(sip_msg *m);

/* Parse one message from buf[0..len). Returns the number of bytes consumed
 * (> 0) on success: in stream mode the message length (the rest of the buffer
 * belongs to the next message), in datagram mode len. Returns SIP_ENEEDMORE
 * in stream mode while incomplete, or a negative code, with m->err_off and
 * m->err_what naming the place. Eager: start line, every header boundary and
 * name, Content-Length, body. Lazy: everything else (accessors below). */
int sip_msg_parse(sip_msg *m, const char *buf, size_t len, int mode);

/* "PARSE: <what> at byte N: <message>" style text for the last failure,
 * written to out (always NUL-terminated when cap > 0). Returns its length. */
size_t sip_msg_strerror(const sip_msg *m, int err, char *out, size_t cap);
/* The text of a failed read of a lazily parsed field that the caller names
 * (`what`: "From", "Request-URI", "Authorization", ...): sip_msg_strerror's
 * when the accessor recorded a place (m->err_what; clear it before the
 * read), else "PARSE: <what> at byte N: <message>", N the offset of header
 * line `at` (of the Request-URI for SIP_MSG_AT_RURI) while that is the
 * received text, else "PARSE: <what>: <message>". Written as
 * sip_msg_strerror; returns its length. */
#define SIP_MSG_AT_RURI (-2)
size_t sip_msg_field_strerror(const sip_msg *m, int err, int at,
                              const char *what, char *out, size_t cap);

/* Header table lookups. sip_hdr_lookup: id for a name (case-insensitive, long
 * or compact form), SIP_H_OTHER when unknown. */
int sip_hdr_lookup(const char *name, size_t len);
const char *sip_hdr_canonical(int id); /* "Call-ID"; NULL for SIP_H_OTHER */
unsigned sip_hdr_flags(int id);

/* Index of the first header at or after index `from` whose name matches
 * (id when id != SIP_H_OTHER, otherwise the name case-insensitively);
 * removed headers are skipped. -1 when none. */
int sip_msg_find(const sip_msg *m, int id, const char *name, size_t nlen,
                 int from);
/* Index of the n-th (from 1) live header line with that name, -1 when
 * there are fewer or n < 1. */
int sip_msg_find_nth(const sip_msg *m, int id, const char *name, size_t nlen,
                     long n);
/* Number of live header lines with that name. */
int sip_msg_count(const sip_msg *m, int id, const char *name, size_t nlen);

/* A header value with folds replaced by single spaces (allocates in the
 * arena only when the value contains a fold). */
int sip_msg_unfolded(sip_msg *m, const sip_hdr *h, sip_str *out);

/* The values of the header lines with a name (as sip_msg_find), in order:
 * each line's value unfolded (never absent: "" when empty), or, with split
 * set and a list header (SIP_HF_LIST: Via, Contact, Route, ...), the items
 * of each line split at top-level commas, empty items skipped, and the rest
 * of a line that does not split (unbalanced quote or '<') as one item.
 * sip_values_next returns 1 and sets *out, 0 after the last value, or a
 * negative code (SIP_ENOMEM unfolding). The slices live as the message. */
typedef struct sip_values {
  sip_msg *m;
  int id;
  const char *name;
  size_t nlen;
  int split; /* asked for, and a list header */
  int line;  /* where the search for the next line starts */
  sip_str rest;
  uint8_t in_line; /* rest holds the unsplit part of a line */
} sip_values;
void sip_values_init(sip_values *it, sip_msg *m, int id, const char *name,
                     size_t nlen, int split);
int sip_values_next(sip_values *it, sip_str *out);

/* Lazily parsed fields; each parses on first call and caches. Return 0 and
 * set *out, SIP_ENOTFOUND when the header is absent, or the parse error. */
int sip_msg_get_ruri(sip_msg *m, const sip_uri **out);
int sip_msg_get_vias(sip_msg *m,
                     const sip_via **out); /* all Via values, top first */
int sip_msg_get_addr(
    sip_msg *m, int id,
    const sip_addr **out); /* From/To/Refer-To...: first value */
int sip_msg_get_addrs(sip_msg *m, int id,
                      const sip_addr **out); /* Contact/Route/Record-Route/Path:
                                                all values in order */
int sip_msg_get_cseq(sip_msg *m, const sip_cseq **out);
int sip_msg_get_call_id(sip_msg *m, sip_str *out);
int sip_msg_get_ctype(sip_msg *m, const sip_ctype **out);
int sip_msg_get_auth(sip_msg *m, int hdr_index,
                     const sip_auth **out);              /* that header line */
int sip_msg_get_parts(sip_msg *m, const sip_part **out); /* multipart body */
/* Max-Forwards 0..255; Expires 0..2^32-1 */
int sip_msg_get_max_forwards(sip_msg *m, uint32_t *out);
int sip_msg_get_expires(sip_msg *m, uint32_t *out);

/* Edits. Values are copied into the arena; nothing else is copied. Each
 * returns 0 or SIP_ENOMEM / SIP_EINVAL. Caches of the touched header kind are
 * dropped, so accessors see the new values. */
int sip_msg_set_ruri(sip_msg *m, const char *uri, size_t len);
int sip_msg_set_status(sip_msg *m, int status, const char *reason, size_t len);
/* Insert a header before index `at` (at == -1: at the end of the header
 * section; at == 0: first). name NULL means canonical name of id. */
int sip_msg_insert_header(sip_msg *m, int at, int id, const char *name,
                          size_t nlen, const char *value, size_t vlen);
int sip_msg_replace_value(sip_msg *m, int index, const char *value, size_t len);
int sip_msg_remove_header(sip_msg *m, int index);
/* Compound edits by header name (id, or name when id is SIP_H_OTHER, as
 * sip_msg_find; name may be NULL for a known id). sip_msg_set_header: the
 * first line of that name gets the value and the others are removed; the
 * header is appended when absent. sip_msg_add_header: a new line at the end
 * of the header section, or with first set before the first line of that
 * name (at the top when there is none: a proxy's Via). Both return 0 or a
 * negative code (SIP_EINVAL for a bad name or value). sip_msg_remove_headers
 * removes every line of that name and returns how many, or a negative code. */
int sip_msg_set_header(sip_msg *m, int id, const char *name, size_t nlen,
                       const char *value, size_t vlen);
int sip_msg_add_header(sip_msg *m, int id, const char *name, size_t nlen,
                       const char *value, size_t vlen, int first);
int sip_msg_remove_headers(sip_msg *m, int id, const char *name, size_t nlen);
/* Remove the first value of the first Via line (a response leaving a UAS,
 * a proxy's own Via): *popped gets a copy (in the arena). A line holding
 * several comma-separated values is rewritten without its first one; an
 * empty line is removed and the next one tried; a line that does not
 * split is removed as a whole and is the value popped. Returns 1, 0 when
 * there is no Via, or SIP_ENOMEM / a fold error. */
int sip_msg_pop_via(sip_msg *m, sip_str *popped);
/* Replace the body; Content-Length follows it. */
int sip_msg_set_body(sip_msg *m, const char *body, size_t len);

/* Serialization: the exact size, then the bytes. An unchanged message
 * serializes to its original bytes; untouched header lines are written from
 * their raw bytes (folds and spelling kept). sip_msg_write returns the number
 * of bytes written or SIP_EINVAL when cap is too small. */
size_t sip_msg_size(const sip_msg *m);

/* internal (csrc/parse only): double the header index into the arena */
int sip__msg_grow_headers(sip_msg *m);
int sip_msg_write(const sip_msg *m, char *out, size_t cap);

#endif
