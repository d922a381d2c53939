#!/usr/bin/env bash
# Usage: run.sh FUZZER SECONDS WORKDIR SEED...
# 1. Replays csrc/fuzz/regress/* (inputs that once crashed or hung).
# 2. Fuzzes for SECONDS starting from the seeds (copied to WORKDIR/seeds);
#    new inputs go to WORKDIR/corpus, crashes to WORKDIR/artifacts/.
# Prints "fuzz_regress: N passed, N failed" and "fuzz_parse: N passed, N failed".
fuzzer=${1:?usage: run.sh FUZZER SECONDS WORKDIR SEED...}
secs=${2:?}
work=${3:?}
shift 3
here=$(dirname "$0")
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

pass=0 fail=0
for f in "$here"/regress/*; do
  [ -f "$f" ] || continue
  if "$fuzzer" -timeout=10 -rss_limit_mb=2048 "$f" > "$work/regress.log" 2>&1; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "fuzz: regression input $f fails:"
    grep -E 'ERROR|SUMMARY|^    #[0-9] ' "$work/regress.log" | head -n 12
  fi
done
echo "fuzz_regress: $pass passed, $fail failed"

rm -rf "$work/seeds"
mkdir -p "$work/seeds" "$work/corpus" "$work/artifacts"
i=0
for f in "$@"; do
  i=$((i + 1))
  cp "$f" "$work/seeds/seed-$i-$(basename "$f")"
done
echo "fuzz: $i seeds, $secs s, log in $work/fuzz.log"
"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=70000 \
  -dict="$here/sip.dict" -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
  "$work/corpus" "$work/seeds" > "$work/fuzz.log" 2>&1
rc=$?
grep -E '^(#[0-9]+ +DONE|Done|stat::)|ERROR|SUMMARY|^    #[0-9] ' "$work/fuzz.log" | head -n 30
if [ "$rc" = 0 ]; then
  echo "fuzz_parse: 1 passed, 0 failed"
else
  echo "fuzz: exit status $rc; reproducer in $work/artifacts/ (add it to csrc/fuzz/regress/)"
  ls "$work/artifacts/"
  echo "fuzz_parse: 0 passed, 1 failed"
fi
