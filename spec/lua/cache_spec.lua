-- mcp.cache through the real C store (mcp.so): values, TTLs, atomic counters, the byte bound.
describe("mcp.cache", function()
  local cache = mcp.cache

  before_each(function() mcp._cache_reset(16 * 1024 * 1024) end)

  local function wait_ms(ms)
    local stop = mcp.monotonic_ms() + ms
    while mcp.monotonic_ms() < stop do end
  end

  it("keeps strings, integers, floats and booleans as they were", function()
    assert.is_true(cache.set("s", "hello\0world"))
    assert.is_true(cache.set("i", 9007199254740993))
    assert.is_true(cache.set("f", 1.5))
    assert.is_true(cache.set("b", false))
    assert.equal("hello\0world", cache.get("s"))
    assert.equal(9007199254740993, cache.get("i"))
    assert.equal(math.type(cache.get("i")), "integer")
    assert.equal(1.5, cache.get("f"))
    assert.equal(false, cache.get("b"))
    assert.is_nil(cache.get("missing"))
  end)

  it("refuses tables, functions and bad keys with clear errors", function()
    assert.has_error(function() cache.set("t", {}) end,
      "mcp.cache: values are strings, numbers or booleans (encode tables with mcp.json.encode)")
    assert.has_error(function() cache.set("", 1) end, "mcp.cache: a key is 1 to 256 bytes")
    assert.has_error(function() cache.get(string.rep("k", 257)) end)
    assert.has_error(function() cache.set("k", 1, -1) end)
  end)

  it("expires entries after their ttl", function()
    cache.set("short", "v", 0.05)
    cache.set("long", "v", 60)
    assert.equal("v", cache.get("short"))
    wait_ms(80)
    assert.is_nil(cache.get("short"))
    assert.equal("v", cache.get("long"))
    assert.equal(1, cache.stats().expired)
  end)

  it("add only when absent; delete says whether there was something", function()
    assert.is_true(cache.add("k", 1))
    local ok, err = cache.add("k", 2)
    assert.is_false(ok)
    assert.equal("exists", err)
    assert.equal(1, cache.get("k"))
    assert.is_true(cache.delete("k"))
    assert.is_false(cache.delete("k"))
    assert.is_true(cache.add("k", 3))
  end)

  it("incr counts, with an initial value, and refuses non-numbers", function()
    local v, err = cache.incr("n", 1)
    assert.is_nil(v)
    assert.equal("not found", err)
    assert.equal(1, cache.incr("n", 1, 0))
    assert.equal(11, cache.incr("n", 10))
    assert.equal(math.type(cache.incr("n", 0)), "integer")
    assert.equal(12.5, cache.incr("n", 1.5))
    cache.set("s", "text")
    v, err = cache.incr("s", 1)
    assert.is_nil(v)
    assert.equal("not a number", err)
  end)

  it("stays within its bound, evicting the least recently used, and counts", function()
    mcp._cache_reset(64 * 1024) -- 4 KiB per shard
    local value = string.rep("x", 1000)
    for i = 1, 500 do cache.set("k" .. i, value) end
    local st = cache.stats()
    assert.truthy(st.bytes <= 64 * 1024, "bytes " .. st.bytes)
    assert.truthy(st.evictions > 400, "evictions " .. st.evictions)
    assert.equal(500, st.sets)
    assert.equal(st.entries, 500 - st.evictions)
    assert.equal("x", cache.get("k500"):sub(1, 1)) -- the newest survives
    local ok, err = cache.set("big", string.rep("y", 8000))
    assert.is_false(ok)
    assert.equal("value too large for the cache", err)
  end)

  it("counts hits and misses", function()
    cache.set("a", 1)
    cache.get("a"); cache.get("a"); cache.get("b")
    local st = cache.stats()
    assert.equal(2, st.hits)
    assert.equal(1, st.misses)
  end)
end)
