/* Minimal assertion helpers for the C test programs. Each CHECK counts one
 * passed or failed assertion; a test program ends with check_summary(), which
 * prints "<name>: N passed, N failed" and returns the exit status. */
#ifndef SIP_TEST_CHECK_H
#define SIP_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed, check_failed;

/* Whether timers run slow: under valgrind or ASan every callback takes
 * several times longer, and the suites run them on a machine shared with
 * other work, so a 10 ms T1 sees scheduling jitter of its own size (a CI run
 * under ASan measured a 17 ms first Timer A interval). The timer tests then
 * use a 40 ms T1 and wider tolerances. */
static inline int check_timers_slow(void) {
#if defined(__SANITIZE_ADDRESS__)
  return 1;
#else
  const char *p = getenv("LD_PRELOAD");
  return p && strstr(p, "vgpreload") != NULL;
#endif
}

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      check_passed++;                                                          \
    } else {                                                                   \
      check_failed++;                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECK_MSG(cond, ...)                                                   \
  do {                                                                         \
    if (cond) {                                                                \
      check_passed++;                                                          \
    } else {                                                                   \
      check_failed++;                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
    }                                                                          \
  } while (0)

/* A slice equals a C string, byte for byte. */
#define CHECK_STR(slice, cstr)                                                 \
  CHECK_MSG((slice).p != NULL && (slice).len == strlen(cstr) &&                \
                memcmp((slice).p, (cstr), (slice).len) == 0,                   \
            "got '%.*s', want '%s'", (int)(slice).len,                         \
            (slice).p ? (slice).p : "(absent)", (cstr))

#define CHECK_INT(got, want)                                                   \
  do {                                                                         \
    long long check_g_ = (long long)(got), check_w_ = (long long)(want);       \
    CHECK_MSG(check_g_ == check_w_, "got %lld, want %lld", check_g_,           \
              check_w_);                                                       \
  } while (0)

/* A whole file into a malloc'd buffer (*len bytes), NULL when it cannot be
 * opened. */
static inline char *slurp(const char *path, size_t *len) {
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 4096, n = 0;
  char *b = malloc(cap);
  for (;;) {
    if (n == cap) {
      cap *= 2;
      b = realloc(b, cap);
    }
    size_t r = fread(b + n, 1, cap - n, f);
    if (r == 0)
      break;
    n += r;
  }
  fclose(f);
  *len = n;
  return b;
}

static inline int check_summary(const char *name) {
  printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
  return check_failed ? 1 : 0;
}

#endif
