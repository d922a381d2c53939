-- luacheck configuration (make lint)
std = "lua54"
max_line_length = 120
exclude_files = { "build/", "build-asan/", "build-fuzz/", "lua_modules/", "luarocks-tree/", ".luarocks/" }

files["spec/"] = { std = "+busted" }
files["examples/"] = { allow_defined_top = false }
