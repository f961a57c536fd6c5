-- The conformance suite's server: stateful, no authentication (the suite sends no token).
return {
  auth = { enabled = false },
  scripts = "scripts",
  policies = "policies",
}
