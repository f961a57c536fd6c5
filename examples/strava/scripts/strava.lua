-- The Strava MCP server: six read-only tools over the Strava API v3
-- (https://developers.strava.com/docs/reference/). Every tool takes the user's Strava access
-- token as the argument `strava_token`, declared a credential: the handler cannot read it, only
-- send it as the bearer token of a request to www.strava.com; policies and the audit log see
-- "[credential]", and it is scrubbed from results. The MCP access token (Cognito's) is checked
-- by luamcp and the policies, and never reaches Strava.
--
-- What Strava answers is reshaped for an agent (strava_api.lua): flat objects, units in the
-- field names, no polylines or photo URLs, and errors that say what to do.

local api = require "strava_api"

local STRAVA = { "www.strava.com" }
local N, I, S, B = api.num, api.int, api.str, api.bool

-- ---- input schemas ---------------------------------------------------------------------------

local TOKEN = {
  type = "string", minLength = 8, maxLength = 512, pattern = "^[A-Za-z0-9._~+/=-]+$",
  description = "The user's Strava OAuth access token (from Strava's authorization-code flow; "
    .. "scope read, plus activity:read for activities). Sent only to www.strava.com.",
}

local function id(what)
  return { type = "integer", minimum = 1, maximum = 9007199254740991,
           description = "The Strava id of the " .. what .. "." }
end

local function input(props, required)
  props.strava_token = TOKEN
  local req = { "strava_token" }
  for _, r in ipairs(required or {}) do req[#req + 1] = r end
  return { type = "object", properties = props, required = req, additionalProperties = false }
end

-- ---- output schemas --------------------------------------------------------------------------

local num, int, str, bool = { type = "number" }, { type = "integer" }, { type = "string" },
                            { type = "boolean" }
local LATLNG = { type = "array", items = num, minItems = 2, maxItems = 2 }

local ACTIVITY = {
  type = "object",
  required = { "id" },
  properties = {
    id = int, name = str, sport_type = str, start_date = str, start_date_local = str,
    timezone = str, distance_m = num, distance_km = num, moving_time_s = int,
    moving_time = { type = "string", description = "H:MM:SS" }, elapsed_time_s = int,
    elevation_gain_m = num, average_speed_mps = num, max_speed_mps = num,
    average_heartrate_bpm = num, max_heartrate_bpm = num, average_watts = num, kilojoules = num,
    kudos_count = int, achievement_count = int, trainer = bool, commute = bool, private = bool,
    gear_id = str,
  },
}

local function object(required, properties)
  return { type = "object", required = #required > 0 and required or nil,
           properties = properties }
end

local TOTALS = object({ "count", "distance_km", "moving_time_s", "elevation_gain_m" }, {
  count = int, distance_km = num, moving_time_s = int, moving_time = str, elapsed_time_s = int,
  elevation_gain_m = num, achievement_count = int,
})
local PERIODS = object({ "recent", "ytd", "all" }, { recent = TOTALS, ytd = TOTALS, all = TOTALS })
local GEAR = object({ "id" }, { id = str, name = str, distance_km = num, primary = bool })

local ANNOTATIONS = { readOnlyHint = true, idempotentHint = true, openWorldHint = true }

-- ---- get_athlete -----------------------------------------------------------------------------

local function gear(g)
  return { id = S(g.id), name = S(g.name), distance_km = api.km(N(g.distance)),
           primary = B(g.primary) }
end

mcp.tool {
  name = "get_athlete",
  title = "Strava athlete",
  description = "The profile of the athlete the Strava token belongs to: id, name, location, "
    .. "measurement preference, FTP, weight, bikes and shoes. Use its id for get_athlete_stats.",
  inputSchema = input({}),
  outputSchema = object({ "id", "name" }, {
    id = int, username = str, name = str, firstname = str, lastname = str, city = str,
    state = str, country = str, sex = str, premium = bool,
    measurement_preference = { type = "string", enum = { "feet", "meters" } },
    ftp_watts = int, weight_kg = num, follower_count = int, friend_count = int,
    created_at = str, bikes = { type = "array", items = GEAR },
    shoes = { type = "array", items = GEAR },
  }),
  annotations = ANNOTATIONS,
  egress = STRAVA,
  secrets = { "STRAVA_API_BASE" }, -- read by strava_api.base() (the mock's URL in tests)
  credentials = { "strava_token" },
  handler = function(args)
    local a, err = api.get(args.strava_token, "/athlete", nil, "the athlete")
    if not a then return nil, err end
    local first, last = S(a.firstname), S(a.lastname)
    local names = {}
    if first then names[#names + 1] = first end
    if last then names[#names + 1] = last end
    return {
      id = I(a.id),
      username = S(a.username),
      name = #names > 0 and table.concat(names, " ")
             or S(a.username) or ("athlete " .. tostring(I(a.id))),
      firstname = first,
      lastname = last,
      city = S(a.city),
      state = S(a.state),
      country = S(a.country),
      sex = S(a.sex),
      premium = B(a.summit) or B(a.premium),
      measurement_preference = S(a.measurement_preference),
      ftp_watts = I(a.ftp),
      weight_kg = N(a.weight),
      follower_count = I(a.follower_count),
      friend_count = I(a.friend_count),
      created_at = S(a.created_at),
      bikes = api.list(a.bikes, gear),
      shoes = api.list(a.shoes, gear),
    }
  end,
}

-- ---- get_athlete_stats -----------------------------------------------------------------------

local function totals(t)
  t = type(t) == "table" and t or {}
  return {
    count = I(t.count) or 0,
    distance_km = api.km(N(t.distance) or 0),
    moving_time_s = I(t.moving_time) or 0,
    moving_time = api.hms(I(t.moving_time) or 0),
    elapsed_time_s = I(t.elapsed_time),
    elevation_gain_m = N(t.elevation_gain) or 0,
    achievement_count = I(t.achievement_count),
  }
end

mcp.tool {
  name = "get_athlete_stats",
  title = "Strava athlete statistics",
  description = "Ride, run and swim totals of the athlete the Strava token belongs to: the last "
    .. "4 weeks (recent), this year (ytd) and all time, plus the longest ride and biggest "
    .. "climb. Strava gives these only for the token's own athlete; athlete_id defaults to it.",
  inputSchema = input({ athlete_id = id("athlete (default: the token's athlete)") }),
  outputSchema = object({ "athlete_id", "ride", "run", "swim" }, {
    athlete_id = int, biggest_ride_distance_km = num, biggest_climb_elevation_gain_m = num,
    ride = PERIODS, run = PERIODS, swim = PERIODS,
  }),
  annotations = ANNOTATIONS,
  egress = STRAVA,
  secrets = { "STRAVA_API_BASE" }, -- read by strava_api.base() (the mock's URL in tests)
  credentials = { "strava_token" },
  handler = function(args)
    local athlete = math.tointeger(args.athlete_id)
    if not athlete then
      local me, err = api.get(args.strava_token, "/athlete", nil, "the athlete")
      if not me then return nil, err end
      athlete = I(me.id)
      if not athlete then return nil, "Strava's athlete has no id." end
    end
    local st, err = api.get(args.strava_token, ("/athletes/%d/stats"):format(athlete), nil,
                            ("the statistics of athlete %d"):format(athlete))
    if not st then return nil, err end
    local out = {
      athlete_id = athlete,
      biggest_ride_distance_km = api.km(N(st.biggest_ride_distance)),
      biggest_climb_elevation_gain_m = N(st.biggest_climb_elevation_gain),
    }
    for _, sport in ipairs { "ride", "run", "swim" } do
      out[sport] = {
        recent = totals(st["recent_" .. sport .. "_totals"]),
        ytd = totals(st["ytd_" .. sport .. "_totals"]),
        all = totals(st["all_" .. sport .. "_totals"]),
      }
    end
    return out
  end,
}

-- ---- get_activities --------------------------------------------------------------------------

local function epoch(description)
  return { type = "integer", minimum = 0, maximum = 4102444800, description = description }
end

mcp.tool {
  name = "get_activities",
  title = "Strava activities",
  description = "The activities of the athlete the Strava token belongs to, newest first, one "
    .. "page at a time (next_page is set when there may be more). Filter by start time with "
    .. "before/after (Unix seconds). Use get_activity for the details of one.",
  inputSchema = input({
    before = epoch("Only activities that started before this time (Unix seconds)."),
    after = epoch("Only activities that started after this time (Unix seconds)."),
    page = { type = "integer", minimum = 1, maximum = 1000, default = 1,
             description = "Page number, from 1." },
    per_page = { type = "integer", minimum = 1, maximum = 200, default = 30,
                 description = "Activities per page (Strava allows at most 200)." },
  }),
  outputSchema = object({ "page", "per_page", "count", "activities" }, {
    page = int, per_page = int, count = int, next_page = int,
    activities = { type = "array", items = ACTIVITY },
  }),
  annotations = ANNOTATIONS,
  egress = STRAVA,
  secrets = { "STRAVA_API_BASE" }, -- read by strava_api.base() (the mock's URL in tests)
  credentials = { "strava_token" },
  handler = function(args)
    if args.before and args.after and args.after >= args.before then
      return nil, "after must be earlier than before (both are Unix seconds)."
    end
    local page, per_page = args.page or 1, args.per_page or 30
    local list, err = api.get(args.strava_token, "/athlete/activities", {
      before = args.before, after = args.after, page = page, per_page = per_page,
    }, "the activity list")
    if not list then return nil, err end
    local out = api.list(list, api.activity_summary)
    return {
      page = page,
      per_page = per_page,
      count = #out,
      next_page = #out == per_page and page + 1 or nil,
      activities = out,
    }
  end,
}

-- ---- get_activity ----------------------------------------------------------------------------

local MAX_EFFORTS = 100

local function effort(e)
  local seg = type(e.segment) == "table" and e.segment or {}
  return {
    id = I(e.id), segment_id = I(seg.id), name = S(e.name) or S(seg.name),
    elapsed_time_s = I(e.elapsed_time), moving_time_s = I(e.moving_time),
    distance_m = N(e.distance), start_date = S(e.start_date),
    average_grade_pct = N(seg.average_grade), pr_rank = I(e.pr_rank), kom_rank = I(e.kom_rank),
  }
end

local function split(s)
  return {
    split = I(s.split), distance_m = N(s.distance), moving_time_s = I(s.moving_time),
    elapsed_time_s = I(s.elapsed_time), elevation_difference_m = N(s.elevation_difference),
    average_speed_mps = N(s.average_speed), average_heartrate_bpm = N(s.average_heartrate),
  }
end

local function best(e)
  return { name = S(e.name), distance_m = N(e.distance), elapsed_time_s = I(e.elapsed_time),
           elapsed_time = api.hms(I(e.elapsed_time)), pr_rank = I(e.pr_rank) }
end

local DETAIL = {}
for k, v in pairs(ACTIVITY.properties) do DETAIL[k] = v end
DETAIL.description, DETAIL.calories, DETAIL.device_name = str, num, str
DETAIL.gear = object({ "id" }, { id = str, name = str, distance_km = num })
DETAIL.segment_effort_count = int
DETAIL.segment_efforts = { type = "array", items = object({ "id" }, {
  id = int, segment_id = int, name = str, elapsed_time_s = int, moving_time_s = int,
  distance_m = num, start_date = str, average_grade_pct = num, pr_rank = int, kom_rank = int,
}) }
DETAIL.splits_metric = { type = "array", items = object({ "split" }, {
  split = int, distance_m = num, moving_time_s = int, elapsed_time_s = int,
  elevation_difference_m = num, average_speed_mps = num, average_heartrate_bpm = num,
}) }
DETAIL.best_efforts = { type = "array", items = object({ "name" }, {
  name = str, distance_m = num, elapsed_time_s = int, elapsed_time = str, pr_rank = int,
}) }

mcp.tool {
  name = "get_activity",
  title = "Strava activity",
  description = "One activity by id: the summary fields of get_activities plus description, "
    .. "calories, device, gear, per-kilometre splits, best efforts (runs) and segment efforts "
    .. "(at most " .. MAX_EFFORTS .. "; segment_effort_count gives the total).",
  inputSchema = input({
    activity_id = id("activity"),
    include_all_efforts = { type = "boolean", default = false,
      description = "All segment efforts instead of the notable ones." },
  }, { "activity_id" }),
  outputSchema = { type = "object", required = { "id" }, properties = DETAIL },
  annotations = ANNOTATIONS,
  egress = STRAVA,
  secrets = { "STRAVA_API_BASE" }, -- read by strava_api.base() (the mock's URL in tests)
  credentials = { "strava_token" },
  handler = function(args)
    local aid = math.tointeger(args.activity_id)
    local a, err = api.get(args.strava_token, ("/activities/%d"):format(aid),
      { include_all_efforts = args.include_all_efforts or false },
      ("activity %d"):format(aid))
    if not a then return nil, err end
    local out = api.activity_summary(a)
    out.description = S(a.description)
    out.calories = N(a.calories)
    out.device_name = S(a.device_name)
    if type(a.gear) == "table" and S(a.gear.id) then
      out.gear = { id = S(a.gear.id), name = S(a.gear.name),
                   distance_km = api.km(N(a.gear.distance)) }
    end
    out.segment_effort_count = type(a.segment_efforts) == "table" and #a.segment_efforts or 0
    out.segment_efforts = api.list(a.segment_efforts, effort, MAX_EFFORTS)
    out.splits_metric = api.list(a.splits_metric, split)
    out.best_efforts = api.list(a.best_efforts, best)
    return out
  end,
}

-- ---- get_activity_streams --------------------------------------------------------------------

local STREAM_UNITS = {
  time = "s since start", distance = "m", latlng = "[latitude, longitude] degrees",
  altitude = "m", velocity_smooth = "m/s", heartrate = "bpm",
  cadence = "rpm (a run counts one foot)", watts = "W", temp = "degrees Celsius",
  moving = "boolean", grade_smooth = "percent",
}
local STREAM_KEYS = { "time", "distance", "latlng", "altitude", "velocity_smooth", "heartrate",
                      "cadence", "watts", "temp", "moving", "grade_smooth" }

-- Evenly spaced samples of data (the first and the last included), at most max of them.
local function sample(data, max)
  local n = #data
  if n <= max then return data end
  local out = {}
  for i = 0, max - 1 do
    out[i + 1] = data[1 + (i * (n - 1) + (max - 1) // 2) // (max - 1)]
  end
  return out
end

local STREAMS_OUT = {}
for _, k in ipairs(STREAM_KEYS) do
  STREAMS_OUT[k] = { type = "array", items = k == "latlng" and LATLNG
                                           or k == "moving" and bool or num }
end

mcp.tool {
  name = "get_activity_streams",
  title = "Strava activity streams",
  description = "The recorded samples of one activity (time, distance, position, altitude, "
    .. "speed, heart rate, cadence, power...), as one array per stream, index-aligned. Long "
    .. "activities are down-sampled to at most max_points evenly spaced samples (first and "
    .. "last kept). `missing` lists requested streams the activity does not have.",
  inputSchema = input({
    activity_id = id("activity"),
    keys = { type = "array", minItems = 1, maxItems = #STREAM_KEYS,
             items = { type = "string", enum = STREAM_KEYS },
             description = "The streams wanted." },
    max_points = { type = "integer", minimum = 2, maximum = 5000, default = 500,
                   description = "Most samples per stream to return." },
  }, { "activity_id", "keys" }),
  outputSchema = object({ "activity_id", "original_size", "points", "streams", "units",
                          "missing" }, {
    activity_id = int, original_size = int, points = int,
    streams = { type = "object", properties = STREAMS_OUT, additionalProperties = false },
    units = { type = "object", additionalProperties = str },
    missing = { type = "array", items = str },
  }),
  annotations = ANNOTATIONS,
  egress = STRAVA,
  secrets = { "STRAVA_API_BASE" }, -- read by strava_api.base() (the mock's URL in tests)
  credentials = { "strava_token" },
  handler = function(args)
    local aid = math.tointeger(args.activity_id)
    local max = args.max_points or 500
    local wanted, seen = {}, {}
    for _, k in ipairs(args.keys) do
      if not seen[k] then seen[k] = true; wanted[#wanted + 1] = k end
    end
    local got, err = api.get(args.strava_token, ("/activities/%d/streams"):format(aid),
      { keys = table.concat(wanted, ","), key_by_type = true }, ("activity %d"):format(aid))
    if not got then return nil, err end
    local streams, units, missing, original, points = {}, {}, {}, 0, 0
    for _, k in ipairs(STREAM_KEYS) do -- Strava adds the distance stream even if not asked
      local s = got[k]
      if type(s) == "table" and type(s.data) == "table" and (seen[k] or k == "distance") then
        local data = sample(s.data, max)
        streams[k] = mcp.array(data)
        units[k] = STREAM_UNITS[k]
        original = math.max(original, I(s.original_size) or #s.data)
        points = math.max(points, #data)
      end
    end
    for _, k in ipairs(wanted) do
      if not streams[k] then missing[#missing + 1] = k end
    end
    return {
      activity_id = aid,
      original_size = original,
      points = points,
      streams = mcp.object(streams),
      units = mcp.object(units),
      missing = mcp.array(missing),
    }
  end,
}

-- ---- get_segment -----------------------------------------------------------------------------

-- Strava's climb_category: 0 uncategorized, 1 = category 4 ... 4 = category 1, 5 = hors catégorie
local CLIMB = { [0] = "NC", "Cat 4", "Cat 3", "Cat 2", "Cat 1", "HC" }

mcp.tool {
  name = "get_segment",
  title = "Strava segment",
  description = "One segment by id: distance, grades, elevation, climb category, location, "
    .. "popularity, the KOM/QOM times and the token's athlete's personal record on it.",
  inputSchema = input({ segment_id = id("segment") }, { "segment_id" }),
  outputSchema = object({ "id", "name" }, {
    id = int, name = str, activity_type = str, distance_m = num, average_grade_pct = num,
    maximum_grade_pct = num, elevation_high_m = num, elevation_low_m = num,
    elevation_gain_m = num, climb_category = int,
    climb_category_label = { type = "string",
                             enum = { "NC", "Cat 4", "Cat 3", "Cat 2", "Cat 1", "HC" } },
    start_latlng = LATLNG, end_latlng = LATLNG, city = str, state = str, country = str,
    private = bool, hazardous = bool, starred = bool, effort_count = int, athlete_count = int,
    star_count = int, kom_time = str, qom_time = str,
    athlete_pr = object({}, { elapsed_time_s = int, elapsed_time = str, date = str,
                               effort_count = int }),
  }),
  annotations = ANNOTATIONS,
  egress = STRAVA,
  secrets = { "STRAVA_API_BASE" }, -- read by strava_api.base() (the mock's URL in tests)
  credentials = { "strava_token" },
  handler = function(args)
    local sid = math.tointeger(args.segment_id)
    local s, err = api.get(args.strava_token, ("/segments/%d"):format(sid), nil,
                           ("segment %d"):format(sid))
    if not s then return nil, err end
    local xoms = type(s.xoms) == "table" and s.xoms or {}
    local pr = type(s.athlete_segment_stats) == "table" and s.athlete_segment_stats or {}
    local cat = I(s.climb_category)
    return {
      id = I(s.id),
      name = S(s.name),
      activity_type = S(s.activity_type),
      distance_m = N(s.distance),
      average_grade_pct = N(s.average_grade),
      maximum_grade_pct = N(s.maximum_grade),
      elevation_high_m = N(s.elevation_high),
      elevation_low_m = N(s.elevation_low),
      elevation_gain_m = N(s.total_elevation_gain),
      climb_category = cat,
      climb_category_label = cat and CLIMB[cat],
      start_latlng = api.latlng(s.start_latlng),
      end_latlng = api.latlng(s.end_latlng),
      city = S(s.city),
      state = S(s.state),
      country = S(s.country),
      private = B(s.private),
      hazardous = B(s.hazardous),
      starred = B(s.starred),
      effort_count = I(s.effort_count),
      athlete_count = I(s.athlete_count),
      star_count = I(s.star_count),
      kom_time = S(xoms.kom),
      qom_time = S(xoms.qom),
      athlete_pr = I(pr.pr_elapsed_time) and {
        elapsed_time_s = I(pr.pr_elapsed_time),
        elapsed_time = api.hms(I(pr.pr_elapsed_time)),
        date = S(pr.pr_date),
        effort_count = I(pr.effort_count),
      } or nil,
    }
  end,
}
