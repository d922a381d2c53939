/* luasip.SQLite: SQLite statements run on libuv's worker threads, for the
 * sqlite location backend (lua/luasip/location/sqlite.lua).
 *
 *   local db = core.sqlite(path, setup_sql)
 *   db:exec(fn, sql, types, ...) -> true | nil, err
 *       types: one letter per parameter: t text, b blob, i integer,
 *       d double (nil binds NULL whatever the letter)
 *       fn(rows, changes) with rows = { {col, ...}, ... } (NULL as false),
 *       or fn(nil, err); always later, on the loop, never inside exec()
 *   db:close()
 *
 * One connection, used by one worker job at a time: statements queue up
 * and each job takes every statement queued so far and runs them in one
 * transaction (group commit), each inside its own savepoint so that one
 * failing statement fails alone. A statement's callback runs after the
 * COMMIT: what it wrote is on disk (as PRAGMA synchronous says) when the
 * caller hears of it. The file is opened by the first job (then
 * `setup_sql` runs: pragmas, schema); a failed open is tried again by the
 * next job. The loop thread never touches the connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "lsip.h"

#define SIP_LUA_SQLITE "luasip.SQLite"
#define NCACHE 16

typedef struct cell {
  int type; /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, NULL */
  sqlite3_int64 i;
  double d;
  char *s;
  size_t len;
} cell;

typedef struct job {
  struct job *next;
  int fn_ref;
  char *sql;
  int nparams;
  cell *params;
  /* results (worker) */
  cell *cells;
  size_t ncells, cap;
  int ncols;
  int changes;
  char *err;
} job;

typedef struct dbcore {
  sip_lua_loop *lp;
  sqlite3 *db; /* worker only */
  char *path, *setup;
  job *queue, **qtail; /* waiting, loop thread only */
  job *batch;          /* in the worker */
  uv_work_t work;
  int busy;   /* a work request is in flight */
  int closed; /* the userdata is gone or closed: free when idle */
  struct {
    char *sql;
    sqlite3_stmt *st;
  } cache[NCACHE];
  int next_slot;
} dbcore;

typedef struct ldb {
  dbcore *c;
} ldb;

static char *dupmem(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

static void free_cells(cell *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i].s);
  free(v);
}

static void free_job(job *j) {
  free(j->sql);
  free_cells(j->params, (size_t)j->nparams);
  free_cells(j->cells, j->ncells);
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

static void close_db(dbcore *c) {
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

static const char *open_db(dbcore *c) {
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

static sqlite3_stmt *prepare(dbcore *c, const char *sql) {
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
    cell *v = realloc(j->cells, cap * sizeof(*v));
    if (!v)
      return -1;
    j->cells = v;
    j->cap = cap;
  }
  cell *x = &j->cells[j->ncells];
  memset(x, 0, sizeof(*x));
  x->type = sqlite3_column_type(st, col);
  switch (x->type) {
  case SQLITE_INTEGER:
    x->i = sqlite3_column_int64(st, col);
    break;
  case SQLITE_FLOAT:
    x->d = sqlite3_column_double(st, col);
    break;
  case SQLITE_TEXT:
  case SQLITE_BLOB: {
    const void *p = x->type == SQLITE_TEXT
                        ? (const void *)sqlite3_column_text(st, col)
                        : sqlite3_column_blob(st, col);
    x->len = (size_t)sqlite3_column_bytes(st, col);
    x->s = dupmem(p ? p : "", p ? x->len : 0);
    if (!x->s)
      return -1;
    break;
  }
  default:
    x->type = SQLITE_NULL;
  }
  j->ncells++;
  return 0;
}

static void run_one(dbcore *c, job *j) {
  sqlite3_stmt *st = prepare(c, j->sql);
  if (!st) {
    job_fail(j, "prepare", sqlite3_errmsg(c->db));
    return;
  }
  for (int i = 0; i < j->nparams; i++) {
    cell *p = &j->params[i];
    int rc;
    switch (p->type) {
    case SQLITE_INTEGER:
      rc = sqlite3_bind_int64(st, i + 1, p->i);
      break;
    case SQLITE_FLOAT:
      rc = sqlite3_bind_double(st, i + 1, p->d);
      break;
    case SQLITE_TEXT:
      rc = sqlite3_bind_text(st, i + 1, p->s, (int)p->len, SQLITE_STATIC);
      break;
    case SQLITE_BLOB:
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

static int exec_simple(dbcore *c, const char *sql) {
  return sqlite3_exec(c->db, sql, NULL, NULL, NULL);
}

static void work_cb(uv_work_t *w) {
  dbcore *c = w->data;
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
      free_cells(j->cells, j->ncells);
      j->cells = NULL;
      j->ncells = j->cap = 0;
      job_fail(j, "commit", m);
    }
    exec_simple(c, "ROLLBACK");
  }
}

/* ---- loop thread -------------------------------------------------------- */

static void after_cb(uv_work_t *w, int status);

static void start(dbcore *c) {
  if (c->busy || !c->queue)
    return;
  c->batch = c->queue;
  c->queue = NULL;
  c->qtail = &c->queue;
  c->busy = 1;
  c->work.data = c;
  if (uv_queue_work(&c->lp->loop, &c->work, work_cb, after_cb) != 0) {
    c->busy = 0; /* cannot happen with a valid loop; fail the batch later */
    for (job *j = c->batch; j; j = j->next)
      job_fail(j, "sqlite", "cannot queue work");
    after_cb(&c->work, 0);
  }
}

static void free_core(dbcore *c) {
  close_db(c);
  free(c->path);
  free(c->setup);
  free(c);
}

static void push_cell_value(lua_State *L, const cell *x) {
  switch (x->type) {
  case SQLITE_INTEGER:
    lua_pushinteger(L, (lua_Integer)x->i);
    break;
  case SQLITE_FLOAT:
    lua_pushnumber(L, (lua_Number)x->d);
    break;
  case SQLITE_TEXT:
  case SQLITE_BLOB:
    lua_pushlstring(L, x->s, x->len);
    break;
  default:
    lua_pushboolean(L, 0);
  }
}

static void deliver(lua_State *L, job *j) {
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 8))
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, j->fn_ref);
  int nargs = 2;
  if (j->err) {
    lua_pushnil(L);
    lua_pushstring(L, j->err);
  } else {
    int ncols = j->ncols > 0 ? j->ncols : 1;
    size_t nrows = j->ncols > 0 ? j->ncells / (size_t)ncols : 0;
    lua_createtable(L, (int)nrows, 0);
    for (size_t r = 0; r < nrows; r++) {
      lua_createtable(L, ncols, 0);
      for (int k = 0; k < ncols; k++) {
        push_cell_value(L, &j->cells[r * (size_t)ncols + (size_t)k]);
        lua_rawseti(L, -2, k + 1);
      }
      lua_rawseti(L, -2, (lua_Integer)r + 1);
    }
    lua_pushinteger(L, j->changes);
  }
  sip__lua_call(L, nargs, "sqlite callback");
  lua_settop(L, top);
}

static void after_cb(uv_work_t *w, int status) {
  dbcore *c = w->data;
  (void)status;
  job *list = c->batch;
  c->batch = NULL;
  c->busy = 0;
  lua_State *L = c->lp->L;
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
  /* start the next batch first: the callbacks may queue more */
  start(c);
  while (list) {
    job *n = list->next;
    if (L && list->fn_ref != LUA_NOREF) {
      deliver(L, list);
      luaL_unref(L, LUA_REGISTRYINDEX, list->fn_ref);
    }
    free_job(list);
    list = n;
  }
}

static dbcore *check(lua_State *L) {
  ldb *d = luaL_checkudata(L, 1, SIP_LUA_SQLITE);
  if (!d->c)
    luaL_error(L, "sqlite: the database is closed");
  return d->c;
}

/* core.sqlite(path[, setup_sql]) -> db (the file is opened by the first
 * statement, on a worker) */
static int l_new(lua_State *L) {
  size_t pl, sl = 0;
  const char *path = luaL_checklstring(L, 1, &pl);
  const char *setup = luaL_optlstring(L, 2, NULL, &sl);
  sip_lua_loop *lp = sip__lua_loop(L);
  ldb *d = lua_newuserdatauv(L, sizeof(*d), 1);
  d->c = NULL;
  luaL_setmetatable(L, SIP_LUA_SQLITE);
  sip__lua_push_loop(L); /* the loop outlives this object */
  lua_setiuservalue(L, -2, 1);
  dbcore *c = calloc(1, sizeof(*c));
  if (!c)
    return luaL_error(L, "sqlite: out of memory");
  c->lp = lp;
  c->qtail = &c->queue;
  c->path = dupmem(path, pl);
  c->setup = setup ? dupmem(setup, sl) : NULL;
  if (!c->path || (setup && !c->setup)) {
    free_core(c);
    return luaL_error(L, "sqlite: out of memory");
  }
  d->c = c;
  return 1;
}

/* db:exec(fn, sql, types, ...) -> true | nil, err */
static int l_exec(lua_State *L) {
  dbcore *c = check(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  size_t ql, tl = 0;
  const char *sql = luaL_checklstring(L, 3, &ql);
  const char *types = luaL_optlstring(L, 4, "", &tl);
  int n = lua_gettop(L) - 4;
  if (n < 0)
    n = 0;
  luaL_argcheck(L, (size_t)n == tl, 4, "one type letter per parameter");
  job *j = calloc(1, sizeof(*j));
  if (!j)
    return luaL_error(L, "sqlite: out of memory");
  j->fn_ref = LUA_NOREF;
  j->sql = dupmem(sql, ql);
  j->params = n ? calloc((size_t)n, sizeof(cell)) : NULL;
  j->nparams = n;
  if (!j->sql || (n && !j->params)) {
    free_job(j);
    return luaL_error(L, "sqlite: out of memory");
  }
  for (int i = 0; i < n; i++) {
    int idx = 5 + i;
    cell *x = &j->params[i];
    if (lua_isnil(L, idx)) {
      x->type = SQLITE_NULL;
      continue;
    }
    switch (types[i]) {
    case 'i':
      if (!lua_isinteger(L, idx)) {
        free_job(j);
        return luaL_argerror(L, idx, "integer expected");
      }
      x->type = SQLITE_INTEGER;
      x->i = (sqlite3_int64)lua_tointeger(L, idx);
      break;
    case 'd':
      if (lua_type(L, idx) != LUA_TNUMBER) {
        free_job(j);
        return luaL_argerror(L, idx, "number expected");
      }
      x->type = SQLITE_FLOAT;
      x->d = (double)lua_tonumber(L, idx);
      break;
    case 't':
    case 'b': {
      if (lua_type(L, idx) != LUA_TSTRING) {
        free_job(j);
        return luaL_argerror(L, idx, "string expected");
      }
      size_t len;
      const char *v = lua_tolstring(L, idx, &len);
      x->type = types[i] == 't' ? SQLITE_TEXT : SQLITE_BLOB;
      x->s = dupmem(v, len);
      x->len = len;
      if (!x->s) {
        free_job(j);
        return luaL_error(L, "sqlite: out of memory");
      }
      break;
    }
    default:
      free_job(j);
      return luaL_argerror(L, 4, "types are t, b, i, d");
    }
  }
  lua_pushvalue(L, 2);
  j->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  *c->qtail = j;
  c->qtail = &j->next;
  start(c);
  lua_pushboolean(L, 1);
  return 1;
}

/* db:close() (also __gc): statements not yet delivered are dropped without
 * their callbacks; the connection closes once the running job is done. */
static int l_close(lua_State *L) {
  ldb *d = luaL_checkudata(L, 1, SIP_LUA_SQLITE);
  dbcore *c = d->c;
  if (!c)
    return 0;
  d->c = NULL;
  c->closed = 1;
  for (job *j = c->queue; j;) {
    job *n = j->next;
    luaL_unref(L, LUA_REGISTRYINDEX, j->fn_ref);
    free_job(j);
    j = n;
  }
  c->queue = NULL;
  c->qtail = &c->queue;
  for (job *j = c->batch; j; j = j->next) {
    luaL_unref(L, LUA_REGISTRYINDEX, j->fn_ref);
    j->fn_ref = LUA_NOREF;
  }
  if (!c->busy)
    free_core(c);
  return 0;
}

/* db:busy() -> boolean (a job runs or waits) */
static int l_busy(lua_State *L) {
  dbcore *c = check(L);
  lua_pushboolean(L, c->busy || c->queue);
  return 1;
}

void sip__lua_open_sqlite(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"exec", l_exec}, {"close", l_close}, {"busy", l_busy}, {NULL, NULL}};
  luaL_newmetatable(L, SIP_LUA_SQLITE);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_close);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "sqlite");
}
