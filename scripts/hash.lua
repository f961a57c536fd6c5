-- hash and base64: thin tools over mcp.crypto and mcp.encoding.

local ALGORITHMS = { "sha256", "sha384", "sha512", "sha1", "md5" }
local ENCODINGS = { hex = mcp.encoding.hex, base64 = mcp.encoding.base64 }

local function is_one_of(value, list)
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end

mcp.tool {
  name = "hash",
  title = "Hash text",
  description = "Computes a digest of the UTF-8 bytes of `text` with the chosen algorithm and "
    .. "returns it as lowercase hex (default) or padded base64. sha1 and md5 are offered for "
    .. "checksums and legacy formats only; they are not collision-resistant.",
  inputSchema = {
    type = "object",
    properties = {
      algorithm = { type = "string", enum = ALGORITHMS, description = "The digest algorithm." },
      text = { type = "string", description = "The text to hash (as UTF-8 bytes)." },
      encoding = {
        type = "string",
        enum = { "hex", "base64" },
        default = "hex",
        description = "How to write the digest (default hex).",
      },
    },
    required = { "algorithm", "text" },
    additionalProperties = false,
  },
  annotations = { readOnlyHint = true, idempotentHint = true, openWorldHint = false },
  handler = function(args)
    if not is_one_of(args.algorithm, ALGORITHMS) then
      return nil, "algorithm must be one of " .. table.concat(ALGORITHMS, ", ")
    end
    local encode = ENCODINGS[args.encoding or "hex"]
    if encode == nil then return nil, "encoding must be hex or base64" end
    return encode(mcp.crypto.digest(args.algorithm, args.text))
  end,
}

mcp.tool {
  name = "base64",
  title = "Base64 encode/decode",
  description = "Encodes text (its UTF-8 bytes) as standard padded base64 (RFC 4648), or "
    .. "decodes standard base64 back to text. Decoding is strict: no whitespace, correct "
    .. "padding, and the decoded bytes must be valid UTF-8.",
  inputSchema = {
    type = "object",
    properties = {
      mode = { type = "string", enum = { "encode", "decode" }, description = "Which way." },
      text = { type = "string", description = "Text to encode, or base64 to decode." },
    },
    required = { "mode", "text" },
    additionalProperties = false,
  },
  annotations = { readOnlyHint = true, idempotentHint = true, openWorldHint = false },
  handler = function(args)
    if args.mode == "encode" then return mcp.encoding.base64(args.text) end
    if args.mode ~= "decode" then return nil, "mode must be encode or decode" end
    local bytes, err = mcp.encoding.unbase64(args.text)
    if bytes == nil then return nil, err end
    if utf8.len(bytes) == nil then return nil, "decoded bytes are not valid UTF-8 text" end
    return bytes
  end,
}
