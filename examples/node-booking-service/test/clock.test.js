'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const clock = require('../src/clock');

test('durations are spoken as the in-process service speaks them', () => {
  const ms = 1000;
  assert.equal(clock.spoken(300_000 * ms), '5 minutes');
  assert.equal(clock.spoken(60_000 * ms), '1 minute');
  assert.equal(clock.spoken((28 * 60_000 + 10_000) * ms), '28 minutes');
  assert.equal(clock.spoken(3 * 3_600_000 * ms), '3 hours');
  assert.equal(clock.spoken(4_200 * ms), '4.2s');
  assert.equal(clock.spoken(1_250 * ms), '1.25s');
  assert.equal(clock.spoken(200 * ms), '200ms');
  assert.equal(clock.spoken(0), '0s');
});

test('virtual instants are exact HrTimes from 2026-03-02T09:00:00Z', () => {
  assert.deepEqual(clock.hrTime(0), [1772442000, 0]);
  assert.deepEqual(clock.hrTime(110_120_000), [1772442110, 120_000_000]);
});

test('a flow clock moves only inside its flow', () => {
  const flow = clock.newFlow('1000', 'r1');
  clock.runInFlow(flow, () => {
    clock.advance(50);
    assert.equal(clock.now(), 1050);
  });
  assert.equal(flow.nowUs, 1050);
  assert.equal(clock.now(), 0);
  assert.equal(clock.newFlow('not a number', 'r2').nowUs, 0);
});
