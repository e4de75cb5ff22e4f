'use strict';
// The seeded id streams against the values the in-process service draws (snapshots/*.snap and
// its JSON reports): booking uids and request ids per scenario seed, trace and span ids.

const test = require('node:test');
const assert = require('node:assert/strict');
const { serviceIds, SeededIdGenerator } = require('../src/ids');

test('booking uids and request ids are the in-process service\'s', () => {
  const cases = [
    [1n, 'u10bs1w3drp5osf2', ['evflvpu1ok', 'csbwi025re']],
    [2n, '9lh50df6g5k1mh73', ['jv2ui32ktw', 'gvhk2hzwb6']],
    [4n, '09g6dmxledjytg1a', ['trgjkrxxdr', '5vwm5mx4b6']],
  ];
  for (const [seed, uid, requests] of cases) {
    const ids = serviceIds(/** @type {bigint} */ (seed), 0n);
    assert.equal(ids.bookingUid(), uid);
    assert.deepEqual([ids.requestId(), ids.requestId()], requests);
  }
});

test('a restarted process draws other ids', () => {
  assert.notEqual(serviceIds(1n, 1n).bookingUid(), serviceIds(1n, 0n).bookingUid());
});

test('trace and span ids are the seeded generator\'s (calendar_failure, seed 1)', () => {
  const ids = new SeededIdGenerator(1n, 0n);
  ids.plan(true);
  assert.equal(ids.generateSpanId(), 'f893a2eefb32555e');
  assert.equal(ids.generateTraceId(), '910a2dec89025cc1beeb8da1658eec67');
  ids.plan(false);
  assert.equal(ids.generateSpanId(), '71c18690ee42c90b');
  ids.settle();
  ids.plan(false);
  assert.equal(ids.generateSpanId(), '71bb54d8d101b5b9');
  ids.settle();
  // A job span under a remote parent: the trace id is drawn and dropped, as the reference does.
  ids.plan(true);
  assert.equal(ids.generateSpanId(), '85e7bb0f12278575');
  ids.settle();
});
