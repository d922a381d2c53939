/* SQLite worker test (sip_sqlite.h): statements with parameters, results,
 * group commit with one failing statement failing alone, a failed open
 * tried again, close with statements waiting. A database file in a
 * temporary directory; every wait is bounded. Prints
 * "test_sqlite: N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sip_error.h"
#include "sip_sqlite.h"
#include "test/check.h"

static uv_loop_t loop;

#define MAXR 16
static struct {
  int done;
  char err[128];
  int ncols, changes;
  size_t ncells;
  sip_sql_value cells[8];
  char text[8][32];
} res[MAXR];
static int ndone, ndropped;

static void on_done(void *ud, intptr_t tag, const sip_sql_result *r) {
  CHECK(ud == &loop);
  CHECK(tag >= 0 && tag < MAXR);
  if (tag < 0 || tag >= MAXR)
    return;
  ndone++;
  res[tag].done = 1;
  snprintf(res[tag].err, sizeof res[tag].err, "%s", r->err ? r->err : "");
  res[tag].ncols = r->ncols;
  res[tag].changes = r->changes;
  res[tag].ncells = r->ncells;
  for (size_t i = 0; i < r->ncells && i < 8; i++) {
    res[tag].cells[i] = r->cells[i];
    if (r->cells[i].s) {
      size_t n = r->cells[i].len < 31 ? r->cells[i].len : 31;
      memcpy(res[tag].text[i], r->cells[i].s, n);
      res[tag].text[i][n] = 0;
      res[tag].cells[i].s = res[tag].text[i];
    }
  }
}

static void on_drop(void *ctx, intptr_t tag) {
  CHECK(ctx == &ndropped);
  CHECK(tag >= 0 && tag < MAXR);
  ndropped++;
}

static void wait_done(int want) {
  uint64_t deadline = uv_hrtime() / 1000000u + 5000;
  while (ndone < want && uv_hrtime() / 1000000u < deadline) {
    uv_run(&loop, UV_RUN_NOWAIT);
    struct timespec ts = {0, 500000};
    nanosleep(&ts, NULL);
  }
}

static int exec0(sip_sqlite *db, const char *sql, intptr_t tag) {
  return sip_sqlite_exec(db, sql, strlen(sql), NULL, 0, tag);
}

int main(void) {
  CHECK_INT(uv_loop_init(&loop), 0);
  char dir[] = "/tmp/luasip-sqlite.XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[128];
  snprintf(path, sizeof path, "%s/loc.db", dir);

  sip_sqlite *db;
  CHECK_INT(sip_sqlite_open(&loop, path,
                            "CREATE TABLE IF NOT EXISTS b (k TEXT PRIMARY "
                            "KEY, n INTEGER, q REAL, v BLOB);",
                            on_done, &loop, &db),
            0);
  CHECK_INT(sip_sqlite_busy(db), 0);
  /* parameters of every type; nothing runs inside exec */
  sip_sql_value p[4] = {
      {.type = SIP_SQL_TEXT, .s = "alice", .len = 5},
      {.type = SIP_SQL_INTEGER, .i = 42},
      {.type = SIP_SQL_FLOAT, .d = 0.5},
      {.type = SIP_SQL_BLOB, .s = "a\0b", .len = 3},
  };
  const char *ins = "INSERT INTO b VALUES (?1, ?2, ?3, ?4)";
  CHECK_INT(sip_sqlite_exec(db, ins, strlen(ins), p, 4, 0), 0);
  CHECK_INT(ndone, 0);
  CHECK_INT(sip_sqlite_busy(db), 1);
  /* queued behind it, one batch: a duplicate key fails alone */
  p[0].s = "bob";
  p[0].len = 3;
  p[1].type = SIP_SQL_NULL;
  CHECK_INT(sip_sqlite_exec(db, ins, strlen(ins), p, 4, 1), 0);
  CHECK_INT(sip_sqlite_exec(db, ins, strlen(ins), p, 4, 2), 0);
  CHECK_INT(exec0(db, "SELECT k, n, q, v FROM b ORDER BY k", 3), 0);
  CHECK_INT(sip_sqlite_exec(db, "x", 1, NULL, -1, 9), SIP_EINVAL);
  wait_done(4);
  CHECK_INT(ndone, 4);
  CHECK(strcmp(res[0].err, "") == 0);
  CHECK_INT(res[0].changes, 1);
  CHECK_INT(res[1].changes, 1);
  CHECK_MSG(strncmp(res[2].err, "step: UNIQUE", 12) == 0, "%s", res[2].err);
  CHECK_INT(res[3].ncols, 4);
  CHECK_INT((int)res[3].ncells, 8);
  CHECK_INT(res[3].cells[0].type, SIP_SQL_TEXT);
  CHECK(strcmp(res[3].text[0], "alice") == 0);
  CHECK_INT(res[3].cells[1].type, SIP_SQL_INTEGER);
  CHECK_INT((int)res[3].cells[1].i, 42);
  CHECK_INT(res[3].cells[2].type, SIP_SQL_FLOAT);
  CHECK(res[3].cells[2].d == 0.5);
  CHECK_INT(res[3].cells[3].type, SIP_SQL_BLOB);
  CHECK_INT((int)res[3].cells[3].len, 3);
  CHECK(memcmp(res[3].text[3], "a\0b", 3) == 0);
  CHECK(strcmp(res[3].text[4], "bob") == 0);
  CHECK_INT(res[3].cells[5].type, SIP_SQL_NULL);
  /* a bad statement */
  CHECK_INT(exec0(db, "SELEC nonsense", 4), 0);
  wait_done(5);
  CHECK_MSG(strncmp(res[4].err, "prepare: ", 9) == 0, "%s", res[4].err);
  /* close with statements waiting: dropped, no callbacks */
  CHECK_INT(exec0(db, "SELECT 1", 5), 0);
  CHECK_INT(exec0(db, "SELECT 2", 6), 0);
  sip_sqlite_close(db, on_drop, &ndropped);
  CHECK_INT(ndropped, 2);
  for (int i = 0; i < 50; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  CHECK_INT(ndone, 5);
  CHECK(!res[5].done && !res[6].done);

  /* a file that cannot be opened: every statement fails, and the next job
   * tries again */
  char bad[160];
  snprintf(bad, sizeof bad, "%s/no/such/dir/x.db", dir);
  CHECK_INT(sip_sqlite_open(&loop, bad, NULL, on_done, &loop, &db), 0);
  CHECK_INT(exec0(db, "SELECT 1", 7), 0);
  wait_done(6);
  CHECK_MSG(strncmp(res[7].err, "open ", 5) == 0, "%s", res[7].err);
  CHECK_INT(exec0(db, "SELECT 1", 8), 0);
  wait_done(7);
  CHECK_MSG(strncmp(res[8].err, "open ", 5) == 0, "%s", res[8].err);
  sip_sqlite_close(db, NULL, NULL);

  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(&loop), 0);
  unlink(path);
  rmdir(dir);
  return check_summary("test_sqlite");
}
