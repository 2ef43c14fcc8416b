// @hubspot/api-client (Node) against the HubSpot emulator: search paging and the search rate
// limit, batch read / create / update / upsert, v4 associations, owners, pipelines, properties,
// and the client's own retries under injected 503s and 429s. Expected values come from the
// emulator's admin API (every object as stored), never from the client under test.
//
// The client keeps its decorators (limiter, retries) in a process-wide singleton and applies
// them when an API group is first touched, so `client()` touches every group it hands out.
import assert from 'node:assert/strict';
import { before, beforeEach, describe, test } from 'node:test';

import { Client, SEARCH_LIMITER_OPTIONS } from '@hubspot/api-client';

import { SUITE, admin, arrivals, busiestWindow, calls, need, rejection } from './sandbox.mjs';

const BASE = need('HUBSPOT_BASE_URL');
const TOKEN = need('HUBSPOT_TOKEN');
const LOST_STAGES = ['closedlost', '1307720556']; // Sales Pipeline and Renewals (reference §1.1, §1.3)
const TASK_TO_DEAL = 216; // reference §2
const KEY = 'winback_key';
const PAGE = 5; // search page size: 7 pages over the 33 seeded closed-lost deals, more than 5 a second

function client(config = {}) {
  const made = new Client({ accessToken: TOKEN, basePath: BASE, ...config });
  const { crm } = made;
  for (const group of [crm.deals, crm.objects, crm.owners, crm.pipelines, crm.properties,
    crm.associations.v4]) {
    assert.ok(group);
  }
  return made;
}

const lostSearch = (after, limit) => ({
  filterGroups: [{ filters: [{ propertyName: 'dealstage', operator: 'IN', values: LOST_STAGES }] }],
  sorts: [{ propertyName: 'hs_object_id', direction: 'ASCENDING' }],
  properties: ['dealname', 'dealstage', 'closed_lost_reason', 'hubspot_owner_id'],
  limit,
  after,
});

let deals; // every live deal as the emulator stores it, by id
let lost; // ids of the closed-lost ones, ascending
let owners; // every owner as stored

before(async () => {
  await admin(BASE, 'POST', 'reset', {}); // a fresh portal: the file can run again on one sandbox
  await admin(BASE, 'POST', 'seed', { generate: { deals: 40, seed: 7 } });
  deals = new Map((await admin(BASE, 'GET', 'objects/deals')).results
    .filter((d) => !d.archived).map((d) => [d.id, d]));
  lost = [...deals.values()].filter((d) => LOST_STAGES.includes(d.properties.dealstage))
    .map((d) => d.id).sort((a, b) => Number(a) - Number(b));
  owners = (await admin(BASE, 'GET', 'objects/owners')).results;
  assert.ok(lost.length >= 20, `the wrapper seeds enough closed-lost deals (got ${lost.length})`);
});

beforeEach(async () => {
  await admin(BASE, 'POST', 'faults', { clear: true });
  await admin(BASE, 'POST', 'limits', { reset_counters: true });
  await admin(BASE, 'POST', 'calls/reset', {});
});

describe('search', SUITE, () => {
  test('pages through every closed-lost deal with after cursors, 5 searches/s at most', async () => {
    const hs = client({ limiterOptions: SEARCH_LIMITER_OPTIONS });
    const seen = [];
    let after;
    let pages = 0;
    do {
      const page = await hs.crm.deals.searchApi.doSearch(lostSearch(after, PAGE));
      pages += 1;
      assert.equal(page.total, lost.length);
      assert.ok(page.results.length <= PAGE);
      for (const deal of page.results) {
        const stored = deals.get(deal.id);
        assert.equal(deal.properties.dealname, stored.properties.dealname);
        assert.equal(deal.properties.closed_lost_reason, stored.properties.closed_lost_reason ?? null);
        seen.push(deal.id);
      }
      after = page.paging?.next?.after;
    } while (after);
    assert.deepEqual(seen, lost, 'every closed-lost deal once, in id order');
    assert.equal(pages, Math.ceil(lost.length / PAGE));
    assert.ok(pages > 5, 'more pages than one second of searches may hold');
    assert.equal((await calls(BASE))['deals.search'], pages, 'no search was refused and retried');
    assert.ok(busiestWindow(await arrivals(BASE, 'deals.search'), 1) <= 5);
  });

  test('the client limiter keeps concurrent searches under the 5/s limit', async () => {
    const hs = client({ limiterOptions: SEARCH_LIMITER_OPTIONS });
    const active = owners.filter((o) => !o.archived).slice(0, 7);
    const answers = await Promise.all(active.map((o) => hs.crm.deals.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: 'hubspot_owner_id', operator: 'EQ', value: o.id }] }],
      limit: 100,
    })));
    answers.forEach((answer, i) => {
      const expected = [...deals.values()]
        .filter((d) => d.properties.hubspot_owner_id === active[i].id).length;
      assert.equal(answer.total, expected, `deals of owner ${active[i].id}`);
    });
    const times = await arrivals(BASE, 'deals.search');
    assert.equal(times.length, active.length, 'every search admitted at the first try');
    assert.ok(busiestWindow(times, 1) <= 5, `at most 5 searches in any second: ${times}`);
  });

  test('searches over the limit are refused with SECONDLY and retried by the client', async () => {
    const hs = client({ numberOfApiCallRetries: 3 }); // no limiter: the burst is refused
    const burst = 10;
    const answers = await Promise.all(Array.from({ length: burst },
      () => hs.crm.deals.searchApi.doSearch(lostSearch(undefined, 1))));
    for (const answer of answers) assert.equal(answer.total, lost.length);
    const served = (await calls(BASE))['deals.search'];
    assert.ok(served > burst, `some searches were refused and sent again (${served} calls)`);
  });

  test('without retries the SECONDLY 429 reaches the caller with its policy', async () => {
    const hs = client();
    const results = await Promise.allSettled(Array.from({ length: 8 },
      () => hs.crm.deals.searchApi.doSearch(lostSearch(undefined, 1))));
    const refused = results.filter((r) => r.status === 'rejected');
    assert.ok(refused.length >= 1, 'at most 5 of the 8 admitted in one second');
    for (const { value } of results.filter((r) => r.status === 'fulfilled')) {
      assert.equal(value.total, lost.length);
    }
    for (const { reason } of refused) {
      assert.equal(reason.code, 429);
      assert.equal(reason.body.policyName, 'SECONDLY');
      assert.equal(reason.body.errorType, 'RATE_LIMIT');
    }
  });
});

describe('deals and tasks', SUITE, () => {
  test('batch read returns the stored deals and a 207 OBJECT_NOT_FOUND for a missing id', async () => {
    const hs = client();
    const ids = lost.slice(0, 10);
    const { httpStatusCode, data } = await hs.crm.deals.batchApi.readWithHttpInfo({
      inputs: [...ids, '999999999'].map((id) => ({ id })),
      properties: ['dealname', 'amount', 'dealstage'],
      propertiesWithHistory: [],
    });
    assert.equal(httpStatusCode, 207);
    assert.deepEqual(data.results.map((d) => d.id).sort(), [...ids].sort());
    for (const deal of data.results) {
      const stored = deals.get(deal.id).properties;
      assert.equal(deal.properties.dealname, stored.dealname);
      assert.equal(deal.properties.dealstage, stored.dealstage);
      assert.equal(deal.properties.amount, stored.amount ?? null);
    }
    assert.equal(data.errors.length, 1);
    assert.equal(data.errors[0].category, 'OBJECT_NOT_FOUND');
    assert.deepEqual(data.errors[0].context.ids, ['999999999']);
  });

  test('a unique task key property, batch create / update / upsert of tasks on deals', async () => {
    const hs = client();
    const groups = await hs.crm.properties.groupsApi.getAll('tasks');
    const made = await hs.crm.properties.coreApi.create('tasks', {
      name: KEY, label: 'Winback key', type: 'string', fieldType: 'text',
      groupName: groups.results[0].name, hasUniqueValue: true,
    });
    assert.equal(made.name, KEY);
    assert.equal(made.hasUniqueValue, true);
    const again = await rejection(() => hs.crm.properties.coreApi.create('tasks', {
      name: KEY, label: 'Winback key', type: 'string', fieldType: 'text',
      groupName: groups.results[0].name,
    }));
    assert.equal(again.code, 409);
    assert.equal(again.body.category, 'CONFLICT');

    const owner = owners.find((o) => !o.archived).id;
    const onDeals = lost.slice(0, 3);
    const task = (deal, key) => ({
      properties: {
        hs_timestamp: '2026-12-24T09:00:00.000Z', hs_task_subject: `Call back about ${deal}`,
        hs_task_status: 'NOT_STARTED', hs_task_priority: 'MEDIUM', hs_task_type: 'CALL',
        hubspot_owner_id: owner, [KEY]: key,
      },
      associations: [{ to: { id: deal }, types: [{ associationCategory: 'HUBSPOT_DEFINED',
        associationTypeId: TASK_TO_DEAL }] }],
      objectWriteTraceId: key,
    });
    const created = await hs.crm.objects.batchApi.createWithHttpInfo('tasks', {
      inputs: onDeals.map((d) => task(d, `node:${d}`)),
    });
    assert.equal(created.httpStatusCode, 201);
    const byKey = new Map(created.data.results.map((t) => [t.properties[KEY], t.id]));
    assert.deepEqual([...byKey.keys()].sort(), onDeals.map((d) => `node:${d}`).sort());

    const stored = (await admin(BASE, 'GET', 'tasks')).results;
    for (const d of onDeals) {
      const found = stored.find((t) => t.properties[KEY] === `node:${d}`);
      assert.ok(found, `task for deal ${d} stored`);
      assert.deepEqual(found.associations.deals, [d]);
      assert.equal(found.properties.hubspot_owner_id, owner);
    }

    const duplicate = await hs.crm.objects.batchApi.createWithHttpInfo('tasks', {
      inputs: [task(onDeals[0], `node:${onDeals[0]}`), task(lost[3], `node:${lost[3]}`)],
    });
    assert.equal(duplicate.httpStatusCode, 207, 'one input conflicts: the other is created');
    assert.equal(duplicate.data.results.length, 1);
    assert.equal(duplicate.data.results[0].properties[KEY], `node:${lost[3]}`);
    assert.equal(duplicate.data.errors[0].category, 'CONFLICT');

    const updated = await hs.crm.objects.batchApi.update('tasks', {
      inputs: [...byKey.values()].map((id) => ({ id, properties: { hs_task_status: 'COMPLETED' } })),
    });
    assert.equal(updated.results.length, onDeals.length);
    const read = await hs.crm.objects.batchApi.read('tasks', {
      inputs: [...byKey.values()].map((id) => ({ id })),
      properties: ['hs_task_status', KEY], propertiesWithHistory: [],
    });
    assert.deepEqual(read.results.map((t) => t.properties.hs_task_status),
      onDeals.map(() => 'COMPLETED'));

    const upserted = await hs.crm.objects.batchApi.upsert('tasks', {
      inputs: [
        { id: `node:${onDeals[1]}`, idProperty: KEY, properties: { hs_task_priority: 'HIGH' } },
        { id: `node:new`, idProperty: KEY, properties: { ...task(lost[4], 'x').properties, [KEY]: 'node:new' } },
      ],
    });
    const up = new Map(upserted.results.map((t) => [t.properties[KEY] ?? t.id, t]));
    assert.equal(upserted.results.length, 2);
    assert.equal(up.get(`node:${onDeals[1]}`).id, byKey.get(`node:${onDeals[1]}`), 'same task');
    assert.equal(up.get(`node:${onDeals[1]}`)._new, false);
    assert.equal(up.get('node:new')._new, true);
    const after = (await admin(BASE, 'GET', 'tasks')).results;
    assert.equal(after.find((t) => t.id === byKey.get(`node:${onDeals[1]}`)).properties
      .hs_task_priority, 'HIGH');
    assert.equal(after.filter((t) => !t.archived).length, stored.length + 2);
  });
});

describe('associations, owners, pipelines, properties', SUITE, () => {
  test('v4 batch read gives each deal its contacts; a deal without any is a 207 error', async () => {
    const hs = client();
    const linked = lost.filter((id) => (deals.get(id).associations.contacts ?? []).length > 0);
    const bare = [...deals.values()].find((d) => !(d.associations.contacts ?? []).length);
    assert.ok(linked.length > 0 && bare, 'the seed has deals with and without contacts');
    const ids = [...linked.slice(0, 5), bare.id];
    const answer = await hs.crm.associations.v4.batchApi.getPage('deals', 'contacts', {
      inputs: ids.map((id) => ({ id })),
    });
    assert.equal(answer.results.length, ids.length - 1);
    for (const result of answer.results) {
      const want = deals.get(result._from.id).associations.contacts;
      assert.deepEqual(result.to.map((t) => String(t.toObjectId)).sort(), [...want].sort());
      for (const to of result.to) assert.equal(to.associationTypes[0].typeId, 3);
    }
    assert.equal(answer.errors.length, 1);
    assert.equal(answer.errors[0].subCategory, 'crm.associations.NO_ASSOCIATIONS_FOUND');
    assert.deepEqual(answer.errors[0].context.fromObjectId, [bare.id]);

    const one = linked[0];
    const page = await hs.crm.associations.v4.basicApi.getPage('deals', one, 'contacts', undefined, 500);
    assert.deepEqual(page.results.map((r) => String(r.toObjectId)).sort(),
      [...deals.get(one).associations.contacts].sort());
  });

  test('owners page with after cursors; archived=true lists the deactivated ones', async () => {
    const hs = client();
    const seen = [];
    let after;
    do {
      const page = await hs.crm.owners.ownersApi.getPage(undefined, after, 7, false);
      seen.push(...page.results);
      after = page.paging?.next?.after;
    } while (after);
    const active = owners.filter((o) => !o.archived);
    assert.deepEqual(seen.map((o) => o.id).sort(), active.map((o) => o.id).sort());
    for (const o of seen) {
      const stored = active.find((s) => s.id === o.id);
      assert.equal(o.email, stored.email);
      assert.equal(o.userId, stored.userId);
    }
    const archived = await hs.crm.owners.ownersApi.getPage(undefined, undefined, 100, true);
    assert.deepEqual(archived.results.map((o) => o.id).sort(),
      owners.filter((o) => o.archived).map((o) => o.id).sort());
    const byEmail = await hs.crm.owners.ownersApi.getPage(active[2].email);
    assert.deepEqual(byEmail.results.map((o) => o.id), [active[2].id]);
  });

  test('a token the portal never issued is refused with 401, not served', async () => {
    const stranger = client({ accessToken: 'pat-na1-00000000-0000-0000-0000-000000000000' });
    const refused = await rejection(() => stranger.crm.owners.ownersApi.getPage());
    assert.equal(refused.code, 401);
    assert.equal(refused.body.category, 'INVALID_AUTHENTICATION');
  });

  test('pipelines name the closed-lost stages every stored lost deal sits in', async () => {
    const hs = client();
    const { results } = await hs.crm.pipelines.pipelinesApi.getAll('deals');
    const closedLost = results.flatMap((p) => p.stages
      .filter((s) => s.metadata.isClosed === 'true' && s.metadata.probability === '0.0')
      .map((s) => s.id));
    assert.deepEqual(closedLost.sort(), [...LOST_STAGES].sort());
    const stages = new Set(results.flatMap((p) => p.stages.map((s) => `${p.id}/${s.id}`)));
    for (const deal of deals.values()) {
      assert.ok(stages.has(`${deal.properties.pipeline}/${deal.properties.dealstage}`),
        `deal ${deal.id} sits in a stage of its pipeline`);
    }
  });

  test('properties: the deal fields winback reads and the task status options', async () => {
    const hs = client();
    const reason = await hs.crm.properties.coreApi.getByName('deals', 'closed_lost_reason');
    assert.equal(reason.type, 'string');
    const { results } = await hs.crm.properties.coreApi.getAll('deals');
    const names = results.map((p) => p.name);
    for (const name of ['dealname', 'dealstage', 'pipeline', 'hubspot_owner_id', 'closed_lost_reason']) {
      assert.ok(names.includes(name), `deal property ${name}`);
    }
    const status = await hs.crm.properties.coreApi.getByName('tasks', 'hs_task_status');
    const values = status.options.map((o) => o.value);
    assert.ok(values.includes('NOT_STARTED') && values.includes('COMPLETED'), values.join());
    const missing = await rejection(() => hs.crm.properties.coreApi.getByName('deals', 'no_such'));
    assert.equal(missing.code, 404);
  });
});

describe('faults, through the client\'s own retries (numberOfApiCallRetries)', SUITE, () => {
  test('injected 503s on batch read are retried until the read succeeds', async () => {
    await admin(BASE, 'POST', 'faults', { endpoint: 'deals.batch.read', error_rate: 1.0,
      error_status: 503, count: 2 });
    const hs = client({ numberOfApiCallRetries: 3 });
    const ids = lost.slice(0, 5);
    const answer = await hs.crm.deals.batchApi.read({ inputs: ids.map((id) => ({ id })),
      properties: ['dealname'], propertiesWithHistory: [] });
    assert.deepEqual(answer.results.map((d) => d.id).sort(), [...ids].sort());
    assert.equal((await calls(BASE))['deals.batch.read'], 3, 'two 503s, then the answer');
  });

  test('without retries the injected 503 reaches the caller', async () => {
    await admin(BASE, 'POST', 'faults', { endpoint: 'deals.batch.read', error_rate: 1.0,
      error_status: 503, count: 1 });
    const hs = client();
    const failed = await rejection(() => hs.crm.deals.batchApi.read({ inputs: [{ id: lost[0] }],
      properties: [], propertiesWithHistory: [] }));
    assert.equal(failed.code, 503);
    assert.equal((await calls(BASE))['deals.batch.read'], 1);
  });

  test('an injected search 429 is retried after the Retry-After it gave', async () => {
    await admin(BASE, 'POST', 'faults', { endpoint: 'deals.search', rate_429: 1.0,
      retry_after: 1, count: 1 });
    const hs = client({ numberOfApiCallRetries: 3 });
    const page = await hs.crm.deals.searchApi.doSearch(lostSearch(undefined, 3));
    assert.equal(page.total, lost.length);
    assert.equal((await calls(BASE))['deals.search'], 2);
    const { retry_after: early } = await admin(BASE, 'GET', 'violations');
    assert.deepEqual(early, [], 'the retry waited out the Retry-After');
  });

  test('owners and pipelines reads ride out injected 503 and 502 answers', async () => {
    await admin(BASE, 'POST', 'faults', { endpoint: 'owners.list', error_rate: 1.0,
      error_status: 503, count: 2 });
    await admin(BASE, 'POST', 'faults', { endpoint: 'pipelines.list', error_rate: 1.0,
      error_status: 502, count: 1 });
    const hs = client({ numberOfApiCallRetries: 3 });
    const page = await hs.crm.owners.ownersApi.getPage(undefined, undefined, 100, false);
    assert.equal(page.results.length, owners.filter((o) => !o.archived).length);
    const pipelines = await hs.crm.pipelines.pipelinesApi.getAll('deals');
    assert.equal(pipelines.results.length, 2);
    const served = await calls(BASE);
    assert.equal(served['owners.list'], 3);
    assert.equal(served['pipelines.list'], 2);
  });
});
