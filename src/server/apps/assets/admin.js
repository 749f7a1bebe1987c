// The admin console: statistics with charts, users (search, ban, unban),
// merchant applications, order search, rebate rules (errors shown beside the
// field they name), withdrawals, and the report queue.

import { get, post, put, qs } from "./api.js";
import { h, mount, money, when, errorText, form, notice, pagedList, statusBadge } from "./ui.js";
import { t } from "./i18n.js";
import { runConsole, actionButton } from "./console.js";

let shell;
const rerender = () => shell.rerender();

/** A bar chart as SVG (no inline style: the page's CSP forbids it). */
function barChart(id, title, points, format) {
  const W = 320;
  const H = 120;
  const max = Math.max(1, ...points.map((p) => p.value));
  const bw = W / Math.max(1, points.length);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 16}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title}: ${points.map((p) => `${p.label} ${format(p.value)}`).join(", ")}`);
  svg.setAttribute("class", "chart");
  svg.id = id;
  points.forEach((p, i) => {
    const bh = Math.round((p.value / max) * H);
    const r = document.createElementNS(svg.namespaceURI, "rect");
    for (const [k, v] of Object.entries({ x: i * bw + 2, y: H - bh, width: bw - 4, height: bh, class: "bar" })) r.setAttribute(k, v);
    const tip = document.createElementNS(svg.namespaceURI, "title");
    tip.textContent = `${p.label}: ${format(p.value)}`;
    r.append(tip);
    svg.append(r);
    if (i % 2 === points.length % 2) {
      const tx = document.createElementNS(svg.namespaceURI, "text");
      for (const [k, v] of Object.entries({ x: i * bw + bw / 2, y: H + 13, "text-anchor": "middle", class: "axis" })) tx.setAttribute(k, v);
      tx.textContent = p.label.slice(5);
      svg.append(tx);
    }
  });
  return h("figure", {}, h("figcaption", {}, title), svg);
}

async function stats(main) {
  const s = await get("/admin/stats");
  const fig = (k, v) => [h("dt", {}, t(`admin.stats.${k}`)), h("dd", { id: `stat-${k}` }, v)];
  mount(
    main,
    h("h1", {}, t("admin.tab.stats")),
    h(
      "dl",
      { class: "figures" },
      fig("users", String(s.users)),
      fig("online_users", String(s.online_users)),
      fig("orders_today", String(s.orders_today)),
      fig("gmv_today", money(s.gmv_today_cents)),
      fig("rebates_pending", money(s.rebates_pending_cents)),
      fig("open_reports", String(s.open_reports)),
    ),
    h(
      "div",
      { class: "charts" },
      barChart("chart-orders", t("admin.chart.orders"), s.daily.map((d) => ({ label: d.date, value: d.orders })), String),
      barChart("chart-gmv", t("admin.chart.gmv"), s.daily.map((d) => ({ label: d.date, value: d.gmv_cents })), money),
    ),
    h("p", { class: "muted" }, t("admin.generated", { at: when(s.generated_at) })),
  );
}

function users(main, _me, q = "") {
  const results = h("div");
  mount(
    main,
    h("h1", {}, t("admin.tab.users")),
    form("user-search", [{ name: "q", label: t("users.search"), value: decodeURIComponent(q), required: true }], t("common.search"), async (v) => {
      location.hash = `#/users/${encodeURIComponent(v.q.trim())}`;
    }),
    results,
    // Search leaves banned members out: they are unbanned by id.
    h("h2", {}, t("admin.unban_by_id")),
    form("unban", [{ name: "user_id", label: t("admin.user_id"), type: "number", required: true }], t("admin.unban"), async (v, f) => {
      await post(`/admin/users/${Number(v.user_id)}/unban`);
      f.reset();
      notice(t("common.saved"));
    }),
  );
  if (!q) return;
  mount(
    results,
    pagedList(
      (c) => get(`/users${qs({ q: decodeURIComponent(q), cursor: c, limit: 50 })}`),
      (u) =>
        h(
          "li",
          { "data-user": u.user_id },
          `${u.display_name || u.username} @${u.username} (#${u.user_id}) `,
          actionButton(t("admin.ban"), { class: "ban" }, () => post(`/admin/users/${u.user_id}/ban`), rerender),
          actionButton(t("admin.unban"), { class: "unban" }, () => post(`/admin/users/${u.user_id}/unban`), rerender),
        ),
      t("users.none"),
    ),
  );
}

function merchants(main, _me, status = "pending") {
  mount(
    main,
    h("h1", {}, t("admin.tab.merchants")),
    statusLinks("merchants", status, ["pending", "approved", "rejected"]),
    pagedList(
      (c) => get(`/admin/merchants${qs({ status, cursor: c, limit: 50 })}`),
      (m) =>
        h(
          "li",
          { "data-merchant": m.merchant_id },
          `${m.name} (#${m.merchant_id}, ${t("admin.owner")} #${m.owner_id}) `,
          statusBadge(m.status),
          m.status === "pending"
            ? [actionButton(t("admin.approve"), { class: "approve" }, () => post(`/admin/merchants/${m.merchant_id}/approve`), rerender), actionButton(t("admin.reject"), { class: "reject" }, () => post(`/admin/merchants/${m.merchant_id}/reject`), rerender)]
            : null,
        ),
      t("common.empty"),
    ),
  );
}

function statusLinks(route, current, statuses) {
  return h("p", { class: "subnav" }, statuses.map((s) => [h("a", { href: `#/${route}/${s}`, "aria-current": s === current ? "page" : null }, t(`status.${s}`, {}, s)), " "]));
}

function orders(main) {
  const results = h("div");
  mount(
    main,
    h("h1", {}, t("admin.tab.orders")),
    form(
      "order-search",
      [
        { name: "status", label: t("merchant.status"), options: [["", "-"], ...["pending_payment", "paid", "shipped", "completed", "cancelled", "refunded"].map((s) => [s, t(`status.${s}`)])] },
        { name: "user_id", label: t("admin.buyer_id"), type: "number" },
        { name: "merchant_id", label: t("admin.merchant_id"), type: "number" },
      ],
      t("common.search"),
      async (v) => show(v),
    ),
    results,
  );
  function show(v) {
    mount(results, pagedList((c) => get(`/admin/orders${qs({ ...v, cursor: c, limit: 50 })}`), (o) => h("li", {}, `#${o.order_id} · ${t("admin.buyer")} #${o.buyer_id} · ${money(o.total_cents)} `, statusBadge(o.status), ` ${when(o.created_at)}`), t("orders.none")));
  }
  show({});
}

// ---- rebate rules ------------------------------------------------------------

const RULE_FIELDS = [
  ["name", "text"],
  ["merchant_id", "number"],
  ["category", "text"],
  ["rate_bps", "number"],
  ["fixed_cents", "number"],
  ["min_order_cents", "number"],
  ["cap_cents", "number"],
  ["starts_at", "text"],
  ["ends_at", "text"],
  ["priority", "number"],
];

function input(path, type, value) {
  const id = `rule-${path.replace(/[^a-z0-9]+/gi, "-")}`;
  return h(
    "div",
    { class: "field", "data-path": path },
    h("label", { for: id }, t(`admin.rule.${path.split(".").pop().replace(/\[\d+\]/, "")}`, {}, path)),
    h("input", { id, name: path, type, value: value ?? "", inputmode: type === "number" ? "numeric" : null }),
    h("span", { class: "field-error", role: "alert" }),
  );
}

async function rules(main) {
  const set = await get("/admin/rebate-rules");
  const rulesBox = h("div", { id: "rules" });
  const addRule = (r = {}) => {
    const i = rulesBox.children.length;
    rulesBox.append(h("fieldset", { class: "rule" }, h("legend", {}, t("admin.rule.title", { n: i + 1 })), RULE_FIELDS.map(([f, ty]) => input(`rules[${i}].${f}`, ty, r[f]))));
  };
  (set.rules || []).forEach(addRule);
  const levels = [0, 1, 2].map((i) => input(`referral_levels_bps[${i}]`, "number", (set.referral_levels_bps || [])[i]));
  const hold = input("hold_seconds", "number", set.hold_seconds);
  const error = h("p", { class: "form-error", role: "alert", id: "rules-error" });
  const add = h("button", { type: "button", class: "secondary" }, t("admin.rule.add"));
  add.addEventListener("click", () => addRule());
  const save = h("button", { type: "submit", id: "save-rules" }, t("common.save"));
  const f = h("form", { id: "rules-form", novalidate: true }, rulesBox, add, h("fieldset", {}, h("legend", {}, t("admin.rule.levels")), levels), hold, error, save);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    f.querySelectorAll(".field-error").forEach((e) => (e.textContent = ""));
    f.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
    error.textContent = "";
    try {
      await put("/admin/rebate-rules", collect(f, rulesBox.children.length));
      error.textContent = "";
      rerender();
    } catch (e) {
      showRuleError(f, e, error);
    }
  });
  mount(main, h("h1", {}, t("admin.tab.rules")), h("p", { class: "muted" }, t("admin.rule.version", { v: set.version ?? "-" })), f);
}

function collect(f, count) {
  const value = (path, numeric) => {
    const raw = f.elements.namedItem(path).value.trim();
    if (raw === "") return undefined;
    return numeric ? Number(raw) : raw;
  };
  const rules = [];
  for (let i = 0; i < count; i++) {
    const r = {};
    for (const [k, ty] of RULE_FIELDS) {
      const v = value(`rules[${i}].${k}`, ty === "number");
      if (v !== undefined) r[k] = v;
    }
    // Every fieldset is sent, empty or not, so the server's `rules[i]` is
    // the i-th fieldset on the page.
    rules.push(r);
  }
  const levels = [0, 1, 2].map((i) => value(`referral_levels_bps[${i}]`, true)).filter((v) => v !== undefined);
  return { rules, referral_levels_bps: levels, hold_seconds: value("hold_seconds", true) ?? 0 };
}

/** Puts the server's message beside the field it names (`rules[0].rate_bps ...`). */
function showRuleError(f, e, fallback) {
  const m = String(e.detail || "").match(/(rules\[\d+\]\.\w+|referral_levels_bps\[\d+\]|hold_seconds)/);
  const box = m && f.querySelector(`[data-path="${m[1]}"]`);
  const text = `${t(`error.${e.code}`, {}, e.code)}: ${e.detail || ""}`;
  if (!box) {
    fallback.textContent = errorText(e) + (e.detail ? ` (${e.detail})` : "");
    return;
  }
  box.querySelector(".field-error").textContent = text;
  const inp = box.querySelector("input");
  inp.setAttribute("aria-invalid", "true");
  inp.focus();
}

function withdrawals(main, _me, status = "pending") {
  mount(
    main,
    h("h1", {}, t("admin.tab.withdrawals")),
    statusLinks("withdrawals", status, ["pending", "paid", "rejected"]),
    pagedList(
      (c) => get(`/admin/withdrawals${qs({ status, cursor: c, limit: 50 })}`),
      (w) =>
        h(
          "li",
          { "data-withdrawal": w.withdrawal_id },
          `#${w.withdrawal_id} · ${t("admin.user")} #${w.user_id} · ${money(w.amount_cents)} `,
          statusBadge(w.status),
          w.status === "pending"
            ? [actionButton(t("admin.approve"), { class: "approve" }, () => post(`/admin/withdrawals/${w.withdrawal_id}/approve`), rerender), actionButton(t("admin.reject"), { class: "reject" }, () => post(`/admin/withdrawals/${w.withdrawal_id}/reject`), rerender)]
            : null,
        ),
      t("common.empty"),
    ),
  );
}

function reports(main, _me, status = "open") {
  mount(
    main,
    h("h1", {}, t("admin.tab.reports")),
    statusLinks("reports", status, ["open", "dismissed", "removed", "banned"]),
    pagedList(
      (c) => get(`/admin/reports${qs({ status, cursor: c, limit: 50 })}`),
      (r) =>
        h(
          "li",
          { "data-report": r.report_id },
          `${t(`admin.target.${r.target_type}`, {}, r.target_type)} #${r.target_id} · ${t("admin.user")} #${r.target_user_id}: ${r.reason} `,
          statusBadge(r.status),
          r.status === "open"
            ? ["dismiss", ...(r.target_type === "user" ? [] : ["remove_content"]), "ban_user"].map((action) => actionButton(t(`admin.action.${action}`), {}, () => post(`/admin/reports/${r.report_id}/resolve`, { action }), rerender))
            : null,
        ),
      t("common.empty"),
    ),
  );
}

shell = runConsole({
  routes: { stats, users, merchants, orders, rules, withdrawals, reports },
  tabs: [
    ["stats", "admin.tab.stats"],
    ["users", "admin.tab.users"],
    ["merchants", "admin.tab.merchants"],
    ["orders", "admin.tab.orders"],
    ["rules", "admin.tab.rules"],
    ["withdrawals", "admin.tab.withdrawals"],
    ["reports", "admin.tab.reports"],
  ],
  home: "stats",
  allowed: (me) => me.roles.includes("admin"),
  deniedKey: "admin.denied",
});
