/*
 * What the pages do live, on top of BrokerLive (live.js):
 * - a region marked data-live-fragment re-renders from the server when a consult it
 *   shows changes, keeping whatever the user was typing and where the cursor was
 *   (text whose field is gone, say an answer to a consult no longer yours, is kept
 *   in the page's "Your unsent text" box);
 * - forms: the consult page's composer, characters left in limited fields, focus on
 *   the first field in error (see the block "Forms" below);
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
      .forEach((el) => {
        if (el.name && !el.name.endsWith("csrf_token") && el.name !== "composer-mode") values[el.name] = el.value;
      });
    return values;
  }

  function restore(region, values) {
    Object.entries(values).forEach(([name, value]) => {
      region.querySelectorAll('[name="' + name + '"]').forEach((el) => {
        if (el.type === "radio") el.checked = el.value === value;
        else el.value = value;
      });
    });
  }

  const pending = new Map();
  function refresh(region) {
    clearTimeout(pending.get(region));
    pending.set(region, setTimeout(async () => {
      const response = await fetch(region.dataset.liveFragment, { credentials: "same-origin" });
      if (response.redirected || response.status === 401) { window.location.reload(); return; }
      if (!response.ok) {
        if (region.dataset.liveConsult && [403, 404].includes(response.status)) lostFromView(region);
        return;
      }
      const html = await response.text();
      const values = typed(region);
      const drafts = textsTyped(region);
      const active = document.activeElement;
      const focusedName = region.contains(active) && active.name ? active.name : null;
      const focusedRadio = focusedName && active.type === "radio" ? '][value="' + active.value + '"' : "";
      region.innerHTML = html;
      restore(region, values);
      enhance(region);
      keepWhatHasNoField(region, drafts);
      const focused = focusedName && region.querySelector('[name="' + focusedName + '"' + focusedRadio + "]");
      if (focused) focused.focus();
      tick();
      region.dispatchEvent(new Event("live:rendered"));
    }, 120));
  }

  BrokerLive.on("consult", (consult) => {
    regions.filter((r) => concerns(r, consult)).forEach(refresh);
  });
  BrokerLive.on("consult_gone", (gone) => {
    regions.filter((r) => r.dataset.liveConsult === String(gone.id) ||
      r.querySelector('[data-consult-id="' + gone.id + '"]')).forEach(refresh);
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

  // ---- Forms: the composer, characters left, unsent text, the first error ----

  function enhance(root) {
    enhanceComposer(root);
    root.querySelectorAll("[data-max-length]").forEach(countCharacters);
  }

  // The consult page's composer: a choice of what to do shows that action's form only.
  // Each form keeps its own text; without scripts they all show, one below the other.
  // The choice is the server's (the first thing to do now) until the person makes it,
  // by choosing or by typing: from then on a live re-render keeps theirs.
  let modeChosen = null;
  function enhanceComposer(root) {
    root.querySelectorAll("[data-composer]").forEach((composer) => {
      const modes = composer.querySelector("[data-modes]");
      if (!modes) return;
      modes.hidden = false;
      const radios = Array.from(modes.querySelectorAll('input[name="composer-mode"]'));
      const kept = radios.find((radio) => radio.value === modeChosen);
      if (kept) kept.checked = true;
      if (!radios.some((radio) => radio.checked)) radios[0].checked = true;
      const show = () => {
        const chosen = radios.find((radio) => radio.checked).value;
        composer.querySelectorAll(".composer-form").forEach((panel) => {
          panel.hidden = panel.dataset.mode !== chosen;
        });
      };
      radios.forEach((radio) => radio.addEventListener("change", () => {
        modeChosen = radio.value;
        show();
      }));
      composer.addEventListener("input", (event) => {
        const panel = event.target.closest(".composer-form");
        if (panel) modeChosen = panel.dataset.mode;
      });
      show();
    });
  }

  // Characters as the server counts them: trimmed, a line break sent as CR LF.
  function charactersIn(text) {
    return Array.from(text.trim().replace(/\r?\n/g, "\r\n")).length;
  }
  const number = (n) => n.toLocaleString("en-US");

  // "N characters left" under a limited field. It is read out only when it crosses a
  // threshold (a tenth left, none left, too many), not at every keystroke.
  function countCharacters(field) {
    if (field.dataset.counted) return;
    field.dataset.counted = "1";
    const max = Number(field.dataset.maxLength);
    const counter = document.createElement("p");
    counter.className = "counter";
    counter.id = field.id + "-counter";
    const shown = document.createElement("span");
    shown.className = "left";
    const spoken = document.createElement("span");
    spoken.className = "visually-hidden";
    spoken.setAttribute("aria-live", "polite");
    counter.append(shown, spoken);
    field.insertAdjacentElement("afterend", counter);
    const described = (field.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    field.setAttribute("aria-describedby", [...described, counter.id].join(" "));
    let level = null;
    const update = () => {
      const left = max - charactersIn(field.value);
      shown.textContent = left >= 0
        ? number(left) + (left === 1 ? " character left" : " characters left")
        : number(-left) + (left === -1 ? " character too many" : " characters too many");
      counter.classList.toggle("over", left < 0);
      const now = left < 0 ? 3 : left === 0 ? 2 : left <= max / 10 ? 1 : 0;
      if (level !== null && now !== level) spoken.textContent = shown.textContent;
      level = now;
    };
    field.addEventListener("input", update);
    update();
  }

  // A form with a field over its limit is not sent: the field says so, as the server
  // would, and keeps every character.
  document.addEventListener("submit", (event) => {
    const over = Array.from(event.target.querySelectorAll("[data-max-length]")).filter(
      (field) => charactersIn(field.value) > Number(field.dataset.maxLength));
    over.forEach((field) => {
      const why = "At most " + number(Number(field.dataset.maxLength)) + " characters (" +
        number(charactersIn(field.value)) + " typed).";
      let error = document.getElementById(field.id + "-error");
      if (!error) {
        error = document.createElement("p");
        error.className = "error";
        error.id = field.id + "-error";
        field.closest(".field").append(error);
      }
      error.textContent = why;
      field.closest(".field").classList.add("has-error");
      field.setAttribute("aria-invalid", "true");
      const described = field.getAttribute("aria-describedby") || "";
      if (!described.includes(error.id)) field.setAttribute("aria-describedby", (described + " " + error.id).trim());
    });
    if (over.length) {
      event.preventDefault();
      over[0].focus();
    }
  });

  // Typed text whose field a re-render took away (the consult is no longer yours,
  // the action no longer open to you) goes to the "Your unsent text" box.
  function textsTyped(region) {
    return Array.from(region.querySelectorAll("textarea, input[type=text]"))
      .filter((el) => el.name && el.value.trim())
      .map((el) => {
        const label = el.id && region.querySelector('label[for="' + el.id + '"]');
        return { name: el.name, text: el.value, label: label ? label.textContent.trim() : "" };
      });
  }

  function keepWhatHasNoField(region, drafts) {
    drafts.filter((d) => !region.querySelector('[name="' + d.name + '"]')).forEach(keepUnsent);
  }

  function keepUnsent(draft) {
    const box = document.getElementById("unsent-text");
    if (!box) return;
    const kept = Array.from(box.querySelectorAll("textarea")).map((el) => el.value);
    if (kept.includes(draft.text)) return;
    const id = "unsent-" + (kept.length + 1);
    const label = document.createElement("label");
    label.className = "unsent-label";
    label.htmlFor = id;
    label.textContent = draft.label || "Your text";
    const area = document.createElement("textarea");
    area.id = id;
    area.readOnly = true;
    area.rows = 4;
    area.value = draft.text;
    box.append(label, area);
    box.hidden = false;
  }

  function notice(text) {
    const notices = document.getElementById("consult-notices");
    if (!notices || Array.from(notices.children).some((p) => p.textContent === text)) return;
    const line = document.createElement("p");
    line.className = "notice";
    line.setAttribute("role", "alert");
    line.textContent = text;
    notices.append(line);
  }

  // The consult left what this person may see (redirected to another department):
  // its forms go, what was typed in them stays.
  function lostFromView(region) {
    textsTyped(region).forEach(keepUnsent);
    region.querySelectorAll(".actions").forEach((section) => section.remove());
    notice("This consult has moved where you cannot follow it; nothing you typed was sent.");
  }

  // Whoever loses ownership by someone else's action is told on the page they have open.
  const consultRegion = regions.find((r) => r.dataset.liveConsult);
  BrokerLive.on("notification", (n) => {
    if (consultRegion && String(n.consult_id) === consultRegion.dataset.liveConsult &&
        ["reassigned", "redirected_away"].includes(n.kind)) notice(n.message);
  });

  // A form shown again after a refusal or an error is the consult's page: its address
  // goes back in the address bar (a reload then shows the consult, not a resend).
  const pageUrl = consultRegion && consultRegion.dataset.pageUrl;
  if (pageUrl && window.location.pathname !== pageUrl) window.history.replaceState(null, "", pageUrl);

  enhance(document);
  const firstError = document.querySelector('[aria-invalid="true"]');
  if (firstError) firstError.focus();
})();
