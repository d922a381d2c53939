/* The stored form of a location binding: one string per binding, the
 * format of lua/luasip/location/codec.lua (which documents it), shared by
 * the memory, SQLite and Redis backends:
 *
 *     expires (LE double) | saved (LE double) | key (u16 length + bytes)
 *     then fields: name byte (SIP_BF_*, or 0 + u8 length + name), type
 *     byte, value
 *
 * Reading walks the fields without copying (slices into the record);
 * writing appends to a sip_obuf. */
#ifndef SIP_BINDING_H
#define SIP_BINDING_H

#include <stdint.h>

#include "sip_registrar.h"
#include "sip_types.h"

/* Field names with a one-byte code in a binding record: the order is the
 * format (a new field goes last). */
/* clang-format off */
#define SIP_BINDING_FIELDS(X) \
  X(CONTACT, "contact") \
  X(Q, "q") \
  X(CALL_ID, "call_id") \
  X(CSEQ, "cseq") \
  X(PATH, "path") \
  X(RECEIVED, "received") \
  X(INSTANCE, "instance") \
  X(REG_ID, "reg_id") \
  X(SOCKET, "socket") \
  X(USER_AGENT, "user_agent") \
  X(UPDATED, "updated") \
  X(PARAMS, "params") \
  X(PUB_GRUU, "pub_gruu") \
  X(TEMP_GRUU, "temp_gruu") \
  X(FLAGS, "flags") \
  X(METHODS, "methods")
/* clang-format on */

enum sip_binding_field {
  SIP_BF_OTHER = 0, /* spelled out in the record */
#define SIP__BF_ENUM(id, name) SIP_BF_##id,
  SIP_BINDING_FIELDS(SIP__BF_ENUM)
#undef SIP__BF_ENUM
      SIP_BF__COUNT
};

/* "contact", ... for a code; NULL for SIP_BF_OTHER or out of range. */
const char *sip_binding_field_name(int id);
/* The code of a field name, SIP_BF_OTHER when it has none. */
int sip_binding_field_id(const char *name, size_t len);

/* Value types (the type byte). */
enum {
  SIP_BT_STR = 's',  /* u16 length + bytes */
  SIP_BT_LSTR = 'S', /* u32 length + bytes */
  SIP_BT_I32 = 'i',
  SIP_BT_I64 = 'j',
  SIP_BT_DBL = 'd',
  SIP_BT_TRUE = 't',
  SIP_BT_FALSE = 'f',
  SIP_BT_ARRAY = 'a', /* u16 count, then count strings (u16 length + bytes) */
  SIP_BT_KEY = 'K',   /* a string equal to the key: nothing stored */
};

typedef struct sip_bfield {
  int id;       /* SIP_BF_* */
  sip_str name; /* the spelled-out name when id is SIP_BF_OTHER */
  char type;    /* SIP_BT_* */
  sip_str str;  /* STR, LSTR, KEY; ARRAY: the encoded items */
  int64_t i;    /* I32, I64; ARRAY: the item count */
  double d;     /* DBL */
} sip_bfield;

typedef struct sip_breader {
  const char *p;
  size_t len, pos;
  double expires, saved;
  sip_str key;
} sip_breader;

/* Read the header of a record. Returns 0 or SIP_EVALUE (truncated). */
int sip_binding_open(sip_breader *r, const char *p, size_t len);
/* The next field: 1 and *f set, 0 at the end, SIP_EVALUE for a corrupt
 * record. */
int sip_binding_next(sip_breader *r, sip_bfield *f);
/* The next item of an ARRAY field: start with rest = f->str; 0 and *out
 * (rest advanced), or SIP_EVALUE. */
int sip_binding_item(sip_str *items_rest, sip_str *out);

/* Writing: the header first, then any fields. */
void sip_binding_begin(sip_obuf *b, double expires, double saved, sip_str key);
void sip_binding_put_str(sip_obuf *b, int id, const char *name, sip_str v);
/* An integer, stored as I32 when it fits. */
void sip_binding_put_int(sip_obuf *b, int id, const char *name, int64_t v);
void sip_binding_put_double(sip_obuf *b, int id, const char *name, double v);
void sip_binding_put_bool(sip_obuf *b, int id, const char *name, int v);
/* The key again (type KEY). */
void sip_binding_put_key(sip_obuf *b, int id, const char *name);
/* An array: its count, then sip_binding_put_item count times. */
void sip_binding_put_array(sip_obuf *b, int id, const char *name, size_t n);
void sip_binding_put_item(sip_obuf *b, sip_str v);

#endif
