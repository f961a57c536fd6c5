local helper = require "helper"

describe("scripts/hash.lua", function()
  local tools

  before_each(function() tools = helper.load_tools("scripts/hash.lua") end)

  local function hash(args) return helper.call(tools, "hash", args) end
  local function b64(mode, text)
    return helper.call(tools, "base64", { mode = mode, text = text })
  end

  it("defines hash and base64, well formed", function()
    assert.same({ "base64", "hash" }, helper.names(tools))
    for _, def in pairs(tools) do
      helper.assert_well_formed(def)
      assert.is_true(def.annotations.idempotentHint)
    end
    local props = tools.hash.inputSchema.properties
    assert.same({ "sha256", "sha384", "sha512", "sha1", "md5" }, props.algorithm.enum)
    assert.same({ "hex", "base64" }, props.encoding.enum)
    assert.equal("hex", props.encoding.default)
    assert.same({ "algorithm", "text" }, tools.hash.inputSchema.required)
    assert.same({ "encode", "decode" }, tools.base64.inputSchema.properties.mode.enum)
  end)

  describe("hash", function()
    it("matches the FIPS 180 / RFC 1321 vectors for 'abc', in hex by default", function()
      local want = {
        sha1 = "a9993e364706816aba3e25717850c26c9cd0d89d",
        sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        sha384 = "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
          .. "8086072ba1e7cc2358baeca134c825a7",
        sha512 = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
          .. "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        md5 = "900150983cd24fb0d6963f7d28e17f72",
      }
      for alg, digest in pairs(want) do
        assert.equal(digest, hash { algorithm = alg, text = "abc" }, alg)
        assert.equal(digest, hash { algorithm = alg, text = "abc", encoding = "hex" }, alg)
      end
    end)

    it("writes base64 when asked", function()
      assert.equal("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
        hash { algorithm = "sha256", text = "abc", encoding = "base64" })
    end)

    it("hashes the empty text", function()
      assert.equal("d41d8cd98f00b204e9800998ecf8427e", hash { algorithm = "md5", text = "" })
    end)

    it("refuses unknown algorithms and encodings with nil, err (not an error)", function()
      local r, err = hash { algorithm = "sha3-256", text = "x" }
      assert.is_nil(r)
      assert.equal("algorithm must be one of sha256, sha384, sha512, sha1, md5", err)
      r, err = hash { algorithm = "sha256", text = "x", encoding = "base32" }
      assert.is_nil(r)
      assert.equal("encoding must be hex or base64", err)
    end)
  end)

  describe("base64", function()
    it("encodes text as padded base64", function()
      assert.equal("aGVsbG8=", b64("encode", "hello"))
      assert.equal("", b64("encode", ""))
      assert.equal("w6k=", b64("encode", "é"))
    end)

    it("round-trips UTF-8 text", function()
      for _, text in ipairs { "", "f", "fo", "foo", "héllo ✓ 😀", "line1\nline2\0" } do
        assert.equal(text, b64("decode", b64("encode", text)))
      end
    end)

    it("refuses invalid base64 with nil, 'invalid base64 ...'", function()
      for _, bad in ipairs { "aGVsbG8", "aGVs bG8=", "aGVsbG8=\n", "a===", "aGVsbG9=", "aG-s" } do
        local r, err = b64("decode", bad)
        assert.is_nil(r, bad)
        assert.matches("^invalid base64", err)
      end
    end)

    it("refuses decoded bytes that are not UTF-8 text", function()
      for _, bad in ipairs { "/w==", "wIA=", "7aCA" } do -- 0xFF, overlong NUL, a surrogate
        local r, err = b64("decode", bad)
        assert.is_nil(r, bad)
        assert.equal("decoded bytes are not valid UTF-8 text", err)
      end
    end)

    it("refuses an unknown mode with nil, err", function()
      local r, err = b64("rot13", "x")
      assert.is_nil(r)
      assert.equal("mode must be encode or decode", err)
    end)
  end)
end)
