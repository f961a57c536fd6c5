-- Who may call the Strava tools: one OAuth scope per tool, the custom scopes of the Cognito
-- resource server "mcp.example.com/strava". A token carrying mcp.example.com/strava:get_activity
-- may call get_activity and nothing else; a tool the token has no scope for is not listed, and
-- calling it is answered 403 insufficient_scope naming the scope. Deny by default: a tool added
-- to scripts/ without a rule here cannot be called.
local PREFIX = "mcp.example.com/strava:"

for _, tool in ipairs { "get_athlete", "get_athlete_stats", "get_activities", "get_activity",
                        "get_activity_streams", "get_segment" } do
  mcp.policy { tool = tool, scopes = PREFIX .. tool, description = "one Cognito scope per tool" }
end
