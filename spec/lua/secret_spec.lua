-- mcp.secret through mcp.so: values from LUAMCP_SECRET_* (set by the ctest test).
describe("mcp.secret", function()
  it("reads a secret from the environment", function()
    assert.equal("spec-secret-0123", mcp.secret("SPEC_KEY"))
  end)

  it("answers nil and a message for an unknown one", function()
    local v, err = mcp.secret("NOPE")
    assert.is_nil(v)
    assert.equal("unknown secret NOPE (set LUAMCP_SECRET_NOPE or the secrets file)", err)
  end)

  it("ignores values too short to redact safely", function()
    assert.is_nil(mcp.secret("SHORT"))
  end)
end)
