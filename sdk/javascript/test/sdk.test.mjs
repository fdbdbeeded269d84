// Unit tests of the JavaScript SDK and the JavaScript examples, off WebAssembly, against a
// fake host (fake-host.mjs). The real components run against the real server in the
// conformance suite (tests/it/conformance.rs); these pin the SDK's own behaviour: JSON in and
// out, the error classes, what a handler's outcome becomes.
//
//   node --test sdk/javascript/test/

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { FakeHost, register } from './fake-host.mjs';

register();
const sy = await import('../switchyard.js');
const { handler: echo } = await import('../../../examples/javascript/echo.js');
const { handler: chat } = await import('../../../examples/javascript/chat.js');

const req = (event, data = 'null', userId = 'alice') => ({ event, data, clientId: 'c1', userId });

/** What `handle` throws (the WIT `err` payload), or undefined when it returns. */
function outcome(h, name, r) {
  try {
    h.handle(name, r);
  } catch (e) {
    return e;
  }
  return undefined;
}

test('a handler map lists its exports and unknown names are err(invalid)', () => {
  const h = sy.handlers({ a() {}, b() {} });
  assert.deepEqual(h.exports(), ['a', 'b']);
  assert.equal(outcome(h, 'nope', req('x')), sy.Invalid.code);
  assert.throws(() => sy.handlers({ a: 1 }), TypeError);
});

test('the outcome of a handler: nothing, HandlerError(n), a host error, a bug', () => {
  const host = new FakeHost().install();
  const h = sy.handlers({
    ok() {},
    fail() {
      throw new sy.HandlerError(7);
    },
    zero() {
      throw new sy.HandlerError(0);
    },
    denied() {
      throw new sy.Denied();
    },
    bug() {
      throw new RangeError('oops');
    },
  });
  assert.equal(outcome(h, 'ok', req('e')), undefined);
  assert.equal(outcome(h, 'fail', req('e')), 7);
  assert.equal(outcome(h, 'zero', req('e')), 1, 'status 0 becomes 1');
  assert.equal(outcome(h, 'denied', req('e')), -4);
  assert.equal(outcome(h, 'bug', req('e')), 1);
  const [kind, level, msg] = host.sent.at(-1);
  assert.deepEqual([kind, level], ['log', 'error']);
  assert.match(msg, /uncaught exception in handler bug: RangeError: oops/);
});

test('host errors become their SwitchyardError class, with the ABI status', () => {
  new FakeHost().install();
  assert.throws(() => sy.sendSuccessRaw('e', '{not json'), (e) => e instanceof sy.BadJson && e.code === -3);
  for (const [cls, code, abiName] of [
    [sy.BadJson, -3, 'ERR_BAD_JSON'],
    [sy.Denied, -4, 'ERR_DENIED'],
    [sy.Limit, -5, 'ERR_LIMIT'],
    [sy.Invalid, -6, 'ERR_INVALID'],
  ]) {
    const e = new cls();
    assert.ok(e instanceof sy.SwitchyardError);
    assert.deepEqual([e.code, e.abiName, cls.code], [code, abiName, code]);
  }
  // Anything but a status passes through untouched.
  const odd = new Error('not a status');
  assert.throws(() => sy.hostCall(() => {
    throw odd;
  }), (e) => e === odd);
});

test('JSON in and out: sendSuccess serialises, what JSON cannot hold is BadJson', () => {
  const host = new FakeHost().install();
  sy.sendSuccess('e', { a: [1, 'two'] });
  sy.sendSuccessRaw('raw', '');
  sy.sendError('e', 42);
  assert.deepEqual(host.sent, [
    ['success', 'e', '{"a":[1,"two"]}'],
    ['success', 'raw', ''],
    ['error', 'e', '42'],
  ]);
  assert.throws(() => sy.toJson(undefined), sy.BadJson);
  assert.throws(() => sy.toJson(1n), sy.BadJson);
  const cycle = {};
  cycle.self = cycle;
  assert.throws(() => sy.toJson(cycle), sy.BadJson);
});

test('a Request parses its data once, and bad data is BadJson', () => {
  const r = new sy.Request('e', '{"x":1}', 'c1', '');
  assert.equal(r.json(), r.json(), 'cached');
  assert.deepEqual(r.json(), { x: 1 });
  assert.ok(r.isGuest);
  assert.throws(() => new sy.Request('e', '{bad').json(), sy.BadJson);
});

test('echo passes the data through unchanged, fail fails with status 3', () => {
  const host = new FakeHost().install();
  assert.equal(outcome(echo, 'echo', req('echo', '{"k": [1, 2]}')), undefined);
  assert.equal(outcome(echo, 'echo', req('admin/addons/hgexample/testMessage')), undefined);
  assert.equal(outcome(echo, 'fail', req('fail')), 3);
  assert.deepEqual(host.sent, [
    ['success', 'echo', '{"k": [1, 2]}'],
    ['success', 'admin/addons/hgexample/testMessage', 'null'],
  ]);
});

test('chat joins, sends and lists a room; bad rooms and denied tags are error frames', () => {
  const host = new FakeHost().install();
  assert.equal(outcome(chat, 'chat_join', req('chat/join', '{"room":"lobby"}')), undefined);
  assert.equal(outcome(chat, 'chat_send', req('chat/send', '{"room":"lobby","text":"hi"}')), undefined);
  assert.equal(outcome(chat, 'chat_online', req('chat/online', '{"room":"lobby"}')), undefined);
  for (const data of ['{"room":"no spaces"}', '"lobby"', '{bad', '{"room":""}']) {
    assert.equal(outcome(chat, 'chat_join', req('chat/join', data)), undefined, data);
  }
  assert.equal(outcome(chat, 'chat_send', req('chat/send', '{"room":"lobby"}')), undefined);
  assert.equal(outcome(chat, 'chat_join', req('chat/join', '{"room":"secret"}')), undefined);
  assert.deepEqual(host.sent, [
    ['success', 'chat/join', '{"room":"lobby","users":["alice"]}'],
    ['tag', 'chat:lobby', 'chat/message', '{"room":"lobby","from":"alice","text":"hi"}'],
    ['success', 'chat/send', '{"delivered":1}'],
    ['success', 'chat/online', '{"room":"lobby","users":["alice"]}'],
    ['error', 'chat/join', 'invalid room'],
    ['error', 'chat/join', 'invalid room'],
    ['error', 'chat/join', 'invalid room'],
    ['error', 'chat/join', 'invalid room'],
    ['error', 'chat/send', 'invalid text'],
    ['error', 'chat/join', 'denied'],
  ]);
});
