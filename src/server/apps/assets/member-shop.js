// The member app's shop: products, orders (created with an Idempotency-Key),
// payment through the provider's checkout page, refunds and reviews; flowers
// sent as gifts; the wallet and the promotion center.

import { get, post, qs, freshKey } from "./api.js";
import { h, mount, money, parseMoney, when, notice, errorText, form, pagedList, statusBadge } from "./ui.js";
import { t } from "./i18n.js";
import { app, userName, go } from "./member-core.js";

function productItem(p) {
  return h(
    "li",
    { class: "product", "data-product": p.product_id },
    h("a", { href: `#/product/${p.product_id}` }, p.image ? h("img", { src: p.image.thumbnail_url, alt: "", class: "thumb" }) : null, h("span", { class: "name" }, p.name), h("span", { class: "price" }, money(p.price_cents))),
  );
}

function shopView(el) {
  const results = h("div");
  const search = form("product-search", [{ name: "q", label: t("shop.search") }, { name: "category", label: t("shop.category") }], t("common.search"), async (v) => list(v));
  function list(v = {}) {
    mount(results, pagedList((c) => get(`/products${qs({ q: v.q, category: v.category, cursor: c, limit: 20 })}`), productItem, t("shop.none")));
  }
  mount(el, h("h1", {}, t("shop.title")), h("p", {}, h("a", { href: "#/orders" }, t("nav.orders")), " · ", h("a", { href: "#/flowers" }, t("nav.flowers"))), search, results);
  list();
}

async function productView(el, id) {
  const p = await get(`/products/${id}`);
  // One key per purchase on this page: a retry after a lost answer is the
  // same purchase (the server replays the first answer).
  let key = freshKey();
  const buy = form(
    "buy",
    [
      { name: "quantity", label: t("shop.quantity"), type: "number", value: "1", attrs: { min: "1", max: "1000" } },
      { name: "shipping_address", label: t("shop.address"), attrs: { maxlength: "500", autocomplete: "street-address" } },
    ],
    t("shop.buy"),
    async (v) => {
      const body = { items: [{ product_id: p.product_id, quantity: Number(v.quantity) }] };
      if (v.shipping_address.trim()) body.shipping_address = v.shipping_address.trim();
      const order = await post("/orders", body, { idempotencyKey: key });
      key = freshKey();
      go(`order/${order.order_id}`);
    },
  );
  mount(
    el,
    h("h1", {}, p.name),
    p.image ? h("img", { src: p.image.url, alt: p.name, class: "photo" }) : null,
    h("p", { class: "price" }, money(p.price_cents)),
    h("p", {}, t("shop.stock", { n: p.stock })),
    h("p", {}, h("a", { href: `#/merchant-page/${p.merchant_id}` }, t("shop.merchant"))),
    p.active && p.stock > 0 ? buy : h("p", { class: "muted" }, t("shop.sold_out")),
  );
}

async function merchantPage(el, id) {
  const m = await get(`/merchants/${id}`);
  mount(
    el,
    h("h1", {}, m.name),
    h("p", {}, t("shop.rating", { avg: m.rating_avg == null ? "-" : Number(m.rating_avg).toFixed(1), n: m.review_count })),
    pagedList((c) => get(`/products${qs({ merchant_id: id, cursor: c, limit: 20 })}`), productItem),
    h("h2", {}, t("shop.reviews")),
    pagedList((c) => get(`/merchants/${id}/reviews${qs({ cursor: c, limit: 20 })}`), (r) => h("li", {}, "★".repeat(r.rating), " ", r.body)),
  );
}

function ordersView(el) {
  mount(
    el,
    h("h1", {}, t("nav.orders")),
    pagedList(
      (c) => get(`/orders${qs({ cursor: c, limit: 20 })}`),
      (o) => h("li", { "data-order": o.order_id }, h("a", { href: `#/order/${o.order_id}` }, `#${o.order_id} `, money(o.total_cents), " ", statusBadge(o.status), " ", h("time", {}, when(o.created_at)))),
      t("orders.none"),
    ),
    h("h2", {}, t("orders.gifts_received")),
    pagedList((c) => get(`/gifts/received${qs({ cursor: c, limit: 20 })}`), (o) => h("li", {}, h("a", { href: `#/order/${o.order_id}` }, `#${o.order_id} `, o.gift_message || "", " ", statusBadge(o.status)))),
  );
}

function action(label, id, run) {
  const b = h("button", { type: "button", id }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await run();
    } catch (e) {
      notice(errorText(e), "error");
      b.disabled = false;
    }
  });
  return b;
}

async function orderView(el, id) {
  const o = await get(`/orders/${id}`);
  const buyer = o.buyer_id === app.me.user_id;
  const refresh = () => orderView(el, id);
  const actions = h("div", { class: "actions" });
  if (buyer && o.status === "pending_payment") {
    actions.append(
      action(t("orders.pay"), "pay", async () => {
        await post(`/orders/${o.order_id}/pay`);
        location.href = `/checkout/mockpay?order_id=${o.order_id}`;
      }),
      action(t("orders.cancel"), "cancel", async () => {
        await post(`/orders/${o.order_id}/cancel`);
        refresh();
      }),
    );
  }
  if (buyer && o.status === "shipped") actions.append(action(t("orders.confirm"), "confirm", async () => (await post(`/orders/${o.order_id}/confirm`), refresh())));
  const refundable = buyer && ["paid", "shipped", "completed"].includes(o.status) && !o.refund_requested;
  const refund = refundable
    ? form("refund", [{ name: "reason", label: t("orders.refund_reason"), required: true, attrs: { maxlength: "500" } }], t("orders.refund"), async (v) => {
        await post(`/orders/${o.order_id}/refund`, { reason: v.reason });
        refresh();
      })
    : null;
  // A gift's recipient gives (or changes) the delivery address until it ships.
  const recipient = o.gift_to_user_id === app.me.user_id;
  const address =
    recipient && ["pending_payment", "paid"].includes(o.status)
      ? form("gift-address", [{ name: "shipping_address", label: t("shop.address"), required: true, value: o.shipping_address || "", attrs: { maxlength: "500" } }], t("common.save"), async (v) => {
          await post(`/orders/${o.order_id}/address`, { shipping_address: v.shipping_address.trim() });
          refresh();
        })
      : null;
  const review =
    buyer && o.status === "completed"
      ? form(
          "review",
          [
            { name: "rating", label: t("orders.rating"), options: [5, 4, 3, 2, 1].map((n) => [String(n), "★".repeat(n)]) },
            { name: "body", label: t("orders.review"), type: "textarea", attrs: { maxlength: "2000" } },
          ],
          t("orders.send_review"),
          async (v) => {
            await post(`/orders/${o.order_id}/review`, { rating: Number(v.rating), body: v.body });
            notice(t("orders.reviewed"));
          },
        )
      : null;
  mount(
    el,
    h("h1", {}, t("orders.order", { id: o.order_id })),
    h("p", { id: "order-status" }, statusBadge(o.status)),
    h("p", {}, t("orders.total"), " ", h("strong", { id: "order-total" }, money(o.total_cents))),
    h("ul", { class: "list" }, o.items.map((i) => h("li", {}, h("a", { href: `#/product/${i.product_id}` }, `#${i.product_id}`), ` × ${i.quantity} · ${money(i.price_cents)}`))),
    o.gift_to_user_id ? h("p", {}, t("orders.gift_to"), " ", userName(o.gift_to_user_id), o.gift_message ? ` — ${o.gift_message}` : "") : null,
    o.tracking ? h("p", {}, t("orders.tracking"), " ", `${o.tracking.carrier || ""} ${o.tracking.tracking_no || ""}`) : null,
    o.refund_requested ? h("p", { class: "muted" }, t("orders.refund_requested")) : null,
    o.shipping_address ? h("p", {}, t("shop.address"), ": ", o.shipping_address) : null,
    actions,
    address,
    refund,
    review,
  );
}

async function flowersView(el) {
  const to = h("div");
  const giftForm = (p) =>
    form(
      `gift-${p.product_id}`,
      [
        { name: "recipient", label: t("flowers.recipient"), required: true },
        { name: "message", label: t("flowers.message"), attrs: { maxlength: "200" } },
      ],
      t("flowers.send", { price: money(p.price_cents) }),
      async (v) => {
        const found = await get(`/users${qs({ q: v.recipient.trim(), limit: 20 })}`);
        const user = found.items.find((u) => u.username.toLowerCase() === v.recipient.trim().toLowerCase());
        if (!user) throw new Error(t("flowers.no_such_user"));
        const body = { items: [{ product_id: p.product_id, quantity: 1 }], gift_to_user_id: user.user_id };
        if (v.message.trim()) body.gift_message = v.message.trim();
        const order = await post("/orders", body, { idempotencyKey: freshKey() });
        go(`order/${order.order_id}`);
      },
    );
  mount(el, h("h1", {}, t("nav.flowers")), h("p", { class: "muted" }, t("flowers.intro")), to);
  mount(to, pagedList((c) => get(`/products${qs({ category: "flowers", cursor: c, limit: 20 })}`), (p) => h("li", { class: "product" }, h("strong", {}, p.name), " ", money(p.price_cents), giftForm(p)), t("flowers.none")));
}

async function walletView(el) {
  const w = await get("/wallet");
  let key = freshKey();
  mount(
    el,
    h("h1", {}, t("nav.wallet")),
    h(
      "dl",
      { class: "figures", id: "wallet" },
      ["pending", "available", "withdrawing", "withdrawn"].map((k) => [h("dt", {}, t(`wallet.${k}`)), h("dd", { id: `wallet-${k}` }, money(w[`${k}_cents`]))]),
    ),
    form("withdraw", [{ name: "amount", label: t("wallet.amount"), required: true, attrs: { inputmode: "decimal" } }], t("wallet.withdraw"), async (v) => {
      const cents = parseMoney(v.amount);
      if (!cents) throw new Error(t("wallet.bad_amount"));
      await post("/withdrawals", { amount_cents: cents }, { idempotencyKey: key });
      key = freshKey();
      walletView(el);
    }),
    h("h2", {}, t("wallet.rebates")),
    pagedList((c) => get(`/rebates${qs({ cursor: c, limit: 20 })}`), (r) => h("li", { class: "rebate" }, t(`rebate.${r.kind}`), " ", money(r.amount_cents), " ", statusBadge(r.status), " ", h("a", { href: `#/order/${r.order_id}` }, `#${r.order_id}`)), t("wallet.no_rebates")),
    h("h2", {}, t("wallet.withdrawals")),
    pagedList((c) => get(`/withdrawals${qs({ cursor: c, limit: 20 })}`), (x) => h("li", {}, money(x.amount_cents), " ", statusBadge(x.status)), t("wallet.no_withdrawals")),
  );
}

async function promoView(el) {
  const [me, rewards] = await Promise.all([get("/me"), get("/me/rewards")]);
  const link = `${location.origin}/?invite=${encodeURIComponent(me.invite_code)}`;
  const copy = h("button", { type: "button" }, t("promo.copy"));
  copy.addEventListener("click", () => navigator.clipboard?.writeText(link).then(() => notice(t("promo.copied"))));
  mount(
    el,
    h("h1", {}, t("nav.promo")),
    h("p", {}, t("promo.code"), " ", h("code", { id: "invite-code" }, me.invite_code)),
    h("p", {}, h("input", { id: "invite-link", readonly: true, value: link, "aria-label": t("promo.link") }), copy),
    h("p", {}, t("promo.totals", { n: rewards.invitee_count, total: money(rewards.referral_total_cents) })),
    h("h2", {}, t("promo.invitees")),
    pagedList((c) => get(`/me/invitees${qs({ cursor: c, limit: 20 })}`), (i) => h("li", {}, i.username, " · ", t("promo.orders", { n: i.order_count })), t("promo.none")),
  );
}

export const shopViews = {
  shop: shopView,
  product: productView,
  "merchant-page": merchantPage,
  orders: ordersView,
  order: orderView,
  flowers: flowersView,
  wallet: walletView,
  promo: promoView,
};
