#!/bin/sh
# Build and run the transport test.
#   run.sh            plain build (-O1 -g)
#   run.sh asan       ASan + UBSan
#   run.sh valgrind   plain build under valgrind (leaks are errors)
# Sockets: 127.0.0.1 and ::1 only. Needs gcc, pkg-config, libuv1-dev,
# libssl-dev and the openssl command (test certificates).
set -e
mode=${1:-plain}
cd "$(dirname "$0")/../../.."
out=build/transport-test/$mode
mkdir -p "$out"
flags="-std=c11 -Wall -Wextra -Werror -g -O1 -D_DEFAULT_SOURCE -Icsrc -Icsrc/parse -Icsrc/transport"
if [ "$mode" = asan ]; then
  flags="$flags -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
fi
# shellcheck disable=SC2086
gcc $flags $(pkg-config --cflags libuv openssl) -o "$out/tp_test" \
  csrc/transport/tests/tp_test.c csrc/transport/*.c csrc/parse/*.c \
  $(pkg-config --libs libuv openssl)
case $mode in
  valgrind)
    exec timeout 300 valgrind -q --leak-check=full \
      --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
      "$out/tp_test" ;;
  asan)
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      exec timeout 120 "$out/tp_test" ;;
  *)
    exec timeout 120 "$out/tp_test" ;;
esac
