// The consoles' shell: sign-in, tabs, hash routes. The consoles share the
// member app's session (same origin, same token).

import { get, post, setToken, token } from "./api.js";
import { h, mount, errorText, form } from "./ui.js";
import { t, initLang, langSwitch } from "./i18n.js";

/**
 * Runs a console. routes: {name: async (main, me, ...params) => void};
 * tabs: [[route, i18n key]]; allowed(me) says who may use it.
 */
export function runConsole({ routes, tabs, home, allowed, deniedKey }) {
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  let me = null;

  async function render() {
    if (!token()) return login();
    try {
      me = me || (await get("/me"));
    } catch (e) {
      if (!token()) return login();
      return mount(main, h("p", { class: "form-error" }, errorText(e)));
    }
    if (!allowed(me)) return mount(main, h("p", { class: "form-error", id: "denied" }, t(deniedKey)), h("a", { href: "/" }, t("nav.member_app")));
    const [name, ...params] = (location.hash.replace(/^#\/?/, "") || home).split("/");
    const route = routes[name] ? name : home;
    const logout = h("button", { type: "button", class: "link", id: "logout" }, t("auth.logout"));
    logout.addEventListener("click", async () => {
      await post("/auth/logout").catch(() => {});
      me = null;
      setToken(null);
      render();
    });
    mount(nav, tabs.map(([r, k]) => h("a", { href: `#/${r}`, "aria-current": r === route ? "page" : null }, t(k))), logout);
    mount(main);
    try {
      await routes[route](main, me, ...params);
    } catch (e) {
      mount(main, h("p", { class: "form-error" }, errorText(e)));
    }
  }

  function login() {
    mount(nav);
    mount(
      main,
      h("h1", {}, t("auth.login")),
      form(
        "login",
        [
          { name: "username", label: t("auth.username"), required: true, attrs: { autocomplete: "username" } },
          { name: "password", label: t("auth.password"), type: "password", required: true, attrs: { autocomplete: "current-password" } },
        ],
        t("auth.login"),
        async (v) => {
          const r = await post("/auth/login", { username: v.username, password: v.password });
          setToken(r.token);
          me = null;
          render();
        },
      ),
    );
  }

  initLang();
  document.getElementById("lang-slot")?.append(langSwitch());
  window.addEventListener("hashchange", render);
  document.addEventListener("tandem:lang", render);
  render();
  return { rerender: render };
}

/** A button that runs an action and then `after` (errors shown as a notice). */
export function actionButton(label, attrs, run, after) {
  const b = h("button", { type: "button", ...attrs }, label);
  const err = h("span", { class: "form-error", role: "alert" });
  b.addEventListener("click", async () => {
    b.disabled = true;
    err.textContent = "";
    try {
      await run();
      if (after) await after();
    } catch (e) {
      err.textContent = errorText(e);
    } finally {
      b.disabled = false;
    }
  });
  return h("span", { class: "action" }, b, err);
}
