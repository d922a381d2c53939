/* SQLite statements run on libuv's worker threads, for the sqlite location
 * backend (its binding: csrc/lua/sqlite.c; lua/luasip/location/sqlite.lua).
 *
 * One connection, used by one worker job at a time: statements queue up
 * and each job takes every statement queued so far and runs them in one
 * transaction (group commit), each inside its own savepoint so that one
 * failing statement fails alone. A statement's callback runs after the
 * COMMIT, on the loop, never inside sip_sqlite_exec: what it wrote is on
 * disk (as PRAGMA synchronous says) when the caller hears of it. The file
 * is opened by the first job (then `setup` runs: pragmas, schema); a
 * failed open is tried again by the next job. The loop thread never
 * touches the connection. No Lua.
 *
 * Memory: the handle, its jobs and their results are malloc'd; the handle
 * is freed by sip_sqlite_close, or once its running job is done. Errors:
 * SIP_EINVAL / SIP_ENOMEM of sip_error.h; statement errors are text. */
#ifndef SIP_SQLITE_H
#define SIP_SQLITE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum {
  SIP_SQL_NULL,
  SIP_SQL_INTEGER,
  SIP_SQL_FLOAT,
  SIP_SQL_TEXT,
  SIP_SQL_BLOB,
};

/* A parameter or a result cell (s/len for TEXT and BLOB). */
typedef struct sip_sql_value {
  int type;
  int64_t i;
  double d;
  const char *s;
  size_t len;
} sip_sql_value;

/* A statement's outcome: err (NULL on success: "prepare: ...", "step:
 * ...", "open PATH: ..."), else ncells cells, ncols a row (0 for a
 * statement without columns), and changes (sqlite3_changes). Valid during
 * the callback only. */
typedef struct sip_sql_result {
  const char *err;
  const sip_sql_value *cells;
  size_t ncells;
  int ncols;
  int changes;
} sip_sql_result;

/* ud: sip_sqlite_open's; tag: sip_sqlite_exec's. */
typedef void (*sip_sqlite_cb)(void *ud, intptr_t tag, const sip_sql_result *r);

typedef struct sip_sqlite sip_sqlite;

/* A handle for the database file path (opened by the first statement, on
 * a worker; setup: SQL run right after opening, or NULL). Results go to
 * cb(ud, ...). Returns 0 with *out, or SIP_ENOMEM. */
int sip_sqlite_open(uv_loop_t *loop, const char *path, const char *setup,
                    sip_sqlite_cb cb, void *ud, sip_sqlite **out);

/* Queue sql (len bytes) with n parameters (copied; bound as ?1..?n) for
 * the next job; its result goes to the callback with tag. Returns 0 or
 * SIP_ENOMEM / SIP_EINVAL (n < 0). */
int sip_sqlite_exec(sip_sqlite *db, const char *sql, size_t len,
                    const sip_sql_value *params, int n, intptr_t tag);

/* Whether a job runs or statements wait. */
int sip_sqlite_busy(const sip_sqlite *db);

/* Close: the statements not yet delivered are dropped (drop(ctx, tag) for
 * each, when drop is not NULL) and get no callback; the connection closes
 * once the running job is done. */
void sip_sqlite_close(sip_sqlite *db, void (*drop)(void *ctx, intptr_t tag),
                      void *ctx);

#endif
