/* SDP (RFC 8866): a zero-copy parser and a writer. No Lua, no libuv.
 *
 * The parser splits a session description into lines, checks the grammar of
 * each line it knows (v o s i u e p c b t r z k a m) and the order of the
 * lines (§5: session part v o s [i] [u] *e *p [c] *b *(t *r) [z] [k] *a, then
 * per media m [i] *c *b [k] *a), and fills a caller-supplied array with one
 * sip_sdp_line per line whose slices point into the caller's buffer. It
 * allocates nothing and never logs.
 *
 * Leniency, and what it costs: tokens may be separated by several spaces and
 * a line may end in spaces (o c m b t); such a line is still parsed, and
 * sip_sdp_line_canonical() tells that writing its fields back would not give
 * its bytes, so a caller that wants byte-exact output keeps the line's value
 * (see sip_sdp_write). Line endings are CRLF or LF but the same throughout;
 * the last line may lack its line ending. Anything else (an unknown type
 * letter, a line out of order, a missing v/o/s, a NUL, a lone CR, an empty
 * line, a non-numeric port) is SIP_ESDP with the line number and a reason. */
#ifndef SIP_SDP_H
#define SIP_SDP_H

#include <stddef.h>
#include <stdint.h>

#include "sip_tree.h"
#include "sip_types.h"

/* One line "<type>=<value>". The union member that matches type holds the
 * fields (slices into value); for s i u e p k z r the value is the text. */
typedef struct sip_sdp_line {
  char type;
  sip_str value; /* after "x=", without the line ending */
  union {
    struct {
      sip_str username, sess_id, sess_version, nettype, addrtype, address;
    } o;
    struct {
      sip_str nettype, addrtype, address; /* address keeps /ttl/count */
    } c;
    struct {
      sip_str bwtype, bandwidth;
    } b;
    struct {
      sip_str start, stop;
    } t;
    struct {
      sip_str media, port, nports; /* nports absent without "/n" */
      sip_str proto;
      sip_str fmts; /* "0 8 101": the formats, single-space separated
                       when canonical; absent when there are none */
    } m;
    struct {
      sip_str name;
      sip_str value; /* absent for a property attribute ("a=recvonly") */
    } a;
  } u;
} sip_sdp_line;

typedef struct sip_sdp {
  sip_sdp_line *lines; /* the caller's array */
  uint32_t nlines;
  uint32_t nmedia;
  uint32_t first_media; /* index of the first m= line (nlines: none) */
  uint8_t lf_only;      /* line endings are LF (0: CRLF) */
  uint8_t last_eol;     /* the last line has its line ending */
  /* on SIP_ESDP: the 1-based line, the byte offset of that line, and a
   * static reason ("m= line: port is not a number") */
  uint32_t err_line;
  size_t err_off;
  const char *err_what;
} sip_sdp;

/* Parse buf[0..len) into lines[0..max). Returns the number of lines (>= 1),
 * SIP_ESDP for a malformed description (sdp->err_* say where and why), or
 * SIP_ETOOMANY when it has more than max lines. sdp is always initialised. */
int sip_sdp_parse(sip_sdp *sdp, const char *buf, size_t len,
                  sip_sdp_line *lines, uint32_t max);

/* Parse one line's value (without "x=" and the line ending) for type into
 * *l. Returns 0, or SIP_ESDP with *what set to a static reason. */
/* The next space-separated token of [*p, end) (an m= line's formats, an
 * o= field...), spaces before it skipped, *p moved past it; a null slice
 * (.p NULL) when only spaces are left. */
sip_str sip_sdp_next_token(const char **p, const char *end);

int sip_sdp_parse_line(char type, const char *value, size_t len,
                       sip_sdp_line *l, const char **what);

/* 1 when formatting l's fields gives back l->value byte for byte. */
int sip_sdp_line_canonical(const sip_sdp_line *l);

/* 1 when a and b have the same type and the same fields: numbers compared
 * as numbers (leading zeros ignored), formats token by token, text and
 * attributes byte for byte. A caller that kept a non-canonical line's value
 * writes it back as it was when its fields are still equal to it. */
int sip_sdp_line_equal(const sip_sdp_line *a, const sip_sdp_line *b);

/* Write lines[0..n) as a description: each line "x=" then, when its value is
 * present, the value as it is, otherwise the fields of its type formatted
 * with single spaces; each line ends in CRLF (LF when lf_only), the last one
 * only when last_eol. Writes at most cap bytes and returns the full length
 * (call with cap 0 to size the output), or SIP_EINVAL when a field holds a
 * CR, LF or NUL, a token field is empty or holds a space, a numeric field is
 * not a number, or a type letter is not one of SDP's; *bad is then the index
 * of the offending line (bad may be NULL). Nothing checks the order. */
int sip_sdp_write(const sip_sdp_line *lines, uint32_t n, int lf_only,
                  int last_eol, char *out, size_t cap, uint32_t *bad);

/* ---- offer/answer (RFC 3264), answer.c --------------------------------- */

/* The most formats of one m= line that sip_sdp_answer compares. */
#define SIP_SDP_MAX_FMTS 128

typedef struct sip_sdp_answer_opts {
  int direction;    /* what we want for every stream: sip_sdp_direction()'s
                       0-3, or -1 for each caps stream's own (else the caps
                       session's, else sendrecv) */
  int prefer_local; /* list the common formats in caps' order, not the
                       offer's */
} sip_sdp_answer_opts;

/* "inactive" 0, "sendonly" 1, "recvonly" 2, "sendrecv" 3 (bit 1: send,
 * bit 2: receive); -1 for anything else (NULL too). */
int sip_sdp_direction(const char *name);

/* RFC 3551's static payload type pt: 1 and its encoding name, clock rate and
 * channels (0 when the table gives none), or 0 when pt is not in it. */
int sip_sdp_static_pt(unsigned pt, const char **name, unsigned *rate,
                      unsigned *channels);

/* The answer (RFC 3264 §6) to offer from our capabilities caps (both
 * parsed). Each offered stream is answered, in order, from the first unused
 * caps stream with a non-zero port, the same media and the same transport
 * protocol (case-insensitive): the answer lists the offered formats that
 * the caps stream also has (RTP: by encoding name (case-insensitive), clock
 * rate and channels from a=rtpmap or RFC 3551's table; other protocols: by
 * format), under the offerer's numbers, in the offer's order (caps' with
 * prefer_local), with caps' rtpmap and fmtp (the offer's when caps has
 * none; an rtpmap is written for a format that has one, or a dynamic one),
 * caps' rtcp-fb for those formats renumbered (and "*"), caps' c=, b= and
 * other attributes, and the direction of §6.1 (we send if the offer
 * receives and we want to send; we receive if it sends and we want to
 * receive). A stream with port 0, without such a caps stream, or whose
 * formats in common are only telephone-event, CN, red, rtx or FEC is
 * rejected: "m=<media> 0 <proto> <offered formats>" alone. The session
 * part: v=0, caps' o=, s=, c= and attributes (not its direction), t=0 0.
 * Lines end as caps' do. Writes at most cap bytes of buf and returns the
 * full length (call with cap 0 to size it) and *accepted (may be NULL), the
 * streams not rejected; SIP_ETOOMANY when an m= line has more than
 * SIP_SDP_MAX_FMTS formats or caps more than 256 streams. Allocates
 * nothing. */
int sip_sdp_answer(const sip_sdp *offer, const sip_sdp *caps,
                   const sip_sdp_answer_opts *opts, char *buf, size_t cap,
                   uint32_t *accepted);

/* ---- building from a tree of values (build.c) ---------------------------- */

/* A description given as a tree (the table shape lua/luasip/sdp.lua
 * documents: version, origin, name, info, uri, emails, phones, connection,
 * bandwidths, times (each with repeats), zone, key, attributes, media (each
 * media, port, nports, proto, fmts, info, connections, bandwidths, key,
 * attributes), lf, no_final_eol, and an item's _raw / the session's
 * _raw_version). The builder walks it in RFC 8866 §5 order and makes the
 * lines sip_sdp_write writes; a binding supplies the tree through a reader
 * (sip_tree.h) and keeps no SDP rule of its own. */

typedef struct sip_sdp_builder {
  sip_sdp_line *lines;
  uint32_t n, cap;
  int lf_only, last_eol;
  /* on SIP_EINVAL: where (0 the session, i the i-th media, -1 media is not
   * a list) and the field that is bad or missing ("(not a table)": an item
   * that is not a table) */
  int err_where;
  const char *err_field;
  struct sip_sdp_blk *blks; /* numbers and joined formats written here */
} sip_sdp_builder;

/* Build the lines of the tree r reads into b (initialised here: free it
 * with sip_sdp_builder_free whatever this returns). Returns 0, SIP_EINVAL
 * (b->err_* say where) or SIP_ENOMEM. The field values are not checked
 * here: sip_sdp_write refuses a line it cannot write. */
int sip_sdp_build(sip_sdp_builder *b, const sip_tree_reader *r);

/* Free what b holds (twice is safe). */
void sip_sdp_builder_free(sip_sdp_builder *b);

/* The other way: a parsed description (sip_sdp_parse) as the same tree,
 * made through e: number fields of at most 18 digits as UINT (longer ones
 * as STR; an item keeps its text as _raw when it is not canonical or a
 * number of it has leading zeros), lf / no_final_eol as TRUE. Absent fields are
 * not put; media is always put (an empty list without m= lines). */

void sip_sdp_emit(const sip_sdp *sdp, const sip_tree_emitter *e);

#endif
