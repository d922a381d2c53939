#!/bin/sh
# Build and run the transaction layer test (without make: compiles the
# parser, transport and txn sources directly).
#   run.sh            plain build (-O1 -g)
#   run.sh asan       ASan + UBSan
#   run.sh valgrind   plain build under valgrind (leaks are errors)
# Sockets: 127.0.0.1 only. Needs gcc, pkg-config, libuv1-dev, libssl-dev.
set -e
mode=${1:-plain}
cd "$(dirname "$0")/../../.."
out=build/txn-test/$mode
mkdir -p "$out"
vectors=$(pwd)/spec/vectors
flags="-std=c11 -Wall -Wextra -Werror -g -O1 -D_GNU_SOURCE -Icsrc -Icsrc/parse -Icsrc/transport -Icsrc/txn"
if [ "$mode" = asan ]; then
  flags="$flags -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
fi
# shellcheck disable=SC2086
gcc $flags -DLUASIP_VECTORS_DIR="\"$vectors\"" $(pkg-config --cflags libuv openssl) \
  -o "$out/txn_test" \
  csrc/txn/tests/txn_test.c csrc/txn/*.c csrc/transport/*.c csrc/parse/*.c \
  $(pkg-config --libs libuv openssl)
case $mode in
  valgrind)
    exec timeout 600 valgrind -q --leak-check=full \
      --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
      "$out/txn_test" ;;
  asan)
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      exec timeout 300 "$out/txn_test" ;;
  *)
    exec timeout 300 "$out/txn_test" ;;
esac
