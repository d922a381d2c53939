/* The connection table: open TCP/TLS connections by id and by (transport,
 * address), and the aliases of RFC 5923.
 *
 * Both indexes are chained hash tables with the same number of buckets,
 * doubled when the entries outnumber them, so a send to a known peer costs
 * the same with 10 connections as with 100,000. An entry by address is a
 * key: every connection has one for its peer address, and one more per
 * alias, i.e. per address that a peer declared it can be reached at over
 * this connection (Via ";alias", RFC 5923 §5). */
#include <stdlib.h>
#include <string.h>

#include "tp_int.h"

#define TABLE_MIN_BUCKETS 64

static uint32_t hash_addr(int transport, const struct sockaddr_storage *sa) {
  uint32_t h = 2166136261u ^ (uint32_t)transport;
  const unsigned char *p;
  size_t n;
  uint16_t port;
  if (sa->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    p = s6->sin6_addr.s6_addr;
    n = 16;
    port = s6->sin6_port;
  } else {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    p = (const unsigned char *)&s4->sin_addr;
    n = 4;
    port = s4->sin_port;
  }
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  h = (h ^ (port & 0xff)) * 16777619u;
  h = (h ^ (port >> 8)) * 16777619u;
  return h;
}

static uint32_t hash_id(uint64_t id) {
  id ^= id >> 33;
  id *= 0xff51afd7ed558ccdu;
  id ^= id >> 33;
  return (uint32_t)id;
}

static void key_link(sip_tp *tp, sip__tp_key *k) {
  uint32_t b = hash_addr(k->transport, &k->addr) & (tp->nbuckets - 1);
  k->next = tp->by_addr[b];
  tp->by_addr[b] = k;
}

static void key_unlink(sip_tp *tp, sip__tp_key *k) {
  uint32_t b = hash_addr(k->transport, &k->addr) & (tp->nbuckets - 1);
  for (sip__tp_key **pp = &tp->by_addr[b]; *pp; pp = &(*pp)->next)
    if (*pp == k) {
      *pp = k->next;
      break;
    }
  k->next = NULL;
}

static void id_link(sip_tp *tp, sip_conn *c) {
  uint32_t b = hash_id(c->id) & (tp->nbuckets - 1);
  c->id_next = tp->by_id[b];
  tp->by_id[b] = c;
}

/* Rebuild both indexes with n buckets (a power of two). */
static int rehash(sip_tp *tp, uint32_t n) {
  sip_conn **ids = calloc(n, sizeof(*ids));
  sip__tp_key **keys = calloc(n, sizeof(*keys));
  if (!ids || !keys) {
    free(ids);
    free(keys);
    return SIP_ENOMEM;
  }
  sip_conn **old_ids = tp->by_id;
  sip__tp_key **old_keys = tp->by_addr;
  uint32_t old_n = tp->nbuckets;
  tp->by_id = ids;
  tp->by_addr = keys;
  tp->nbuckets = n;
  for (uint32_t i = 0; i < old_n; i++) {
    for (sip_conn *c = old_ids[i], *next; c; c = next) {
      next = c->id_next;
      id_link(tp, c);
    }
    for (sip__tp_key *k = old_keys[i], *next; k; k = next) {
      next = k->next;
      key_link(tp, k);
    }
  }
  free(old_ids);
  free(old_keys);
  return 0;
}

static int grow_for(sip_tp *tp, uint32_t entries) {
  if (tp->nbuckets == 0)
    return rehash(tp, TABLE_MIN_BUCKETS);
  if (entries > tp->nbuckets && tp->nbuckets < (1u << 30))
    return rehash(tp, tp->nbuckets * 2);
  return 0;
}

int sip__tp_table_add(sip_tp *tp, sip_conn *c) {
  int rc = grow_for(tp, tp->nkeys + 1);
  if (rc < 0)
    return rc;
  id_link(tp, c);
  c->key.conn = c;
  c->key.transport = c->transport;
  c->key.addr = c->peer;
  c->key.alias_next = NULL;
  key_link(tp, &c->key);
  tp->nkeys++;
  c->in_table = 1;
  return 0;
}

void sip__tp_table_remove(sip_tp *tp, sip_conn *c) {
  if (!c->in_table)
    return;
  uint32_t b = hash_id(c->id) & (tp->nbuckets - 1);
  for (sip_conn **pp = &tp->by_id[b]; *pp; pp = &(*pp)->id_next)
    if (*pp == c) {
      *pp = c->id_next;
      break;
    }
  key_unlink(tp, &c->key);
  tp->nkeys--;
  while (c->aliases) {
    sip__tp_key *a = c->aliases;
    c->aliases = a->alias_next;
    key_unlink(tp, a);
    tp->nkeys--;
    free(a);
  }
  c->in_table = 0;
}

sip_conn *sip__tp_conn_find_id(const sip_tp *tp, uint64_t id) {
  if (!id || !tp->nbuckets)
    return NULL;
  for (sip_conn *c = tp->by_id[hash_id(id) & (tp->nbuckets - 1)]; c;
       c = c->id_next)
    if (c->id == id)
      return c;
  return NULL;
}

sip_conn *sip__tp_conn_find_addr(const sip_tp *tp, int transport,
                                 const struct sockaddr_storage *sa) {
  if (!tp->nbuckets)
    return NULL;
  uint32_t b = hash_addr(transport, sa) & (tp->nbuckets - 1);
  for (const sip__tp_key *k = tp->by_addr[b]; k; k = k->next)
    if (k->transport == transport && sip__tp_addr_eq(&k->addr, sa))
      return k->conn;
  return NULL;
}

int sip__tp_table_alias(sip_tp *tp, sip_conn *c,
                        const struct sockaddr_storage *sa) {
  if (!c->in_table)
    return SIP_EINVAL;
  sip_conn *owner = sip__tp_conn_find_addr(tp, c->transport, sa);
  if (owner == c)
    return 0; /* already reachable there over this connection */
  if (owner)
    return UV_EEXIST; /* another connection holds that address */
  int n = 0;
  for (sip__tp_key *a = c->aliases; a; a = a->alias_next)
    n++;
  if (n >= SIP__TP_MAX_ALIASES)
    return UV_ENOSPC;
  int rc = grow_for(tp, tp->nkeys + 1);
  if (rc < 0)
    return rc;
  sip__tp_key *a = calloc(1, sizeof(*a));
  if (!a)
    return SIP_ENOMEM;
  a->conn = c;
  a->transport = c->transport;
  a->addr = *sa;
  a->alias_next = c->aliases;
  c->aliases = a;
  key_link(tp, a);
  tp->nkeys++;
  tp->st.aliases++;
  return 0;
}

void sip__tp_table_free(sip_tp *tp) {
  free(tp->by_id);
  free(tp->by_addr);
  tp->by_id = NULL;
  tp->by_addr = NULL;
  tp->nbuckets = 0;
}
