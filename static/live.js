/*
 * Live updates for the broker's pages: BrokerLive.on("consult", fn), .watch(id).
 *
 * Connects with the page's login session. Every `consult` event carries the consult
 * as the API shows it (without its timeline); `consult_gone` says one left the
 * department's queue; `notification` is a personal alert. After a reconnect it asks
 * the API for whatever changed while it was away (`updated_since`) and replays it to
 * the same listeners, so nothing shown is left stale; it does the same every
 * `data-resync-seconds` (LIVE_RESYNC_SECONDS) while connected.
 */
(function () {
  "use strict";

  const listeners = { consult: [], consult_gone: [], notification: [], status: [] };
  const watched = new Set();
  // The newest change seen, in the server's time: where a resync starts from.
  let watermark = document.body.dataset.renderedAt || null;
  // Alerts up to this one are on the page as rendered: a catch-up must not add them again.
  let lastNotificationId = Number(document.body.dataset.newestAlert || 0);

  const socket = io({ transports: ["websocket", "polling"] });

  const versions = new Map(); // consult id -> newest version seen
  function dispatch(event, payload) {
    if (event === "consult") {
      // A resync reaches back a little and may repeat what was already shown.
      if ((versions.get(payload.id) || 0) >= payload.version) return;
      versions.set(payload.id, payload.version);
      if (payload.updated_at > (watermark || "")) watermark = payload.updated_at;
    }
    if (event === "notification") {
      // Pushed and then found again by a catch-up: shown once.
      if (payload.id <= lastNotificationId) return;
      lastNotificationId = payload.id;
    }
    listeners[event].forEach((fn) => fn(payload));
  }

  async function getJSON(path) {
    const response = await fetch(path, { credentials: "same-origin" });
    if (!response.ok) throw new Error(path + " answered " + response.status);
    return response.json();
  }

  async function resync() {
    if (watermark) {
      const since = encodeURIComponent(watermark);
      const changed = await getJSON("/api/consults?page_size=200&updated_since=" + since);
      changed.reverse().forEach((consult) => dispatch("consult", consult));
    }
    const unread = await getJSON("/api/notifications?unread=true&page_size=200");
    unread
      .filter((n) => n.id > lastNotificationId)
      .reverse()
      .forEach((n) => dispatch("notification", n));
  }

  socket.on("connect", () => {
    watched.forEach((id) => socket.emit("watch", { consult_id: id }));
    dispatch("status", { connected: true });
    // On every connect, the first too: a change made between the page being rendered and
    // its connection opening would otherwise never be shown.
    resync().catch((error) => console.warn("resync failed", error));
  });
  socket.on("disconnect", (reason) => {
    dispatch("status", { connected: false });
    // The server ends a socket only when what signed it in ended (sign-out elsewhere,
    // a deactivated account, "end all"): this page is signed out too.
    if (reason === "io server disconnect") window.location.assign("/sign-in");
  });

  // A push can be lost while the socket stays up (its server lost Redis for a while):
  // now and then, a connected page quietly asks what changed too.
  const resyncSeconds = Number(document.body.dataset.resyncSeconds || 0);
  if (resyncSeconds > 0) {
    setInterval(() => {
      if (socket.connected && !document.hidden) {
        resync().catch((error) => console.warn("resync failed", error));
      }
    }, resyncSeconds * 1000);
  }
  ["consult", "consult_gone", "notification"].forEach((event) =>
    socket.on(event, (payload) => dispatch(event, payload))
  );

  window.BrokerLive = {
    on(event, fn) {
      listeners[event].push(fn);
    },
    watch(consultId) {
      watched.add(consultId);
      if (socket.connected) socket.emit("watch", { consult_id: consultId });
    },
    unwatch(consultId) {
      watched.delete(consultId);
      socket.emit("unwatch", { consult_id: consultId });
    },
    socket,
  };
})();
