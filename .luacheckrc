-- luacheck (Debian's lua-check) for the Lua the server runs: the tools of scripts/ and
-- examples/*/scripts/, the policies, and their specs. ctest runs it (luacheck.scripts) over
-- scripts/, policies/ and examples/. The globals are exactly what the sandbox gives a script
-- (build_base in src/vm.c): a name outside them is nil in the server, so it is an error here.

-- The sandbox: part of Lua's base library, string/table/math/utf8/coroutine (string.dump
-- removed), os with the clock only, a print that logs, require of lib/ modules, and mcp.
stds.luamcp = {
  read_globals = {
    "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
    "rawlen", "select", "setmetatable", "tonumber", "tostring", "type", "xpcall", "_VERSION",
    "print", "rawset", "load", "collectgarbage", "require",
    string = { fields = {
      "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "pack",
      "packsize", "rep", "reverse", "sub", "unpack", "upper",
    } },
    table = { fields = { "concat", "insert", "move", "pack", "remove", "sort", "unpack" } },
    math = { fields = {
      "abs", "acos", "asin", "atan", "ceil", "cos", "deg", "exp", "floor", "fmod", "huge", "log",
      "max", "maxinteger", "min", "mininteger", "modf", "pi", "rad", "random", "randomseed",
      "sin", "sqrt", "tan", "tointeger", "type", "ult",
    } },
    utf8 = { fields = { "char", "charpattern", "codepoint", "codes", "len", "offset" } },
    coroutine = { fields = {
      "close", "create", "isyieldable", "resume", "running", "status", "wrap", "yield",
    } },
    os = { fields = { "clock", "date", "difftime", "time" } },
    -- the mcp module (spec/lua/types/mcp.lua says what each takes and gives)
    mcp = { fields = {
      "allow", "array", "audio", "challenge", "deny", "disable", "enable", "enabled", "image",
      "log", "monotonic_ms", "null", "object", "policy", "prompt", "resource",
      "resource_link", "resource_template", "resource_updated", "result", "secret", "sleep",
      "static_resource", "text", "time", "tool",
      cache = { fields = { "add", "delete", "get", "incr", "set", "shared", "stats" } },
      crypto = { fields = { "digest", "hmac", "random" } },
      encoding = { fields = { "base64", "base64url", "hex", "unbase64", "unbase64url", "unhex" } },
      http = { fields = { "all", "get", "post", "request" } },
      json = { fields = { "decode", "encode" } },
      oauth = { fields = { "SUBJECT", "client_credentials", "token_exchange" } },
    } },
  },
}

std = "luamcp"
max_line_length = 100
-- A handler's (args, ctx) and a check's (call) are given whether used or not.
unused_args = false

-- A configuration file is a table read in an empty sandbox (src/config.c).
files["**/config.lua"] = { std = "min" }
files["**/config.*.lua"] = { std = "min" }

-- Specs run under busted with the real Lua (helper.lua makes mcp a global, as in the server).
files["**/spec/**/*_spec.lua"] = { std = "lua54+busted+luamcp" }
files["spec/lua/*.lua"] = { std = "lua54+busted+luamcp", globals = { "mcp" } }

-- The conformance fixture mirrors the suite's scenario names and texts, one per line.
files["examples/conformance/**"] = { max_line_length = false }

-- The LuaLS annotations declare what they describe; they never run.
exclude_files = { "spec/lua/types/**" }
