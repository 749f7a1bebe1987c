// The member app's companion trips (结伴) and animal claims (认领).

import { get, post, qs } from "./api.js";
import { h, mount, money, when, notice, errorText, form, pagedList, statusBadge } from "./ui.js";
import { t } from "./i18n.js";
import { app, userName, go } from "./member-core.js";

function tripItem(tr) {
  return h(
    "li",
    { class: "trip", "data-trip": tr.trip_id },
    h("a", { href: `#/trip/${tr.trip_id}` }, h("strong", {}, tr.destination), ` ${tr.start_date} → ${tr.end_date} `, statusBadge(tr.status)),
  );
}

function tripsView(el) {
  const results = h("div");
  const search = form(
    "trip-search",
    [
      { name: "destination", label: t("trips.destination") },
      { name: "from", label: t("trips.from"), type: "date" },
      { name: "to", label: t("trips.to"), type: "date" },
    ],
    t("common.search"),
    async (v) => list(v),
  );
  function list(v = {}) {
    mount(results, pagedList((c) => get(`/trips${qs({ destination: v.destination, from: v.from, to: v.to, cursor: c, limit: 20 })}`), tripItem, t("trips.none")));
  }
  const publish = form(
    "new-trip",
    [
      { name: "destination", label: t("trips.destination"), required: true, attrs: { maxlength: "100" } },
      { name: "start_date", label: t("trips.start"), type: "date", required: true },
      { name: "end_date", label: t("trips.end"), type: "date", required: true },
      { name: "capacity", label: t("trips.capacity"), type: "number", value: "4", attrs: { min: "2", max: "50" } },
      { name: "description", label: t("trips.description"), type: "textarea", attrs: { maxlength: "2000" } },
    ],
    t("trips.publish"),
    async (v) => {
      const trip = await post("/trips", { ...v, capacity: Number(v.capacity) });
      go(`trip/${trip.trip_id}`);
    },
  );
  mount(el, h("h1", {}, t("trips.title")), search, results, h("details", {}, h("summary", {}, t("trips.publish")), publish), h("p", {}, h("a", { href: "#/animals" }, t("nav.animals"))));
  list();
}

async function tripView(el, id) {
  const tr = await get(`/trips/${id}`);
  const me = app.me.user_id;
  const organizer = tr.organizer_id === me;
  const member = tr.member_ids.includes(me);
  const refresh = () => tripView(el, id);
  let join = null;
  if (!member && tr.status === "open") {
    join = form("join", [{ name: "message", label: t("trips.join_message"), attrs: { maxlength: "500" } }], t("trips.join"), async (v) => {
      await post(`/trips/${tr.trip_id}/join`, v.message.trim() ? { message: v.message.trim() } : {});
      notice(t("trips.requested"));
      mount(join, h("p", { id: "join-requested" }, t("trips.requested")));
    });
  }
  const requests = organizer
    ? pagedList(
        (c) => get(`/trips/${tr.trip_id}/requests${qs({ cursor: c, limit: 50 })}`),
        (r) => {
          const li = h("li", { class: "request", "data-request": r.request_id }, userName(r.user_id || r.requester_id), r.message ? ` — ${r.message}` : "", " ", statusBadge(r.status));
          if (r.status === "pending") {
            for (const verdict of ["accept", "reject"]) {
              const b = h("button", { type: "button", class: verdict }, t(`trips.${verdict}`));
              b.addEventListener("click", async () => {
                try {
                  await post(`/trips/${tr.trip_id}/requests/${r.request_id}/${verdict}`);
                  refresh();
                } catch (e) {
                  notice(errorText(e), "error");
                }
              });
              li.append(b);
            }
          }
          return li;
        },
        t("trips.no_requests"),
      )
    : null;
  mount(
    el,
    h("h1", {}, tr.destination),
    h("p", {}, `${tr.start_date} → ${tr.end_date} `, statusBadge(tr.status)),
    h("p", {}, tr.description || ""),
    h("p", {}, t("trips.members", { n: tr.member_ids.length, capacity: tr.capacity })),
    h("ul", { class: "list compact", id: "trip-members" }, tr.member_ids.map((u) => h("li", { "data-user": u }, userName(u)))),
    member ? h("p", {}, h("a", { class: "button", id: "trip-chat", href: `#/chat/${tr.conversation_id}` }, t("trips.chat"))) : null,
    join,
    organizer ? [h("h2", {}, t("trips.requests")), requests] : null,
  );
}

function animalsView(el) {
  mount(
    el,
    h("h1", {}, t("nav.animals")),
    pagedList(
      (c) => get(`/animals${qs({ cursor: c, limit: 20 })}`),
      (a) => h("li", { class: "animal" }, h("a", { href: `#/animal/${a.animal_id}` }, h("strong", {}, a.name), ` · ${a.species} · ${money(a.claim_price_cents)} `, a.claimed ? statusBadge("claimed") : null)),
      t("animals.none"),
    ),
  );
}

async function animalView(el, id) {
  const a = await get(`/animals/${id}`);
  const claim = h("button", { type: "button", id: "claim" }, t("animals.claim", { price: money(a.claim_price_cents), days: a.claim_days }));
  claim.addEventListener("click", async () => {
    try {
      const order = await post(`/animals/${a.animal_id}/claim`);
      go(`order/${order.order_id}`);
    } catch (e) {
      notice(errorText(e), "error");
    }
  });
  mount(
    el,
    h("h1", {}, a.name),
    a.image ? h("img", { src: a.image.url, alt: a.name, class: "photo" }) : null,
    h("p", {}, `${a.species} · ${money(a.claim_price_cents)} / ${t("animals.days", { n: a.claim_days })}`),
    h("p", {}, a.description),
    a.claimed_by === app.me.user_id ? h("p", { class: "badge" }, t("animals.yours", { until: when(a.claimed_until) })) : a.claimed ? h("p", { class: "muted" }, t("animals.taken")) : claim,
    h("h2", {}, t("animals.updates")),
    pagedList((c) => get(`/animals/${a.animal_id}/updates${qs({ cursor: c, limit: 20 })}`), (u) => h("li", {}, h("time", {}, when(u.created_at)), " ", u.body), t("animals.no_updates")),
  );
}

export const tripViews = { trips: tripsView, trip: tripView, animals: animalsView, animal: animalView };
