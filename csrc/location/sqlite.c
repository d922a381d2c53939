/* SQLite on libuv's worker threads: see sip_sqlite.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sip_error.h"
#include "sip_sqlite.h"

#define NCACHE 16

typedef struct job {
  struct job *next;
  intptr_t tag;
  int dropped; /* closed meanwhile: no callback */
  char *sql;
  int nparams;
  sip_sql_value *params;
  /* results (worker) */
  sip_sql_value *cells;
  size_t ncells, cap;
  int ncols;
  int changes;
  char *err;
} job;

struct sip_sqlite {
  uv_loop_t *loop;
  sip_sqlite_cb cb;
  void *ud;
  sqlite3 *db; /* worker only */
  char *path, *setup;
  job *queue, **qtail; /* waiting, loop thread only */
  job *batch;          /* in the worker */
  uv_work_t work;
  int busy;   /* a work request is in flight */
  int closed; /* closed: free when idle */
  struct {
    char *sql;
    sqlite3_stmt *st;
  } cache[NCACHE];
  int next_slot;
};

static char *dupmem(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    if (n)
      memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

static void free_values(sip_sql_value *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free((char *)v[i].s);
  free(v);
}

static void free_job(job *j) {
  free(j->sql);
  free_values(j->params, (size_t)j->nparams);
  free_values(j->cells, j->ncells);
  free(j->err);
  free(j);
}

static void job_fail(job *j, const char *what, const char *msg) {
  if (j->err)
    return;
  size_t n = (what ? strlen(what) + 2 : 0) + strlen(msg) + 1;
  j->err = malloc(n);
  if (j->err)
    snprintf(j->err, n, "%s%s%s", what ? what : "", what ? ": " : "", msg);
}

/* ---- worker thread ------------------------------------------------------ */

static void close_db(sip_sqlite *c) {
  for (int i = 0; i < NCACHE; i++) {
    sqlite3_finalize(c->cache[i].st);
    free(c->cache[i].sql);
    c->cache[i].st = NULL;
    c->cache[i].sql = NULL;
  }
  if (c->db)
    sqlite3_close_v2(c->db);
  c->db = NULL;
}

static const char *open_db(sip_sqlite *c) {
  static __thread char msg[256];
  if (c->db)
    return NULL;
  int rc = sqlite3_open_v2(
      c->path, &c->db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    snprintf(msg, sizeof msg, "open %s: %s", c->path,
             c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    close_db(c);
    return msg;
  }
  sqlite3_busy_timeout(c->db, 5000);
  char *err = NULL;
  if (c->setup &&
      sqlite3_exec(c->db, c->setup, NULL, NULL, &err) != SQLITE_OK) {
    snprintf(msg, sizeof msg, "open %s: %s", c->path,
             err ? err : "setup failed");
    sqlite3_free(err);
    close_db(c);
    return msg;
  }
  return NULL;
}

static sqlite3_stmt *prepare(sip_sqlite *c, const char *sql) {
  for (int i = 0; i < NCACHE; i++)
    if (c->cache[i].sql && strcmp(c->cache[i].sql, sql) == 0) {
      sqlite3_reset(c->cache[i].st);
      sqlite3_clear_bindings(c->cache[i].st);
      return c->cache[i].st;
    }
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK || !st)
    return NULL;
  int k = c->next_slot;
  c->next_slot = (k + 1) % NCACHE;
  sqlite3_finalize(c->cache[k].st);
  free(c->cache[k].sql);
  c->cache[k].sql = dupmem(sql, strlen(sql));
  c->cache[k].st = c->cache[k].sql ? st : NULL;
  if (!c->cache[k].sql) {
    sqlite3_finalize(st);
    return NULL;
  }
  return st;
}

static int push_cell(job *j, sqlite3_stmt *st, int col) {
  if (j->ncells == j->cap) {
    size_t cap = j->cap ? 2 * j->cap : 16;
    sip_sql_value *v = realloc(j->cells, cap * sizeof(*v));
    if (!v)
      return -1;
    j->cells = v;
    j->cap = cap;
  }
  sip_sql_value *x = &j->cells[j->ncells];
  memset(x, 0, sizeof(*x));
  switch (sqlite3_column_type(st, col)) {
  case SQLITE_INTEGER:
    x->type = SIP_SQL_INTEGER;
    x->i = sqlite3_column_int64(st, col);
    break;
  case SQLITE_FLOAT:
    x->type = SIP_SQL_FLOAT;
    x->d = sqlite3_column_double(st, col);
    break;
  case SQLITE_TEXT:
  case SQLITE_BLOB: {
    int text = sqlite3_column_type(st, col) == SQLITE_TEXT;
    const void *p = text ? (const void *)sqlite3_column_text(st, col)
                         : sqlite3_column_blob(st, col);
    x->type = text ? SIP_SQL_TEXT : SIP_SQL_BLOB;
    x->len = (size_t)sqlite3_column_bytes(st, col);
    x->s = dupmem(p ? p : "", p ? x->len : 0);
    if (!x->s)
      return -1;
    break;
  }
  default:
    x->type = SIP_SQL_NULL;
  }
  j->ncells++;
  return 0;
}

static void run_one(sip_sqlite *c, job *j) {
  sqlite3_stmt *st = prepare(c, j->sql);
  if (!st) {
    job_fail(j, "prepare", sqlite3_errmsg(c->db));
    return;
  }
  for (int i = 0; i < j->nparams; i++) {
    const sip_sql_value *p = &j->params[i];
    int rc;
    switch (p->type) {
    case SIP_SQL_INTEGER:
      rc = sqlite3_bind_int64(st, i + 1, p->i);
      break;
    case SIP_SQL_FLOAT:
      rc = sqlite3_bind_double(st, i + 1, p->d);
      break;
    case SIP_SQL_TEXT:
      rc = sqlite3_bind_text(st, i + 1, p->s, (int)p->len, SQLITE_STATIC);
      break;
    case SIP_SQL_BLOB:
      rc = sqlite3_bind_blob(st, i + 1, p->s, (int)p->len, SQLITE_STATIC);
      break;
    default:
      rc = sqlite3_bind_null(st, i + 1);
    }
    if (rc != SQLITE_OK) {
      job_fail(j, "bind", sqlite3_errmsg(c->db));
      return;
    }
  }
  int rc;
  j->ncols = sqlite3_column_count(st);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    for (int k = 0; k < j->ncols; k++)
      if (push_cell(j, st, k) < 0) {
        job_fail(j, "step", "out of memory");
        sqlite3_reset(st);
        return;
      }
  if (rc != SQLITE_DONE)
    job_fail(j, "step", sqlite3_errmsg(c->db));
  else
    j->changes = sqlite3_changes(c->db);
  sqlite3_reset(st);
}

static int exec_simple(sip_sqlite *c, const char *sql) {
  return sqlite3_exec(c->db, sql, NULL, NULL, NULL);
}

static void work_cb(uv_work_t *w) {
  sip_sqlite *c = w->data;
  const char *err = open_db(c);
  if (err) {
    for (job *j = c->batch; j; j = j->next)
      job_fail(j, NULL, err);
    return;
  }
  int many = c->batch && c->batch->next;
  if (many && exec_simple(c, "BEGIN IMMEDIATE") != SQLITE_OK) {
    const char *m = sqlite3_errmsg(c->db);
    for (job *j = c->batch; j; j = j->next)
      job_fail(j, "begin", m);
    return;
  }
  for (job *j = c->batch; j; j = j->next) {
    if (many)
      exec_simple(c, "SAVEPOINT s");
    run_one(c, j);
    if (many) {
      if (j->err)
        exec_simple(c, "ROLLBACK TO s");
      exec_simple(c, "RELEASE s");
    }
  }
  if (many && exec_simple(c, "COMMIT") != SQLITE_OK) {
    const char *m = sqlite3_errmsg(c->db);
    for (job *j = c->batch; j; j = j->next) {
      free_values(j->cells, j->ncells);
      j->cells = NULL;
      j->ncells = j->cap = 0;
      job_fail(j, "commit", m);
    }
    exec_simple(c, "ROLLBACK");
  }
}

/* ---- loop thread -------------------------------------------------------- */

static void after_cb(uv_work_t *w, int status);

static void start(sip_sqlite *c) {
  if (c->busy || !c->queue)
    return;
  c->batch = c->queue;
  c->queue = NULL;
  c->qtail = &c->queue;
  c->busy = 1;
  c->work.data = c;
  if (uv_queue_work(c->loop, &c->work, work_cb, after_cb) != 0) {
    c->busy = 0; /* cannot happen with a valid loop; fail the batch later */
    for (job *j = c->batch; j; j = j->next)
      job_fail(j, "sqlite", "cannot queue work");
    after_cb(&c->work, 0);
  }
}

static void free_core(sip_sqlite *c) {
  close_db(c);
  free(c->path);
  free(c->setup);
  free(c);
}

static void after_cb(uv_work_t *w, int status) {
  sip_sqlite *c = w->data;
  (void)status;
  job *list = c->batch;
  c->batch = NULL;
  c->busy = 0;
  if (c->closed) {
    while (list) {
      job *n = list->next;
      free_job(list);
      list = n;
    }
    if (!c->queue)
      free_core(c);
    return;
  }
  /* start the next batch first: the callbacks may queue more (or close:
   * then c may be gone, and the rest of list is still delivered) */
  start(c);
  sip_sqlite_cb cb = c->cb;
  void *ud = c->ud;
  while (list) {
    job *n = list->next;
    if (!list->dropped) {
      sip_sql_result r = {list->err, list->cells, list->ncells, list->ncols,
                          list->changes};
      if (r.err) {
        r.cells = NULL;
        r.ncells = 0;
      }
      cb(ud, list->tag, &r);
    }
    free_job(list);
    list = n;
  }
}

int sip_sqlite_open(uv_loop_t *loop, const char *path, const char *setup,
                    sip_sqlite_cb cb, void *ud, sip_sqlite **out) {
  sip_sqlite *c = calloc(1, sizeof(*c));
  if (!c)
    return SIP_ENOMEM;
  c->loop = loop;
  c->cb = cb;
  c->ud = ud;
  c->qtail = &c->queue;
  c->path = dupmem(path, strlen(path));
  c->setup = setup ? dupmem(setup, strlen(setup)) : NULL;
  if (!c->path || (setup && !c->setup)) {
    free_core(c);
    return SIP_ENOMEM;
  }
  *out = c;
  return 0;
}

int sip_sqlite_exec(sip_sqlite *c, const char *sql, size_t len,
                    const sip_sql_value *params, int n, intptr_t tag) {
  if (n < 0)
    return SIP_EINVAL;
  job *j = calloc(1, sizeof(*j));
  if (!j)
    return SIP_ENOMEM;
  j->tag = tag;
  j->sql = dupmem(sql, len);
  j->params = n ? calloc((size_t)n, sizeof(sip_sql_value)) : NULL;
  j->nparams = n;
  if (!j->sql || (n && !j->params)) {
    free_job(j);
    return SIP_ENOMEM;
  }
  for (int i = 0; i < n; i++) {
    sip_sql_value *x = &j->params[i];
    *x = params[i];
    x->s = NULL;
    if (x->type == SIP_SQL_TEXT || x->type == SIP_SQL_BLOB) {
      if (!(x->s = dupmem(params[i].s, params[i].len))) {
        free_job(j);
        return SIP_ENOMEM;
      }
    } else if (x->type != SIP_SQL_INTEGER && x->type != SIP_SQL_FLOAT) {
      x->type = SIP_SQL_NULL;
    }
  }
  *c->qtail = j;
  c->qtail = &j->next;
  start(c);
  return 0;
}

int sip_sqlite_busy(const sip_sqlite *c) { return c->busy || c->queue; }

void sip_sqlite_close(sip_sqlite *c, void (*drop)(void *ctx, intptr_t tag),
                      void *ctx) {
  c->closed = 1;
  for (job *j = c->queue; j;) {
    job *n = j->next;
    if (drop)
      drop(ctx, j->tag);
    free_job(j);
    j = n;
  }
  c->queue = NULL;
  c->qtail = &c->queue;
  for (job *j = c->batch; j; j = j->next) {
    if (drop && !j->dropped)
      drop(ctx, j->tag);
    j->dropped = 1;
  }
  if (!c->busy)
    free_core(c);
}
