-- mcp.crypto and mcp.encoding, the C bindings in src/api_crypto.c.

local crypto, enc = mcp.crypto, mcp.encoding

-- Asserts that decoder(s) is nil, err with err matching pattern (plain text).
local function rejects(decoder, s, fragment)
  local v, err = decoder(s)
  assert.is_nil(v, ("%q was accepted"):format(s))
  assert.is_string(err)
  assert.matches(fragment, err, 1, true)
end

describe("mcp.crypto", function()
  describe("digest", function()
    it("matches the FIPS 180 / RFC 1321 vectors", function()
      local abc = {
        sha1 = "a9993e364706816aba3e25717850c26c9cd0d89d",
        sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        sha384 = "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
          .. "8086072ba1e7cc2358baeca134c825a7",
        sha512 = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
          .. "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        md5 = "900150983cd24fb0d6963f7d28e17f72",
      }
      for alg, want in pairs(abc) do
        assert.equal(want, enc.hex(crypto.digest(alg, "abc")), alg)
      end
      assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        enc.hex(crypto.digest("sha256", "")))
      assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        enc.hex(crypto.digest("sha256",
          "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
    end)

    it("returns raw bytes of the algorithm's length", function()
      local sizes = { sha1 = 20, sha256 = 32, sha384 = 48, sha512 = 64, md5 = 16 }
      for alg, n in pairs(sizes) do assert.equal(n, #crypto.digest(alg, "x")) end
    end)

    it("hashes bytes, including NUL", function()
      assert.are_not.equal(crypto.digest("sha256", "a"), crypto.digest("sha256", "a\0"))
    end)

    it("raises for an unknown algorithm, naming the known ones", function()
      assert.has_error(function() crypto.digest("sha3-256", "x") end,
        "mcp.crypto.digest: unknown algorithm 'sha3-256' (use sha1, sha256, sha384, sha512, md5)")
      assert.has_error(function() crypto.digest("SHA256", "x") end,
        "mcp.crypto.digest: unknown algorithm 'SHA256' (use sha1, sha256, sha384, sha512, md5)")
    end)

    it("raises for missing or wrongly typed arguments", function()
      assert.has_error(function() crypto.digest("sha256") end)
      assert.has_error(function() crypto.digest(nil, "x") end)
      assert.has_error(function() crypto.digest("sha256", {}) end)
    end)

    it("raises for input over 16 MiB, and takes 16 MiB exactly", function()
      local limit = 16 * 1024 * 1024
      assert.equal(32, #crypto.digest("sha256", ("x"):rep(limit)))
      assert.has_error(function() crypto.digest("sha256", ("x"):rep(limit + 1)) end,
        "mcp.crypto.digest: argument #2 is too large (16777217 bytes, the limit is 16 MiB)")
    end)
  end)

  describe("hmac", function()
    it("matches RFC 4231 test cases 1, 2 and 6", function()
      local key1, data1 = ("\x0b"):rep(20), "Hi There"
      assert.equal("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        enc.hex(crypto.hmac("sha256", key1, data1)))
      assert.equal("afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
        .. "faea9ea9076ede7f4af152e8b2fa9cb6", enc.hex(crypto.hmac("sha384", key1, data1)))
      assert.equal("87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
        .. "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
        enc.hex(crypto.hmac("sha512", key1, data1)))

      assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        enc.hex(crypto.hmac("sha256", "Jefe", "what do ya want for nothing?")))

      -- a key longer than the block size is hashed first
      assert.equal("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        enc.hex(crypto.hmac("sha256", ("\xaa"):rep(131),
          "Test Using Larger Than Block-Size Key - Hash Key First")))
    end)

    it("matches RFC 2202 test case 2 for sha1 and md5", function()
      local key, data = "Jefe", "what do ya want for nothing?"
      assert.equal("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        enc.hex(crypto.hmac("sha1", key, data)))
      assert.equal("750c783e6ab0b503eaa86e310a5db738", enc.hex(crypto.hmac("md5", key, data)))
    end)

    it("accepts an empty key and empty data", function()
      assert.equal("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
        enc.hex(crypto.hmac("sha256", "", "")))
    end)

    it("raises for an unknown algorithm and for bad arguments", function()
      assert.has_error(function() crypto.hmac("sha224", "k", "d") end,
        "mcp.crypto.hmac: unknown algorithm 'sha224' (use sha1, sha256, sha384, sha512, md5)")
      assert.has_error(function() crypto.hmac("sha256", "k") end)
      assert.has_error(function() crypto.hmac("sha256", nil, "d") end)
    end)
  end)

  describe("random", function()
    it("returns n bytes for 1 <= n <= 1024", function()
      assert.equal(1, #crypto.random(1))
      assert.equal(32, #crypto.random(32))
      assert.equal(1024, #crypto.random(1024))
      assert.equal(16, #crypto.random(16.0)) -- a whole float is an integer
    end)

    it("does not repeat itself", function()
      assert.are_not.equal(crypto.random(32), crypto.random(32))
    end)

    it("raises outside 1..1024 and for non-integers", function()
      assert.has_error(function() crypto.random(0) end,
        "mcp.crypto.random: n must be between 1 and 1024 (got 0)")
      assert.has_error(function() crypto.random(1025) end,
        "mcp.crypto.random: n must be between 1 and 1024 (got 1025)")
      assert.has_error(function() crypto.random(-1) end)
      assert.has_error(function() crypto.random(1.5) end)
      assert.has_error(function() crypto.random() end)
      assert.has_error(function() crypto.random("many") end)
    end)
  end)
end)

describe("mcp.encoding", function()
  -- every byte value, to check the codecs are not text-only
  local all_bytes = {}
  for i = 0, 255 do all_bytes[#all_bytes + 1] = string.char(i) end
  all_bytes = table.concat(all_bytes)

  describe("hex", function()
    it("encodes in lowercase", function()
      assert.equal("", enc.hex(""))
      assert.equal("00ff10ab", enc.hex("\0\255\16\171"))
      assert.equal("616263", enc.hex("abc"))
    end)

    it("decodes either case", function()
      assert.equal("\0\255\16\171", enc.unhex("00FF10Ab"))
      assert.equal("", enc.unhex(""))
    end)

    it("round-trips every byte value", function()
      assert.equal(all_bytes, enc.unhex(enc.hex(all_bytes)))
    end)

    it("rejects odd lengths and non-hex characters with nil, err", function()
      rejects(enc.unhex, "abc", "invalid hex: odd length (3 characters)")
      rejects(enc.unhex, "zz", "invalid hex: unexpected character 'z' at position 1")
      rejects(enc.unhex, "a g0", "invalid hex: unexpected character ' ' at position 2")
      rejects(enc.unhex, "0x10", "invalid hex: unexpected character 'x' at position 2")
      rejects(enc.unhex, "00\n", "invalid hex: odd length")
      rejects(enc.unhex, "0\0", "invalid hex: unexpected byte 0x00 at position 2")
    end)
  end)

  describe("base64", function()
    -- RFC 4648 section 10
    local vectors = {
      { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
      { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    }

    it("matches the RFC 4648 test vectors both ways", function()
      for _, v in ipairs(vectors) do
        assert.equal(v[2], enc.base64(v[1]))
        assert.equal(v[1], enc.unbase64(v[2]))
      end
    end)

    it("uses + and / (the standard alphabet)", function()
      assert.equal("+/8=", enc.base64("\251\255"))
      assert.equal("\251\255", enc.unbase64("+/8="))
    end)

    it("round-trips every byte value and every short length", function()
      assert.equal(all_bytes, enc.unbase64(enc.base64(all_bytes)))
      for n = 0, 40 do
        local s = all_bytes:sub(256 - n)
        assert.equal(s, enc.unbase64(enc.base64(s)), n)
      end
      local r = crypto.random(1000)
      assert.equal(r, enc.unbase64(enc.base64(r)))
    end)

    it("rejects characters outside the alphabet, by position", function()
      rejects(enc.unbase64, "Zm9v YmFy", "invalid base64: unexpected character ' ' at position 5")
      rejects(enc.unbase64, "Zm9v\n", "invalid base64: unexpected byte 0x0A at position 5")
      rejects(enc.unbase64, "Zm-v", "invalid base64: unexpected character '-' at position 3")
      rejects(enc.unbase64, "Zm_v", "invalid base64: unexpected character '_' at position 3")
      rejects(enc.unbase64, "Zm9\0", "invalid base64: unexpected byte 0x00 at position 4")
      rejects(enc.unbase64, "\255\254==", "invalid base64: unexpected byte 0xFF at position 1")
    end)

    it("rejects wrong padding", function()
      rejects(enc.unbase64, "Zg", "invalid base64: length 2 is not a multiple of 4")
      rejects(enc.unbase64, "Zg=", "invalid base64: length 3 is not a multiple of 4 (bad padding)")
      rejects(enc.unbase64, "Zg===", "invalid base64: too much padding")
      rejects(enc.unbase64, "Z===", "invalid base64: too much padding")
      rejects(enc.unbase64, "====", "invalid base64: too much padding")
      rejects(enc.unbase64, "Zm=v", "invalid base64: unexpected character '=' at position 3")
      rejects(enc.unbase64, "Zg==Zg==", "invalid base64: unexpected character '=' at position 3")
      rejects(enc.unbase64, "Zm9vY===", "invalid base64: too much padding")
    end)

    it("rejects impossible lengths", function()
      rejects(enc.unbase64, "Z", "invalid base64: length 1 is not a multiple of 4")
      rejects(enc.unbase64, "Zm9vY", "invalid base64: length 5 is not a multiple of 4")
    end)

    it("rejects non-zero bits after the last byte (one encoding per value)", function()
      rejects(enc.unbase64, "Zh==", "invalid base64: non-zero bits after the last byte")
      rejects(enc.unbase64, "Zm9=", "invalid base64: non-zero bits after the last byte")
      assert.equal("f", enc.unbase64("Zg=="))
    end)

    it("returns nil, err for input over 16 MiB", function()
      rejects(enc.unbase64, ("A"):rep(16 * 1024 * 1024 + 4),
        "invalid base64: input is too large (the limit is 16 MiB)")
    end)

    it("raises for non-string arguments", function()
      assert.has_error(function() enc.base64() end)
      assert.has_error(function() enc.unbase64({}) end)
    end)
  end)

  describe("base64url", function()
    it("uses - and _ and writes no padding", function()
      assert.equal("-_8", enc.base64url("\251\255"))
      local vectors = { { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" }, { "foob", "Zm9vYg" } }
      for _, v in ipairs(vectors) do
        assert.equal(v[2], enc.base64url(v[1]))
      end
    end)

    it("accepts input with or without padding", function()
      assert.equal("\251\255", enc.unbase64url("-_8"))
      assert.equal("\251\255", enc.unbase64url("-_8="))
      assert.equal("f", enc.unbase64url("Zg"))
      assert.equal("f", enc.unbase64url("Zg=="))
      assert.equal("", enc.unbase64url(""))
    end)

    it("round-trips every byte value and every short length", function()
      assert.equal(all_bytes, enc.unbase64url(enc.base64url(all_bytes)))
      for n = 0, 40 do
        local s = all_bytes:sub(256 - n)
        assert.equal(s, enc.unbase64url(enc.base64url(s)), n)
      end
    end)

    it("rejects the standard alphabet's + and /", function()
      rejects(enc.unbase64url, "+/8", "invalid base64url: unexpected character '+' at position 1")
      rejects(enc.unbase64url, "ab/8", "invalid base64url: unexpected character '/' at position 3")
    end)

    it("rejects wrong padding and impossible lengths", function()
      rejects(enc.unbase64url, "Zg=",
        "invalid base64url: length 3 is not a multiple of 4 (bad padding)")
      rejects(enc.unbase64url, "Z", "invalid base64url: length 1 is not a valid encoded length")
      rejects(enc.unbase64url, "Zm9vY", "invalid base64url: length 5 is not a valid encoded length")
      rejects(enc.unbase64url, "Z===", "invalid base64url: too much padding")
      rejects(enc.unbase64url, "Zg=a", "invalid base64url: unexpected character '=' at position 3")
      rejects(enc.unbase64url, "Zh", "invalid base64url: non-zero bits after the last byte")
    end)
  end)
end)
