---@meta mcp
-- LuaLS annotations for the `mcp` module as the server gives it to scripts and policies (a
-- global, and `require "mcp"`), and for the tables a script hands it: editors complete and
-- type-check tools and policies with these (.luarc.json at the top level points at this
-- folder). Nothing here runs: the real module is C (src/api*.c, src/tool.c, src/policy.c).
-- Fields with names starting with "_" (in mcp.so only, for the spec helpers) are left out.

---@alias mcp.LogLevel "debug"|"info"|"notice"|"warning"|"error"
---@alias mcp.ClientLogLevel mcp.LogLevel|"critical"|"alert"|"emergency"
---@alias mcp.Json nil|boolean|number|string|table|mcp.Null
---@alias mcp.Kind "tool"|"prompt"|"resource"

---JSON `null` (decoded JSON null, and what to put in a table for one).
---@class mcp.Null: userdata

---A content item of a result: made by mcp.text, mcp.image, mcp.audio, mcp.resource_link,
---mcp.resource.
---@class mcp.Content
---@field type "text"|"image"|"audio"|"resource_link"|"resource"
---@field text? string
---@field data? string base64
---@field mimeType? string
---@field annotations? table

---A whole CallToolResult, returned as it is (mcp.result).
---@class mcp.Result
---@field content? (mcp.Content|table)[]
---@field structuredContent? table
---@field isError? boolean

---What a policy check returns (mcp.allow, mcp.deny, mcp.challenge).
---@class mcp.Decision
---@field kind "allow"|"deny"|"challenge"
---@field reason? string
---@field scopes? string[]

---The caller's scopes: a read-only set.
---@class mcp.Scopes
local Scopes = {}
---Whether the caller holds scope.
---@param scope string
---@return boolean
function Scopes:has(scope) end
---Whether the caller holds every one of them.
---@param ... string|string[]
---@return boolean
function Scopes:all(...) end
---Whether the caller holds at least one of them.
---@param ... string|string[]
---@return boolean
function Scopes:any(...) end
---The scopes, sorted.
---@return string[]
function Scopes:list() end

---The verified caller (ctx.auth in a handler, the first argument of a policy check); read
---only. nil when authentication is off.
---@class mcp.Caller
---@field subject? string the token's sub
---@field client_id? string
---@field issuer? string the token's iss
---@field expires_at? integer epoch seconds
---@field scopes mcp.Scopes
---@field claims table<string, any> the whole verified payload

---The second argument of a handler: this call.
---@class mcp.Ctx
---@field request_id string|integer the JSON-RPC id
---@field tool string the tool's (prompt's, resource's) name
---@field deadline number epoch seconds: limits.timeout_ms after the call started
---@field auth? mcp.Caller the verified caller (nil when authentication is off)
local Ctx = {}
---Milliseconds left before the call's deadline.
---@return integer
function Ctx.remaining_ms() end
---The server log; also notifications/message to a client that asked for that level.
---@param level mcp.ClientLogLevel
---@param message string
function Ctx.log(level, message) end
---notifications/progress, when the client gave a progressToken (in a task: its statusMessage).
---@param progress number
---@param total? number
---@param message? string
function Ctx.progress(progress, total, message) end
---sampling/createMessage to the client; waits without blocking the server.
---@param params table the request's params: messages, maxTokens, ...
---@return table? result, string? err
function Ctx.sample(params) end
---elicitation/create to the client; waits without blocking the server.
---@param params {message: string, requestedSchema: table}
---@return table? result, string? err
function Ctx.elicit(params) end
---Ends the POST's stream now (the call goes on; its answer waits to be resumed).
---@return boolean
function Ctx.close_stream() end
---The client's answer to request (2026-07-28: an input request of the result; before: sent on
---the stream).
---@param key string
---@param request {method: string, params: table}
---@return table? answer, string? err
function Ctx.input(key, request) end
---Several input requests at once: the answers by key.
---@param requests table<string, {method: string, params: table}>
---@return table<string, table>? answers, string? err
function Ctx.inputs(requests) end
---The handler's own state carried between rounds of a 2026-07-28 call (nil in the first).
---@return string?
function Ctx.state() end
---@param text string
function Ctx.set_state(text) end
---Makes the call a task (a tool declared task = "optional" or "required"): true when it is one.
---@return boolean
function Ctx.task() end
---Whether the client declared the capability.
---@param capability "sampling"|"elicitation"
---@return boolean
function Ctx.can(capability) end

---A handler: what it returns becomes the result (a string, a number, a JSON-object table, a
---content item or a list of them, mcp.result{...}, nothing, or nil and a message for an
---error result).
---@alias mcp.Handler fun(args: table, ctx: mcp.Ctx): any, string?

---An input or output schema (JSON Schema 2020-12, the keywords the README lists).
---@class mcp.Schema
---@field type? string|string[]
---@field properties? table<string, mcp.Schema>
---@field required? string[]
---@field additionalProperties? boolean|mcp.Schema
---@field items? mcp.Schema
---@field enum? any[]
---@field description? string
---@field [string] any

---@class mcp.ToolAnnotations
---@field title? string
---@field readOnlyHint? boolean
---@field destructiveHint? boolean
---@field idempotentHint? boolean
---@field openWorldHint? boolean

---What mcp.tool takes. Unknown fields are a load error naming the line.
---@class mcp.ToolDef
---@field name string 1 to 128 of A-Z a-z 0-9 _ - .
---@field title? string
---@field description string what the model reads to choose the tool
---@field inputSchema? mcp.Schema an object schema; arguments are checked against it
---@field outputSchema? mcp.Schema structuredContent is checked against it
---@field annotations? mcp.ToolAnnotations
---@field handler mcp.Handler
---@field icons? table[]
---@field _meta? table
---@field egress? string[] the hosts this tool may reach (within egress.allow)
---@field secrets? string[] the secrets its handler may read with mcp.secret (none otherwise)
---@field credentials? string[] string arguments given to the handler as opaque credentials
---@field requires? ("sampling"|"elicitation")[] client capabilities the tool needs
---@field task? "optional"|"required" may run as a task (2026-07-28 tasks extension)

---@class mcp.PromptArgument
---@field name string
---@field description? string
---@field required? boolean

---What mcp.prompt takes.
---@class mcp.PromptDef
---@field name string
---@field title? string
---@field description string
---@field arguments? mcp.PromptArgument[]
---@field handler fun(args: table<string, string>, ctx: mcp.Ctx): any, string?
---@field complete? fun(args: {argument: string, value: string, context?: table}): string[]

---What mcp.static_resource takes.
---@class mcp.StaticResourceDef
---@field uri string
---@field name string
---@field title? string
---@field description? string
---@field mimeType? string
---@field handler fun(args: {uri: string}, ctx: mcp.Ctx): any, string?

---What mcp.resource_template takes: RFC 6570 {var} and {+var}.
---@class mcp.ResourceTemplateDef
---@field uriTemplate string
---@field name string
---@field title? string
---@field description? string
---@field mimeType? string
---@field handler fun(args: table<string, string>, ctx: mcp.Ctx): any, string?
---@field complete? fun(args: {argument: string, value: string, context?: table}): string[]

---A policy check: returns mcp.allow(), mcp.deny(reason), mcp.challenge(scopes), or true /
---false, reason; anything else denies.
---@alias mcp.Check fun(caller: mcp.Caller?, tool: string, args: table, ctx: {tool: string, policy: true}): (mcp.Decision|boolean), string?

---What mcp.policy takes (in the policies folder only). Every rule that matches must allow a
---call; a tool no rule matches cannot be called.
---@class mcp.PolicyRule
---@field tool? string a name or a glob (* ?)
---@field tools? string[]
---@field prompt? string
---@field prompts? string[]
---@field resource? string a URI (or template) glob
---@field resources? string[]
---@field scopes? string|string[] all needed
---@field any_scopes? string|string[] one needed
---@field issuers? string[]
---@field client_ids? string[]
---@field claims? table<string, any> the claim (or an element of it) equals the value or one of a list
---@field check? mcp.Check
---@field secrets? string[] the secrets `check` may read with mcp.secret (none otherwise)
---@field log_args? string[] arguments safe to write to the audit log
---@field description? string

---@class mcp.HttpRequest
---@field method? string default GET
---@field url string
---@field query? table<string, string|number|boolean>
---@field headers? table<string, string>
---@field body? string
---@field json? table sent as JSON
---@field form? table<string, string> sent as application/x-www-form-urlencoded
---@field bearer? string Authorization: Bearer ... (a credential argument may be given)
---@field timeout_ms? integer never beyond the call's deadline
---@field max_bytes? integer

---A response (a 4xx or 5xx is one, not an error).
---@class mcp.HttpResponse
---@field status integer
---@field headers table<string, string> names in lower case
---@field body string
local HttpResponse = {}
---The body decoded as JSON.
---@return any
function HttpResponse:json() end

---@class mcp.CacheStats
---@field entries integer
---@field bytes integer
---@field max_bytes integer
---@field hits integer
---@field misses integer
---@field sets integer
---@field evictions integer
---@field expired integer

---@alias mcp.CacheValue string|number|boolean

---@class mcp
local mcp = {}

---JSON null.
---@type mcp.Null
mcp.null = nil

---Declares a tool (while the script loads only).
---@param def mcp.ToolDef
function mcp.tool(def) end
---Declares a prompt (while the script loads only).
---@param def mcp.PromptDef
function mcp.prompt(def) end
---Declares a resource with a fixed URI.
---@param def mcp.StaticResourceDef
function mcp.static_resource(def) end
---Declares a resource template.
---@param def mcp.ResourceTemplateDef
function mcp.resource_template(def) end
---Declares an access rule (in the policies folder only).
---@param rule mcp.PolicyRule
function mcp.policy(rule) end

---@return mcp.Decision
function mcp.allow() end
---@param reason string shown to the caller as "Access denied: reason"
---@return mcp.Decision
function mcp.deny(reason) end
---Step-up: a 403 asking for these scopes.
---@param scopes string|string[]
---@return mcp.Decision
function mcp.challenge(scopes) end

---The server log, at level, naming the script line.
---@param level mcp.LogLevel
---@param message string
function mcp.log(level, message) end
---Epoch seconds, with a fraction.
---@return number
function mcp.time() end
---A monotonic clock in milliseconds.
---@return integer
function mcp.monotonic_ms() end
---Pauses a handler without holding its worker (0 to 86400 s, never past the deadline).
---@param seconds number
function mcp.sleep(seconds) end

---Marks t as a JSON array (so an empty one stays []).
---@generic T: table
---@param t? T
---@return T
function mcp.array(t) end
---Marks t as a JSON object (so an empty one stays {}).
---@generic T: table
---@param t? T
---@return T
function mcp.object(t) end

---@param text string
---@param annotations? table
---@return mcp.Content
function mcp.text(text, annotations) end
---@param base64 string
---@param mime_type string
---@return mcp.Content
function mcp.image(base64, mime_type) end
---@param base64 string
---@param mime_type string
---@return mcp.Content
function mcp.audio(base64, mime_type) end
---@param link {uri: string, name: string, title?: string, description?: string, mimeType?: string, size?: integer, annotations?: table}
---@return mcp.Content
function mcp.resource_link(link) end
---An embedded resource: text or blob (base64), not both.
---@param res {uri: string, mimeType?: string, text?: string, blob?: string}
---@return mcp.Content
function mcp.resource(res) end
---A whole CallToolResult, as it is.
---@param result mcp.Result
---@return mcp.Result
function mcp.result(result) end

---Tells subscribers that the resource at uri changed (from a handler).
---@param uri string
function mcp.resource_updated(uri) end
---Takes an entry out of service (from a handler): true when this switched it off.
---@param kind mcp.Kind
---@param name string a tool's or prompt's name, a resource's URI or template
---@return boolean
function mcp.disable(kind, name) end
---Puts it back: true when this switched it on.
---@param kind mcp.Kind
---@param name string
---@return boolean
function mcp.enable(kind, name) end
---@param kind mcp.Kind
---@param name string
---@return boolean
function mcp.enabled(kind, name) end

---A secret from LUAMCP_SECRET_NAME or the secrets file (redacted wherever it would leave).
---@param name string
---@return string? value, string? err
function mcp.secret(name) end

mcp.json = {}
---@param value any
---@return string
function mcp.json.encode(value) end
---Objects and arrays come back marked (mcp.object, mcp.array); null is mcp.null.
---@param text string
---@return any value, string? err
function mcp.json.decode(text) end

mcp.crypto = {}
---@alias mcp.DigestAlg "sha1"|"sha256"|"sha384"|"sha512"|"md5"
---Raw digest bytes.
---@param alg mcp.DigestAlg
---@param data string
---@return string
function mcp.crypto.digest(alg, data) end
---Raw HMAC bytes.
---@param alg mcp.DigestAlg
---@param key string
---@param data string
---@return string
function mcp.crypto.hmac(alg, key, data) end
---n random bytes from the system's CSPRNG.
---@param n integer
---@return string
function mcp.crypto.random(n) end

mcp.encoding = {}
---@param data string
---@return string
function mcp.encoding.hex(data) end
---@param text string
---@return string? data, string? err
function mcp.encoding.unhex(text) end
---@param data string
---@return string
function mcp.encoding.base64(data) end
---@param text string
---@return string? data, string? err
function mcp.encoding.unbase64(text) end
---@param data string
---@return string
function mcp.encoding.base64url(data) end
---@param text string
---@return string? data, string? err
function mcp.encoding.unbase64url(text) end

---One key/value store per server, shared by every worker and kept across reloads. Keys live in
---the calling script file's own namespace; `mcp.cache.shared(name)` is a declared meeting point.
mcp.cache = {}
---@param key string
---@return mcp.CacheValue?
function mcp.cache.get(key) end
---@param key string
---@param value mcp.CacheValue
---@param ttl_s? number
---@return boolean ok, string? err
function mcp.cache.set(key, value, ttl_s) end
---Only when absent: false, "exists" otherwise.
---@param key string
---@param value mcp.CacheValue
---@param ttl_s? number
---@return boolean ok, string? err
function mcp.cache.add(key, value, ttl_s) end
---Atomic across workers.
---@param key string
---@param delta number
---@param init? number
---@param ttl_s? number
---@return number? value, string? err
function mcp.cache.incr(key, delta, init, ttl_s) end
---@param key string
---@return boolean
function mcp.cache.delete(key) end
---@return mcp.CacheStats
function mcp.cache.stats() end
---The namespace `name`, shared by every script that names it (keep nothing private there).
---@param name string 1 to 256 bytes
---@return mcp.CacheNamespace
function mcp.cache.shared(name) end

---@class mcp.CacheNamespace
---@field get fun(key: string): mcp.CacheValue?
---@field set fun(key: string, value: mcp.CacheValue, ttl_s?: number): boolean, string?
---@field add fun(key: string, value: mcp.CacheValue, ttl_s?: number): boolean, string?
---@field incr fun(key: string, delta: number, init?: number, ttl_s?: number): number?, string?
---@field delete fun(key: string): boolean

---Backends, without blocking the server (handlers only; not while loading, not in a policy).
mcp.http = {}
---@param req mcp.HttpRequest
---@return mcp.HttpResponse? res, string? err
function mcp.http.request(req) end
---@param url string
---@param opts? mcp.HttpRequest
---@return mcp.HttpResponse? res, string? err
function mcp.http.get(url, opts) end
---@param url string
---@param body string|table a table is sent as JSON
---@param opts? mcp.HttpRequest
---@return mcp.HttpResponse? res, string? err
function mcp.http.post(url, body, opts) end
---Up to 32 requests in parallel; a failed one is { error = "..." }.
---@param reqs mcp.HttpRequest[]
---@return (mcp.HttpResponse|{error: string})[]
function mcp.http.all(reqs) end

---Outbound OAuth for a tool.
mcp.oauth = {}
---Stands for the caller's MCP access token in a token_exchange form (replaced by the host only
---in a request to the issuer that signed it).
---@type userdata
mcp.oauth.SUBJECT = nil
---A token for the tool itself, cached and refreshed.
---@param opts {token_url: string, client_id: string, client_secret: string, scope?: string, audience?: string, resource?: string, auth_method?: "client_secret_basic"|"client_secret_post", timeout_ms?: integer}
---@return string? token, integer|string expires_in_or_err
function mcp.oauth.client_credentials(opts) end
---RFC 8693: the caller's MCP token traded for a backend token carrying its identity.
---@param opts {token_url: string, client_id: string, client_secret: string, audience?: string, scope?: string, resource?: string, requested_token_type?: string}
---@return string? token, integer|string expires_in_or_err
function mcp.oauth.token_exchange(opts) end

return mcp
