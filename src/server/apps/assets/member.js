// The member app: a hash-routed single page. Each view renders into <main>
// and may return a cleanup function, run when the route changes.

import { api, get, post, del, setToken, token, onSession, qs } from "./api.js";
import { h, mount, when, notice, errorText, form, pagedList } from "./ui.js";
import { t, initLang, langSwitch } from "./i18n.js";
import { ChatSocket } from "./socket.js";
import { shopViews } from "./member-shop.js";
import { tripViews } from "./member-trips.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
import { app, nameOf, userName, go } from "./member-core.js";

// ---- session ---------------------------------------------------------------

async function startSession() {
  app.me = await get("/me");
  app.socket = new ChatSocket();
  app.socket.on("presence", (f) => {
    app.presence.set(f.user_id, f.online);
    document.querySelectorAll(`[data-presence="${f.user_id}"]`).forEach((el) => el.classList.toggle("online", f.online));
  });
  app.socket.on("notification", (f) => notice(t(`notification.${f.kind}`, {}, f.kind)));
  app.socket.on("status", (s) => {
    document.body.classList.toggle("offline", !s.online);
    // 1008: banned, or this session was ended (logout elsewhere, password
    // changed, revoked): the token is dead, so is the page's session.
    if (s.code === 1008) endSession(s.reason === "banned" ? "banned" : "expired");
  });
  app.socket.connect();
}

function endSession(why) {
  if (app.socket) app.socket.close(why || "logout");
  app.socket = null;
  app.me = null;
  setToken(null);
  sessionStorage.setItem("tandem.ended", why || "expired");
  // One render: by the hash change, or directly when already there.
  if (location.hash === "#/login") render();
  else go("login");
}

onSession((t) => {
  if (!t && app.me) endSession(sessionStorage.getItem("tandem.ended") || "expired");
});

// ---- routes ----------------------------------------------------------------

const views = {
  login: loginView,
  signup: signupView,
  chats: chatsView,
  chat: chatView,
  dm: directView,
  feed: feedView,
  user: userView,
  notifications: notificationsView,
  me: meView,
  ...shopViews,
  ...tripViews,
};

const TABS = [
  ["chats", "nav.chats"],
  ["feed", "nav.feed"],
  ["trips", "nav.trips"],
  ["shop", "nav.shop"],
  ["me", "nav.me"],
];

function renderNav(current) {
  if (!app.me) return mount(nav);
  mount(
    nav,
    TABS.map(([r, key]) => h("a", { href: `#/${r}`, "aria-current": current === r ? "page" : null }, t(key))),
  );
}

let renders = 0;

async function render() {
  if (app.cleanup) app.cleanup();
  app.cleanup = null;
  const mine = ++renders;
  const [name, ...params] = (location.hash.replace(/^#\/?/, "") || "chats").split("?")[0].split("/");
  if (!token() && name !== "signup") return show("login", []);
  if (token() && !app.me) {
    try {
      await startSession();
    } catch (e) {
      if (!token()) return show("login", []);
      mount(main, h("p", { class: "form-error" }, errorText(e)));
      return;
    }
  }
  if (token() && (name === "login" || name === "signup")) return go("chats");
  show(views[name] ? name : "chats", params, mine);
}

/**
 * Renders a view into its own box. A view still loading when the route
 * changes draws into a box no longer on the page, and its cleanup runs at
 * once instead of being kept.
 */
async function show(name, params, mine = ++renders) {
  renderNav(name);
  const box = h("div", { class: "view" });
  mount(main, box);
  let cleanup = null;
  try {
    cleanup = (await views[name](box, ...params)) || null;
  } catch (e) {
    mount(box, h("p", { class: "form-error" }, errorText(e)));
  }
  if (mine !== renders) {
    if (cleanup) cleanup();
    return;
  }
  app.cleanup = cleanup;
  const heading = box.querySelector("h1, h2");
  if (heading) heading.setAttribute("tabindex", "-1");
}

// ---- accounts --------------------------------------------------------------

function loginView(el) {
  // Why the last session ended, until the next sign-in.
  const ended = sessionStorage.getItem("tandem.ended");
  mount(
    el,
    h("h1", {}, t("auth.login")),
    ended ? h("p", { class: "form-error", role: "alert", id: "session-ended" }, t(`auth.ended.${ended}`)) : null,
    form(
      "login",
      [
        { name: "username", label: t("auth.username"), required: true, attrs: { autocomplete: "username" } },
        { name: "password", label: t("auth.password"), type: "password", required: true, attrs: { autocomplete: "current-password" } },
      ],
      t("auth.login"),
      async (v) => {
        const r = await post("/auth/login", { username: v.username, password: v.password });
        sessionStorage.removeItem("tandem.ended");
        setToken(r.token);
        go("chats");
      },
    ),
    h("p", {}, h("a", { href: "#/signup" }, t("auth.no_account"))),
  );
}

function signupView(el) {
  const invite = new URLSearchParams(location.search).get("invite") || localStorage.getItem("tandem.invite") || "";
  mount(
    el,
    h("h1", {}, t("auth.signup")),
    form(
      "signup",
      [
        { name: "username", label: t("auth.username_rules"), required: true, attrs: { autocomplete: "username", pattern: "[A-Za-z0-9_]{3,32}" } },
        { name: "password", label: t("auth.password_rules"), type: "password", required: true, attrs: { autocomplete: "new-password", minlength: "8" } },
        { name: "invite_code", label: t("auth.invite_code"), value: invite },
      ],
      t("auth.signup"),
      async (v) => {
        const body = { username: v.username, password: v.password };
        if (v.invite_code.trim()) body.invite_code = v.invite_code.trim();
        const r = await post("/auth/register", body);
        localStorage.removeItem("tandem.invite");
        sessionStorage.removeItem("tandem.ended");
        setToken(r.token);
        go("chats");
      },
    ),
    h("p", {}, h("a", { href: "#/login" }, t("auth.have_account"))),
  );
}

// ---- chat ------------------------------------------------------------------

async function chatsView(el) {
  const list = h("ul", { class: "list", id: "conversations" });
  const search = userSearch();
  mount(el, h("h1", {}, t("chat.title")), search, list);
  async function load() {
    const page = await get("/conversations?limit=100");
    mount(list, page.items.map(conversationItem));
    if (!page.items.length) list.append(h("li", { class: "empty" }, t("chat.none")));
  }
  await load();
  let timer = null;
  const off = app.socket.on("message", () => {
    clearTimeout(timer);
    timer = setTimeout(load, 150);
  });
  return () => {
    off();
    clearTimeout(timer);
  };
}

function conversationItem(c) {
  const peer = c.kind === "direct" ? c.member_ids.find((id) => id !== app.me.user_id) : null;
  const title = c.title ? h("span", {}, c.title) : peer ? userName(peer) : h("span", {}, t("chat.group"));
  return h(
    "li",
    { class: "conversation", "data-conversation": c.conversation_id },
    h(
      "a",
      { href: `#/chat/${c.conversation_id}` },
      peer ? h("span", { class: `presence${app.presence.get(peer) ? " online" : ""}`, "data-presence": peer, "aria-hidden": "true" }) : null,
      title,
      h("span", { class: "kind" }, t(`chat.kind.${c.kind}`)),
      c.unread > 0 ? h("span", { class: "unread", "aria-label": t("chat.unread", { n: c.unread }) }, String(c.unread)) : null,
    ),
  );
}

function userSearch() {
  const results = h("ul", { class: "list compact", id: "user-results" });
  const input = h("input", { id: "user-search", type: "search", placeholder: t("users.search"), "aria-label": t("users.search") });
  let timer;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = input.value.trim();
      if (!q) return mount(results);
      const page = await get(`/users${qs({ q, limit: 10 })}`);
      mount(results, page.items.map((u) => h("li", {}, h("a", { href: `#/user/${u.user_id}` }, u.display_name || u.username, h("small", {}, ` @${u.username}`)))));
    }, 250);
  });
  return h("div", { class: "search" }, input, results);
}

/** A direct conversation with a user: the existing one, or a new one on first send. */
async function directView(el, userId) {
  const peer = Number(userId);
  const page = await get("/conversations?limit=200");
  const found = page.items.find((c) => c.kind === "direct" && c.member_ids.includes(peer));
  if (found) return go(`chat/${found.conversation_id}`);
  mount(el, h("h1", {}, userName(peer)), h("ul", { class: "messages", id: "messages" }));
  el.append(
    composer(async (body) => {
      const ack = await app.socket.send({ to_user_id: peer }, body);
      go(`chat/${ack.conversation_id}`);
    }),
  );
}

async function chatView(el, id) {
  const cid = Number(id);
  const conv = await get(`/conversations/${cid}`);
  const list = h("ul", { class: "messages", id: "messages", "aria-live": "polite" });
  const typing = h("p", { class: "typing", id: "typing", "aria-live": "polite" });
  const older = h("button", { type: "button", class: "more", id: "older" }, t("chat.older"));
  const shown = new Map(); // seq -> li
  const readBy = new Map(); // user -> highest seq read
  const peer = conv.kind === "direct" ? conv.member_ids.find((u) => u !== app.me.user_id) : null;
  mount(
    el,
    h("h1", {}, conv.title || (peer ? userName(peer) : t("chat.group")), peer ? h("span", { class: `presence${app.presence.get(peer) ? " online" : ""}`, "data-presence": peer }) : null),
    older,
    list,
    typing,
  );

  function place(m) {
    if (m.kind === "edit" || m.kind === "delete") return change(m);
    if (shown.has(m.seq)) return;
    const mine = m.sender_id === app.me.user_id;
    const li = h(
      "li",
      { class: `msg${mine ? " mine" : ""}${m.kind && m.kind !== "text" ? " system" : ""}`, "data-seq": m.seq },
      mine ? null : h("span", { class: "sender" }, userName(m.sender_id)),
      h("span", { class: "body" }, m.deleted ? t("chat.deleted") : systemText(m) || m.body),
      h("time", { datetime: m.sent_at }, when(m.sent_at)),
      mine ? h("span", { class: "receipt" }, t("chat.sent")) : null,
    );
    shown.set(m.seq, li);
    const after = [...list.children].find((c) => Number(c.dataset.seq) > m.seq);
    list.insertBefore(li, after || null);
    markRead();
  }

  function change(m) {
    const target = shown.get(m.target_seq);
    if (!target) return;
    target.querySelector(".body").textContent = m.kind === "delete" ? t("chat.deleted") : m.body;
  }

  function markRead() {
    const highest = Math.max(0, ...readBy.values());
    for (const [seq, li] of shown) {
      const r = li.querySelector(".receipt");
      if (r && seq <= highest) r.textContent = t("chat.read");
    }
  }

  function scroll() {
    list.lastElementChild?.scrollIntoView({ block: "end" });
  }

  async function loadOlder(beforeSeq) {
    const page = await get(`/conversations/${cid}/messages${qs({ before_seq: beforeSeq, limit: 50 })}`);
    page.items.forEach(place);
    older.hidden = !page.next_cursor;
  }

  await loadOlder(conv.last_seq + 1);
  scroll();
  older.addEventListener("click", () => loadOlder(Math.min(...shown.keys())));
  let typingTimer;
  const offs = [
    app.socket.on("message", (m) => {
      if (m.conversation_id !== cid) return;
      place(m);
      scroll();
      if (m.sender_id !== app.me.user_id) readUpTo(m.seq);
      if (m.sender_id !== app.me.user_id) typing.textContent = "";
    }),
    app.socket.on("read", (f) => {
      if (f.conversation_id !== cid || f.user_id === app.me.user_id) return;
      readBy.set(f.user_id, Math.max(readBy.get(f.user_id) || 0, f.seq));
      markRead();
    }),
    app.socket.on("typing", (f) => {
      if (f.conversation_id !== cid || f.user_id === app.me.user_id) return;
      nameOf(f.user_id).then((n) => (typing.textContent = t("chat.typing", { name: n })));
      clearTimeout(typingTimer);
      typingTimer = setTimeout(() => (typing.textContent = ""), 4000);
    }),
  ];
  function readUpTo(seq) {
    if (document.visibilityState === "visible") app.socket.read(cid, seq);
  }
  app.socket.follow(cid, conv.last_seq);
  if (conv.last_seq > 0) readUpTo(conv.last_seq);
  let lastTyping = 0;
  el.append(
    composer(
      async (body) => {
        const ack = await app.socket.send({ conversation_id: cid }, body);
        place({ conversation_id: cid, seq: ack.seq, sender_id: app.me.user_id, body, sent_at: new Date().toISOString(), kind: "text" });
        scroll();
      },
      () => {
        if (Date.now() - lastTyping > 3000) {
          lastTyping = Date.now();
          app.socket.typing(cid);
        }
      },
    ),
  );
  return () => {
    offs.forEach((f) => f());
    clearTimeout(typingTimer);
  };
}

function systemText(m) {
  if (!m.kind || m.kind === "text" || m.kind === "image") return "";
  return t(`chat.entry.${m.kind}`, {}, m.kind);
}

function composer(send, onType) {
  const input = h("input", { id: "composer-input", name: "body", autocomplete: "off", maxlength: "4000", "aria-label": t("chat.message") });
  const button = h("button", { type: "submit", id: "send" }, t("chat.send"));
  const f = h("form", { class: "composer", id: "composer" }, input, button);
  if (onType) input.addEventListener("input", onType);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = input.value.trim();
    if (!body) return;
    input.value = "";
    try {
      await send(body);
    } catch (e) {
      input.value = body;
      notice(errorText(e), "error");
    }
  });
  return f;
}

// ---- feed and people -------------------------------------------------------

function postItem(p) {
  const likes = h("span", { class: "count" }, String(p.like_count));
  let liked = !!p.liked_by_me;
  const like = h("button", { type: "button", class: "like", "aria-pressed": String(liked) }, t("feed.like"), " ", likes);
  like.addEventListener("click", async () => {
    try {
      const updated = liked ? await del(`/posts/${p.post_id}/like`) : await post(`/posts/${p.post_id}/like`);
      liked = !liked;
      if (updated && typeof updated.like_count === "number") p.like_count = updated.like_count;
      likes.textContent = String(p.like_count);
      like.setAttribute("aria-pressed", String(liked));
    } catch (e) {
      notice(errorText(e), "error");
    }
  });
  const comments = h("ul", { class: "comments" });
  const commentForm = form(`comment-${p.post_id}`, [{ name: "body", label: t("feed.comment"), required: true, attrs: { maxlength: "1000" } }], t("feed.comment"), async (v, f) => {
    const c = await post(`/posts/${p.post_id}/comments`, { body: v.body });
    comments.append(h("li", {}, userName(c.author_id || app.me.user_id), ": ", c.body));
    f.reset();
  });
  return h(
    "li",
    { class: "post", "data-post": p.post_id },
    h("div", { class: "meta" }, h("a", { href: `#/user/${p.author_id}` }, userName(p.author_id)), " · ", h("time", { datetime: p.created_at }, when(p.created_at))),
    h("p", { class: "body" }, p.body),
    (p.media || []).map((m) => h("img", { src: m.url, alt: "", loading: "lazy", class: "photo" })),
    h("div", { class: "actions" }, like, h("span", {}, t("feed.comments", { n: p.comment_count }))),
    comments,
    commentForm,
  );
}

function feedView(el) {
  const fresh = h("ul", { class: "list", id: "fresh-posts" });
  const compose = form("new-post", [{ name: "body", label: t("feed.new_post"), type: "textarea", required: true, attrs: { maxlength: "2000" } }], t("feed.publish"), async (v, f) => {
    const p = await post("/posts", { body: v.body });
    fresh.prepend(postItem(p));
    f.reset();
  });
  mount(el, h("h1", {}, t("feed.title")), userSearch(), compose, fresh, pagedList((c) => get(`/feed${qs({ cursor: c, limit: 20 })}`), postItem, t("feed.empty")));
  return app.socket.on("post", (f) => fresh.prepend(postItem(f.post)));
}

async function userView(el, id) {
  const u = await get(`/users/${id}`);
  const me = u.user_id === app.me.user_id;
  let following = u.followed_by_me;
  const follow = h("button", { type: "button", id: "follow" }, t(following ? "users.unfollow" : "users.follow"));
  follow.addEventListener("click", async () => {
    try {
      if (following) await del(`/users/${u.user_id}/follow`);
      else await post(`/users/${u.user_id}/follow`);
      following = !following;
      follow.textContent = t(following ? "users.unfollow" : "users.follow");
    } catch (e) {
      notice(errorText(e), "error");
    }
  });
  mount(
    el,
    h("h1", {}, u.display_name || u.username),
    h("p", { class: "muted" }, `@${u.username}`),
    u.avatar_url ? h("img", { src: u.avatar_url, alt: "", class: "avatar" }) : null,
    h("p", {}, u.bio || ""),
    h("p", {}, t("users.counts", { followers: u.followers, following: u.following, posts: u.posts })),
    me ? null : h("div", { class: "actions" }, follow, h("a", { class: "button", href: `#/dm/${u.user_id}`, id: "message-user" }, t("users.message"))),
  );
}

function notificationsView(el) {
  let newest = null;
  mount(
    el,
    h("h1", {}, t("notifications.title")),
    pagedList(
      async (c) => {
        const page = await get(`/notifications${qs({ cursor: c, limit: 30 })}`);
        if (newest === null && page.items.length) {
          newest = page.items[0].notification_id;
          post("/notifications/read", { up_to_id: newest }).catch(() => {});
        }
        return page;
      },
      (n) => h("li", { class: n.read ? "" : "unread-item" }, h("strong", {}, t(`notification.${n.kind}`, {}, n.kind)), " ", h("time", {}, when(n.created_at))),
    ),
  );
}

async function meView(el) {
  const me = await get("/me");
  const logout = h("button", { type: "button", id: "logout" }, t("auth.logout"));
  logout.addEventListener("click", async () => {
    await post("/auth/logout").catch(() => {});
    endSession("logout");
  });
  mount(
    el,
    h("h1", {}, me.display_name || me.username),
    h("p", { class: "muted" }, `@${me.username}`),
    h(
      "ul",
      { class: "list links" },
      [
        ["orders", "nav.orders"],
        ["wallet", "nav.wallet"],
        ["promo", "nav.promo"],
        ["flowers", "nav.flowers"],
        ["animals", "nav.animals"],
        ["notifications", "nav.notifications"],
      ].map(([r, k]) => h("li", {}, h("a", { href: `#/${r}` }, t(k)))),
    ),
    form(
      "profile",
      [
        { name: "display_name", label: t("me.display_name"), value: me.display_name, required: true, attrs: { maxlength: "64" } },
        { name: "bio", label: t("me.bio"), type: "textarea", value: me.bio, attrs: { maxlength: "500" } },
      ],
      t("common.save"),
      async (v) => {
        const body = { bio: v.bio };
        if (v.display_name.trim()) body.display_name = v.display_name.trim();
        await api("PATCH", "/me", body);
        notice(t("common.saved"));
      },
    ),
    h("p", {}, h("a", { href: "/merchant" }, t("nav.merchant_console")), me.roles.includes("admin") ? [" · ", h("a", { href: "/admin" }, t("nav.admin_console"))] : null),
    logout,
  );
}

// ---- start -----------------------------------------------------------------

const invite = new URLSearchParams(location.search).get("invite");
if (invite) {
  localStorage.setItem("tandem.invite", invite);
  if (!token()) location.hash = "#/signup";
}
initLang();
document.getElementById("lang-slot")?.append(langSwitch());
window.addEventListener("hashchange", render);
document.addEventListener("tandem:lang", render);
render();
