// Validate REST query strings with Rocket.Chat's own compiled validators.
//
// stdin: one JSON object a line, {"version": "7.0.0", "route": "<route>", "query": {...} | "a=1&b=2"}
// stdout: one JSON object a line, {"valid": bool, "errors": [...ajv errors], "message": "..."}
//   `message` is what Rocket.Chat's ApiClass puts in the 400 body before " [invalid-params]":
//   the ajv messages joined with "\n ".
// `node validate.mjs --list` prints the versions, routes and validator names it knows.
//
// The validators are the ones exported by @rocket.chat/rest-typings' dist/v1/omnichannel.js,
// installed side by side under npm aliases (see package.json). Each version compiles its schemas
// with its own ajv instance (coerceTypes: true), exactly as the server does.
import { register } from 'node:module';
import { createInterface } from 'node:readline';

// rest-typings' dist is ES module syntax in .js files of a package without "type": "module"
// (Node < 20.19 would read it as CommonJS), and 7.10's imports './Ajv' without an extension,
// which Node's ESM resolver refuses (the dist is tsc output meant for bundlers). So: load them as
// ES modules, and retry extensionless relative imports with ".js".
const hooks = `
export async function load(url, context, next) {
  if (/\\/node_modules\\/rest-typings-[^/]+\\/dist\\/.*\\.js$/.test(url)) {
    return next(url, { ...context, format: 'module' });
  }
  return next(url, context);
}
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && /^\\.{1,2}\\//.test(specifier) && !/\\.[cm]?js$/.test(specifier)) {
      return next(specifier + '.js', context);
    }
    throw err;
  }
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`, import.meta.url);

// npm alias -> package. Keep in step with package.json.
const PACKAGES = {
  '7.0.0': 'rest-typings-7.0.0',
  '7.10.0': 'rest-typings-7.10.0',
};

// Route (as the exporter names it, below /api/v1/) -> the validator the server's route
// definition passes as validateParams for GET (read from RocketChat/Rocket.Chat's source).
const ROUTES = {
  'livechat/analytics/agents/available-for-service-history':
    'isLivechatAnalyticsAgentsAvailableForServiceHistoryProps',
  // 'livechat/users/:type' validates GET with the manager schema for every :type.
  'livechat/users/agent': 'isLivechatUsersManagerGETProps',
  'livechat/analytics/dashboards/charts/agents-status': 'isGETDashboardsAgentStatusParams',
  'livechat/inquiries.list': 'isGETLivechatInquiriesListParams',
  'livechat/department': 'isGETLivechatDepartmentProps',
  'livechat/queue': 'isGETLivechatQueueParams',
  'livechat/rooms': 'isGETLivechatRoomsParams',
};

const modules = {};
for (const [version, pkg] of Object.entries(PACKAGES)) {
  modules[version] = await import(`${pkg}/dist/v1/omnichannel.js`);
  for (const [route, name] of Object.entries(ROUTES)) {
    if (typeof modules[version][name] !== 'function') {
      throw new Error(`${pkg}/dist/v1/omnichannel.js exports no ${name} (route ${route})`);
    }
  }
}

// Like Express's query parser for flat keys: a repeated key becomes an array.
function parseQuery(qs) {
  const out = {};
  for (const [k, v] of new URLSearchParams(qs)) {
    if (k in out) out[k] = [].concat(out[k], v);
    else out[k] = v;
  }
  return out;
}

function check(line) {
  const { version, route, query } = JSON.parse(line);
  const mod = modules[version];
  if (!mod) return { valid: null, error: `unknown version ${version}; known: ${Object.keys(PACKAGES)}` };
  const name = ROUTES[route];
  if (!name) return { valid: null, error: `unknown route ${route}; known: ${Object.keys(ROUTES)}` };
  const data = typeof query === 'string' ? parseQuery(query) : structuredClone(query ?? {});
  const validator = mod[name];
  const valid = validator(data); // coerces `data` in place, as the server's this.queryParams
  const errors = valid ? [] : validator.errors ?? [];
  return {
    valid,
    validator: name,
    errors,
    message: errors.map((e) => e.message).join('\n '),
    coerced: data,
  };
}

if (process.argv.includes('--list')) {
  console.log(JSON.stringify({ versions: Object.keys(PACKAGES), routes: ROUTES }));
} else {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let out;
    try {
      out = check(line);
    } catch (err) {
      out = { valid: null, error: String(err?.message ?? err) };
    }
    process.stdout.write(`${JSON.stringify(out)}\n`);
  }
}
