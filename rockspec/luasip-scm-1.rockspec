-- luarocks --lua-version 5.4 make rockspec/luasip-scm-1.rockspec [--tree DIR]
-- (run from the repository root; builds with the Makefile, offline)
rockspec_format = "3.0"
package = "luasip"
version = "scm-1"

source = {
  url = "git+https://github.com/luasip/luasip.git",
  branch = "main",
}

description = {
  summary = "SIP (RFC 3261) stack: C core on libuv, Lua 5.4 policy layer",
  detailed = [[
luasip is a SIP stack: a zero-copy C parser, transports (UDP, TCP, TLS) and
the RFC 3261 transaction layer on libuv with OpenSSL for TLS, driven by
routing policy written in Lua 5.4. `luasip run script.lua` serves a routing
script (reloaded on SIGHUP); `require "luasip"` gives the same API to any
Lua program.
]],
  homepage = "https://github.com/luasip/luasip",
  license = "MIT",
  labels = { "sip", "voip", "libuv", "parser" },
}

dependencies = {
  "lua >= 5.4",
}

external_dependencies = {
  LIBUV = {
    header = "uv.h",
    library = "uv",
  },
  OPENSSL = {
    header = "openssl/ssl.h",
    library = "ssl",
  },
  HIREDIS = {
    header = "hiredis/adapters/libuv.h",
    library = "hiredis",
  },
  SQLITE = {
    header = "sqlite3.h",
    library = "sqlite3",
  },
  CARES = {
    header = "ares.h",
    library = "cares",
  },
}

test_dependencies = {
  "busted",
}

build = {
  type = "make",
  build_target = "all",
  build_variables = {
    CC = "$(CC)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LIBUV_INCDIR = "$(LIBUV_INCDIR)",
    LIBUV_LIBDIR = "$(LIBUV_LIBDIR)",
    OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
    OPENSSL_LIBDIR = "$(OPENSSL_LIBDIR)",
    HIREDIS_INCDIR = "$(HIREDIS_INCDIR)",
    HIREDIS_LIBDIR = "$(HIREDIS_LIBDIR)",
    SQLITE_INCDIR = "$(SQLITE_INCDIR)",
    SQLITE_LIBDIR = "$(SQLITE_LIBDIR)",
    CARES_INCDIR = "$(CARES_INCDIR)",
    CARES_LIBDIR = "$(CARES_LIBDIR)",
  },
  install_target = "install",
  install_variables = {
    INSTALL_BIN = "0",
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LIBUV_INCDIR = "$(LIBUV_INCDIR)",
    LIBUV_LIBDIR = "$(LIBUV_LIBDIR)",
    OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
    OPENSSL_LIBDIR = "$(OPENSSL_LIBDIR)",
    HIREDIS_INCDIR = "$(HIREDIS_INCDIR)",
    HIREDIS_LIBDIR = "$(HIREDIS_LIBDIR)",
    SQLITE_INCDIR = "$(SQLITE_INCDIR)",
    SQLITE_LIBDIR = "$(SQLITE_LIBDIR)",
    CARES_INCDIR = "$(CARES_INCDIR)",
    CARES_LIBDIR = "$(CARES_LIBDIR)",
  },
}

-- luarocks installs the command into the tree's bin, with a wrapper that
-- sets the tree's paths
build.install = {
  bin = {
    luasip = "bin/luasip",
  },
}

test = {
  type = "command",
  command = "make check",
}
