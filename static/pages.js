/*
 * What the pages do live, on top of BrokerLive (live.js):
 * - a region marked data-live-fragment re-renders from the server when a consult it
 *   shows changes, keeping whatever the user was typing and where the cursor was;
 * - deadlines count down;
 * - alerts arrive in the menu.
 */
(function () {
  "use strict";

  const regions = Array.from(document.querySelectorAll("[data-live-fragment]"));
  const statusLine = document.getElementById("live-status");

  function concerns(region, consult) {
    const d = region.dataset;
    if (d.liveConsult) return String(consult.id) === d.liveConsult;
    if (d.liveDepartment) {
      return consult.department === d.liveDepartment ||
        region.querySelector('[data-consult-id="' + consult.id + '"]') !== null;
    }
    if (d.liveRequester) return String(consult.requester.id) === d.liveRequester;
    return false;
  }

  // What the user has typed, by field name, so a re-render loses none of it.
  function typed(region) {
    const values = {};
    region.querySelectorAll("textarea, input[type=text], select, input[type=radio]:checked")
      .forEach((el) => { if (el.name && !el.name.endsWith("csrf_token")) values[el.name] = el.value; });
    return values;
  }

  function restore(region, values, focusedName) {
    Object.entries(values).forEach(([name, value]) => {
      region.querySelectorAll('[name="' + name + '"]').forEach((el) => {
        if (el.type === "radio") el.checked = el.value === value;
        else el.value = value;
      });
    });
    if (focusedName) {
      const el = region.querySelector('[name="' + focusedName + '"]');
      if (el) el.focus();
    }
  }

  // Which folded sections (hand off, redirect, ...) are open, by their form's action.
  function openSections(region) {
    return Array.from(region.querySelectorAll("details[open] form")).map((f) => f.getAttribute("action"));
  }

  function reopen(region, actions) {
    actions.forEach((action) => {
      const form = region.querySelector('form[action="' + action + '"]');
      const section = form && form.closest("details");
      if (section) section.open = true;
    });
  }

  const pending = new Map();
  function refresh(region) {
    clearTimeout(pending.get(region));
    pending.set(region, setTimeout(async () => {
      const response = await fetch(region.dataset.liveFragment, { credentials: "same-origin" });
      if (response.redirected || response.status === 401) { window.location.reload(); return; }
      if (!response.ok) return;
      const html = await response.text();
      const values = typed(region);
      const opened = openSections(region);
      const active = document.activeElement;
      const focusedName = region.contains(active) ? active.name : null;
      region.innerHTML = html;
      reopen(region, opened);
      restore(region, values, focusedName);
      tick();
      region.dispatchEvent(new Event("live:rendered"));
    }, 120));
  }

  BrokerLive.on("consult", (consult) => {
    regions.filter((r) => concerns(r, consult)).forEach(refresh);
  });
  BrokerLive.on("consult_gone", (gone) => {
    regions.filter((r) => r.querySelector('[data-consult-id="' + gone.id + '"]')).forEach(refresh);
  });
  regions.forEach((r) => { if (r.dataset.liveConsult) BrokerLive.watch(Number(r.dataset.liveConsult)); });

  BrokerLive.on("status", ({ connected }) => {
    statusLine.textContent = connected ? "" : "Reconnecting… updates will resume.";
  });

  // Alerts menu
  const count = document.getElementById("unread-count");
  const list = document.getElementById("notification-list");
  BrokerLive.on("notification", (n) => {
    if (!count || !list) return;
    const next = Number(count.dataset.count || 0) + 1;
    count.dataset.count = String(next);
    count.textContent = String(next);
    list.querySelectorAll(".empty").forEach((el) => el.remove());
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = n.consult_id ? "/consults/" + n.consult_id : "/notifications";
    link.textContent = n.message;
    item.appendChild(link);
    list.prepend(item);
    statusLine.textContent = n.message;
    setTimeout(() => { if (statusLine.textContent === n.message) statusLine.textContent = ""; }, 8000);
  });

  // Deadlines count down, louder as they near: "soon" (amber, the words say "only")
  // under SOON or under a quarter of the deadline's interval, whichever is longer, but
  // never for more than half of it (a 15-minute stat claim is calm for its first half);
  // "overdue" (red, pulsing) once passed.
  const SOON = 30 * 60000;
  function minutesText(ms) {
    const minutes = Math.max(1, Math.ceil(Math.abs(ms) / 60000));
    if (minutes < 60) return minutes + " min";
    const hours = Math.floor(minutes / 60);
    if (hours >= 24) return Math.floor(hours / 24) + " d" + (hours % 24 ? " " + (hours % 24) + " h" : "");
    return hours + " h" + (minutes % 60 ? " " + (minutes % 60) + " min" : "");
  }
  function dueText(left, what) {
    if (Math.abs(left) < 60000) return what + " due now";
    if (left < 0) return what + " overdue by " + minutesText(left);
    return minutesText(left) + " left to " + what;
  }
  function tick() {
    const now = Date.now();
    document.querySelectorAll("[data-due]").forEach((el) => {
      const due = Date.parse(el.dataset.due);
      const left = due - now;
      const since = el.dataset.since ? Date.parse(el.dataset.since) : null;
      const interval = since ? due - since : Infinity;
      const soonWithin = Math.max(interval / 4, Math.min(SOON, interval / 2));
      const overdue = left < 0;
      const soon = !overdue && left < soonWithin;
      el.classList.toggle("overdue", overdue);
      el.classList.toggle("soon", soon);
      el.textContent = (soon ? "only " : "") + dueText(left, el.dataset.what);
    });
  }
  tick();
  setInterval(tick, 15000);

  // Queue: search the rows on the page (patient reference or #number) as one types;
  // the term stays in the box, out of the address bar, and applies after live updates.
  document.querySelectorAll("[data-search-from]").forEach((region) => {
    const box = document.getElementById(region.dataset.searchFrom);
    if (!box) return;
    function apply() {
      const term = box.value.trim().toLowerCase();
      let shown = 0;
      region.querySelectorAll("[data-search]").forEach((row) => {
        const hit = !term || row.dataset.search.includes(term);
        row.hidden = !hit;
        if (hit) shown += 1;
      });
      const none = region.querySelector(".search-none");
      if (none) none.hidden = !term || shown > 0;
    }
    box.addEventListener("input", apply);
    region.addEventListener("live:rendered", apply);
    apply();
  });

  // Queue filters: a changed choice applies at once (the button stays for keyboards).
  document.querySelectorAll("form[data-auto-submit]").forEach((form) => {
    form.querySelectorAll("select, input[type=checkbox]").forEach((el) =>
      el.addEventListener("change", () => form.requestSubmit()));
  });

  // Phone header: the menu button shows and hides the navigation.
  const menuButton = document.getElementById("menu-button");
  if (menuButton) {
    menuButton.addEventListener("click", () => {
      const open = menuButton.getAttribute("aria-expanded") !== "true";
      menuButton.setAttribute("aria-expanded", String(open));
      document.querySelector("header.top").classList.toggle("menu-open", open);
    });
  }
})();
