// A fake WebSocket for unit tests, injected through the `WebSocket` option. The test plays the
// server: open(), push(frame), serverClose(code). What the client sends is in `sent` (parsed).

export function fakeSockets() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      sockets.push(this);
    }
    send(text) {
      if (this.readyState !== 1) throw new Error("InvalidStateError: not open");
      this.sent.push(JSON.parse(text));
    }
    close(code, reason) {
      this.closedWith = { code, reason };
      this.readyState = 3;
    }
    // ---- the server's side ----
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    push(frame) {
      this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
    }
    welcome(id = "1", user = "alice") {
      this.push({ event: "connected", code: 0, data: { id, user }, timestamp: 1 });
    }
    /** open + welcome: the client is connected */
    accept(id, user) {
      this.open();
      this.welcome(id, user);
    }
    serverClose(code = 1006, reason = "") {
      this.readyState = 3;
      this.onerror?.({});
      this.onclose?.({ code, reason });
    }
  }
  return { WebSocket: FakeWebSocket, sockets, last: () => sockets[sockets.length - 1] };
}

/** Lets pending promise callbacks (and an async getToken) run. */
export const flush = () => new Promise((r) => setImmediate(r));
