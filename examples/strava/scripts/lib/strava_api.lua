-- strava_api — what the six Strava tools share: where the Strava API is, one GET with the
-- user's Strava token, what Strava's errors mean for an agent, and small shaping helpers.
--
-- The Strava token reaches this module as an opaque credential (the tools declare
-- `credentials = { "strava_token" }`): it can only be handed to mcp.http as `bearer`, and only
-- for the tools' egress host, www.strava.com. The MCP access token is never visible to Lua.

local mcp = require "mcp"

local M = {}

M.PRODUCTION = "https://www.strava.com/api/v3"
M.TIMEOUT_MS = 10000

-- The API base URL: Strava's, unless the operator sets the secret STRAVA_API_BASE
-- (LUAMCP_SECRET_STRAVA_API_BASE, or secrets_file) to run against the mock. Only the port and
-- the path may change: the host must stay www.strava.com, which egress.allow and each tool's
-- egress list pin as well, so this setting cannot send a Strava token anywhere else.
function M.base()
  local b = mcp.secret("STRAVA_API_BASE")
  if b == nil then return M.PRODUCTION end
  if not b:match("^https://www%.strava%.com:%d+/[%w/._-]*$")
     and not b:match("^https://www%.strava%.com/[%w/._-]*$") then
    error("the secret STRAVA_API_BASE must be https://www.strava.com[:PORT]/PATH", 0)
  end
  return (b:gsub("/+$", ""))
end

-- ---- results ---------------------------------------------------------------------------------

local function decoded(res)
  local body = mcp.json.decode(res.body)
  if type(body) == "table" then return body end
  return nil
end

local function hms(seconds)
  if type(seconds) ~= "number" then return nil end
  local s = math.floor(seconds + 0.5)
  return ("%d:%02d:%02d"):format(s // 3600, s % 3600 // 60, s % 60)
end
M.hms = hms

-- Seconds until the Strava rate-limit window that is full resets: the 15-minute window resets
-- at :00, :15, :30 and :45, the daily one at midnight UTC.
local function until_reset(daily)
  local now = os.time()
  return daily and 86400 - now % 86400 or 900 - now % 900
end

local function pair(header)
  if type(header) ~= "string" then return nil end
  local a, b = header:match("^%s*(%d+)%s*,%s*(%d+)")
  if a then return tonumber(a), tonumber(b) end
end

local function rate_limit_message(res)
  local h = res.headers
  local limit15, limitday = pair(h["x-ratelimit-limit"])
  local use15, useday = pair(h["x-ratelimit-usage"])
  local usage = ""
  if limit15 and use15 then
    usage = ("; usage %d/%d in 15 minutes, %d/%d today"):format(use15, limit15, useday, limitday)
  end
  local ra = h["retry-after"]
  local wait
  if ra and ra:match("^%s*%d+%s*$") then
    wait = ("Retry after %d seconds."):format(tonumber(ra))
  elseif ra and #ra > 0 and #ra <= 64 then
    wait = ("Retry after %s."):format(ra)
  else
    local daily = limitday and useday and useday >= limitday
    wait = ("Retry after %d seconds, when the %s window resets."):format(until_reset(daily),
      daily and "daily" or "15-minute")
  end
  return ("Strava rate limit exceeded (HTTP 429%s). %s Do not retry sooner."):format(usage, wait)
end

-- A Strava failure as a sentence an agent can act on. `what` names the object asked for
-- ("activity 123").
function M.explain(res, what)
  local s = res.status
  local body = decoded(res) or {}
  local errors = type(body.errors) == "table" and body.errors or {}
  if s == 401 then
    for _, e in ipairs(errors) do
      if type(e) == "table" and e.code == "missing" and type(e.field) == "string"
         and e.field:match("^[%w:_]+_permission$") then
        local scope = e.field:gsub("_permission$", "")
        return ("Strava refused the request (HTTP 401): the Strava token lacks the '%s' "
          .. "permission. The athlete must authorize this app again with scope %s; another "
          .. "token of the same athlete will not help."):format(scope, scope)
      end
    end
    return "Strava refused the Strava token (HTTP 401 Unauthorized): strava_token is expired, "
      .. "revoked or not a Strava access token. Strava access tokens expire after six hours: "
      .. "get a fresh one (refresh_token grant at https://www.strava.com/oauth/token) and call "
      .. "again with it."
  elseif s == 403 then
    return ("Strava forbids access to %s (HTTP 403 Forbidden): it is private or belongs to "
      .. "another athlete."):format(what)
  elseif s == 404 then
    return ("%s does not exist on Strava, or is not visible with this Strava token (HTTP 404 "
      .. "Not Found). Check the id."):format((what:gsub("^%l", string.upper)))
  elseif s == 429 then
    return rate_limit_message(res)
  elseif s >= 500 then
    return ("Strava is failing (HTTP %d); try again in a minute."):format(s)
  end
  local msg = type(body.message) == "string" and body.message:sub(1, 200) or nil
  return ("Strava answered HTTP %d%s."):format(s, msg and (": " .. msg) or "")
end

-- GET base .. path with the user's Strava token. Returns the decoded JSON, or nil and a
-- message for the agent (a tool returns them as is: `return nil, msg` is a tool error).
function M.get(token, path, query, what)
  local res, err = mcp.http.get(M.base() .. path, {
    bearer = token,
    query = query,
    headers = { Accept = "application/json" },
    timeout_ms = M.TIMEOUT_MS,
  })
  if not res then
    return nil, "Could not reach Strava: " .. err .. ". Try again later."
  end
  if res.status ~= 200 then
    return nil, M.explain(res, what)
  end
  local body = decoded(res)
  if not body then
    return nil, "Strava answered with something that is not JSON (HTTP 200)."
  end
  return body
end

-- ---- shaping ---------------------------------------------------------------------------------
-- Strava's objects carry many fields an agent rarely needs (resource_state, map polylines,
-- photo URLs in three sizes, upload ids...). The tools return a smaller, flat shape whose
-- field names carry their units; absent and null fields are left out.

function M.num(v) return math.type(v) and v or nil end
function M.int(v) return math.type(v) == "integer" and v or nil end
function M.str(v) return type(v) == "string" and v or nil end
function M.bool(v) if type(v) == "boolean" then return v end end

function M.round(v, places)
  if not math.type(v) then return nil end
  local f = 10 ^ (places or 0)
  local r = math.floor(v * f + 0.5) / f
  return math.tointeger(r) or r
end

function M.km(meters) return M.round(meters and meters / 1000, 2) end

function M.latlng(v)
  if type(v) == "table" and math.type(v[1]) and math.type(v[2]) then
    return mcp.array { v[1], v[2] }
  end
end

-- A list (possibly empty) of f(x) for the elements of a Strava array, at most max of them.
function M.list(v, f, max)
  local out = {}
  if type(v) == "table" then
    for _, x in ipairs(v) do
      if max and #out >= max then break end
      if type(x) == "table" then out[#out + 1] = f(x) end
    end
  end
  return mcp.array(out)
end

local N, I, S, B = M.num, M.int, M.str, M.bool

-- SummaryActivity (the list) and the common part of DetailedActivity.
function M.activity_summary(a)
  return {
    id = I(a.id),
    name = S(a.name),
    sport_type = S(a.sport_type) or S(a.type),
    start_date = S(a.start_date),
    start_date_local = S(a.start_date_local),
    timezone = S(a.timezone),
    distance_m = N(a.distance),
    distance_km = M.km(N(a.distance)),
    moving_time_s = I(a.moving_time),
    moving_time = hms(a.moving_time),
    elapsed_time_s = I(a.elapsed_time),
    elevation_gain_m = N(a.total_elevation_gain),
    average_speed_mps = N(a.average_speed),
    max_speed_mps = N(a.max_speed),
    average_heartrate_bpm = N(a.average_heartrate),
    max_heartrate_bpm = N(a.max_heartrate),
    average_watts = N(a.average_watts),
    kilojoules = N(a.kilojoules),
    kudos_count = I(a.kudos_count),
    achievement_count = I(a.achievement_count),
    trainer = B(a.trainer),
    commute = B(a.commute),
    private = B(a.private),
    gear_id = S(a.gear_id),
  }
end

return M
