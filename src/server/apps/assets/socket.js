// The chat connection: one WebSocket per page, reconnected with backoff.
// Messages are kept per conversation by `seq`, so a frame seen twice (live
// and again by sync) is shown once, and after a reconnect every conversation
// the page has seen is synced from its last seq: nothing is lost or doubled.
// Sends wait for their ack; unacked sends are sent again after a reconnect
// with the same client_id, which the server answers with the original ack.

import { token, freshKey } from "./api.js";

const MAX_BACKOFF_MS = 10_000;
const PING_MS = 20_000;

export class ChatSocket {
  constructor() {
    this.ws = null;
    this.handlers = new Map(); // frame type -> Set of functions
    this.lastSeq = new Map(); // conversation_id -> highest seq applied
    this.pending = new Map(); // client_id -> {frame, resolve, reject}
    this.backoff = 500;
    this.closedFor = null; // "banned", "logout": do not reconnect
    this.online = false;
    // A device that goes offline drops its socket at once and reconnects
    // (and syncs) when it is back, instead of retrying into the void.
    this.paused = !navigator.onLine;
    window.addEventListener("offline", () => {
      this.paused = true;
      if (this.ws) this.ws.close(1000);
    });
    window.addEventListener("online", () => {
      this.paused = false;
      this.backoff = 500;
      this.connect();
    });
  }

  on(type, f) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(f);
    return () => this.handlers.get(type).delete(f);
  }

  emit(type, frame) {
    for (const f of this.handlers.get(type) || []) f(frame);
  }

  connect() {
    if (this.ws || this.paused || this.closedFor || !token()) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/ws?token=${encodeURIComponent(token())}`);
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.online = true;
      this.emit("status", { online: true });
      for (const [cid, seq] of this.lastSeq) this.raw({ type: "sync", conversation_id: cid, after_seq: seq });
      for (const p of this.pending.values()) this.raw(p.frame);
      this.pinger = setInterval(() => this.raw({ type: "ping" }), PING_MS);
    };
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onclose = (ev) => {
      clearInterval(this.pinger);
      this.ws = null;
      this.online = false;
      this.emit("status", { online: false, code: ev.code, reason: ev.reason });
      if (ev.code === 1008 && ev.reason === "banned") this.closedFor = "banned";
      if (this.closedFor || this.paused || !token()) return;
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    };
  }

  close(reason) {
    this.closedFor = reason;
    if (this.ws) this.ws.close(1000);
    for (const p of this.pending.values()) p.reject(new Error(reason));
    this.pending.clear();
  }

  raw(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  receive(data) {
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (f.type === "message") return this.message(f);
    if (f.type === "ack") return this.ack(f);
    if (f.type === "error" && f.client_id && this.pending.has(f.client_id)) {
      const p = this.pending.get(f.client_id);
      this.pending.delete(f.client_id);
      p.reject(Object.assign(new Error(f.message), { code: f.code }));
      return;
    }
    this.emit(f.type, f);
  }

  /** A stored entry, live or by sync: applied once, in seq order. */
  message(m) {
    const last = this.lastSeq.get(m.conversation_id) || 0;
    if (m.seq <= last) return; // seen already
    if (m.seq > last + 1 && this.lastSeq.has(m.conversation_id)) {
      // A gap (frames lost while reconnecting): fetch it by sync first.
      this.raw({ type: "sync", conversation_id: m.conversation_id, after_seq: last });
      return;
    }
    this.lastSeq.set(m.conversation_id, m.seq);
    this.emit("message", m);
  }

  ack(a) {
    const p = this.pending.get(a.client_id);
    if (!p) return;
    this.pending.delete(a.client_id);
    p.resolve(a);
  }

  /**
   * Follows a conversation from `seq`, what the page has shown: frames that
   * came while the page loaded are sent again by the sync (the view drops
   * what it shows already).
   */
  follow(conversationId, seq) {
    this.lastSeq.set(conversationId, seq);
    this.raw({ type: "sync", conversation_id: conversationId, after_seq: seq });
  }

  /** Sends a message; resolves with its ack (durable on the server). */
  send(target, body, extra = {}) {
    const frame = { type: "send", client_id: freshKey(), body, ...target, ...extra };
    return new Promise((resolve, reject) => {
      this.pending.set(frame.client_id, { frame, resolve, reject });
      this.raw(frame);
    });
  }

  typing(conversationId) {
    this.raw({ type: "typing", conversation_id: conversationId });
  }

  read(conversationId, seq) {
    this.raw({ type: "read", conversation_id: conversationId, seq });
  }
}
