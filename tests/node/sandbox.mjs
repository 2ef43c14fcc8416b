// What the Node client tests share: the sandbox's URLs and credentials (from the environment
// tests/integration/node_clients/test_node_clients.py sets) and its admin API under /__sandbox/.
// The emulators listen on 127.0.0.1 only; Salesforce's certificate is signed by the sandbox CA,
// which the wrapper hands to Node through NODE_EXTRA_CA_CERTS.

const HOW = 'run the Node client tests through pytest ' +
  '(tests/integration/node_clients/test_node_clients.py), which starts the sandbox and sets it';

/** The value of environment variable `name`; a clear error when it is missing. */
export function need(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`environment variable ${name} is not set: ${HOW}`);
  }
  const url = /_URL$/.test(name) ? new URL(value) : null;
  if (url && url.hostname !== '127.0.0.1') {
    throw new Error(`${name}=${value} is not on 127.0.0.1: these tests only talk to the sandbox`);
  }
  return value;
}

/** Options of every describe(): a hung call fails its suite instead of stalling the run. */
export const SUITE = { timeout: 60_000 };

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Call one admin route of an emulator (base: its URL); the parsed JSON answer, or null. */
export async function admin(base, method, path, body) {
  const response = await fetch(`${base}/__sandbox/${path.replace(/^\/+/, '')}`, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`admin ${method} ${path} answered ${response.status}: ${text.slice(0, 500)}`);
  }
  return text ? JSON.parse(text) : null;
}

/** How many API calls the emulator served per endpoint since the last calls/reset. */
export async function calls(base) {
  return (await admin(base, 'GET', 'calls')).calls;
}

/** When (epoch seconds) each call to `endpoint` arrived, oldest first. */
export async function arrivals(base, endpoint) {
  const { requests } = await admin(base, 'GET', 'requests');
  return requests.filter((r) => r.endpoint === endpoint).map((r) => r.at);
}

/** The most calls that arrived within any `seconds`-long window (a sliding window). */
export function busiestWindow(times, seconds) {
  let best = 0;
  let start = 0;
  for (let end = 0; end < times.length; end += 1) {
    while (times[end] - times[start] >= seconds) start += 1;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

/** Run `fn`, expect it to reject, and return what it threw (fails the test if it resolved). */
export async function rejection(fn) {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail, but it succeeded');
}
