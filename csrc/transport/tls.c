/* TLS over the uv_tcp stream with OpenSSL 3 memory BIOs: ciphertext read
 * from the socket is written into rbio, SSL_read/SSL_write/SSL_do_handshake
 * never touch the socket, and whatever OpenSSL puts into wbio is written to
 * the stream. No call blocks; "want read" just means wait for the next read.
 * OpenSSL's error queue is drained into the manager's error text. */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp_int.h"

/* "TLS: what: err1: err2 ..." into out, emptying the error queue. */
static void drain(char *out, size_t cap, const char *what) {
  size_t n = (size_t)snprintf(out, cap, "TLS: %s", what);
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    if (n + 3 < cap) {
      out[n++] = ':';
      out[n++] = ' ';
      ERR_error_string_n(e, out + n, cap - n);
      n += strlen(out + n);
    }
  }
}

static int ctx_fail(sip_tp *tp, const char *what, char *err, size_t errcap) {
  drain(tp->errtext, sizeof(tp->errtext), what);
  if (errcap)
    snprintf(err, errcap, "%s", tp->errtext);
  return SIP_EINVAL;
}

static SSL_CTX *new_ctx(const SSL_METHOD *m) {
  SSL_CTX *ctx = SSL_CTX_new(m);
  if (!ctx)
    return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

int sip__tp_tls_init(sip_tp *tp, char *err, size_t errcap) {
  const sip_tp_config *c = &tp->cfg;
  ERR_clear_error();
  tp->tls_client = new_ctx(TLS_client_method());
  if (!tp->tls_client)
    return ctx_fail(tp, "client context", err, errcap);
  if (c->tls_ca_file) {
    if (SSL_CTX_load_verify_locations(tp->tls_client, c->tls_ca_file, NULL) !=
        1)
      return ctx_fail(tp, c->tls_ca_file, err, errcap);
  } else {
    tp->tls_client_default_paths = 1; /* loaded by load_default_paths */
  }
  if (!c->tls_cert_file && !c->tls_key_file)
    return 0;
  if (!c->tls_cert_file || !c->tls_key_file) {
    if (errcap)
      snprintf(err, errcap, "TLS: need both tls_cert_file and tls_key_file");
    return SIP_EINVAL;
  }
  /* the certificate serves incoming connections and, as a client
   * certificate, outgoing ones */
  SSL_CTX *ctxs[2] = {NULL, tp->tls_client};
  ctxs[0] = tp->tls_server = new_ctx(TLS_server_method());
  if (!tp->tls_server)
    return ctx_fail(tp, "server context", err, errcap);
  for (int i = 0; i < 2; i++) {
    if (SSL_CTX_use_certificate_chain_file(ctxs[i], c->tls_cert_file) != 1)
      return ctx_fail(tp, c->tls_cert_file, err, errcap);
    if (SSL_CTX_use_PrivateKey_file(ctxs[i], c->tls_key_file,
                                    SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctxs[i]) != 1)
      return ctx_fail(tp, c->tls_key_file, err, errcap);
  }
  if (c->tls_verify_client) {
    if (!c->tls_ca_file || SSL_CTX_load_verify_locations(
                               tp->tls_server, c->tls_ca_file, NULL) != 1)
      return ctx_fail(tp, "tls_verify_client needs tls_ca_file", err, errcap);
    SSL_CTX_set_verify(tp->tls_server,
                       SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  }
  return 0;
}

void sip__tp_tls_free(sip_tp *tp) {
  SSL_CTX_free(tp->tls_server);
  SSL_CTX_free(tp->tls_client);
  tp->tls_server = tp->tls_client = NULL;
}

void sip__tp_tls_conn_free(sip_conn *c) {
  SSL_free(c->ssl); /* frees rbio and wbio */
  c->ssl = NULL;
}

/* Write everything OpenSSL has produced to the socket, read straight into
 * one write request. */
static int flush_wbio(sip_conn *c, uint32_t msg_len, sip_tp_send_cb cb,
                      void *arg) {
  size_t n = BIO_ctrl_pending(c->wbio);
  if (n == 0)
    return 0;
  sip__wreq *w = sip__tp_conn_wreq(c, n, msg_len, cb, arg);
  if (!w)
    return SIP_ENOMEM;
  int got = BIO_read(c->wbio, w->data, (int)n);
  if (got <= 0) {
    free(w);
    return UV_EPROTO;
  }
  w->len = (size_t)got;
  return sip__tp_conn_write(c, w);
}

/* The peer's certificate failed verification: one text with the peer (and
 * the name checked), OpenSSL's reason and the verification error, for the
 * close event (the server logs it); SIP_ECERT fails the pending sends. */
static int cert_fail(sip_conn *c, const char *peer, long vr) {
  sip_tp *tp = c->tp;
  unsigned long e = ERR_peek_last_error();
  const char *reason = e ? ERR_reason_error_string(e) : NULL;
  const char *name = c->tls_name;
  snprintf(tp->errtext, sizeof(tp->errtext),
           "TLS: %scertificate of %s%s%s%s refused: %s (verify error %ld: %s)",
           c->listener >= 0 ? "client " : "", peer, name ? " (" : "",
           name ? name : "", name ? ")" : "",
           reason ? reason : "handshake failed", vr,
           X509_verify_cert_error_string(vr));
  ERR_clear_error();
  tp->st.tls_failures++;
  tp->st.tls_verify_failures++;
  return SIP_ECERT;
}

static int tls_fail(sip_conn *c, const char *what) {
  sip_tp *tp = c->tp;
  char peer[64], detail[256];
  sip_tp_addr_str(&c->peer, peer, sizeof(peer));
  long vr = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
  if (vr != X509_V_OK)
    return cert_fail(c, peer, vr);
  snprintf(detail, sizeof(detail), "%s %s", what, peer);
  drain(tp->errtext, sizeof(tp->errtext), detail);
  tp->st.tls_failures++;
  return UV_EPROTO;
}

static int read_app(sip_conn *c);

static int handshake(sip_conn *c) {
  ERR_clear_error();
  int r = SSL_do_handshake(c->ssl);
  int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
  /* alerts and handshake records go out even when it failed */
  int wr = flush_wbio(c, 0, NULL, NULL);
  if (r == 1) {
    if (wr < 0)
      return wr;
    sip__tp_conn_opened(c);
    return read_app(c); /* records that came with the last flight */
  }
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
    return wr;
  return tls_fail(c, "handshake with");
}

static int is_ip_literal(const char *s) {
  unsigned char tmp[16];
  return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

/* The system's CA store is read for the first outgoing TLS connection, not
 * when the transport is made: parsing it costs about 20 ms and a few MB in
 * every server, and most never connect out over TLS. */
static void load_default_paths(sip_tp *tp) {
  if (tp->tls_client_default_paths) {
    tp->tls_client_default_paths = 0;
    SSL_CTX_set_default_verify_paths(tp->tls_client);
  }
}

int sip__tp_tls_start(sip_conn *c) {
  sip_tp *tp = c->tp;
  int server = c->listener >= 0;
  if (!server)
    load_default_paths(tp);
  ERR_clear_error();
  c->ssl = SSL_new(server ? tp->tls_server : tp->tls_client);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  if (!c->ssl || !c->rbio || !c->wbio) {
    if (!c->ssl) {
      BIO_free(c->rbio);
      BIO_free(c->wbio);
    }
    if (c->ssl && c->rbio && !c->wbio)
      BIO_free(c->rbio);
    return tls_fail(c, "setup for");
  }
  /* an empty rbio means "wait for more", not end of file */
  BIO_set_mem_eof_return(c->rbio, -1);
  SSL_set_bio(c->ssl, c->rbio, c->wbio);
  if (server) {
    SSL_set_accept_state(c->ssl);
    return handshake(c);
  }
  SSL_set_connect_state(c->ssl);
  const char *name = c->tls_name;
  if (name && !is_ip_literal(name))
    SSL_set_tlsext_host_name(c->ssl, name);
  if (tp->cfg.tls_verify_peer) {
    SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
    int ok;
    if (name && !is_ip_literal(name)) {
      X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      ok = X509_VERIFY_PARAM_set1_host(vp, name, 0);
    } else if (name) {
      ok = X509_VERIFY_PARAM_set1_ip_asc(vp, name);
    } else if (c->peer.ss_family == AF_INET6) {
      ok = X509_VERIFY_PARAM_set1_ip(
          vp,
          (const unsigned char *)&((struct sockaddr_in6 *)&c->peer)->sin6_addr,
          16);
    } else {
      ok = X509_VERIFY_PARAM_set1_ip(
          vp,
          (const unsigned char *)&((struct sockaddr_in *)&c->peer)->sin_addr,
          4);
    }
    if (ok != 1)
      return tls_fail(c, "verify name for");
  }
  return handshake(c);
}

/* Decrypt whatever is in rbio into the connection buffer and frame it. */
static int read_app(sip_conn *c) {
  for (;;) {
    if (c->state != SIP__CS_OPEN && c->state != SIP__CS_WSHAKE)
      return 0;
    if (c->cap - c->len < 4096 && sip__tp_conn_grow(c, 4096) < 0) {
      /* full: frame what is there, which frees space or fails */
      sip__tp_conn_process(c);
      if (c->state != SIP__CS_OPEN && c->state != SIP__CS_WSHAKE)
        return 0;
      if (c->cap == c->len && sip__tp_conn_grow(c, 1) < 0) {
        sip__tp_seterr(c->tp, "TLS: message exceeds the connection buffer");
        return SIP_ETOOBIG;
      }
    }
    size_t room = c->cap - c->len;
    ERR_clear_error();
    int n = SSL_read(c->ssl, c->buf + c->len,
                     room > INT32_MAX ? INT32_MAX : (int)room);
    if (n > 0) {
      c->len += (size_t)n;
      continue;
    }
    int e = SSL_get_error(c->ssl, n);
    int wr = flush_wbio(c, 0, NULL, NULL);
    if (wr < 0)
      return wr;
    if (e == SSL_ERROR_WANT_READ)
      break;
    if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify */
      sip__tp_conn_process(c);
      return UV_EOF;
    }
    return tls_fail(c, "read from");
  }
  sip__tp_conn_process(c);
  return 0;
}

int sip__tp_tls_input(sip_conn *c, const char *p, size_t len) {
  if (BIO_write(c->rbio, p, (int)len) != (int)len)
    return tls_fail(c, "buffer for");
  if (c->state == SIP__CS_HANDSHAKE)
    return handshake(c);
  return read_app(c);
}

int sip__tp_tls_write(sip_conn *c, sip__wreq *w) {
  ERR_clear_error();
  int n = w->len ? SSL_write(c->ssl, w->data, (int)w->len) : 1;
  int rc = n > 0 ? flush_wbio(c, w->msg_len, w->cb, w->arg)
                 : tls_fail(c, "write to");
  free(w);
  return rc;
}

void sip__tp_tls_shutdown(sip_conn *c) {
  ERR_clear_error();
  SSL_shutdown(c->ssl);
  flush_wbio(c, 0, NULL, NULL);
  ERR_clear_error();
}

int sip__tp_tls_peer_names(sip_conn *c, sip_str host) {
  if (!c->ssl || SSL_get_verify_result(c->ssl) != X509_V_OK)
    return 0;
  X509 *cert = SSL_get1_peer_certificate(c->ssl);
  if (!cert)
    return 0;
  char name[256];
  const char *p = host.p;
  size_t n = host.len;
  if (n >= 2 && p[0] == '[' && p[n - 1] == ']') {
    p++;
    n -= 2;
  }
  int ok = 0;
  if (n > 0 && n < sizeof name) {
    memcpy(name, p, n);
    name[n] = 0;
    ok = is_ip_literal(name)
             ? X509_check_ip_asc(cert, name, 0) == 1
             : X509_check_host(cert, name, n,
                               X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
  }
  X509_free(cert);
  return ok;
}
