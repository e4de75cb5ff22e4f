'use strict';
// The x-virtual-crash header as CONTRACT.md §6.5 writes it: a point, and the job it is armed on.
const test = require('node:test');
const assert = require('node:assert');
const { armedCrash, crashAt } = require('../src/crash');

test('a point alone arms the first job, `; job=N` the N-th', () => {
  assert.deepStrictEqual(armedCrash('after_send'), { point: 'after_send', job: 1 });
  assert.deepStrictEqual(armedCrash('before_commit; job=3'), { point: 'before_commit', job: 3 });
  assert.strictEqual(crashAt(armedCrash('after_claim; job=2'), 2), 'after_claim');
  assert.strictEqual(crashAt(armedCrash('after_claim; job=2'), 1), null);
  assert.strictEqual(crashAt(null, 1), null);
});

test('anything else arms nothing', () => {
  for (const bad of [undefined, '', 'after-send', 'after_send; job=0', 'after_send; job=x', 'after_send; run=2', 'after_send; job=2; x']) {
    assert.strictEqual(armedCrash(bad), null, String(bad));
  }
});
