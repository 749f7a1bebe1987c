// The merchant console: apply, products and stock, orders to ship, refunds
// to decide, the dashboard, reviews and animal updates.

import { get, post, patch, qs } from "./api.js";
import { h, mount, money, parseMoney, when, form, pagedList, statusBadge } from "./ui.js";
import { t } from "./i18n.js";
import { runConsole, actionButton } from "./console.js";

let shell;
const rerender = () => shell.rerender();

async function shops(main) {
  const page = await get("/me/merchants?limit=50");
  mount(
    main,
    h("h1", {}, t("merchant.shops")),
    h("ul", { class: "list", id: "shops" }, page.items.map((m) => h("li", {}, m.status === "approved" ? h("a", { href: `#/shop/${m.merchant_id}` }, m.name) : m.name, " ", statusBadge(m.status)))),
    h("h2", {}, t("merchant.apply")),
    form("apply", [{ name: "name", label: t("merchant.name"), required: true, attrs: { maxlength: "100" } }], t("merchant.apply"), async (v) => {
      await post("/merchants", { name: v.name });
      rerender();
    }),
  );
}

function shopNav(id, current) {
  return h(
    "p",
    { class: "subnav" },
    ["shop", "products", "orders", "refunds", "reviews", "animals"].map((r) => [h("a", { href: `#/${r}/${id}`, "aria-current": r === current ? "page" : null }, t(`merchant.tab.${r}`)), " "]),
  );
}

async function dashboard(main, _me, id) {
  const d = await get(`/merchants/${id}/dashboard`);
  const m = await get(`/merchants/${id}`);
  mount(
    main,
    h("h1", {}, m.name),
    shopNav(id, "shop"),
    h(
      "dl",
      { class: "figures", id: "dashboard" },
      h("dt", {}, t("merchant.gmv_today")),
      h("dd", {}, money(d.paid_gmv_today_cents)),
      h("dt", {}, t("merchant.gmv_7d")),
      h("dd", {}, money(d.paid_gmv_7d_cents)),
      h("dt", {}, t("merchant.rating")),
      h("dd", {}, d.rating_avg == null ? "-" : `${Number(d.rating_avg).toFixed(1)} (${d.review_count})`),
      Object.entries(d.orders_by_status).map(([s, n]) => [h("dt", {}, t(`status.${s}`, {}, s)), h("dd", {}, String(n))]),
    ),
    h("h2", {}, t("merchant.top_products")),
    h("ul", { class: "list" }, d.top_products.map((p) => h("li", {}, `${p.name || "#" + p.product_id} × ${p.quantity}`))),
  );
}

async function products(main, _me, id) {
  const list = pagedList(
    (c) => get(`/products${qs({ merchant_id: id, cursor: c, limit: 50 })}`),
    (p) =>
      h(
        "li",
        { class: "product", "data-product": p.product_id },
        h("strong", {}, p.name),
        ` ${money(p.price_cents)} · ${t("shop.stock", { n: p.stock })} · ${p.category} `,
        form(
          `stock-${p.product_id}`,
          [
            { name: "stock_delta", label: t("merchant.stock_delta"), type: "number", value: "0" },
            { name: "price", label: t("merchant.price"), value: (p.price_cents / 100).toFixed(2) },
          ],
          t("common.save"),
          async (v) => {
            const body = {};
            if (Number(v.stock_delta)) body.stock_delta = Number(v.stock_delta);
            const cents = parseMoney(v.price);
            if (cents === null) throw new Error(t("wallet.bad_amount"));
            if (cents !== p.price_cents) body.price_cents = cents;
            await patch(`/products/${p.product_id}`, body);
            rerender();
          },
        ),
      ),
    t("shop.none"),
  );
  mount(
    main,
    h("h1", {}, t("merchant.tab.products")),
    shopNav(id, "products"),
    form(
      "new-product",
      [
        { name: "name", label: t("merchant.product_name"), required: true, attrs: { maxlength: "100" } },
        { name: "category", label: t("shop.category"), required: true, value: "general" },
        { name: "price", label: t("merchant.price"), required: true, attrs: { inputmode: "decimal" } },
        { name: "stock", label: t("merchant.stock"), type: "number", value: "10", attrs: { min: "0" } },
      ],
      t("merchant.add_product"),
      async (v) => {
        const price_cents = parseMoney(v.price);
        if (price_cents === null) throw new Error(t("wallet.bad_amount"));
        await post("/products", { merchant_id: Number(id), name: v.name, category: v.category, price_cents, stock: Number(v.stock) });
        rerender();
      },
    ),
    list,
  );
}

function orderLine(o, extra) {
  return h("li", { class: "order", "data-order": o.order_id }, `#${o.order_id} · ${money(o.total_cents)} `, statusBadge(o.status), ` ${when(o.created_at)} `, o.shipping_address ? h("small", {}, o.shipping_address) : null, extra);
}

async function orders(main, _me, id, status = "paid") {
  const pick = h("select", { id: "order-status-filter", "aria-label": t("merchant.status") }, ["paid", "shipped", "completed", "pending_payment", "refunded", "cancelled"].map((s) => h("option", { value: s, selected: s === status }, t(`status.${s}`))));
  pick.addEventListener("change", () => (location.hash = `#/orders/${id}/${pick.value}`));
  mount(
    main,
    h("h1", {}, t("merchant.tab.orders")),
    shopNav(id, "orders"),
    pick,
    pagedList(
      (c) => get(`/merchants/${id}/orders${qs({ status, cursor: c, limit: 50 })}`),
      (o) =>
        orderLine(
          o,
          o.status === "paid"
            ? form(
                `ship-${o.order_id}`,
                [
                  { name: "carrier", label: t("merchant.carrier"), attrs: { maxlength: "100" } },
                  { name: "tracking_no", label: t("merchant.tracking_no"), attrs: { maxlength: "100" } },
                ],
                t("merchant.ship"),
                async (v) => {
                  const body = {};
                  if (v.carrier.trim()) body.carrier = v.carrier.trim();
                  if (v.tracking_no.trim()) body.tracking_no = v.tracking_no.trim();
                  await post(`/orders/${o.order_id}/ship`, body);
                  rerender();
                },
              )
            : null,
        ),
      t("orders.none"),
    ),
  );
}

async function refunds(main, _me, id) {
  const rows = h("ul", { class: "list", id: "refunds" });
  mount(main, h("h1", {}, t("merchant.tab.refunds")), shopNav(id, "refunds"), rows);
  // Refund requests sit on paid, shipped and completed orders; at most
  // MAX_PAGES pages of each are read.
  const MAX_PAGES = 10;
  const asked = [];
  for (const status of ["paid", "shipped", "completed"]) {
    let cursor = null;
    for (let n = 0; n < MAX_PAGES; n++) {
      const page = await get(`/merchants/${id}/orders${qs({ status, cursor, limit: 200 })}`);
      asked.push(...page.items.filter((x) => x.refund_requested));
      cursor = page.next_cursor;
      if (!cursor) break;
    }
  }
  for (const o of asked) {
    const approve = actionButton(t("merchant.approve_refund"), { class: "approve" }, () => post(`/orders/${o.order_id}/refund/approve`), rerender);
    const reject = actionButton(t("merchant.reject_refund"), { class: "reject" }, () => post(`/orders/${o.order_id}/refund/reject`), rerender);
    rows.append(orderLine(o, h("span", {}, h("em", { class: "reason" }, o.refund_reason || ""), approve, reject)));
  }
  if (!rows.children.length) rows.append(h("li", { class: "empty" }, t("merchant.no_refunds")));
}

async function reviews(main, _me, id) {
  mount(
    main,
    h("h1", {}, t("merchant.tab.reviews")),
    shopNav(id, "reviews"),
    pagedList((c) => get(`/merchants/${id}/reviews${qs({ cursor: c, limit: 50 })}`), (r) => h("li", {}, "★".repeat(r.rating), ` ${r.body} `, h("small", {}, when(r.created_at))), t("merchant.no_reviews")),
  );
}

async function animals(main, _me, id) {
  const mine = (await get(`/animals${qs({ merchant_id: id, limit: 200 })}`)).items;
  mount(
    main,
    h("h1", {}, t("merchant.tab.animals")),
    shopNav(id, "animals"),
    h(
      "ul",
      { class: "list" },
      mine.map((a) =>
        h(
          "li",
          {},
          h("strong", {}, a.name),
          ` ${a.species} · ${money(a.claim_price_cents)} `,
          a.claimed ? statusBadge("claimed") : null,
          form(`update-${a.animal_id}`, [{ name: "body", label: t("merchant.animal_update"), type: "textarea", required: true, attrs: { maxlength: "2000" } }], t("merchant.post_update"), async (v, f) => {
            await post(`/animals/${a.animal_id}/updates`, { body: v.body });
            f.reset();
          }),
        ),
      ),
    ),
    h("h2", {}, t("merchant.new_animal")),
    form(
      "new-animal",
      [
        { name: "name", label: t("merchant.animal_name"), required: true, attrs: { maxlength: "100" } },
        { name: "species", label: t("merchant.species"), required: true, attrs: { maxlength: "50" } },
        { name: "description", label: t("trips.description"), type: "textarea", attrs: { maxlength: "2000" } },
        { name: "price", label: t("merchant.claim_price"), required: true },
        { name: "claim_days", label: t("merchant.claim_days"), type: "number", value: "30" },
      ],
      t("merchant.add_animal"),
      async (v) => {
        const claim_price_cents = parseMoney(v.price);
        if (claim_price_cents === null) throw new Error(t("wallet.bad_amount"));
        await post("/animals", { merchant_id: Number(id), name: v.name, species: v.species, description: v.description, claim_price_cents, claim_days: Number(v.claim_days) });
        rerender();
      },
    ),
  );
}

shell = runConsole({
  routes: { shops, shop: dashboard, products, orders, refunds, reviews, animals },
  tabs: [["shops", "merchant.shops"]],
  home: "shops",
  allowed: () => true,
  deniedKey: "merchant.denied",
});
