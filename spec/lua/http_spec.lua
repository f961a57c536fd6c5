-- mcp.http and mcp.oauth through mcp.so: requests are checked the same way as in the server,
-- and run synchronously (no server, no egress rules). No network is needed: a closed loopback
-- port answers at once.
local CLOSED = "http://127.0.0.1:1/x"

describe("mcp.http", function()
  it("refuses malformed requests with the field at fault", function()
    local cases = {
      { {}, "mcp.http: url must be a string" },
      { { url = CLOSED, mehtod = "GET" }, "mcp.http: unknown field 'mehtod'" },
      { { url = CLOSED, method = "get" }, "mcp.http: method must be an upper-case word" },
      { { url = CLOSED, body = "a", json = {} }, "mcp.http: give one of body, json and form" },
      { { url = CLOSED, headers = { ["X-A"] = "1\r\nX-Injected: 1" } }, "mcp.http: header X-A: a value cannot hold NUL, CR or LF" },
      { { url = CLOSED, headers = { ["Bad:Name"] = "1" } }, "mcp.http: header name 'Bad:Name' is not a token" },
      { { url = CLOSED, headers = { Host = "evil.test" } }, "mcp.http: header Host cannot be set by a script" },
      { { url = CLOSED, headers = { ["Proxy-Authorization"] = "x" } }, "mcp.http: header Proxy-Authorization is hop-by-hop" },
      { { url = CLOSED, method = "CONNECT" }, "mcp.http: method CONNECT is not allowed" },
      { { url = CLOSED, headers = { A = 1 } }, "mcp.http: header A must be a string or a credential" },
      { { url = CLOSED, timeout_ms = 0 }, "mcp.http: timeout_ms must be between 1 and 3600000" },
      { { url = CLOSED, max_bytes = 1.5 }, "mcp.http: max_bytes must be an integer" },
      { { url = CLOSED, query = { a = {} } }, "mcp.http: query values must be strings, numbers or booleans" },
      { { url = CLOSED, json = { f = print } }, "mcp.http: json: " },
      { { url = CLOSED, bearer = "t", headers = { Authorization = "x" } }, "mcp.http: give bearer or an Authorization header, not both" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(mcp.http.request, c[1])
      assert.is_false(ok, "accepted: " .. c[2])
      assert.truthy(err:find(c[2], 1, true), ("%q does not contain %q"):format(err, c[2]))
    end
  end)

  it("answers nil and the reason when the request cannot be made", function()
    local r, err = mcp.http.get(CLOSED)
    assert.is_nil(r)
    assert.truthy(err:find("Couldn't connect to server", 1, true), err)
    r, err = mcp.http.get("ftp://127.0.0.1/x")
    assert.is_nil(r)
    assert.truthy(err:find("https only", 1, true), err)
    r, err = mcp.http.get("http://user:pw@127.0.0.1:1/x")
    assert.is_nil(r)
    assert.equal("credentials in the URL are refused; send them in a header", err)
    r, err = mcp.http.get("not a url")
    assert.is_nil(r)
    assert.equal("invalid URL", err)
  end)

  it("all: one outcome per request, in order, failures as {error = ...}", function()
    assert.same({}, mcp.http.all {})
    local rs = mcp.http.all { { url = CLOSED }, { url = "not a url" } }
    assert.equal(2, #rs)
    assert.truthy(rs[1].error:find("Couldn't connect", 1, true))
    assert.equal("invalid URL", rs[2].error)
    local many = {}
    for i = 1, 33 do many[i] = { url = CLOSED } end
    local ok, err = pcall(mcp.http.all, many)
    assert.is_false(ok)
    assert.truthy(err:find("at most 32 requests at once", 1, true))
  end)

  it("post: a string is the body, a table is sent as JSON", function()
    local ok, err = pcall(mcp.http.post, CLOSED, 42)
    assert.is_false(ok)
    assert.truthy(err:find("a body string or a table sent as JSON", 1, true))
    local r, why = mcp.http.post(CLOSED, { a = 1 })
    assert.is_nil(r)
    assert.truthy(why:find("Couldn't connect", 1, true))
  end)
end)

describe("mcp.oauth", function()
  it("checks its options", function()
    local cases = {
      { "client_credentials", nil, "expected a table of options" },
      { "client_credentials", { token_url = CLOSED, client_id = "a" }, "client_secret must be a non-empty string" },
      { "client_credentials", { token_url = CLOSED, client_id = "a", client_secret = "b", scopes = "x" }, "unknown option 'scopes'" },
      { "client_credentials", { token_url = CLOSED, client_id = "a", client_secret = "b", requested_token_type = "x" }, "unknown option 'requested_token_type'" },
      { "token_exchange", { token_url = CLOSED, client_id = "a", client_secret = "b", auth_method = "jwt" }, "auth_method must be client_secret_basic or client_secret_post" },
      { "token_exchange", { token_url = CLOSED, client_id = "a", client_secret = "b", scope = 3 }, "scope must be a string" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(mcp.oauth[c[1]], c[2])
      assert.is_false(ok)
      assert.truthy(err:find(c[3], 1, true), ("%q does not contain %q"):format(err, c[3]))
    end
  end)

  it("a token endpoint that cannot be reached is nil and a message without the secret", function()
    local tok, err = mcp.oauth.client_credentials { token_url = CLOSED, client_id = "svc",
                                                    client_secret = "very-secret-value" }
    assert.is_nil(tok)
    assert.truthy(err:find("^mcp.oauth.client_credentials: token request failed: "), err)
    assert.is_nil(err:find("very-secret-value", 1, true))
  end)

  it("token_exchange has no caller outside the server", function()
    local ok, err = pcall(mcp.oauth.token_exchange, { token_url = CLOSED, client_id = "a", client_secret = "b" })
    assert.is_false(ok)
    assert.truthy(err:find("mcp.oauth.SUBJECT: this call has no caller token", 1, true), err)
  end)
end)

describe("mcp.sleep", function()
  it("pauses for the time asked (synchronously under busted) and refuses what is out of range", function()
    local t0 = mcp.monotonic_ms()
    mcp.sleep(0.05)
    local took = mcp.monotonic_ms() - t0
    assert.is_true(took >= 50, "slept " .. took .. " ms")
    mcp.sleep(0) -- returns at once
    for _, bad in ipairs { -1, 86401, 0 / 0 } do
      local ok, err = pcall(mcp.sleep, bad)
      assert.is_false(ok)
      assert.truthy(err:find("seconds from 0 to 86400", 1, true), err)
    end
    assert.is_false(pcall(mcp.sleep, "soon"))
  end)
end)
