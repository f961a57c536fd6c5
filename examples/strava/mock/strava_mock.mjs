#!/usr/bin/env node
// strava_mock.mjs — a stand-in for the six Strava API v3 endpoints the example's tools call,
// over HTTPS, with deterministic fixture data. Node built-ins only (the certificate, when not
// given, is made with the openssl command).
//
//   GET /api/v3/athlete                        the token's athlete (1001, Ada Lovelace)
//   GET /api/v3/athletes/{id}/stats            only for the token's athlete (403 otherwise)
//   GET /api/v3/athlete/activities             before, after, page, per_page; newest first
//   GET /api/v3/activities/{id}                include_all_efforts
//   GET /api/v3/activities/{id}/streams        keys=a,b,c; key_by_type=true gives an object
//   GET /api/v3/segments/{id}
//
// Every API request needs `Authorization: Bearer <a token it accepts>` (401 with Strava's
// error body otherwise). TOKENS.full may read everything; TOKENS.read_only has Strava's `read`
// scope only, so the activity endpoints answer 401 "activity:read_permission missing".
// Unknown ids are 404, as on Strava. Every API request is recorded.
//
// Control routes (no token needed; loopback test use only):
//   GET  /__mock/requests   {"requests":[{seq, method, path, query, url, headers, authorization, status}]}
//   POST /__mock/reset      forget the requests and any queued failure
//   POST /__mock/fail       {"status":429,"count":1,"retry_after":30,"path":"/athlete"}: the next
//                           `count` authorized API requests whose path (after /api/v3) starts
//                           with `path` (any, when absent) answer `status` (429 or 404...);
//                           retry_after becomes a Retry-After header
//
// Command line:
//   node strava_mock.mjs [--port 9443] [--host 127.0.0.1] [--cert FILE --key FILE | --cert-dir DIR]
//                        [--token TOKEN]... [--max-lifetime SECONDS]
// --cert-dir makes DIR/cert.pem and DIR/key.pem (a self-signed certificate for www.strava.com
// and 127.0.0.1) unless they exist; with neither option a temporary directory is used.
// --token adds a token with full access. --max-lifetime makes it exit by itself after that
// many seconds (0, the default, means never), so a test that dies cannot leave it behind.
// Prints one JSON line when ready:
//   {"url":"https://www.strava.com:9443/api/v3","port":9443,"host":"127.0.0.1","cert":"...","tokens":{...},"pid":...}
// and runs until SIGTERM or SIGINT (exit status 0).
//
// As a module: `const mock = await startStravaMock({ cert, key })` gives
// { port, url, requests, fail(spec), reset(), close() }.

import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const TOKENS = {
  full: 'mock-strava-token-ada-7c1e5a9f3b2d',
  read_only: 'mock-strava-token-ada-readonly-4d8b6e2a',
};

// ------------------------------------------------------------------ fixture data

export const ATHLETE_ID = 1001;

const GEAR = {
  b1234: { id: 'b1234', primary: true, name: 'Analytical Engine', resource_state: 2, distance: 18234567.0 },
  g5678: { id: 'g5678', primary: true, name: 'Difference Runners', resource_state: 2, distance: 812345.0 },
};

export const ATHLETE = {
  id: ATHLETE_ID, username: 'ada_rides', resource_state: 3, firstname: 'Ada', lastname: 'Lovelace',
  bio: 'Poetical science on two wheels.', city: 'London', state: 'England', country: 'United Kingdom',
  sex: 'F', premium: true, summit: true, created_at: '2016-03-14T09:26:53Z', updated_at: '2024-05-10T19:40:00Z',
  badge_type_id: 1, weight: 61.5,
  profile_medium: 'https://dgalywyr863hv.cloudfront.net/pictures/athletes/1001/medium.jpg',
  profile: 'https://dgalywyr863hv.cloudfront.net/pictures/athletes/1001/large.jpg',
  friend: null, follower: null, follower_count: 128, friend_count: 97, mutual_friend_count: 0,
  athlete_type: 1, date_preference: '%m/%d/%Y', measurement_preference: 'meters', clubs: [],
  ftp: 245, bikes: [GEAR.b1234], shoes: [GEAR.g5678],
};

const total = (count, distance, moving_time, elapsed_time, elevation_gain, achievement_count) =>
  ({ count, distance, moving_time, elapsed_time, elevation_gain, achievement_count });

export const STATS = {
  biggest_ride_distance: 161502.3,
  biggest_climb_elevation_gain: 1240.5,
  recent_ride_totals: total(6, 312044.5, 41220, 45012, 2310.2, 14),
  recent_run_totals: total(3, 21012.0, 6920, 7105, 88.0, 2),
  recent_swim_totals: total(1, 1800.0, 2700, 2700, 0, 0),
  ytd_ride_totals: total(41, 2011304.0, 270110, 291022, 15022.0, 77),
  ytd_run_totals: total(22, 160440.0, 57010, 58230, 910.0, 9),
  ytd_swim_totals: total(4, 7200.0, 10800, 11040, 0, 0),
  all_ride_totals: total(903, 41203311.0, 5901233, 6402210, 301233.0, 1410),
  all_run_totals: total(388, 3105522.0, 1102330, 1140021, 21022.0, 301),
  all_swim_totals: total(35, 61500.0, 93000, 95500, 0, 0),
};

// The activities, newest first. `streams` lists the streams the device recorded.
const STREAMS_ALL = ['time', 'distance', 'latlng', 'altitude', 'velocity_smooth', 'heartrate', 'cadence', 'watts', 'temp', 'moving', 'grade_smooth'];
const SUMMARIES = [
  { id: 9006, name: 'Evening Recovery Spin', sport_type: 'VirtualRide', start_date: '2024-05-10T18:30:00Z', timezone: '(GMT+00:00) Europe/London', utc_offset: 3600, distance: 20150.0, moving_time: 2700, elapsed_time: 2760, total_elevation_gain: 0, average_speed: 7.463, max_speed: 10.2, average_heartrate: 121.4, max_heartrate: 139, average_watts: 151.2, kilojoules: 408.2, kudos_count: 2, achievement_count: 0, trainer: true, commute: false, private: false, gear_id: 'b1234', streams: ['time', 'distance', 'heartrate', 'cadence', 'watts', 'moving'] },
  { id: 9005, name: 'Parkrun', sport_type: 'Run', start_date: '2024-05-08T08:00:00Z', timezone: '(GMT+00:00) Europe/London', utc_offset: 3600, distance: 5012.3, moving_time: 1334, elapsed_time: 1361, total_elevation_gain: 21.4, average_speed: 3.757, max_speed: 4.9, average_heartrate: 162.8, max_heartrate: 181, kudos_count: 11, achievement_count: 3, trainer: false, commute: false, private: false, gear_id: 'g5678', streams: ['time', 'distance', 'latlng', 'altitude', 'velocity_smooth', 'heartrate', 'cadence', 'moving', 'grade_smooth'] },
  { id: 9004, name: 'Lake Swim', sport_type: 'Swim', start_date: '2024-05-06T06:45:00Z', timezone: '(GMT+00:00) Europe/London', utc_offset: 3600, distance: 1800.0, moving_time: 2700, elapsed_time: 2700, total_elevation_gain: 0, average_speed: 0.667, max_speed: 0.9, kudos_count: 4, achievement_count: 0, trainer: false, commute: false, private: true, streams: ['time', 'distance', 'latlng', 'moving'] },
  { id: 9003, name: 'Box Hill Loop', sport_type: 'Ride', start_date: '2024-05-04T06:12:40Z', timezone: '(GMT+00:00) Europe/London', utc_offset: 3600, distance: 42150.3, moving_time: 5400, elapsed_time: 5977, total_elevation_gain: 388.0, average_speed: 7.806, max_speed: 17.3, average_heartrate: 141.2, max_heartrate: 176, average_watts: 188.4, kilojoules: 1017.4, kudos_count: 23, achievement_count: 5, trainer: false, commute: false, private: false, gear_id: 'b1234', streams: STREAMS_ALL },
  { id: 9002, name: 'Lunch Run', sport_type: 'Run', start_date: '2024-05-02T12:05:10Z', timezone: '(GMT+00:00) Europe/London', utc_offset: 3600, distance: 8012.0, moving_time: 2460, elapsed_time: 2533, total_elevation_gain: 35.2, average_speed: 3.257, max_speed: 4.1, average_heartrate: 148.0, max_heartrate: 166, kudos_count: 5, achievement_count: 1, trainer: false, commute: false, private: false, gear_id: 'g5678', streams: ['time', 'distance', 'latlng', 'altitude', 'velocity_smooth', 'heartrate', 'cadence', 'moving', 'grade_smooth'] },
  { id: 9001, name: 'Commute', sport_type: 'Ride', start_date: '2024-05-01T07:55:00Z', timezone: '(GMT+00:00) Europe/London', utc_offset: 3600, distance: 12402.7, moving_time: 1980, elapsed_time: 2304, total_elevation_gain: 61.0, average_speed: 6.264, max_speed: 11.8, kudos_count: 0, achievement_count: 0, trainer: false, commute: true, private: false, gear_id: 'b1234', streams: ['time', 'distance', 'latlng', 'altitude', 'velocity_smooth', 'moving', 'grade_smooth'] },
];

export const SEGMENTS = {
  229781: {
    id: 229781, resource_state: 3, name: 'Hawk Hill', activity_type: 'Ride', distance: 2684.82,
    average_grade: 5.7, maximum_grade: 14.2, elevation_high: 245.3, elevation_low: 92.4,
    start_latlng: [37.8331119, -122.4834356], end_latlng: [37.8280722, -122.4981393],
    climb_category: 1, city: 'San Francisco', state: 'CA', country: 'United States', private: false,
    hazardous: false, starred: false, created_at: '2009-09-21T20:29:41Z', updated_at: '2018-02-15T09:04:18Z',
    total_elevation_gain: 155.733, map: { id: 's229781', polyline: '}g|eFnpqjVl@En@Md@HbAd@d@^h@Xx@VbARjBDh@OPQf@w@d@k@XKXDFPH\\EbGT`AV`@v@|@NTNb@?XOb@cAxAWLuE@eAFMBoAv@eBt@q@b@}@tAeAt@i@dAC`AFZj@dB?~@[h@MbAVn@b@b@\\d@Eh@Qb@_@d@eB|@c@h@WfBK|AMpA?VF\\\\t@f@t@h@j@|@b@hCb@b@XTd@Bl@GtA?jAL`ALp@Tr@RXd@Rx@Pn@^Zh@Tx@Zf@`@FTCzDy@f@Yx@m@n@Op@VJr@', resource_state: 3 },
    effort_count: 309974, athlete_count: 30623, star_count: 2428,
    athlete_segment_stats: { pr_elapsed_time: 553, pr_date: '1993-04-03', effort_count: 2 },
    xoms: { kom: '5:49', qom: '7:20', destination: { href: 'strava://segments/229781/leaderboard', type: 'overall', name: 'All-Time' } },
    local_legend: { athlete_id: 1234, title: 'Jane D.', effort_count: '50' },
  },
  4629741: {
    id: 4629741, resource_state: 3, name: 'Box Hill ZigZag', activity_type: 'Ride', distance: 2481.2,
    average_grade: 4.6, maximum_grade: 7.1, elevation_high: 171.8, elevation_low: 58.3,
    start_latlng: [51.2487, -0.3189], end_latlng: [51.2531, -0.3057], climb_category: 0,
    city: 'Dorking', state: 'England', country: 'United Kingdom', private: false, hazardous: false,
    starred: true, created_at: '2013-05-01T10:00:00Z', updated_at: '2024-01-01T00:00:00Z',
    total_elevation_gain: 113.5, map: { id: 's4629741', polyline: 'abc', resource_state: 3 },
    effort_count: 701233, athlete_count: 98122, star_count: 5120,
    athlete_segment_stats: { pr_elapsed_time: 431, pr_date: '2024-05-04', effort_count: 17 },
    xoms: { kom: '4:02', qom: '4:51' },
  },
};

// The API form of a summary (what GET /athlete/activities lists), with the fields a real
// SummaryActivity carries that the tools leave out.
function summaryJson(a) {
  const { streams, utc_offset, ...rest } = a;
  const start = new Date(a.start_date);
  return {
    resource_state: 2,
    athlete: { id: ATHLETE_ID, resource_state: 1 },
    ...rest,
    type: a.sport_type === 'VirtualRide' ? 'VirtualRide' : a.sport_type,
    workout_type: null,
    start_date_local: new Date(start.getTime() + utc_offset * 1000).toISOString().replace('.000Z', 'Z'),
    utc_offset,
    location_city: null, location_state: null, location_country: 'United Kingdom',
    has_heartrate: streams.includes('heartrate'),
    map: { id: `a${a.id}`, summary_polyline: 'ki{eFvqfiVqAWQIGEEKAYJgBVqDJ{BHa@jAkNJw@Pw@V{APs@^aABQAOEQGKoJ_FuJkFqAo@', resource_state: 2 },
    upload_id: a.id * 10 + 7, external_id: `garmin_push_${a.id}`, from_accepted_tag: false,
    pr_count: 0, total_photo_count: 0, has_kudoed: false, athlete_count: 1, photo_count: 0,
  };
}

function effortJson(a, i, seg, elapsed, prRank) {
  return {
    id: a.id * 1000 + i, resource_state: 2, name: seg.name, activity: { id: a.id, resource_state: 1 },
    athlete: { id: ATHLETE_ID, resource_state: 1 }, elapsed_time: elapsed, moving_time: elapsed - 3,
    start_date: a.start_date, start_date_local: a.start_date, distance: seg.distance,
    start_index: 100 * i, end_index: 100 * i + 80, device_watts: true, average_watts: 231.0,
    segment: {
      id: seg.id, resource_state: 2, name: seg.name, activity_type: seg.activity_type,
      distance: seg.distance, average_grade: seg.average_grade, maximum_grade: seg.maximum_grade,
      elevation_high: seg.elevation_high, elevation_low: seg.elevation_low,
      start_latlng: seg.start_latlng, end_latlng: seg.end_latlng, climb_category: seg.climb_category,
      city: seg.city, state: seg.state, country: seg.country, private: false, hazardous: false, starred: false,
    },
    kom_rank: null, pr_rank: prRank, achievements: [], hidden: false,
  };
}

// DetailedActivity: the summary plus what GET /activities/{id} adds.
function detailJson(a, allEfforts) {
  const km = Math.floor(a.distance / 1000);
  const splits = [];
  for (let i = 1; i <= km + 1; i++) {
    const distance = i <= km ? 1000.0 : Math.round((a.distance - km * 1000) * 10) / 10;
    if (distance <= 0) break;
    const moving = Math.round(distance / a.average_speed);
    splits.push({
      distance, elapsed_time: moving + (i % 3), elevation_difference: Math.round(((i * 37) % 23 - 11) * 10) / 10,
      moving_time: moving, split: i, average_speed: Math.round((distance / moving) * 100) / 100,
      average_grade_adjusted_speed: null, ...(a.average_heartrate ? { average_heartrate: a.average_heartrate + (i % 5) - 2 } : {}),
      pace_zone: 0,
    });
  }
  const efforts = [];
  if (a.id === 9003) {
    efforts.push(effortJson(a, 1, SEGMENTS[4629741], 431, 1));
    if (allEfforts) efforts.push(effortJson(a, 2, SEGMENTS[229781], 612, null));
  }
  const best = a.sport_type === 'Run'
    ? [['400m', 400, 0.92], ['1/2 mile', 805, 0.95], ['1k', 1000, 0.97], ['1 mile', 1609, 0.98], ['5k', 5000, 1.0]]
      .filter(([, d]) => d <= a.distance)
      .map(([name, d, f], i) => ({
        id: a.id * 100 + i, resource_state: 2, name, distance: d,
        elapsed_time: Math.round((d / a.average_speed) * f), moving_time: Math.round((d / a.average_speed) * f),
        pr_rank: name === '5k' ? 2 : null, achievements: [],
      }))
    : undefined;
  return {
    ...summaryJson(a),
    resource_state: 3,
    description: a.id === 9003 ? 'Zig-zags twice, cake at the top.' : null,
    calories: Math.round((a.kilojoules ?? a.moving_time * 0.25) * 1.1 * 10) / 10,
    device_name: a.trainer ? 'Zwift' : 'Garmin Edge 830',
    embed_token: '18e4615989b47dd4ff3dc711b0aa4502e4b311a9',
    gear: a.gear_id ? { ...GEAR[a.gear_id] } : undefined,
    segment_efforts: efforts,
    splits_metric: a.sport_type === 'Swim' ? undefined : splits,
    laps: [{ id: a.id * 10, name: 'Lap 1', elapsed_time: a.elapsed_time, distance: a.distance, lap_index: 1 }],
    best_efforts: best,
    photos: { primary: null, count: 0 },
    highlighted_kudosers: [],
  };
}

// The stream data of an activity: its moving time sampled every 5 s (at most 2000 points).
function streamData(a, type) {
  const n = Math.min(Math.floor(a.moving_time / 5) + 1, 2000);
  const r = (v, p) => Math.round(v * 10 ** p) / 10 ** p;
  const f = {
    time: (i) => i * 5,
    distance: (i) => r((a.distance * i) / (n - 1), 1),
    latlng: (i) => [r(51.25 + 0.02 * Math.sin(i / 200), 6), r(-0.32 + 0.03 * Math.cos(i / 200), 6)],
    altitude: (i) => r(50 + 40 * Math.sin(i / 60), 1),
    velocity_smooth: (i) => r(a.average_speed * (1 + 0.1 * Math.sin(i / 15)), 2),
    heartrate: (i) => Math.round((a.average_heartrate ?? 130) + 8 * Math.sin(i / 40)),
    cadence: (i) => 85 + (i % 7),
    watts: (i) => Math.round((a.average_watts ?? 180) + 30 * Math.sin(i / 10)),
    temp: (i) => 14 + Math.floor(i / 300),
    moving: (i) => i % 50 !== 49,
    grade_smooth: (i) => r(4 * Math.cos(i / 60), 1),
  }[type];
  return Array.from({ length: n }, (_, i) => f(i));
}

export const ACTIVITIES = SUMMARIES.map((a) => ({
  id: a.id, epoch: Date.parse(a.start_date) / 1000, summary: summaryJson(a),
  detail: (all) => detailJson(a, all), streams: a.streams, stream: (t) => streamData(a, t),
}));

// ------------------------------------------------------------------ the server

function stravaError(message, resource, field, code) {
  return { message, errors: [{ resource, field, code }] };
}

const INT = /^\d{1,16}$/;

export async function startStravaMock({ port = 0, host = '127.0.0.1', cert, key, tokens = [] } = {}) {
  const accepted = new Map([
    [TOKENS.full, ['read', 'read_all', 'profile:read_all', 'activity:read', 'activity:read_all']],
    [TOKENS.read_only, ['read']],
    ...tokens.map((t) => [t, ['read', 'read_all', 'profile:read_all', 'activity:read', 'activity:read_all']]),
  ]);
  const requests = [];
  const failures = [];
  let apiCount = 0;

  const send = (res, status, body, headers = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'x-ratelimit-limit': '200,2000',
      'x-ratelimit-usage': `${Math.min(apiCount, 200)},${apiCount}`,
      ...headers,
    });
    res.end(text);
  };

  function api(req, res, url) {
    const p = url.pathname.slice('/api/v3'.length);
    const q = url.searchParams;
    // authentication first, as Strava does
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const scopes = m && accepted.get(m[1]);
    if (!scopes) return send(res, 401, stravaError('Authorization Error', 'Athlete', 'access_token', 'invalid'));
    const failure = failures.find((f) => !f.path || p.startsWith(f.path));
    if (failure) {
      if (--failure.count <= 0) failures.splice(failures.indexOf(failure), 1);
      if (failure.status === 429) {
        return send(res, 429, stravaError('Rate Limit Exceeded', 'Application', 'rate limit', 'exceeded'), {
          'x-ratelimit-usage': `201,${apiCount}`,
          ...(failure.retry_after !== undefined ? { 'retry-after': String(failure.retry_after) } : {}),
        });
      }
      if (failure.status === 404) return send(res, 404, stravaError('Record Not Found', 'Resource', 'id', 'invalid'));
      return send(res, failure.status, { message: failure.message ?? `Injected failure ${failure.status}`, errors: [] });
    }
    if (req.method !== 'GET') return send(res, 404, stravaError('Record Not Found', 'resource', 'path', 'invalid'));
    const activityRead = scopes.includes('activity:read') || scopes.includes('activity:read_all');
    const needActivity = () => {
      send(res, 401, stravaError('Authorization Error', 'AccessToken', 'activity:read_permission', 'missing'));
      return true;
    };
    let mm;
    if (p === '/athlete') return send(res, 200, ATHLETE);
    if ((mm = /^\/athletes\/(\d+)\/stats$/.exec(p))) {
      if (Number(mm[1]) !== ATHLETE_ID) {
        return send(res, 403, stravaError('Authorization Error', 'Athlete', 'id', 'forbidden'));
      }
      return send(res, 200, STATS);
    }
    if (p === '/athlete/activities') {
      if (!activityRead) return needActivity();
      const num = (name, dflt) => {
        const v = q.get(name);
        if (v === null) return dflt;
        if (!INT.test(v)) throw Object.assign(new Error(name), { field: name });
        return Number(v);
      };
      let page;
      let perPage;
      let before;
      let after;
      try {
        page = num('page', 1);
        perPage = Math.min(num('per_page', 30), 200);
        before = num('before', Infinity);
        after = num('after', -Infinity);
      } catch (e) {
        return send(res, 400, stravaError('Bad Request', 'Application', e.field, 'invalid'));
      }
      const list = ACTIVITIES.filter((a) => a.epoch < before && a.epoch > after).map((a) => a.summary);
      const start = (Math.max(page, 1) - 1) * perPage;
      return send(res, 200, list.slice(start, start + perPage));
    }
    if ((mm = /^\/activities\/(\d+)(\/streams)?$/.exec(p))) {
      if (!activityRead) return needActivity();
      const a = ACTIVITIES.find((x) => x.id === Number(mm[1]));
      if (!a) return send(res, 404, stravaError('Record Not Found', 'Activity', 'id', 'invalid'));
      if (!mm[2]) return send(res, 200, a.detail(q.get('include_all_efforts') === 'true'));
      const keys = (q.get('keys') ?? '').split(',').filter(Boolean);
      const types = a.streams.filter((t) => keys.includes(t) || t === 'distance');
      const streams = types.map((t) => {
        const data = a.stream(t);
        return { type: t, data, series_type: 'distance', original_size: data.length, resolution: 'high' };
      });
      if (q.get('key_by_type') === 'true') {
        return send(res, 200, Object.fromEntries(streams.map(({ type, ...s }) => [type, s])));
      }
      return send(res, 200, streams);
    }
    if ((mm = /^\/segments\/(\d+)$/.exec(p))) {
      const s = SEGMENTS[mm[1]];
      if (!s) return send(res, 404, stravaError('Record Not Found', 'Segment', 'id', 'invalid'));
      return send(res, 200, s);
    }
    return send(res, 404, stravaError('Record Not Found', 'resource', 'path', 'invalid'));
  }

  async function control(req, res, url) {
    let body = '';
    for await (const chunk of req) body += chunk;
    if (url.pathname === '/__mock/requests' && req.method === 'GET') return send(res, 200, { requests });
    if (url.pathname === '/__mock/reset' && req.method === 'POST') {
      requests.length = 0;
      failures.length = 0;
      return send(res, 200, { ok: true });
    }
    if (url.pathname === '/__mock/fail' && req.method === 'POST') {
      let spec;
      try {
        spec = JSON.parse(body || '{}');
      } catch {
        return send(res, 400, { error: 'the body must be JSON' });
      }
      if (!Number.isInteger(spec.status) || spec.status < 400 || spec.status > 599) {
        return send(res, 400, { error: 'status must be an HTTP error status (400..599)' });
      }
      failures.push({ status: spec.status, count: spec.count ?? 1, retry_after: spec.retry_after, path: spec.path, message: spec.message });
      return send(res, 200, { queued: failures.length });
    }
    return send(res, 404, { error: 'unknown control route' });
  }

  const server = https.createServer({ cert, key }, (req, res) => {
    const url = new URL(req.url, 'https://www.strava.com');
    if (url.pathname.startsWith('/__mock/')) {
      control(req, res, url).catch((e) => send(res, 500, { error: String(e) }));
      return;
    }
    const record = {
      seq: requests.length + 1, method: req.method, path: url.pathname,
      query: Object.fromEntries(url.searchParams), url: req.url, headers: { ...req.headers },
      authorization: req.headers.authorization ?? null, status: null,
    };
    requests.push(record);
    res.on('finish', () => { record.status = res.statusCode; });
    req.resume();
    if (!url.pathname.startsWith('/api/v3/')) {
      return send(res, 404, stravaError('Record Not Found', 'resource', 'path', 'invalid'));
    }
    apiCount++;
    return api(req, res, url);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actual = server.address().port;
  return {
    port: actual,
    host,
    url: `https://www.strava.com:${actual}/api/v3`,
    requests,
    fail(spec) { failures.push({ count: 1, ...spec }); },
    reset() { requests.length = 0; failures.length = 0; },
    close: () => new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    }),
  };
}

// A self-signed certificate for www.strava.com (and 127.0.0.1) in dir, made with openssl.
export function makeCertificate(dir) {
  mkdirSync(dir, { recursive: true });
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  if (!existsSync(cert) || !existsSync(key)) {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '30', '-subj', '/CN=www.strava.com',
      '-addext', 'subjectAltName=DNS:www.strava.com,IP:127.0.0.1',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  return { cert, key };
}

// ------------------------------------------------------------------ command line

async function main(argv) {
  const opts = { port: 9443, host: '127.0.0.1', tokens: [], maxLifetime: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--port') opts.port = Number(v());
    else if (a === '--host') opts.host = v();
    else if (a === '--cert') opts.certFile = v();
    else if (a === '--key') opts.keyFile = v();
    else if (a === '--cert-dir') opts.certDir = v();
    else if (a === '--token') opts.tokens.push(v());
    else if (a === '--max-lifetime') opts.maxLifetime = Number(v());
    else throw new Error(`unknown option ${a} (--port, --host, --cert, --key, --cert-dir, --token, --max-lifetime)`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error('--port must be 0..65535');
  if (!Number.isInteger(opts.maxLifetime) || opts.maxLifetime < 0) throw new Error('--max-lifetime must be a whole number of seconds');
  if (!!opts.certFile !== !!opts.keyFile) throw new Error('give --cert and --key together');
  const files = opts.certFile
    ? { cert: path.resolve(opts.certFile), key: path.resolve(opts.keyFile) }
    : makeCertificate(path.resolve(opts.certDir ?? mkdtempSync(path.join(os.tmpdir(), 'strava-mock-'))));
  const mock = await startStravaMock({
    port: opts.port, host: opts.host, tokens: opts.tokens,
    cert: readFileSync(files.cert), key: readFileSync(files.key),
  });
  const stop = () => mock.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (opts.maxLifetime > 0) setTimeout(stop, opts.maxLifetime * 1000).unref();
  process.stdout.write(`${JSON.stringify({
    url: mock.url, port: mock.port, host: mock.host, cert: files.cert,
    tokens: { ...TOKENS, extra: opts.tokens }, pid: process.pid,
  })}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`strava_mock: ${e.message}\n`);
    process.exit(2);
  });
}
