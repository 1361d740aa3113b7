// coldbrew web page: plain JavaScript over the /v1 HTTP API, no build step, no external resources.
//
// Every product card is a button carrying data-item-id; clicking one posts a `click` event for
// the current user and refreshes the profile and the recommendation list. All text coming from
// the server is inserted with textContent (never innerHTML), so product titles cannot inject markup.
"use strict";

(() => {
  const KEY_STORAGE = "coldbrew.apiKey";
  const USER_STORAGE = "coldbrew.userId";
  const CATALOG_PAGE = 20;

  const state = {
    apiKey: "",
    userId: "",
    paths: null, // Set of OpenAPI path templates when /openapi.json is readable, else null
    items: new Map(), // item_id -> last seen item object (for titles)
    catalog: { q: "", offset: 0, total: 0 },
    conversationId: null,
    lastClicked: null,
    recsSeq: 0,
    loadedTabs: new Set(),
    plotUrls: [],
  };

  const $ = (id) => document.getElementById(id);

  /** Build an element: el("li", {class: "x", dataset: {itemId: "1"}}, "text", child, ...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // ------------------------------------------------------------------ HTTP
  class ApiError extends Error {
    constructor(status, message, field) {
      super(message);
      this.status = status;
      this.field = field || null;
    }
  }

  function errorMessage(data, response) {
    if (data && typeof data === "object") {
      if (data.error && data.error.message) return data.error.message;
      if (typeof data.detail === "string") return data.detail;
      if (Array.isArray(data.detail) && data.detail.length) {
        return data.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
      }
      if (typeof data.message === "string") return data.message;
    }
    return `${response.status} ${response.statusText || "error"}`;
  }

  function authHeaders() {
    return state.apiKey ? { "X-API-Key": state.apiKey } : {};
  }

  /** Call the API; returns parsed JSON or throws ApiError (status, message naming the field). */
  async function api(method, path, { query, body } = {}) {
    const url = new URL(path, window.location.origin);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
    }
    const headers = { Accept: "application/json", ...authHeaders() };
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      setServerStatus(false, "the server cannot be reached");
      throw new ApiError(0, "the server cannot be reached");
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const field = data && data.error ? data.error.field : null;
      const error = new ApiError(response.status, errorMessage(data, response), field);
      if (response.status === 401) {
        showBanner("This server needs an API key: enter it at the top of the page.");
      } else if (response.status === 403) {
        showBanner(`The API key is not allowed to do this (${error.message}).`);
      }
      throw error;
    }
    if (method === "GET" || response.status < 300) hideBannerIfAuth();
    return data;
  }

  function showBanner(message) {
    const banner = $("banner");
    banner.textContent = message;
    banner.dataset.kind = "auth";
    banner.hidden = false;
  }

  function hideBannerIfAuth() {
    const banner = $("banner");
    if (!banner.hidden && banner.dataset.kind === "auth") banner.hidden = true;
  }

  function setStatus(id, message, isError = false) {
    const node = $(id);
    node.textContent = message;
    node.classList.toggle("out", Boolean(isError));
  }

  function setServerStatus(up, message) {
    const node = $("server-status");
    node.textContent = message;
    node.classList.toggle("down", !up);
  }

  /** True when the endpoint is known to exist (or when the API description could not be read). */
  function available(pathTemplate) {
    return state.paths === null || state.paths.has(pathTemplate);
  }

  function unavailable(error, pathTemplate) {
    return !available(pathTemplate) || (error instanceof ApiError && error.status === 404 && state.paths === null)
      || (error instanceof ApiError && error.status === 405 && state.paths === null);
  }

  function showUnavailable(container, statusId) {
    if (container) container.replaceChildren(el("div", { class: "unavailable-note" }, "Not available on this server."));
    if (statusId) setStatus(statusId, "");
  }

  // ------------------------------------------------------------------ formatting
  function formatPrice(price) {
    if (price === null || price === undefined || price === "" || Number.isNaN(Number(price))) return "";
    return Number(price).toFixed(2);
  }

  function formatNumber(value) {
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return value.toLocaleString("en");
    return Math.abs(value) >= 100 ? value.toFixed(1) : value.toPrecision(3);
  }

  function formatTime(ts) {
    if (ts === null || ts === undefined || ts === "") return "";
    const date = typeof ts === "number" ? new Date(ts * 1000) : new Date(ts);
    if (Number.isNaN(date.getTime())) return String(ts);
    return date.toLocaleString();
  }

  function remember(items) {
    for (const item of items || []) {
      if (item && item.item_id !== undefined) state.items.set(String(item.item_id), item);
    }
  }

  function itemTitle(itemId, fallback) {
    const known = state.items.get(String(itemId));
    return (known && known.title) || fallback || String(itemId);
  }

  /** One product card: a button with the title, category, price and the reason it is shown. */
  function itemCard(item, rank, extra) {
    const meta = [item.category, formatPrice(item.price), item.item_id].filter((x) => x !== "" && x !== null && x !== undefined);
    const score = typeof item.score === "number" ? `score ${item.score.toFixed(3)}` : null;
    return el("li", {},
      el("button", {
        type: "button",
        class: "item" + (state.lastClicked === String(item.item_id) ? " clicked" : ""),
        dataset: { itemId: String(item.item_id) },
        title: score,
      },
      rank ? el("span", { class: "rank" }, `#${rank}`) : null,
      el("span", { class: "title" }, item.title || String(item.item_id)),
      el("span", { class: "meta" }, meta.join(" · ")),
      item.reason ? el("span", { class: "reason" }, item.reason) : null,
      extra || null));
  }

  function renderItems(list, items, { ranked = true, extra } = {}) {
    remember(items);
    const before = Array.from(list.querySelectorAll("[data-item-id]")).map((n) => n.dataset.itemId).join("|");
    list.replaceChildren(...(items || []).map((item, i) => itemCard(item, ranked ? i + 1 : 0, extra ? extra(item) : null)));
    const after = (items || []).map((item) => String(item.item_id)).join("|");
    if (before !== after) {
      list.classList.remove("changed");
      void list.offsetWidth; // restart the highlight animation
      list.classList.add("changed");
    }
  }

  // ------------------------------------------------------------------ user and key
  function newUserId() {
    const bytes = new Uint8Array(5);
    window.crypto.getRandomValues(bytes);
    return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function setUser(userId) {
    state.userId = userId;
    state.conversationId = null;
    state.lastClicked = null;
    localStorage.setItem(USER_STORAGE, userId);
    $("user-id").value = userId;
    $("recs").replaceChildren();
    $("similar-block").hidden = true;
    $("chat-log").replaceChildren();
    $("churn").textContent = "";
    setStatus("recs-status", "Tell us what you like, or click a product in the catalog below.");
  }

  async function refreshUser() {
    const events = await refreshProfile();
    if (events > 0) await refreshRecs();
  }

  // ------------------------------------------------------------------ server status
  async function loadHealth() {
    try {
      const response = await fetch("/healthz", { headers: { Accept: "application/json", ...authHeaders() } });
      const data = await response.json().catch(() => ({}));
      const parts = [response.ok ? "server up" : `server answered ${response.status}`];
      for (const [name, value] of Object.entries(data || {})) {
        if (name !== "status" && (typeof value === "string" || typeof value === "number")) parts.push(`${name.replace(/_/g, " ")} ${value}`);
      }
      setServerStatus(response.ok, parts.join(" · "));
    } catch (err) {
      setServerStatus(false, "the server cannot be reached");
    }
  }

  async function loadCapabilities() {
    try {
      const response = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const spec = await response.json();
      if (spec && spec.paths) state.paths = new Set(Object.keys(spec.paths));
    } catch (err) {
      state.paths = null;
    }
    const optional = {
      search: "/v1/search",
      chat: "/v1/chat",
      promotions: "/v1/promotions/select",
      analytics: "/v1/analytics",
      report: "/v1/reports/latest",
    };
    for (const [tab, path] of Object.entries(optional)) {
      const button = document.querySelector(`.tab[data-tab="${tab}"]`);
      const missing = !available(path);
      button.classList.toggle("unavailable", missing);
      button.title = missing ? "not available on this server" : "";
    }
  }

  // ------------------------------------------------------------------ onboarding
  async function loadCategoryChips() {
    let data;
    try {
      data = await api("GET", "/v1/items", { query: { offset: 0, limit: 100 } });
    } catch (err) {
      return; // the chips are a convenience; typing interests works without them
    }
    const counts = new Map();
    for (const item of data.items || []) {
      if (item.category) counts.set(item.category, (counts.get(item.category) || 0) + 1);
    }
    const categories = Array.from(counts.keys()).sort().slice(0, 24);
    $("category-chips").replaceChildren(...categories.map((c) =>
      el("button", { type: "button", class: "chip", "aria-pressed": "false", dataset: { category: c } }, c)));
    $("category-list").replaceChildren(...categories.map((c) => el("option", { value: c })));
  }

  async function onboard(event) {
    event.preventDefault();
    const text = $("interests").value.trim();
    const categories = Array.from(document.querySelectorAll(".chip[aria-pressed=true]")).map((n) => n.dataset.category);
    if (!text && !categories.length) {
      setStatus("onboarding-status", "Type a few words about what you like, or pick a category.", true);
      return;
    }
    const body = { user_id: state.userId, k: kValue() };
    if (text) body.text = text;
    if (categories.length) body.categories = categories;
    setStatus("onboarding-status", "finding products…");
    $("onboard").disabled = true;
    try {
      const data = await api("POST", "/v1/onboarding", { body });
      state.recsSeq += 1; // a newer list than any recommendation request still in flight
      renderItems($("recs"), data.items || []);
      setStatus("onboarding-status", "");
      setStatus("recs-status", `${(data.items || []).length} products for your interests`
        + (data.model_version ? ` · model ${data.model_version}` : ""));
      await refreshProfile();
    } catch (err) {
      setStatus("onboarding-status", err.message, true);
    } finally {
      $("onboard").disabled = false;
    }
  }

  // ------------------------------------------------------------------ recommendations
  function kValue() {
    const k = parseInt($("filter-k").value, 10);
    return Number.isFinite(k) && k > 0 ? Math.min(k, 100) : 12;
  }

  async function refreshRecs() {
    const seq = ++state.recsSeq;
    const query = { k: kValue(), category: $("filter-category").value.trim(), max_price: $("filter-max-price").value };
    setStatus("recs-status", "updating…");
    try {
      const data = await api("GET", `/v1/users/${encodeURIComponent(state.userId)}/recommendations`, { query });
      if (seq !== state.recsSeq) return; // a newer request has answered or is on its way
      renderItems($("recs"), data.items || []);
      const when = new Date().toLocaleTimeString();
      setStatus("recs-status", `${(data.items || []).length} products · model ${data.model_version || "?"} · updated ${when}`);
    } catch (err) {
      if (seq !== state.recsSeq) return;
      setStatus("recs-status", err.message, true);
    }
  }

  async function refreshSimilar(itemId) {
    if (!available("/v1/items/{item_id}/similar")) return;
    try {
      const data = await api("GET", `/v1/items/${encodeURIComponent(itemId)}/similar`, { query: { k: 6 } });
      $("similar-anchor").textContent = itemTitle(itemId);
      renderItems($("similar"), data.items || [], { ranked: false });
      $("similar-block").hidden = !(data.items || []).length;
    } catch (err) {
      $("similar-block").hidden = true;
    }
  }

  // ------------------------------------------------------------------ profile
  /** Show the user's profile; returns how many events the server holds for them. */
  async function refreshProfile() {
    const box = $("profile");
    let data;
    try {
      data = await api("GET", `/v1/users/${encodeURIComponent(state.userId)}/profile`);
    } catch (err) {
      if (err.status === 404) {
        box.replaceChildren(el("p", { class: "muted" }, "No events yet: describe your interests or click a product."));
      } else {
        box.replaceChildren(el("p", { class: "out" }, err.message));
      }
      return 0;
    }
    const history = data.history || [];
    const interests = data.interests || [];
    const events = typeof data.events === "number" ? data.events : history.length;
    box.replaceChildren(
      el("div", { class: "stats" },
        el("div", { class: "stat" }, el("b", { id: "profile-events" }, formatNumber(events)), "events"),
        el("div", { class: "stat" }, el("b", {}, formatNumber(new Set(history.map((h) => h.item_id)).size)), "products")),
      interests.length ? el("div", { class: "interests" }, el("h3", {}, "Interests"),
        ...interests.map((w) => el("span", { class: "tag" }, w))) : null,
      history.length ? el("h3", {}, "Latest activity") : el("p", { class: "muted" }, "No events yet."),
      history.length ? el("ol", { class: "history", id: "profile-history" }, ...history.map((h) =>
        el("li", { dataset: { itemId: String(h.item_id) } },
          el("span", {}, h.title || itemTitle(h.item_id)),
          el("span", { class: "event" }, `${h.event || "event"} · ${formatTime(h.timestamp)}`)))) : null,
    );
    return events;
  }

  // ------------------------------------------------------------------ clicks
  async function clickProduct(itemId, node) {
    if (node) node.disabled = true;
    try {
      await api("POST", "/v1/events", { body: { user_id: state.userId, item_id: itemId, event: "click" } });
    } catch (err) {
      setStatus("recs-status", `the click was not recorded: ${err.message}`, true);
      if (node) node.disabled = false;
      return;
    }
    state.lastClicked = String(itemId);
    await Promise.all([refreshProfile(), refreshRecs(), refreshSimilar(itemId)]);
    if (node) node.disabled = false;
  }

  // ------------------------------------------------------------------ catalog
  async function loadCatalog() {
    const { q, offset } = state.catalog;
    setStatus("catalog-status", "loading…");
    let data;
    try {
      data = await api("GET", "/v1/items", { query: { q, offset, limit: CATALOG_PAGE } });
    } catch (err) {
      setStatus("catalog-status", err.message, true);
      return;
    }
    const items = data.items || [];
    remember(items);
    state.catalog.total = typeof data.total === "number" ? data.total : items.length;
    $("catalog-rows").replaceChildren(...items.map((item) =>
      el("tr", { dataset: { itemId: String(item.item_id) }, title: "click to show interest in this product" },
        el("td", {}, el("span", { class: "title" }, item.title || String(item.item_id)), " ",
          el("span", { class: "muted" }, String(item.item_id))),
        el("td", {}, item.category || ""),
        el("td", { class: "num" }, formatPrice(item.price)),
        el("td", { class: item.in_stock === false ? "out" : "" }, item.in_stock === false ? "out of stock" : "in stock"))));
    const total = state.catalog.total;
    const first = items.length ? offset + 1 : 0;
    $("catalog-page").textContent = `${first}–${offset + items.length} of ${total.toLocaleString("en")}`;
    $("catalog-prev").disabled = offset <= 0;
    $("catalog-next").disabled = offset + items.length >= total;
    setStatus("catalog-status", items.length ? (q ? `products matching “${q}”` : "all products")
      : (q ? `no product matches “${q}”` : "the catalog is empty"));
  }

  // ------------------------------------------------------------------ search
  async function runSearch(event) {
    event.preventDefault();
    const q = $("search-q").value.trim();
    if (!q) {
      setStatus("search-status", "Type what you are looking for.", true);
      return;
    }
    if (!available("/v1/search")) return showUnavailable($("search-results"), "search-status");
    setStatus("search-status", "searching…");
    try {
      const data = await api("GET", "/v1/search", { query: { q, user_id: state.userId, k: 12, mode: $("search-mode").value } });
      renderItems($("search-results"), data.items || []);
      setStatus("search-status", `${(data.items || []).length} results (${data.mode || $("search-mode").value})`);
    } catch (err) {
      if (unavailable(err, "/v1/search")) return showUnavailable($("search-results"), "search-status");
      setStatus("search-status", err.message, true);
    }
  }

  // ------------------------------------------------------------------ chat
  async function sendChat(event) {
    event.preventDefault();
    const message = $("chat-message").value.trim();
    if (!message) return;
    const log = $("chat-log");
    if (!available("/v1/chat")) return showUnavailable(log, "chat-status");
    log.append(el("div", { class: "bubble user" }, message));
    $("chat-message").value = "";
    setStatus("chat-status", "the assistant is thinking…");
    try {
      const body = { user_id: state.userId, message };
      if (state.conversationId) body.conversation_id = state.conversationId;
      const data = await api("POST", "/v1/chat", { body });
      state.conversationId = data.conversation_id || state.conversationId;
      const slots = Object.entries(data.slots || {}).filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length));
      const items = el("ol", { class: "items compact" });
      renderItems(items, data.items || []);
      log.append(el("div", { class: "bubble assistant" },
        data.intent ? el("span", { class: "intent" }, `intent: ${data.intent}` + (slots.length ? ` · ${slots.map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`).join(" · ")}` : "")) : null,
        data.text || ""), items);
      log.scrollTop = log.scrollHeight;
      setStatus("chat-status", "");
    } catch (err) {
      if (unavailable(err, "/v1/chat")) return showUnavailable(log, "chat-status");
      setStatus("chat-status", err.message, true);
    }
  }

  // ------------------------------------------------------------------ promotions
  async function loadPromotions(event) {
    if (event) event.preventDefault();
    const list = $("promotions");
    if (!available("/v1/promotions/select")) return showUnavailable(list, "promotions-status");
    const slots = Math.max(1, Math.min(10, parseInt($("promotions-slots").value, 10) || 3));
    setStatus("promotions-status", "choosing promotions…");
    try {
      const data = await api("POST", "/v1/promotions/select",
        { body: { user_id: state.userId, slots, language: $("promotions-language").value } });
      const placements = data.placements || [];
      list.replaceChildren(...placements.map((p) => itemCard(
        { item_id: p.item_id, title: p.title || itemTitle(p.item_id), reason: p.explanation, category: p.slot !== undefined ? `slot ${p.slot}` : "" },
        0,
        el("span", { class: "extra" },
          p.copy ? el("span", {}, p.copy, el("br")) : null,
          el("span", { class: "muted" }, [
            typeof p.predicted_ctr === "number" ? `predicted CTR ${(100 * p.predicted_ctr).toFixed(2)} %` : null,
            typeof p.bid === "number" ? `bid ${p.bid}` : null,
            p.promotion_id !== undefined ? `promotion ${p.promotion_id}` : null,
          ].filter(Boolean).join(" · "))))));
      setStatus("promotions-status", placements.length ? `${placements.length} placements` : "no promotion fits right now");
    } catch (err) {
      if (unavailable(err, "/v1/promotions/select")) return showUnavailable(list, "promotions-status");
      setStatus("promotions-status", err.message, true);
    }
  }

  // ------------------------------------------------------------------ analytics
  /** Render any JSON value readably: objects as definition lists, arrays of objects as tables. */
  function renderValue(value, depth = 0) {
    if (value === null || value === undefined) return el("span", { class: "muted" }, "—");
    if (typeof value !== "object") return el("span", {}, formatNumber(value));
    if (Array.isArray(value)) {
      if (value.length && value.every((v) => v && typeof v === "object" && !Array.isArray(v))) {
        const columns = Array.from(new Set(value.flatMap((v) => Object.keys(v))));
        return el("table", {},
          el("thead", {}, el("tr", {}, ...columns.map((c) =>
            el("th", { class: typeof value[0][c] === "number" ? "num" : "" }, c.replace(/_/g, " "))))),
          el("tbody", {}, ...value.slice(0, 100).map((row) =>
            el("tr", {}, ...columns.map((c) => el("td", { class: typeof row[c] === "number" ? "num" : "" },
              row[c] !== null && typeof row[c] === "object" ? JSON.stringify(row[c]) : formatNumber(row[c] ?? "")))))));
      }
      return el("span", {}, value.map((v) => (typeof v === "object" ? JSON.stringify(v) : formatNumber(v))).join(", "));
    }
    const entries = Object.entries(value);
    if (depth > 3) return el("code", {}, JSON.stringify(value));
    return el("dl", {}, ...entries.flatMap(([k, v]) => [el("dt", {}, k.replace(/_/g, " ")), el("dd", {}, renderValue(v, depth + 1))]));
  }

  async function loadAnalytics() {
    const box = $("analytics");
    if (!available("/v1/analytics")) return showUnavailable(box, "analytics-status");
    setStatus("analytics-status", "loading…");
    try {
      const data = await api("GET", "/v1/analytics");
      box.replaceChildren(...Object.entries(data || {}).map(([k, v]) =>
        el("section", {}, el("h3", {}, k.replace(/_/g, " ")), renderValue(v))));
      setStatus("analytics-status", "");
    } catch (err) {
      if (unavailable(err, "/v1/analytics")) return showUnavailable(box, "analytics-status");
      setStatus("analytics-status", err.message, true);
      return;
    }
    if (available("/v1/analytics/users/{user_id}/churn")) {
      try {
        const churn = await api("GET", `/v1/analytics/users/${encodeURIComponent(state.userId)}/churn`);
        $("churn").textContent = typeof churn.churn_risk === "number"
          ? `your churn risk: ${(100 * churn.churn_risk).toFixed(0)} %` : "";
      } catch (err) {
        $("churn").textContent = err.status === 404 ? "no churn estimate for you yet (no events)" : "";
      }
    }
  }

  // ------------------------------------------------------------------ evaluation report
  /** PNG addresses anywhere in the report answer; bare file names are served under /v1/reports/files/. */
  function plotUrls(value, out = new Set()) {
    if (typeof value === "string") {
      if (/\.png$/i.test(value) && !/\s/.test(value)) {
        out.add(value.startsWith("/") || /^https?:/.test(value) ? value : `/v1/reports/files/${value.split("/").pop()}`);
      }
    } else if (value && typeof value === "object") {
      for (const v of Object.values(value)) plotUrls(v, out);
    }
    return out;
  }

  /** Warm users first, then new items, then new users by the number of events revealed. */
  function bySegment(a, b) {
    const rank = (s) => [s.startsWith("warm") ? 0 : s.includes("item") ? 1 : 2, parseFloat((s.split("@")[1] || "0")) || 0, s];
    const [x, y] = [rank(a), rank(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2].localeCompare(y[2]);
  }

  function resultsTable(results, metric) {
    const models = Object.keys(results);
    const segments = Array.from(new Set(models.flatMap((m) => Object.keys(results[m] || {})))).sort(bySegment);
    const best = {};
    for (const s of segments) {
      best[s] = Math.max(...models.map((m) => ((results[m] || {})[s] || {})[metric] ?? -Infinity));
    }
    return el("table", { class: "results" },
      el("caption", { class: "muted" }, metric),
      el("thead", {}, el("tr", {}, el("th", {}, "model"), ...segments.map((s) => el("th", { class: "num" }, s.replace(/_/g, " "))))),
      el("tbody", {}, ...models.map((m) => el("tr", {}, el("td", {}, m), ...segments.map((s) => {
        const v = ((results[m] || {})[s] || {})[metric];
        const cell = typeof v === "number" ? v.toFixed(4) : "—";
        return el("td", { class: "num" }, v === best[s] ? el("b", {}, cell) : cell);
      })))));
  }

  async function loadReport() {
    const box = $("report");
    if (!available("/v1/reports/latest")) return showUnavailable(box, "report-status");
    setStatus("report-status", "loading…");
    let data;
    try {
      data = await api("GET", "/v1/reports/latest");
    } catch (err) {
      if (unavailable(err, "/v1/reports/latest")) return showUnavailable(box, "report-status");
      box.replaceChildren();
      setStatus("report-status", err.status === 404
        ? "No evaluation report on this server yet (run `coldbrew evaluate --out <the service's report folder>`)."
        : err.message, err.status !== 404);
      return;
    }
    const report = data && typeof data.report === "object" && data.report ? data.report : data;
    const k = report.k || 20;
    const summary = {};
    for (const name of ["split", "cutoff_utc", "train_events", "test_events", "items_seen", "items_new", "coldbrew_version", "command", "created_at"]) {
      if (report[name] !== undefined && report[name] !== null && report[name] !== "") summary[name] = report[name];
    }
    if (report.users && typeof report.users === "object") summary.users = report.users;
    const parts = [renderValue(summary)];
    if (report.results && typeof report.results === "object") {
      const metrics = new Set();
      for (const segs of Object.values(report.results)) {
        for (const values of Object.values(segs || {})) for (const m of Object.keys(values || {})) metrics.add(m);
      }
      for (const metric of [`ndcg@${k}`, `recall@${k}`]) {
        if (metrics.has(metric)) parts.push(resultsTable(report.results, metric));
      }
    }
    for (const url of state.plotUrls) URL.revokeObjectURL(url);
    state.plotUrls = [];
    const plots = el("div", { class: "plots" });
    parts.push(plots);
    box.replaceChildren(...parts.map((p) => el("div", { class: "analytics" }, p)));
    const urls = Array.from(plotUrls(data));
    setStatus("report-status", `latest report · ${urls.length} plot${urls.length === 1 ? "" : "s"}`);
    // Fetched with the API key (an <img src> could not send the header), shown as blob URLs.
    await Promise.all(urls.map(async (url) => {
      try {
        const response = await fetch(url, { headers: authHeaders() });
        if (!response.ok) throw new Error(`${response.status}`);
        const objectUrl = URL.createObjectURL(await response.blob());
        state.plotUrls.push(objectUrl);
        const name = url.split("/").pop();
        plots.append(el("figure", {}, el("img", { src: objectUrl, alt: name.replace(/[_.-]/g, " ") }), el("figcaption", {}, name)));
      } catch (err) {
        plots.append(el("p", { class: "out" }, `plot ${url} could not be loaded (${err.message})`));
      }
    }));
  }

  // ------------------------------------------------------------------ tabs
  const tabLoaders = { analytics: loadAnalytics, report: loadReport };

  function showTab(name) {
    for (const button of document.querySelectorAll(".tab")) {
      button.setAttribute("aria-selected", String(button.dataset.tab === name));
    }
    for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== `panel-${name}`;
    const optional = { search: "/v1/search", chat: "/v1/chat", promotions: "/v1/promotions/select" };
    if (optional[name] && !available(optional[name])) {
      const target = { search: "search-results", chat: "chat-log", promotions: "promotions" }[name];
      showUnavailable($(target), `${name}-status`);
    }
    if (tabLoaders[name] && !state.loadedTabs.has(name)) {
      state.loadedTabs.add(name);
      tabLoaders[name]();
    }
  }

  // ------------------------------------------------------------------ wiring
  function wire() {
    $("session-form").addEventListener("submit", (event) => event.preventDefault());
    $("api-key").addEventListener("change", () => {
      state.apiKey = $("api-key").value.trim();
      if (state.apiKey) localStorage.setItem(KEY_STORAGE, state.apiKey);
      else localStorage.removeItem(KEY_STORAGE);
      $("banner").hidden = true;
      state.loadedTabs.clear();
      reloadAll();
    });
    $("user-id").addEventListener("change", () => {
      const value = $("user-id").value.trim();
      if (value && value === state.userId) return; // a second change event (on blur): nothing new
      setUser(value || newUserId());
      refreshUser();
    });
    $("new-user").addEventListener("click", () => {
      setUser(newUserId());
      $("interests").value = "";
      for (const chip of document.querySelectorAll(".chip")) chip.setAttribute("aria-pressed", "false");
      refreshProfile();
    });
    $("onboarding-form").addEventListener("submit", onboard);
    $("category-chips").addEventListener("click", (event) => {
      const chip = event.target.closest(".chip");
      if (chip) chip.setAttribute("aria-pressed", String(chip.getAttribute("aria-pressed") !== "true"));
    });
    $("recs-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      refreshRecs();
    });
    document.addEventListener("click", (event) => {
      const card = event.target.closest("button.item[data-item-id], #catalog-rows tr[data-item-id]");
      if (card) clickProduct(card.dataset.itemId, card.tagName === "BUTTON" ? card : null);
    });
    $("catalog-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.catalog.q = $("catalog-q").value.trim();
      state.catalog.offset = 0;
      loadCatalog();
    });
    $("catalog-prev").addEventListener("click", () => {
      state.catalog.offset = Math.max(0, state.catalog.offset - CATALOG_PAGE);
      loadCatalog();
    });
    $("catalog-next").addEventListener("click", () => {
      state.catalog.offset += CATALOG_PAGE;
      loadCatalog();
    });
    $("search-form").addEventListener("submit", runSearch);
    $("chat-form").addEventListener("submit", sendChat);
    $("chat-reset").addEventListener("click", () => {
      state.conversationId = null;
      $("chat-log").replaceChildren();
    });
    $("promotions-form").addEventListener("submit", loadPromotions);
    $("analytics-load").addEventListener("click", loadAnalytics);
    $("report-load").addEventListener("click", loadReport);
    for (const button of document.querySelectorAll(".tab")) {
      button.addEventListener("click", () => showTab(button.dataset.tab));
    }
  }

  async function reloadAll() {
    await Promise.all([loadHealth(), loadCapabilities()]);
    await Promise.all([refreshUser(), loadCatalog(), loadCategoryChips()]);
    const open = document.querySelector(".tab[aria-selected=true]");
    if (open && tabLoaders[open.dataset.tab]) {
      state.loadedTabs.add(open.dataset.tab);
      await tabLoaders[open.dataset.tab]();
    }
  }

  async function start() {
    state.apiKey = localStorage.getItem(KEY_STORAGE) || "";
    $("api-key").value = state.apiKey;
    setUser(localStorage.getItem(USER_STORAGE) || newUserId());
    wire();
    await reloadAll();
    document.body.dataset.ready = "true"; // lets the browser test wait for the first load
  }

  start();
})();
