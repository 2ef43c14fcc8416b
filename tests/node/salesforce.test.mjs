// jsforce 3 against the Salesforce emulator: SOAP, OAuth password and JWT bearer logins,
// identity(), paged queries (batchSize, autoFetch) and queryAll, describe, sObject Collections
// with allOrNone, retrieve of many ids by POST, session expiry, and jsforce's own retries under
// injected faults. Expected values come from the emulator's admin API, never from jsforce.
import assert from 'node:assert/strict';
import { createSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { before, beforeEach, describe, test } from 'node:test';

import jsforce from 'jsforce';

import { SUITE, admin, calls, need, rejection } from './sandbox.mjs';

const LOGIN_URL = need('SF_LOGIN_URL');
const USERNAME = need('SF_USERNAME');
const SECRET = need('SF_PASSWORD') + need('SF_TOKEN'); // password + security token
const CLIENT_ID = need('SF_CLIENT_ID');
const CLIENT_SECRET = need('SF_CLIENT_SECRET');
const KEY_FILE = need('SF_PRIVATE_KEY_FILE');
const VERSION = '59.0';
const KEY = 'Winback_Key__c'; // the Task External ID field (reference §3.6)
const DEALS = 450; // more than two pages of 200

const sfAdmin = (method, path, body) => admin(LOGIN_URL, method, path, body);
const records = async (sobject) => (await sfAdmin('GET', `records/${sobject}`)).records;

/** A jsforce connection; every URL it will use must be on the emulator. */
function connection(config = {}) {
  return new jsforce.Connection({ loginUrl: LOGIN_URL, version: VERSION, ...config });
}

async function soapLogin() {
  const conn = connection();
  await conn.login(USERNAME, SECRET);
  assert.equal(conn.instanceUrl, LOGIN_URL, 'the emulator is the instance');
  return conn;
}

async function oauthLogin() {
  const conn = connection({ oauth2: { loginUrl: LOGIN_URL, clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET } });
  await conn.login(USERNAME, SECRET);
  assert.equal(conn.instanceUrl, LOGIN_URL, 'the emulator is the instance');
  return conn;
}

/** An RS256 JWT bearer assertion for the sandbox app, signed with its private key. */
function assertion() {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${part({ alg: 'RS256' })}.${part({ iss: CLIENT_ID, sub: USERNAME,
    aud: 'https://login.salesforce.com', exp: Math.floor(Date.now() / 1000) + 180 })}`;
  const signature = createSign('RSA-SHA256').update(body).sign(readFileSync(KEY_FILE), 'base64url');
  return `${body}.${signature}`;
}

const JWT_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

async function jwtLogin(config = {}) {
  const conn = connection({ oauth2: { loginUrl: LOGIN_URL, clientId: CLIENT_ID }, ...config });
  await conn.authorize({ grant_type: JWT_GRANT, assertion: assertion() });
  assert.equal(conn.instanceUrl, LOGIN_URL, 'the emulator is the instance');
  return conn;
}

let me; // the integration user as stored
let users; // every User
let opportunities; // every Opportunity as stored

before(async () => {
  await sfAdmin('POST', 'reset', {}); // a fresh org: the file can run again on one sandbox
  await sfAdmin('POST', 'seed', { generate: { deals: DEALS, seed: 7 } });
  users = await records('User');
  me = users.find((u) => u.Username === USERNAME);
  opportunities = await records('Opportunity');
  assert.ok(me, 'the integration user exists');
  assert.equal(opportunities.length, DEALS);
});

beforeEach(async () => {
  await sfAdmin('POST', 'faults', { clear: true });
  await sfAdmin('POST', 'calls/reset', {});
});

describe('logins', SUITE, () => {
  test('SOAP login with password + security token', async () => {
    const conn = connection();
    const info = await conn.login(USERNAME, SECRET);
    assert.equal(info.id, me.Id);
    assert.match(info.organizationId, /^00D\w{15}$/);
    assert.equal(conn.instanceUrl, LOGIN_URL);
    assert.equal((await calls(LOGIN_URL)).soap_login, 1);
    const wrong = await rejection(() => connection().login(USERNAME, 'not-the-password'));
    assert.match(wrong.message, /INVALID_LOGIN|Invalid username, password, security token/);
  });

  test('OAuth username-password flow with the client id and secret', async () => {
    const conn = await oauthLogin();
    assert.equal(conn.userInfo.id, me.Id);
    assert.ok(conn.accessToken);
    assert.equal((await calls(LOGIN_URL)).oauth_token, 1);
    assert.equal((await calls(LOGIN_URL)).soap_login, undefined, 'no SOAP login');
    const bad = connection({ oauth2: { loginUrl: LOGIN_URL, clientId: CLIENT_ID,
      clientSecret: 'wrong' } });
    const refused = await rejection(() => bad.login(USERNAME, SECRET));
    assert.equal(refused.name, 'invalid_client');
  });

  test('JWT bearer flow (authorize with an RS256 assertion)', async () => {
    const conn = await jwtLogin();
    assert.equal(conn.userInfo.id, me.Id);
    const { records: [row] } = await conn.query(`SELECT Id, Username FROM User WHERE Id = '${me.Id}'`);
    assert.equal(row.Username, USERNAME);
  });

  // never let jsforce call the real login.salesforce.com from a test: check the URL first
  async function whoAmI(conn) {
    const url = new URL(conn.userInfo.url);
    assert.equal(url.origin, LOGIN_URL, `the identity URL ${url} is the emulator's`);
    const identity = await conn.identity();
    assert.equal(identity.user_id, me.Id);
    assert.equal(identity.organization_id, conn.userInfo.organizationId);
    assert.equal(identity.username, USERNAME);
  }

  test('identity() after a SOAP login asks the emulator who is logged in', async () => {
    await whoAmI(await soapLogin());
  });

  test('identity() after an OAuth login asks the emulator who is logged in', async () => {
    await whoAmI(await oauthLogin());
  });
});

describe('queries and describe', SUITE, () => {
  test('a paged query: batchSize=200 pages, autoFetch follows nextRecordsUrl', async () => {
    const conn = await soapLogin();
    const headers = { 'Sforce-Query-Options': 'batchSize=200' };
    const soql = 'SELECT Id, Name, StageName FROM Opportunity ORDER BY Id';
    const first = await conn.query(soql, { headers });
    assert.equal(first.totalSize, DEALS);
    assert.equal(first.records.length, 200);
    assert.equal(first.done, false);
    assert.ok(first.nextRecordsUrl);
    await sfAdmin('POST', 'calls/reset', {});
    const all = await conn.query(soql, { headers, autoFetch: true, maxFetch: 10000 });
    assert.equal(all.records.length, DEALS);
    assert.deepEqual(all.records.map((r) => r.Id), opportunities.map((o) => o.Id).sort());
    const byId = new Map(opportunities.map((o) => [o.Id, o]));
    for (const row of all.records) assert.equal(row.Name, byId.get(row.Id).Name);
    const served = await calls(LOGIN_URL);
    assert.equal(served.query, 1);
    assert.equal(served.query_more, Math.ceil(DEALS / 200) - 1);
  });

  test('closed-lost opportunities by flags match the stored ones', async () => {
    const conn = await oauthLogin();
    const result = await conn.query(
      'SELECT Id, StageName FROM Opportunity WHERE IsClosed = true AND IsWon = false',
      { autoFetch: true, maxFetch: 10000 });
    const lost = opportunities.filter((o) => o.IsClosed && !o.IsWon).map((o) => o.Id).sort();
    assert.ok(lost.length > 200);
    assert.deepEqual(result.records.map((r) => r.Id).sort(), lost);
  });

  test('queryAll also returns deleted rows (IsDeleted = true); query does not', async () => {
    const conn = await soapLogin();
    const subject = `queryAll ${Date.now()}`;
    const made = await conn.sobject('Task').create([1, 2, 3].map((n) => ({
      Subject: `${subject} #${n}`, WhatId: opportunities[n].Id, OwnerId: me.Id,
      ActivityDate: '2026-12-24' })), { allOrNone: true });
    assert.ok(made.every((r) => r.success), JSON.stringify(made));
    const gone = made.slice(0, 2).map((r) => r.id);
    const destroyed = await conn.sobject('Task').destroy(gone);
    assert.ok(destroyed.every((r) => r.success), JSON.stringify(destroyed));
    const soql = `SELECT Id, IsDeleted FROM Task WHERE Subject LIKE '${subject}%'`;
    const live = await conn.query(soql);
    assert.deepEqual(live.records.map((r) => r.Id), [made[2].id]);
    const every = await conn.query(soql, { scanAll: true }); // jsforce's queryAll
    assert.equal(every.totalSize, 3);
    assert.deepEqual(every.records.filter((r) => r.IsDeleted).map((r) => r.Id).sort(), gone.sort());
    assert.equal((await calls(LOGIN_URL)).query_all, 1);
  });

  test('describe of Task shows the task key field as a unique External ID', async () => {
    const conn = await soapLogin();
    const described = await conn.sobject('Task').describe();
    assert.equal(described.name, 'Task');
    const key = described.fields.find((f) => f.name === KEY);
    assert.ok(key, `${KEY} is a Task field`);
    assert.equal(key.externalId, true);
    assert.equal(key.unique, true);
    assert.equal(key.idLookup, true);
    assert.equal(key.type, 'string');
    const status = described.fields.find((f) => f.name === 'Status');
    assert.ok(status.picklistValues.some((v) => v.value === 'Completed'));
  });
});

describe('sObject Collections', SUITE, () => {
  const inactive = () => users.find((u) => !u.IsActive).Id;
  const task = (n, extra = {}) => ({ Subject: `collections #${n}`, WhatId: opportunities[n].Id,
    OwnerId: me.Id, ActivityDate: '2026-12-24', ...extra });
  const stored = async () => (await sfAdmin('GET', 'tasks')).records.filter((t) => !t.IsDeleted);

  test('create: allOrNone=true fails every record for one bad one; false only that one', async () => {
    const conn = await soapLogin();
    const before = (await stored()).length;
    const batch = [task(10), task(11, { OwnerId: inactive() }), task(12)];
    const all = await conn.sobject('Task').create(batch, { allOrNone: true });
    assert.deepEqual(all.map((r) => r.success), [false, false, false]);
    assert.equal(all[1].errors[0].statusCode, 'INACTIVE_OWNER_OR_USER');
    assert.equal(all[0].errors[0].statusCode, 'ALL_OR_NONE_OPERATION_ROLLED_BACK');
    assert.equal(all[2].errors[0].statusCode, 'ALL_OR_NONE_OPERATION_ROLLED_BACK');
    assert.equal((await stored()).length, before, 'nothing written');

    const some = await conn.sobject('Task').create(batch, { allOrNone: false });
    assert.deepEqual(some.map((r) => r.success), [true, false, true]);
    assert.equal(some[1].errors[0].statusCode, 'INACTIVE_OWNER_OR_USER');
    const now = await stored();
    assert.equal(now.length, before + 2);
    assert.deepEqual(now.filter((t) => [some[0].id, some[2].id].includes(t.Id))
      .map((t) => t.Subject).sort(), ['collections #10', 'collections #12']);
    assert.equal((await calls(LOGIN_URL)).collections_create, 2, 'one call per batch');
  });

  test('update: allOrNone=true rolls back the good records; false keeps them', async () => {
    const conn = await soapLogin();
    const made = await conn.sobject('Task').create([task(20), task(21), task(22)]);
    const [a, b, c] = made.map((r) => r.id);
    await conn.sobject('Task').destroy(c);
    const changes = [{ Id: a, Status: 'Completed' }, { Id: b, Status: 'Completed' },
      { Id: c, Status: 'Completed' }];
    const all = await conn.sobject('Task').update(changes, { allOrNone: true });
    assert.deepEqual(all.map((r) => r.success), [false, false, false]);
    assert.equal(all[2].errors[0].statusCode, 'ENTITY_IS_DELETED');
    assert.equal(all[0].errors[0].statusCode, 'ALL_OR_NONE_OPERATION_ROLLED_BACK');
    const statuses = async () => new Map((await stored()).map((t) => [t.Id, t.Status]));
    assert.notEqual((await statuses()).get(a), 'Completed');

    const some = await conn.sobject('Task').update(changes, { allOrNone: false });
    assert.deepEqual(some.map((r) => r.success), [true, true, false]);
    assert.equal(some[2].errors[0].statusCode, 'ENTITY_IS_DELETED');
    const after = await statuses();
    assert.equal(after.get(a), 'Completed');
    assert.equal(after.get(b), 'Completed');
  });

  test('upsert on the External ID: created true/false, allOrNone=true rolls back', async () => {
    const conn = await soapLogin();
    const key = (n) => `node-upsert-${n}`;
    const first = await conn.sobject('Task').upsert([task(30, { [KEY]: key(30) }),
      task(31, { [KEY]: key(31) })], KEY, { allOrNone: false });
    assert.deepEqual(first.map((r) => [r.success, r.created]), [[true, true], [true, true]]);
    const again = await conn.sobject('Task').upsert([
      { [KEY]: key(30), Priority: 'High' }, task(32, { [KEY]: key(32) })], KEY);
    assert.deepEqual(again.map((r) => [r.success, r.created]), [[true, false], [true, true]]);
    assert.equal(again[0].id, first[0].id, 'the same task, found by its key');
    const byKey = new Map((await stored()).map((t) => [t[KEY], t]));
    assert.equal(byKey.get(key(30)).Priority, 'High');

    const rolled = await conn.sobject('Task').upsert([
      { [KEY]: key(31), Priority: 'High' }, task(33, { [KEY]: key(33), OwnerId: inactive() })],
    KEY, { allOrNone: true });
    assert.deepEqual(rolled.map((r) => r.success), [false, false]);
    assert.equal(rolled[1].errors[0].statusCode, 'INACTIVE_OWNER_OR_USER');
    assert.equal(rolled[0].errors[0].statusCode, 'ALL_OR_NONE_OPERATION_ROLLED_BACK');
    const later = new Map((await stored()).map((t) => [t[KEY], t]));
    assert.notEqual(later.get(key(31)).Priority, 'High');
    assert.equal(later.has(key(33)), false);
  });

  test('retrieve of many ids is one POST /composite/sobjects/{type} with {ids, fields}', async () => {
    const conn = await soapLogin();
    const wanted = opportunities.slice(0, 15);
    const got = await conn.sobject('Opportunity').retrieve(wanted.map((o) => o.Id),
      { fields: ['Name', 'StageName', 'Amount'] });
    assert.deepEqual(got.map((r) => r.Id), wanted.map((o) => o.Id), 'in request order');
    got.forEach((row, i) => {
      assert.equal(row.Name, wanted[i].Name);
      assert.equal(row.StageName, wanted[i].StageName);
    });
    const raw = await conn.requestPost(`/composite/sobjects/Opportunity`,
      { ids: [wanted[0].Id, '006000000000000AAA'], fields: ['Name'] });
    assert.equal(raw[0].Name, wanted[0].Name);
    assert.equal(raw[1], null, 'an unknown id comes back as null');
    const served = await calls(LOGIN_URL);
    assert.equal(served.collections_retrieve_body, 2, 'both went as a POST with a body');
    assert.equal(served.collections_retrieve, undefined, 'no GET ?ids=');
    assert.equal(served.sobject_get, undefined, 'no record fetched one by one');
  });
});

describe('session expiry', SUITE, () => {
  const expire = () => sfAdmin('POST', 'sessions/expire', {});

  test('after a SOAP login jsforce logs in again and repeats the call', async () => {
    const conn = await soapLogin();
    const token = conn.accessToken;
    await expire();
    const result = await conn.query('SELECT Id FROM User');
    assert.equal(result.totalSize, users.length);
    assert.notEqual(conn.accessToken, token, 'a new session');
    const served = await calls(LOGIN_URL);
    assert.equal(served.soap_login, 2);
    assert.equal(served.query, 2, 'the refused query and its repeat');
  });

  test('after an OAuth password login jsforce asks for a new token', async () => {
    const conn = await oauthLogin();
    await expire();
    const row = await conn.sobject('Opportunity').retrieve(opportunities[0].Id);
    assert.equal(row.Name, opportunities[0].Name);
    assert.equal((await calls(LOGIN_URL)).oauth_token, 2);
  });

  test('a JWT session is minted again through refreshFn', async () => {
    let minted = 0;
    const refreshFn = (conn, callback) => {
      minted += 1;
      conn.authorize({ grant_type: JWT_GRANT, assertion: assertion() })
        .then(() => callback(null, conn.accessToken), callback);
    };
    const conn = await jwtLogin({ refreshFn });
    await expire();
    const result = await conn.query('SELECT Id FROM User');
    assert.equal(result.totalSize, users.length);
    assert.equal(minted, 1);
  });

  test('a bare access token gets INVALID_SESSION_ID', async () => {
    const logged = await soapLogin();
    const conn = new jsforce.Connection({ instanceUrl: logged.instanceUrl,
      accessToken: logged.accessToken, version: VERSION });
    await expire();
    const refused = await rejection(() => conn.query('SELECT Id FROM User'));
    assert.equal(refused.errorCode, 'INVALID_SESSION_ID');
  });
});

describe("faults, through jsforce's own retries", SUITE, () => {
  test('503s on a query are retried by default (GET) until it succeeds', async () => {
    const conn = await soapLogin();
    await sfAdmin('POST', 'faults', { endpoint: 'query', error_rate: 1.0, error_status: 503,
      count: 2 });
    const result = await conn.query('SELECT Id FROM Opportunity', { autoFetch: true });
    assert.equal(result.records.length, DEALS);
    assert.equal((await calls(LOGIN_URL)).query, 3, 'two 503s, then the answer');
  });

  // jsforce retries GET, PUT, HEAD, OPTIONS and DELETE (request.ts), not POST or PATCH: a
  // create may have happened. (Opting POST in through retry.methods is no way out in 3.10.16:
  // the retry re-sends the request body stream the first attempt consumed, and hangs.)
  test('a 503 on a collections create reaches the caller; a DELETE is retried', async () => {
    const conn = await soapLogin();
    const body = { allOrNone: false, records: [1, 2].map((n) => ({ attributes: { type: 'Task' },
      Subject: `retried #${n}`, WhatId: opportunities[40 + n].Id, OwnerId: me.Id })) };
    await sfAdmin('POST', 'faults', { endpoint: 'collections_create', error_rate: 1.0,
      error_status: 503, count: 1 });
    const failed = await rejection(() => conn.requestPost('/composite/sobjects', body));
    assert.equal(failed.errorCode, 'SERVER_UNAVAILABLE');
    assert.equal((await calls(LOGIN_URL)).collections_create, 1, 'not sent again');

    const saved = await conn.requestPost('/composite/sobjects', body);
    assert.deepEqual(saved.map((r) => r.success), [true, true]);
    await sfAdmin('POST', 'faults', { endpoint: 'collections_delete', error_rate: 1.0,
      error_status: 503, count: 1 });
    const gone = await conn.sobject('Task').destroy(saved.map((r) => r.id));
    assert.deepEqual(gone.map((r) => r.success), [true, true]);
    assert.equal((await calls(LOGIN_URL)).collections_delete, 2, 'a 503, then the delete');
    const left = (await sfAdmin('GET', 'tasks')).records.filter((t) => saved.some((r) => r.id === t.Id));
    assert.ok(left.every((t) => t.IsDeleted));
  });

  test('a throttled call (rate_429: 403 REQUEST_LIMIT_EXCEEDED) is retried only when asked', async () => {
    const conn = await soapLogin();
    const url = `/sobjects/Opportunity/${opportunities[1].Id}`;
    await sfAdmin('POST', 'faults', { endpoint: 'sobject_get', rate_429: 1.0, count: 1 });
    const refused = await rejection(() => conn.request(url));
    assert.equal(refused.errorCode, 'REQUEST_LIMIT_EXCEEDED');

    await sfAdmin('POST', 'faults', { endpoint: 'sobject_get', rate_429: 1.0, count: 1 });
    const row = await conn.request(url, { retry: { statusCodes: [403, 503], maxRetries: 2,
      minTimeout: 100 } });
    assert.equal(row.Name, opportunities[1].Name);
    assert.equal((await calls(LOGIN_URL)).sobject_get, 3);
  });
});
