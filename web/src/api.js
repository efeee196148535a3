// The REST API as the dashboard uses it: the bearer token kept in localStorage,
// errors as ApiError (status, message, parameter) so views can show a banner
// instead of a blank chart, what this tmsd can answer (capabilities), and the
// admin writes (send) the Alerts page makes.

const TOKEN_KEY = 'tmsd.token';

export const getToken = () => localStorage.getItem(TOKEN_KEY) || '';

export function setToken(t) {
  if (t) localStorage.setItem(TOKEN_KEY, t.trim());
  else localStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, message, parameter, path, method = 'GET') {
    super(message);
    this.status = status;
    this.parameter = parameter || '';
    this.path = path;
    // method tells a refused write (an admin route) from a refused read.
    this.method = method;
  }
}

// BASE_CAPS: the scopes every tmsd has, what the dashboard assumes when
// /capabilities cannot be read (an older tmsd, or no token yet).
const BASE_CAPS = { scopes: ['exporter', 'proto'], off: {} };
let capsPromise = null;

// capabilities is what this tmsd can scope by (GET /capabilities): the filters
// with tables (exporter, proto, if, app, ip) and, for each of the others, the
// configuration key that turns it on. Asked once per page load: it changes
// only with a restart. A failure is not kept, so a token pasted later helps.
export function capabilities() {
  if (!capsPromise) {
    capsPromise = get('capabilities').catch((e) => {
      capsPromise = null;
      if (e instanceof ApiError && e.status === 404) return BASE_CAPS;
      throw e;
    });
  }
  return capsPromise;
}

// capabilitiesOr is capabilities, or the base ones after handing the error to
// onError (a view's banner), so a view still offers what every tmsd has.
export async function capabilitiesOr(onError) {
  try {
    return await capabilities();
  } catch (e) {
    onError(e);
    return BASE_CAPS;
  }
}

// request fetches an API path with the query params that are set and
// returns the answer's text and its parsed JSON (null when not JSON); a
// write gives its method and a body, sent as JSON.
async function request(path, params, accept, signal, method = 'GET', body = undefined) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const headers = { Accept: accept };
  const token = getToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const url = '/api/v1/' + path + (q.size ? '?' + q : '');
  let resp;
  try {
    resp = await fetch(url, { method, headers, signal, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'cannot reach tmsd (' + e.message + ')', '', path, method);
  }
  const text = await resp.text();
  let answer = null;
  try {
    answer = JSON.parse(text);
  } catch {
    // An answer from something in front of tmsd (a proxy), or a CSV, is not JSON.
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, (answer && answer.error) || text.trim() || resp.statusText, answer && answer.parameter, path, method);
  }
  return { text, body: answer, status: resp.status };
}

// get fetches an API path's JSON answer.
export async function get(path, params = {}, signal) {
  const { body, status } = await request(path, params, 'application/json', signal);
  if (body === null) throw new ApiError(status, 'the answer is not JSON', '', path);
  return body;
}

// text fetches an API path's answer as text, e.g. a CSV (errors stay JSON).
export async function text(path, params = {}, accept = 'text/plain', signal) {
  return (await request(path, params, accept, signal)).text;
}

// send makes a write (POST, PUT, DELETE) with a JSON body (or none) and
// returns its JSON answer (null when it has none).
export async function send(method, path, body, signal) {
  return (await request(path, {}, 'application/json', signal, method, body)).body;
}

// seg is a name as one segment of an API path (a rule named "a/b").
export const seg = (s) => encodeURIComponent(s);

export const top = (params, signal) => get('top', params, signal);
export const series = (params, signal) => get('series', params, signal);
export const exporters = (signal) => get('exporters', {}, signal);

// inParallel runs fns (each returning a promise) at most limit at a time:
// a TopN chart asks one series per key, and a browser would queue them anyway.
export async function inParallel(fns, limit = 4) {
  const out = new Array(fns.length);
  let next = 0;
  async function worker() {
    while (next < fns.length) {
      const i = next++;
      out[i] = await fns[i]();
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, fns.length) }, worker));
  return out;
}
