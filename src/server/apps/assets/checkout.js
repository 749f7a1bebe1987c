// Mockpay's checkout page. The buyer confirms or declines; this page's
// server side (POST /api/v1/payments/mockpay/checkout) signs and applies the
// provider's notification, so the secret never reaches the browser.

import { get, post, token } from "./api.js";
import { h, mount, money, errorText } from "./ui.js";
import { t, initLang, langSwitch } from "./i18n.js";

const main = document.getElementById("main");
const orderId = Number(new URLSearchParams(location.search).get("order_id"));

async function show() {
  if (!token()) return mount(main, h("p", { class: "form-error" }, t("checkout.login_first")), h("a", { href: "/#/login" }, t("auth.login")));
  if (!orderId) return mount(main, h("p", { class: "form-error" }, t("error.not_found")));
  let order;
  try {
    order = await get(`/orders/${orderId}`);
  } catch (e) {
    return mount(main, h("p", { class: "form-error" }, errorText(e)));
  }
  const back = () => (location.href = `/#/order/${orderId}`);
  if (order.status !== "pending_payment") return back();
  const error = h("p", { class: "form-error", role: "alert" });
  const choose = (outcome) => async (ev) => {
    ev.target.disabled = true;
    try {
      await post("/payments/mockpay/checkout", { order_id: orderId, outcome });
      back();
    } catch (e) {
      error.textContent = errorText(e);
      ev.target.disabled = false;
    }
  };
  mount(
    main,
    h("h1", {}, t("checkout.title")),
    h("p", {}, t("checkout.order", { id: orderId })),
    h("p", { class: "amount", id: "checkout-amount" }, money(order.total_cents)),
    h("div", { class: "actions" }, h("button", { type: "button", id: "confirm-payment", onclick: choose("succeeded") }, t("checkout.confirm")), h("button", { type: "button", class: "secondary", id: "decline-payment", onclick: choose("failed") }, t("checkout.decline"))),
    error,
    h("p", { class: "muted" }, t("checkout.note")),
  );
}

initLang();
document.getElementById("lang-slot")?.append(langSwitch());
document.addEventListener("tandem:lang", show);
show();
