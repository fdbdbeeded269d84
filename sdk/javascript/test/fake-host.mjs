// A fake Switchyard host for the SDK's unit tests, off WebAssembly: `register()` maps the
// WIT imports componentize-js resolves at build time (`switchyard:handler/<iface>@1.0.0`)
// to this module's `bindings`, so the SDK and the examples load in plain Node. `host` records
// what a handler sends; tags are granted by prefix, like a manifest's patterns.
//
// A failed host call throws what componentize-js throws for a WIT `err(status)`: an object
// whose `payload` is the status as a string.

import { register as registerHooks } from 'node:module';

export function register() {
  const hooks = `
    export async function resolve(specifier, context, next) {
      const m = /^switchyard:handler\\/([a-z-]+)@1\\.0\\.0$/.exec(specifier);
      if (m) return { url: 'switchyard-fake:' + m[1], shortCircuit: true };
      return next(specifier, context);
    }
    export async function load(url, context, next) {
      if (url.startsWith('switchyard-fake:')) {
        const iface = url.slice('switchyard-fake:'.length);
        const names = ${JSON.stringify(Object.fromEntries(Object.entries(INTERFACES)))}[iface] || [];
        const source = names
          .map((n) => 'export const ' + n + ' = (...a) => globalThis.switchyardFakeHost.call(' +
            JSON.stringify(iface) + ', ' + JSON.stringify(n) + ', a);')
          .join('\\n');
        return { format: 'module', source, shortCircuit: true };
      }
      return next(url, context);
    }`;
  registerHooks('data:text/javascript,' + encodeURIComponent(hooks));
}

/** The functions of each interface the SDK imports (wit/handler.wit, in camelCase). */
const INTERFACES = {
  host: ['sendSuccess', 'sendError', 'clientId', 'userId', 'log'],
  tags: ['joinTag', 'quitTag', 'sendToTag', 'tagMembers'],
  'send-to-user': ['sendToUser'],
  'send-to-client': ['sendToClient'],
  'send-to-all': ['sendToAll'],
  claims: ['claims'],
};

export const err = (status) => Object.assign(new Error(`err(${status})`), { payload: status });

export class FakeHost {
  constructor({ user = 'alice', allowed = ['chat:lobby', 'chat:room-'] } = {}) {
    Object.assign(this, { user, allowed, sent: [], members: new Map() });
  }

  install() {
    globalThis.switchyardFakeHost = this;
    return this;
  }

  call(iface, name, args) {
    const fn = this[name];
    if (typeof fn !== 'function') throw new Error(`fake host: ${iface}.${name} not faked`);
    return fn.apply(this, args);
  }

  sendSuccess(event, data) {
    if (data !== '') {
      try {
        JSON.parse(data);
      } catch {
        throw err('bad-json');
      }
    }
    this.sent.push(['success', event, data]);
  }
  sendError(event, msg) {
    this.sent.push(['error', event, msg]);
  }
  clientId() {
    return 'c1';
  }
  userId() {
    return this.user;
  }
  log(level, msg) {
    this.sent.push(['log', level, msg]);
  }

  check(tag) {
    if (tag === '') throw err('invalid');
    if (!this.allowed.some((p) => tag.startsWith(p))) throw err('denied');
  }
  joinTag(tag) {
    this.check(tag);
    if (!this.members.has(tag)) this.members.set(tag, new Set());
    this.members.get(tag).add(this.user);
  }
  quitTag(tag) {
    this.check(tag);
    this.members.get(tag)?.delete(this.user);
  }
  sendToTag(tag, event, data) {
    this.check(tag);
    JSON.parse(data);
    this.sent.push(['tag', tag, event, data]);
    return this.members.get(tag)?.size ?? 0;
  }
  tagMembers(tag) {
    this.check(tag);
    return JSON.stringify([...(this.members.get(tag) ?? [])].sort());
  }
}
