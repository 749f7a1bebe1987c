// What the member app's views share: the session, user names, navigation.

import { get } from "./api.js";
import { h } from "./ui.js";

/** The signed-in member, the chat socket, presence and user names seen. */
export const app = { me: null, socket: null, presence: new Map(), users: new Map(), cleanup: null };

/** A user's display name, fetched once. */
export async function nameOf(id) {
  if (!app.users.has(id)) {
    app.users.set(
      id,
      get(`/users/${id}`).then(
        (u) => u.display_name || u.username,
        () => `#${id}`,
      ),
    );
  }
  return app.users.get(id);
}

/** A span filled with the user's name when known. */
export function userName(id) {
  const s = h("span", { class: "user" }, `#${id}`);
  nameOf(id).then((n) => (s.textContent = n));
  return s;
}

export function go(path) {
  location.hash = `#/${path}`;
}

