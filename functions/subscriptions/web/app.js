// The web app: a person pastes an API key, then manages that key's webhooks through the API of
// the same origin (SPEC §7). Plain script, no build step, no dependencies.
//
// Safety rule: every string that comes from the API or the user (names, URLs, errors, response
// bodies, company ids) reaches the page as text, through createElement / append / textContent /
// value. Nothing here parses markup, so an injected string has nothing to run.
"use strict";

(() => {
  /** The key lives in this tab only: gone when the tab closes or on sign-out. */
  const KEY_STORAGE = "webhooks.api_key";
  /** Failures in a row at which a webhook trips (SPEC §6, WEBHOOKS_MAX_ATTEMPTS' default). */
  const TRIP_THRESHOLD = 5;
  /** Most custom headers a webhook may have (SPEC §7). */
  const MAX_HEADERS = 10;
  /** Most conditions on the body a webhook may have (SPEC §10). */
  const MAX_FILTERS = 10;
  /** Most values of one "is one of" condition (SPEC §10). */
  const MAX_FILTER_VALUES = 100;
  /** The conditions' operators, in plain words. */
  const FILTER_OPS = [
    ["eq", "is"],
    ["in", "is one of"],
    ["prefix", "starts with"],
    ["exists", "is present"],
  ];
  /** What a value of each operator is typed as. */
  const FILTER_VALUE_HELP = {
    eq: "Text, a number, true, false or null.",
    in: "Separate several with commas.",
    prefix: "The beginning of the text, exactly.",
  };
  /** A JSON number, which a typed value is compared as unless it is in double quotes. */
  const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;
  /** Default grace of the previous secret after a rotation (SPEC §7), in hours. */
  const ROTATION_GRACE_HOURS = 24;
  const PAGE_SIZE = 50;
  const IDENTIFIER = /^[A-Za-z0-9_-]{1,64}$/;

  const GROUP_TITLES = {
    record: "Records",
    checklist: "Checklists",
    list: "Lists",
    custom_field: "Custom fields",
    tag: "Tags",
    comment: "Comments",
  };
  const DISABLED_REASONS = {
    failing: "It kept failing, so it was switched off. Events are held back and sent once you enable it again.",
    gone: "Your system answered “410 Gone”, so it was switched off. Events are held back and sent once you enable it again.",
    manual: "Switched off by hand. New events are not sent and not kept until you enable it again.",
  };
  const DROP_REASONS = {
    manual_disabled: "while disabled by hand",
    webhook_deleted: "webhook deleted",
    owner_revoked: "key lost access",
    park_full: "too many held back",
    park_expired: "held back too long",
  };
  const LOG_STATUSES = {
    succeeded: { label: "Succeeded", kind: "ok" },
    pending: { label: "Failed, will retry", kind: "warn" },
    failed: { label: "Failed", kind: "bad" },
    parked: { label: "Held back", kind: "muted" },
  };

  const state = {
    key: null,
    me: null,
    eventTypes: null,
    /** Event type -> its detail (`GET /v1/event-types/{type}`: schema and example). */
    eventTypeDetails: new Map(),
    webhooks: new Map(),
    listCursor: null,
    editing: null,
    /** The create being submitted from the editor: its body (JSON) and Idempotency-Key. */
    pendingCreate: null,
    deliveries: { id: null, cursor: null },
  };

  // ------------------------------------------------------------------ building blocks

  const $ = (id) => document.getElementById(id);

  /** An element with attributes (`on*` functions become listeners) and text or element children. */
  function h(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
      else if (name === "class") node.className = value;
      else if (["checked", "value", "disabled", "hidden", "indeterminate"].includes(name)) node[name] = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  /** Appends children: nodes as they are, anything else as text. */
  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function setText(node, ...children) {
    node.replaceChildren();
    return append(node, children);
  }

  let uid = 0;
  const nextId = (prefix) => `${prefix}-${++uid}`;

  /** API messages quote names with backticks; people read quotes better. */
  const readable = (message) => String(message ?? "").replace(/`([^`]*)`/g, "“$1”");

  /** An event type code that may wrap after its underscores (TODO_CHECKLIST_ITEM_..._REMOVED). */
  function typeCode(type, className = "type-code") {
    const parts = String(type).split("_");
    return h("code", { class: className }, parts.map((part, i) => (i ? ["_", h("wbr"), part] : part)));
  }

  /** An error text worth showing beside a status code (the code alone says "HTTP 500"). */
  const extraError = (error, statusCode) => (error && error !== `HTTP ${statusCode}` ? error : null);

  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

  function ago(date) {
    const seconds = Math.round((date.getTime() - Date.now()) / 1000);
    const steps = [[60, "second"], [60, "minute"], [24, "hour"], [Infinity, "day"]];
    let value = seconds;
    for (const [size, unit] of steps) {
      if (Math.abs(value) < size) return relativeFormat.format(value, unit);
      value = Math.round(value / size);
    }
    return "";
  }

  /** A `<time>` for an RFC 3339 string, with its distance from now. */
  function when(iso) {
    if (!iso) return null;
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return h("time", { datetime: iso, title: iso }, dateFormat.format(date), h("span", { class: "muted" }, ` (${ago(date)})`));
  }

  // ------------------------------------------------------------------ the API

  class ApiError extends Error {
    constructor(status, body) {
      const error = body && typeof body === "object" ? body.error ?? null : null;
      super(readable(error?.message ?? body?.message ?? ApiError.fallback(status)));
      this.status = status;
      this.code = error?.code ?? null;
      this.field = error?.field ?? null;
      this.details = error?.details ?? null;
    }

    static fallback(status) {
      if (status === 0) return "The service could not be reached. Check your connection and try again.";
      if (status >= 500) return "The service is unavailable right now. Trying again is safe.";
      return `The request failed (HTTP ${status}).`;
    }
  }

  async function api(method, path, body, headers = {}) {
    const init = {
      method,
      headers: { ...headers, authorization: `Bearer ${state.key}` },
      cache: "no-store",
      credentials: "omit",
    };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, null);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (response.ok) return data;
    const error = new ApiError(response.status, data);
    if (response.status === 401 && state.me) {
      signOut("Your API key is no longer accepted (it may have been replaced or deleted). Sign in again.");
    }
    throw error;
  }

  const webhookPath = (id, rest = "") => `/v1/webhooks/${encodeURIComponent(id)}${rest}`;

  /** A new Idempotency-Key: 32 random hex characters. */
  function newIdempotencyKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /**
   * The create to send for this form content, with its Idempotency-Key (SPEC §10): the same key
   * while the content stays the same, so a double submit, or sending again after an answer was
   * lost, creates one webhook and gets its answer; changed content is a new create.
   */
  function pendingCreate(body) {
    const json = JSON.stringify(body);
    if (state.pendingCreate?.json !== json) state.pendingCreate = { json, key: newIdempotencyKey(), createdId: null };
    return state.pendingCreate;
  }

  // ------------------------------------------------------------------ views and messages

  const VIEWS = ["signin", "list", "editor", "deliveries"];

  function show(view, title) {
    for (const name of VIEWS) $(`view-${name}`).hidden = name !== view;
    document.title = title ? `${title} · Webhooks` : "Webhooks";
  }

  /** Moves focus to a view's heading, so keyboard and screen-reader users land where it changed. */
  function focusHeading(view) {
    const heading = $(`view-${view}`).querySelector("h1");
    if (!heading) return;
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }

  /** A page-wide message (announced politely). */
  function flash(message, kind = "ok") {
    const box = $("flash");
    if (!message) {
      box.replaceChildren();
      box.className = "flash";
      return;
    }
    setText(box, message);
    box.className = `flash notice notice-${kind}`;
  }

  /** Opens the view the address names; resolves once it is drawn. */
  function route() {
    if (!state.me) {
      show("signin", "Sign in");
      return Promise.resolve();
    }
    const hash = location.hash || "#/";
    let match;
    if (hash === "#/new") return openEditor(null);
    if ((match = hash.match(/^#\/webhooks\/([^/]+)\/edit$/))) return openEditor(decodeURIComponent(match[1]));
    if ((match = hash.match(/^#\/webhooks\/([^/]+)\/deliveries$/))) return openDeliveries(decodeURIComponent(match[1]));
    return openList();
  }

  /** Goes to `hash` (a history entry, as a link would) and waits for the view; keeps the flash message. */
  function navigate(hash) {
    history.pushState(null, "", hash);
    return route();
  }

  // ------------------------------------------------------------------ sign in

  function showSigninError(message) {
    const error = $("api-key-error");
    error.textContent = message;
    error.hidden = !message;
    $("api-key").setAttribute("aria-invalid", message ? "true" : "false");
  }

  async function signIn(key) {
    state.key = key;
    let me;
    try {
      me = await api("GET", "/v1/me");
    } catch (error) {
      state.key = null;
      // A refused key is forgotten; after a network or service error the tab may retry it.
      if (error.status === 401) sessionStorage.removeItem(KEY_STORAGE);
      show("signin", "Sign in");
      showSigninError(
        error.status === 401
          ? "This key was not accepted. Check that you pasted the whole key, and that it was not replaced or deleted."
          : error.message,
      );
      $("api-key").focus();
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    state.me = me;
    $("api-key").value = "";
    showSigninError("");
    renderWhoami();
    await route();
    if (!$("view-list").hidden) focusHeading("list");
  }

  function signOut(message, kind = "warn") {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    state.me = null;
    state.webhooks.clear();
    $("whoami").hidden = true;
    $("webhooks").replaceChildren();
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
    $("secret-value").value = "";
    flash(message ?? "", kind);
    if (location.hash && location.hash !== "#/") history.replaceState(null, "", "#/");
    show("signin", "Sign in");
    $("api-key").focus();
  }

  function renderWhoami() {
    const me = state.me;
    setText($("whoami-name"), me.name || me.id);
    $("whoami").hidden = false;
    setText($("key-name"), me.name || me.id, " ", h("span", { class: "muted" }, `(${me.id})`));
    const companies = me.companies ?? [];
    setText(
      $("key-companies"),
      companies.length ? companies.map((c, i) => [i ? " " : "", h("code", { class: "chip" }, c)]) : "—",
    );
    const can = {
      manage: "manage webhooks",
      publish: me.publish_rate ? `publish events (up to ${me.publish_rate} per second, bursts of ${me.publish_rate * 2})` : "publish events",
    };
    setText($("key-permissions"), (me.permissions ?? []).map((p) => can[p] ?? p).join(", ") || (me.is_admin ? "administer keys and webhooks" : "—"));
    const note = $("key-note");
    if (me.is_admin) {
      note.textContent = "This is the admin key: it sees every customer's webhooks and can change them, but webhooks are created with a customer's key.";
    } else if (!mayManage()) {
      note.textContent = "This key may only publish events. Ask your administrator for a key that may manage webhooks.";
    } else {
      note.textContent = "";
    }
    note.hidden = !note.textContent;
    $("new-webhook").hidden = !mayCreate();
  }

  const mayManage = () => state.me?.is_admin || (state.me?.permissions ?? []).includes("manage");
  const mayCreate = () => !state.me?.is_admin && (state.me?.permissions ?? []).includes("manage");

  // ------------------------------------------------------------------ the list

  async function openList() {
    show("list", "Webhooks");
    await loadWebhooks(false);
  }

  /** Counts list loads: only the latest one draws. */
  let listLoads = 0;

  async function loadWebhooks(more) {
    const list = $("webhooks");
    if (!mayManage()) {
      list.replaceChildren();
      $("list-empty").hidden = true;
      $("list-more").hidden = true;
      return;
    }
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (more && state.listCursor) params.set("cursor", state.listCursor);
    const load = ++listLoads;
    list.setAttribute("aria-busy", "true");
    let page;
    try {
      // The event types too (once), for each card's choice of test event.
      [page] = await Promise.all([api("GET", `/v1/webhooks?${params}`), loadEventTypes().catch(() => null)]);
    } catch (error) {
      list.removeAttribute("aria-busy");
      if (error.status !== 401) flash(`The webhooks could not be loaded: ${error.message}`, "error");
      return;
    }
    list.removeAttribute("aria-busy");
    if (load !== listLoads) return;
    if (!more) {
      list.replaceChildren();
      state.webhooks.clear();
    }
    for (const webhook of page.data ?? []) {
      state.webhooks.set(webhook.id, webhook);
      const item = h("li", { class: "webhook", id: `webhook-${webhook.id}` });
      list.append(item);
      renderCard(item, webhook);
    }
    state.listCursor = page.next_cursor ?? null;
    $("list-more").hidden = !state.listCursor;
    $("list-empty").hidden = state.webhooks.size > 0;
  }

  /** What state a webhook is in, as a person would say it. */
  function condition(webhook) {
    const failures = webhook.health?.consecutive_failures ?? 0;
    if (webhook.status === "disabled") {
      const reason = webhook.disabled_reason ?? "manual";
      const label = { failing: "Disabled: failing", gone: "Disabled: gone", manual: "Disabled" }[reason] ?? "Disabled";
      return { kind: "bad", label, text: DISABLED_REASONS[reason] ?? "Switched off." };
    }
    if (failures >= TRIP_THRESHOLD) {
      return {
        kind: "bad",
        label: "Tripped",
        text: `${plural(failures, "failure", "failures")} in a row. New events are held back while one delivery at a time checks whether your system is back; enable it to check now.`,
      };
    }
    if (failures > 0) {
      return {
        kind: "warn",
        label: "Failing",
        text: `The last ${plural(failures, "attempt", "attempts")} failed. Failed deliveries are retried.`,
      };
    }
    return { kind: "ok", label: "Active", text: "Events are being sent." };
  }

  function describeEvents(events) {
    if (!events?.length) return "All events";
    const shown = events.slice(0, 6).map((e, i) => [i ? ", " : "", typeCode(e, "")]);
    return [shown, events.length > 6 ? ` and ${events.length - 6} more` : ""];
  }

  function describeScopes(scopes) {
    if (!scopes?.length) return state.me?.is_admin ? "Every company of its owner key" : "Every company of your key";
    const byCompany = new Map();
    for (const scope of scopes) {
      const entry = byCompany.get(scope.company_id) ?? { whole: false, projects: [] };
      if (scope.project_id) entry.projects.push(scope.project_id);
      else entry.whole = true;
      byCompany.set(scope.company_id, entry);
    }
    return h(
      "ul",
      { class: "plain" },
      [...byCompany].map(([company, entry]) =>
        h(
          "li",
          {},
          h("code", {}, company),
          entry.whole ? ": the whole company" : [": ", entry.projects.length === 1 ? "project " : "projects ", entry.projects.map((p, i) => [i ? ", " : "", h("code", {}, p)])],
        ),
      ),
    );
  }

  /** A value as a person reads it: text in quotes, numbers and true/false as they are. */
  function describeValue(value) {
    if (typeof value === "string") return `“${value}”`;
    return value === null ? "empty (null)" : String(value);
  }

  /** One condition in plain words: “data.status is one of “open”, “done””. */
  function describeFilter(filter) {
    const field = h("code", {}, filter.path);
    switch (filter.op) {
      case "eq":
        return [field, " is ", describeValue(filter.value)];
      case "in":
        return [field, " is one of ", filter.value.map((v, i) => [i ? ", " : "", describeValue(v)])];
      case "prefix":
        return [field, " starts with ", describeValue(filter.value)];
      default:
        return [field, " is present"];
    }
  }

  function describeFilters(filters) {
    if (filters.length === 1) return describeFilter(filters[0]);
    return h("ul", { class: "plain" }, filters.map((f, i) => h("li", {}, i ? "and " : "", describeFilter(f))));
  }

  function describeDropped(dropped) {
    const entries = Object.entries(dropped ?? {}).filter(([, n]) => n > 0);
    if (!entries.length) return "None";
    const total = entries.reduce((sum, [, n]) => sum + n, 0);
    return `${total} (${entries.map(([reason, n]) => `${n} ${DROP_REASONS[reason] ?? reason}`).join(", ")})`;
  }

  /** How requests are signed (SPEC §10): a shared secret, or a key pair whose public key is shown to copy. */
  function describeSignature(webhook, item) {
    if (webhook.signature_scheme !== "v1a") return "Shared secret (v1, HMAC-SHA256)";
    const keyId = nextId("public-key");
    return [
      "Public key (v1a, Ed25519): ",
      h("code", { id: keyId, class: "public-key" }, webhook.public_key ?? ""),
      " ",
      h("button", { type: "button", class: "button-quiet", "data-action": "copy-public-key", "aria-describedby": keyId, onclick: () => copyPublicKey(webhook, item) }, "Copy public key"),
    ];
  }

  async function copyPublicKey(webhook, item) {
    item = liveCard(webhook.id, item);
    try {
      await navigator.clipboard.writeText(webhook.public_key);
      setResult(item, "ok", "Public key copied.");
    } catch {
      const code = item.querySelector("code.public-key");
      if (code) window.getSelection()?.selectAllChildren(code);
      setResult(item, "warn", "Copying is not allowed here: the public key is selected, press Ctrl+C (or ⌘+C) to copy it.");
    }
  }

  function fact(term, ...value) {
    return h("div", {}, h("dt", {}, term), h("dd", {}, ...value));
  }

  /** Fills a list item with the webhook; keeps its result line. */
  function renderCard(item, webhook) {
    const result = item.querySelector(".result") ?? h("div", { class: "result", role: "status", "aria-live": "polite" });
    const titleId = `webhook-title-${webhook.id}`;
    const c = condition(webhook);
    const health = webhook.health ?? {};

    const lastError = health.last_failure_at
      ? [
          when(health.last_failure_at),
          health.last_status_code ? ` · HTTP ${health.last_status_code}` : "",
          extraError(health.last_error, health.last_status_code) ? [" · ", h("span", { class: "error-text" }, health.last_error)] : "",
        ]
      : "None";

    const actions = h(
      "div",
      { class: "card-actions" },
      h("a", { class: "button", href: `#/webhooks/${encodeURIComponent(webhook.id)}/deliveries`, "data-action": "deliveries", "aria-describedby": titleId }, "Deliveries"),
      h("a", { class: "button", href: `#/webhooks/${encodeURIComponent(webhook.id)}/edit`, "data-action": "edit", "aria-describedby": titleId }, "Edit"),
      testControl(webhook, titleId, item),
      webhook.status === "disabled" || (health.consecutive_failures ?? 0) >= TRIP_THRESHOLD
        ? h("button", { type: "button", class: "button-primary", "data-action": "toggle", "aria-describedby": titleId, onclick: () => enable(webhook.id, item) }, "Enable")
        : null,
      webhook.status === "active"
        ? h("button", { type: "button", "data-action": "toggle-off", "aria-describedby": titleId, onclick: () => disable(webhook.id, item) }, "Disable")
        : null,
      h("button", { type: "button", "data-action": "rotate", "aria-describedby": titleId, onclick: () => rotateSecret(webhook.id, item) }, webhook.signature_scheme === "v1a" ? "New key pair" : "New secret"),
      h("button", { type: "button", class: "button-danger-quiet", "data-action": "delete", "aria-describedby": titleId, onclick: () => remove(webhook.id, item) }, "Delete"),
    );

    const article = h(
      "article",
      { "aria-labelledby": titleId },
      h(
        "div",
        { class: "webhook-head" },
        h("h2", { id: titleId, class: webhook.name ? "" : "unnamed" }, webhook.name || "Unnamed webhook"),
        h("span", { class: `badge badge-${c.kind}` }, c.label),
      ),
      h("p", { class: "url-line" }, h("span", { class: "visually-hidden" }, "Address: "), h("code", { class: "url" }, webhook.url)),
      h("p", { class: `state-text state-${c.kind}` }, c.text),
      webhook.description ? h("p", { class: "description" }, webhook.description) : null,
      h(
        "dl",
        { class: "facts" },
        fact("Events", describeEvents(webhook.events)),
        fact("Sends for", describeScopes(webhook.scopes)),
        fact("Pace", webhook.rate_limit ? `At most ${plural(webhook.rate_limit, "request", "requests")} per second; more wait their turn` : "No limit"),
        webhook.filters?.length ? fact("Only when", describeFilters(webhook.filters)) : null,
        fact("Signature", describeSignature(webhook, item)),
        fact("Last success", when(health.last_success_at) ?? "Never"),
        fact("Last error", lastError),
        fact("Held back", webhook.parked ? `${plural(webhook.parked, "delivery", "deliveries")}, sent when it is enabled again` : "None"),
        fact("Dropped", describeDropped(health.dropped)),
        state.me?.is_admin ? fact("Owner key", h("code", {}, webhook.owner_key_id)) : null,
      ),
      result,
      actions,
    );
    item.replaceChildren(article);
  }

  function updateCard(item, webhook) {
    state.webhooks.set(webhook.id, webhook);
    renderCard(item, webhook);
  }

  function setResult(item, kind, ...message) {
    const result = item.querySelector(".result");
    setText(result, ...message);
    result.className = `result notice notice-${kind}`;
  }

  /**
   * Runs an action with its button disabled and marked busy. Focus comes back to the button, or
   * to its successor when the card was redrawn (Disable becomes Enable), so keyboard users stay put.
   */
  async function busy(button, work) {
    const hadFocus = !!button && document.activeElement === button;
    const action = button?.dataset.action;
    const cardId = button?.closest("li.webhook")?.id;
    if (button) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
    }
    try {
      return await work();
    } finally {
      if (button?.isConnected) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
        if (hadFocus) button.focus();
      } else if (hadFocus && cardId && $(cardId)) {
        const card = $(cardId);
        (card.querySelector(`[data-action="${action}"]`) ?? card.querySelector('[data-action^="toggle"]'))?.focus();
      }
    }
  }

  /**
   * The card of `id` now on the page: the list may have been redrawn while an action ran. An
   * action's answer is newer than any list load still in flight, so those are dropped.
   */
  function liveCard(id, item) {
    listLoads++;
    const live = $(`webhook-${id}`);
    return live && live !== item ? live : item;
  }

  const buttonOf = (item, action) => item.querySelector(`[data-action="${action}"]`);

  /** `{status_code, duration_ms, error}` of a health check, in words. */
  function outcomeText(outcome) {
    const took = outcome?.duration_ms != null ? ` in ${outcome.duration_ms} ms` : "";
    const parts = [];
    if (outcome?.status_code != null) parts.push(`your system answered HTTP ${outcome.status_code}${took}`);
    else parts.push(`no answer${took}`);
    if (outcome?.error) parts.push(`error: ${outcome.error}`);
    return parts.join("; ");
  }

  /**
   * "Send test" and what it sends: the health check, or the example of one of the event types
   * the webhook receives (all of them when it receives every type).
   */
  function testControl(webhook, titleId, item) {
    const types = state.eventTypes ?? [];
    const receives = webhook.events?.length ? types.filter((t) => webhook.events.includes(t.type)) : types;
    const groups = new Map();
    for (const type of receives) {
      if (!groups.has(type.group)) groups.set(type.group, []);
      groups.get(type.group).push(type);
    }
    const selectId = nextId("test-type");
    const select = h(
      "select",
      { id: selectId, "data-test-type": "", "aria-describedby": titleId },
      h("option", { value: "" }, "Health check"),
      [...groups].map(([group, members]) =>
        h("optgroup", { label: GROUP_TITLES[group] ?? group }, members.map((t) => h("option", { value: t.type, title: t.type }, t.description || t.type))),
      ),
    );
    return h(
      "div",
      { class: "test-control" },
      h("label", { for: selectId, class: "visually-hidden" }, "Test event to send"),
      select,
      h("button", { type: "button", "data-action": "test", "aria-describedby": titleId, onclick: () => sendTest(webhook.id, item) }, "Send test"),
    );
  }

  async function sendTest(id, item) {
    // No body sends the health check; a type sends its example (`GET /v1/event-types/{type}`).
    const type = item.querySelector("[data-test-type]")?.value || "";
    const what = type ? `Test event ${type}` : "Test";
    await busy(buttonOf(item, "test"), async () => {
      setResult(item, "muted", type ? `Sending the example of ${type}…` : "Sending a test event…");
      try {
        const outcome = await api("POST", webhookPath(id, "/test"), type ? { event_type: type } : undefined);
        item = liveCard(id, item);
        const ok = outcome.status_code >= 200 && outcome.status_code < 300;
        setResult(item, ok ? "ok" : "error", `${what} ${ok ? "delivered" : "failed"}: `, outcomeText(outcome), ".");
      } catch (error) {
        setResult(liveCard(id, item), "error", "The test could not be sent: ", error.message);
      }
    });
  }

  async function enable(id, item) {
    await busy(buttonOf(item, "toggle"), async () => {
      setResult(item, "muted", "Checking your system with a health check…");
      try {
        const answer = await api("POST", webhookPath(id, "/enable"));
        item = liveCard(id, item);
        updateCard(item, answer.webhook);
        const replayed = answer.replayed ?? 0;
        setResult(
          item,
          "ok",
          "Health check passed: the webhook is active.",
          replayed ? ` ${plural(replayed, "held-back delivery is", "held-back deliveries are")} being sent again.` : "",
        );
      } catch (error) {
        item = liveCard(id, item);
        if (error.code === "health_check_failed") {
          setResult(item, "error", "Health check failed: ", outcomeText(error.details), ". The webhook is unchanged.");
        } else {
          setResult(item, "error", "Could not enable: ", error.message);
        }
      }
    });
  }

  async function disable(id, item) {
    await busy(buttonOf(item, "toggle-off"), async () => {
      try {
        const webhook = await api("POST", webhookPath(id, "/disable"));
        item = liveCard(id, item);
        updateCard(item, webhook);
        setResult(item, "ok", "Disabled. New events are not sent until you enable it again.");
      } catch (error) {
        setResult(liveCard(id, item), "error", "Could not disable: ", error.message);
      }
    });
  }

  async function rotateSecret(id, item) {
    const webhook = state.webhooks.get(id);
    if (webhook?.signature_scheme === "v1a") return rotateKeyPair(webhook, item);
    const yes = await confirmDialog({
      title: "Create a new signing secret?",
      text: `A new secret for “${webhook?.name || webhook?.url || id}” is shown once. The current one keeps working for ${ROTATION_GRACE_HOURS} hours, so you can update your system without missing events.`,
      confirm: "Create new secret",
      danger: false,
    });
    if (!yes) return;
    await busy(buttonOf(item, "rotate"), async () => {
      try {
        const answer = await api("POST", webhookPath(id, "/rotate-secret"), {});
        item = liveCard(id, item);
        setResult(item, "ok", "A new signing secret was created.");
        showSecret(answer.secret, `The previous secret keeps working for ${ROTATION_GRACE_HOURS} hours.`, buttonOf(item, "rotate"));
      } catch (error) {
        const message = error.status === 404 ? "this service does not offer it yet, or the webhook no longer exists." : error.message;
        setResult(liveCard(id, item), "error", "Could not create a new secret: ", message);
      }
    });
  }

  /** A `v1a` webhook gets a new key pair: its public key replaces the one on the card; nothing secret is shown. */
  async function rotateKeyPair(webhook, item) {
    const id = webhook.id;
    const yes = await confirmDialog({
      title: "Create a new key pair?",
      text: `Requests to “${webhook.name || webhook.url}” are signed with a new key from now on. The current key also signs them for ${ROTATION_GRACE_HOURS} hours, so you can give your system the new public key without missing events.`,
      confirm: "Create new key pair",
      danger: false,
    });
    if (!yes) return;
    await busy(buttonOf(item, "rotate"), async () => {
      try {
        await api("POST", webhookPath(id, "/rotate-secret"), {});
        item = liveCard(id, item);
        updateCard(item, await api("GET", webhookPath(id)));
        setResult(item, "ok", `A new key pair was created: check requests with the public key shown here. The previous one keeps signing for ${ROTATION_GRACE_HOURS} hours.`);
      } catch (error) {
        setResult(liveCard(id, item), "error", "Could not create a new key pair: ", error.message);
      }
    });
  }

  async function remove(id, item) {
    const webhook = state.webhooks.get(id);
    const yes = await confirmDialog({
      title: "Delete this webhook?",
      text: `“${webhook?.name || webhook?.url || id}” stops receiving events at once, and deliveries waiting for it are dropped. This cannot be undone.`,
      confirm: "Delete webhook",
      danger: true,
    });
    if (!yes) return;
    await busy(buttonOf(item, "delete"), async () => {
      try {
        await api("DELETE", webhookPath(id));
        state.webhooks.delete(id);
        liveCard(id, item).remove();
        item.remove();
        $("list-empty").hidden = state.webhooks.size > 0;
        flash(`Deleted “${webhook?.name || webhook?.url || id}”.`);
        focusHeading("list");
      } catch (error) {
        setResult(liveCard(id, item), "error", "Could not delete: ", error.message);
      }
    });
  }

  // ------------------------------------------------------------------ dialogs

  /** Resolves true when the person confirms. */
  function confirmDialog({ title, text, confirm, danger }) {
    const dialog = $("confirm-dialog");
    const opener = document.activeElement;
    setText($("confirm-title"), title);
    setText($("confirm-text"), text);
    const yes = $("confirm-yes");
    setText(yes, confirm);
    yes.className = danger ? "button-danger" : "button-primary";
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => {
          if (opener?.isConnected) opener.focus();
          resolve(dialog.returnValue === "yes");
        },
        { once: true },
      );
      dialog.showModal();
    });
  }

  function showSecret(secret, note, returnFocusTo) {
    const dialog = $("secret-dialog");
    $("secret-value").value = secret ?? "";
    setText($("secret-copied"), "");
    const grace = $("secret-grace");
    grace.textContent = note ?? "";
    grace.hidden = !note;
    dialog.addEventListener(
      "close",
      () => {
        $("secret-value").value = "";
        if (returnFocusTo?.isConnected) returnFocusTo.focus();
      },
      { once: true },
    );
    dialog.showModal();
    $("secret-value").select();
  }

  async function copySecret() {
    const input = $("secret-value");
    const status = $("secret-copied");
    try {
      await navigator.clipboard.writeText(input.value);
      status.textContent = "Copied.";
    } catch {
      input.focus();
      input.select();
      status.textContent = "Copying is not allowed here: the secret is selected, press Ctrl+C (or ⌘+C) to copy it.";
    }
  }

  // ------------------------------------------------------------------ create and edit

  /** Per submit: API field path -> {control, error} so the API's `error.field` lands next to its input. */
  let fieldTargets = new Map();

  async function loadEventTypes() {
    if (!state.eventTypes) state.eventTypes = (await api("GET", "/v1/event-types")).data ?? [];
    return state.eventTypes;
  }

  /** `{type, group, description, schema, example}` of one type, fetched once. */
  async function loadEventTypeDetail(type) {
    if (!state.eventTypeDetails.has(type)) {
      state.eventTypeDetails.set(type, await api("GET", `/v1/event-types/${encodeURIComponent(type)}`));
    }
    return state.eventTypeDetails.get(type);
  }

  /** Counts example requests: only the latest one draws. */
  let examplesShown = 0;

  /** Shows, under the group of the box just checked, the body a receiver gets for its type. */
  async function showExample(box) {
    const type = box.value;
    const panel =
      $("event-example") ??
      h(
        "section",
        { id: "event-example", class: "event-example", "aria-labelledby": "event-example-title" },
        h("h3", { id: "event-example-title" }),
        h("p", { id: "event-example-help", class: "help" }),
        h("pre", { id: "event-example-body", class: "example-body", tabindex: "0" }),
        h(
          "details",
          { id: "event-example-schema" },
          h("summary", {}, "The schema of ", h("code", {}, "data"), " (JSON Schema)"),
          h("pre", { class: "example-schema", tabindex: "0" }),
        ),
      );
    box.closest(".event-group").append(panel);
    setText($("event-example-title"), "Example: ", typeCode(type, ""));
    const help = $("event-example-help");
    const body = $("event-example-body");
    const schema = $("event-example-schema");
    setText(help, "Loading the example…");
    body.hidden = true;
    schema.hidden = true;
    const shown = ++examplesShown;
    let detail;
    try {
      detail = await loadEventTypeDetail(type);
    } catch (error) {
      if (shown === examplesShown) setText(help, `The example could not be loaded: ${error.message}`);
      return;
    }
    if (shown !== examplesShown) return;
    setText(
      help,
      "The body your system receives for this event, signed like every delivery. Ids and values are made up; ",
      h("code", {}, "webhook_id"),
      " is your webhook's id. “Send test” sends this example.",
    );
    setText(body, JSON.stringify(detail.example, null, 2));
    setText(schema.querySelector("pre"), JSON.stringify(detail.schema, null, 2));
    body.hidden = false;
    schema.hidden = false;
  }

  async function openEditor(id) {
    state.pendingCreate = null;
    show("editor", id ? "Edit webhook" : "New webhook");
    const form = $("editor-form");
    clearErrors();
    setText($("editor-title"), id ? "Edit webhook" : "New webhook");
    setText($("editor-submit"), id ? "Save changes" : "Create webhook");
    if (!id && !mayCreate()) {
      form.hidden = true;
      flash(state.me?.is_admin ? "The admin key cannot create webhooks: sign in with a customer's key." : "This key may not manage webhooks.", "warn");
      return;
    }
    form.hidden = true;
    let webhook = null;
    try {
      const [types, loaded] = await Promise.all([loadEventTypes(), id ? api("GET", webhookPath(id)) : null]);
      webhook = loaded;
      buildEventGroups(types, webhook?.events ?? null);
    } catch (error) {
      flash(`The form could not be loaded: ${error.message}`, "error");
      return;
    }
    state.editing = webhook;
    setText($("scopes-everything-label"), state.me?.is_admin ? "Every company of the key that owns it" : "Every company of this key", ", including companies added to it later");
    $("wh-url").value = webhook?.url ?? "";
    $("wh-name").value = webhook?.name ?? "";
    $("wh-description").value = webhook?.description ?? "";
    $("wh-rate-limit").value = webhook?.rate_limit ?? "";
    buildScopes(webhook?.scopes ?? []);
    $("header-rows").replaceChildren();
    for (const [name, value] of Object.entries(webhook?.headers ?? {})) addHeaderRow(name, value);
    updateHeaderButton();
    $("filter-rows").replaceChildren();
    for (const filter of webhook?.filters ?? []) addFilterRow(filter);
    updateFilterButton();
    $(webhook?.signature_scheme === "v1a" ? "scheme-v1a" : "scheme-v1").checked = true;
    form.hidden = false;
    flash("");
    focusHeading("editor");
  }

  function buildEventGroups(types, selected) {
    const container = $("event-groups");
    container.replaceChildren();
    const groups = new Map();
    for (const type of types) {
      if (!groups.has(type.group)) groups.set(type.group, []);
      groups.get(type.group).push(type);
    }
    // An existing webhook with no events listed gets all of them; a new one starts with none.
    const all = Array.isArray(selected) && selected.length === 0;
    for (const [group, members] of groups) {
      const allId = nextId("group-all");
      const errorId = nextId("group-error");
      const boxes = members.map((type) => {
        const boxId = `event-${type.type}`;
        return h(
          "li",
          { class: "field-inline" },
          h("input", {
            id: boxId,
            type: "checkbox",
            name: "events",
            value: type.type,
            checked: all || (selected ?? []).includes(type.type),
            "data-group": group,
            "aria-describedby": errorId,
            onchange: (event) => {
              syncEventBoxes();
              if (event.target.checked) showExample(event.target);
            },
          }),
          h("label", { for: boxId }, h("span", {}, type.description || type.type), " ", typeCode(type.type)),
        );
      });
      container.append(
        h(
          "fieldset",
          { class: "event-group", "data-group": group },
          h("legend", {}, GROUP_TITLES[group] ?? group),
          h(
            "div",
            { class: "field-inline group-all" },
            h("input", { id: allId, type: "checkbox", "data-group-all": group, onchange: (e) => setGroup(group, e.target.checked) }),
            h("label", { for: allId }, "All in this group"),
          ),
          h("p", { id: errorId, class: "field-error", hidden: true }),
          h("ul", { class: "event-list" }, boxes),
        ),
      );
    }
    syncEventBoxes();
  }

  const eventBoxes = (group) =>
    [...document.querySelectorAll('#event-groups input[name="events"]')].filter((box) => !group || box.dataset.group === group);

  function setGroup(group, checked) {
    for (const box of eventBoxes(group)) box.checked = checked;
    syncEventBoxes();
  }

  /** Group and "all events" boxes follow the event boxes: checked, unchecked or partly. */
  function syncEventBoxes() {
    for (const groupBox of document.querySelectorAll("#event-groups [data-group-all]")) {
      const boxes = eventBoxes(groupBox.dataset.groupAll);
      const checked = boxes.filter((b) => b.checked).length;
      groupBox.checked = checked === boxes.length;
      groupBox.indeterminate = checked > 0 && checked < boxes.length;
    }
    const boxes = eventBoxes();
    const checked = boxes.filter((b) => b.checked).length;
    const allBox = $("events-all");
    allBox.checked = boxes.length > 0 && checked === boxes.length;
    allBox.indeterminate = checked > 0 && checked < boxes.length;
  }

  function buildScopes(scopes) {
    const container = $("scope-companies");
    container.replaceChildren();
    const held = state.me?.companies ?? [];
    const chosen = new Map();
    for (const scope of scopes) {
      const entry = chosen.get(scope.company_id) ?? { whole: false, projects: [] };
      if (scope.project_id) entry.projects.push(scope.project_id);
      else entry.whole = true;
      chosen.set(scope.company_id, entry);
    }
    const companies = [...held, ...[...chosen.keys()].filter((c) => !held.includes(c))];
    for (const company of companies) {
      const entry = chosen.get(company);
      const base = nextId("company");
      const projectsInput = h("input", {
        id: `${base}-projects`,
        type: "text",
        spellcheck: "false",
        autocomplete: "off",
        placeholder: "e.g. p1, p2",
        value: entry && !entry.whole ? entry.projects.join(", ") : "",
        "aria-describedby": `${base}-projects-help ${base}-projects-error`,
      });
      const wholeRadio = h("input", { id: `${base}-whole`, type: "radio", name: `${base}-mode`, value: "whole", checked: !entry || entry.whole, onchange: syncScopes });
      const projectsRadio = h("input", { id: `${base}-only`, type: "radio", name: `${base}-mode`, value: "projects", checked: !!entry && !entry.whole, onchange: syncScopes });
      const include = h("input", { id: `${base}-include`, type: "checkbox", checked: !!entry, "aria-describedby": `${base}-error`, onchange: syncScopes });
      container.append(
        h(
          "fieldset",
          { class: "company", "data-company": company },
          h("legend", { class: "visually-hidden" }, `Company ${company}`),
          h(
            "div",
            { class: "field-inline" },
            include,
            h("label", { for: include.id }, "Company ", h("code", {}, company), held.includes(company) || state.me?.is_admin ? "" : h("span", { class: "muted" }, " (this key no longer holds it)")),
          ),
          h("p", { id: `${base}-error`, class: "field-error", hidden: true }),
          h(
            "div",
            { class: "company-detail", "data-detail": "" },
            h("div", { class: "field-inline" }, wholeRadio, h("label", { for: wholeRadio.id }, "The whole company (every project)")),
            h("div", { class: "field-inline" }, projectsRadio, h("label", { for: projectsRadio.id }, "Only some projects")),
            h(
              "div",
              { class: "field project-ids", "data-projects": "" },
              h("label", { for: projectsInput.id }, "Project ids"),
              projectsInput,
              h("p", { id: `${base}-projects-error`, class: "field-error", hidden: true }),
              h("p", { id: `${base}-projects-help`, class: "help" }, "Separate several with commas or spaces."),
            ),
          ),
        ),
      );
    }
    $("scopes-everything").checked = scopes.length === 0;
    $("scopes-chosen").checked = scopes.length > 0;
    syncScopes();
  }

  function syncScopes() {
    const chosen = $("scopes-chosen").checked;
    $("scope-companies").hidden = !chosen;
    for (const company of document.querySelectorAll("#scope-companies .company")) {
      const included = company.querySelector('input[type="checkbox"]').checked;
      company.querySelector("[data-detail]").hidden = !included;
      const projects = company.querySelector('input[value="projects"]').checked;
      company.querySelector("[data-projects]").hidden = !projects;
    }
  }

  function addHeaderRow(name = "", value = "") {
    const base = nextId("header");
    const nameInput = h("input", { id: `${base}-name`, type: "text", spellcheck: "false", autocomplete: "off", placeholder: "X-Example", value: name, "aria-describedby": `${base}-error`, "data-header-name": "" });
    const valueInput = h("input", { id: `${base}-value`, type: "text", spellcheck: "false", autocomplete: "off", value, "data-header-value": "" });
    const row = h(
      "div",
      { class: "header-row" },
      h("div", { class: "field" }, h("label", { for: nameInput.id }, "Header name"), nameInput),
      h("div", { class: "field" }, h("label", { for: valueInput.id }, "Value"), valueInput),
      h(
        "button",
        {
          type: "button",
          class: "button-quiet",
          "aria-label": "Remove this header",
          onclick: () => {
            row.remove();
            updateHeaderButton();
            $("add-header").focus();
          },
        },
        "Remove",
      ),
      h("p", { id: `${base}-error`, class: "field-error", hidden: true }),
    );
    $("header-rows").append(row);
    updateHeaderButton();
    return nameInput;
  }

  function updateHeaderButton() {
    $("add-header").disabled = $("header-rows").children.length >= MAX_HEADERS;
  }

  /** A typed value: as text, or as the number, true, false or null it spells (quotes keep text). */
  function formatScalar(value, inList) {
    if (typeof value !== "string") return JSON.stringify(value);
    const ambiguous = NUMBER.test(value.trim()) || /^(true|false|null)$/.test(value.trim()) || value.startsWith('"') || value !== value.trim();
    return ambiguous || (inList && value.includes(",")) ? JSON.stringify(value) : value;
  }

  function formatFilterValue(filter) {
    if (filter.op === "prefix") return filter.value;
    if (filter.op === "in") return filter.value.map((v) => formatScalar(v, true)).join(", ");
    if (filter.op === "eq") return formatScalar(filter.value, false);
    return "";
  }

  /** What a person typed as one value: `"3"` is text, 3 a number, true/false/null themselves. */
  function parseScalar(text) {
    const t = text.trim();
    if (t.startsWith('"')) {
      const value = JSON.parse(t);
      if (typeof value !== "string") throw new Error("not text");
      return value;
    }
    if (/^(true|false|null)$/.test(t) || NUMBER.test(t)) return JSON.parse(t);
    return t;
  }

  /** Splits “a, "b, c", d” at the commas outside double quotes. */
  function splitValues(text) {
    const items = [];
    let current = "";
    let quoted = false;
    let escaped = false;
    for (const c of text) {
      if (quoted) {
        if (escaped) escaped = false;
        else if (c === "\\") escaped = true;
        else if (c === '"') quoted = false;
      } else if (c === '"') {
        quoted = true;
      } else if (c === ",") {
        items.push(current);
        current = "";
        continue;
      }
      current += c;
    }
    items.push(current);
    return items.map((item) => item.trim()).filter(Boolean);
  }

  /** The API value of a condition typed in a row, or the reason it cannot be one. */
  function filterValue(op, text) {
    try {
      if (op === "exists") return {};
      if (op === "prefix") return { value: text };
      if (op === "eq") {
        if (!text.trim()) return { error: "Type the value to compare with, or choose “is present”." };
        return { value: parseScalar(text) };
      }
      const items = splitValues(text);
      if (!items.length) return { error: "Type one or more values, separated by commas." };
      if (items.length > MAX_FILTER_VALUES) return { error: `At most ${MAX_FILTER_VALUES} values.` };
      return { value: items.map(parseScalar) };
    } catch {
      return { error: "Check the double quotes: a quoted value is text, like \"42\"." };
    }
  }

  function syncFilterRow(row) {
    const op = row.querySelector("[data-filter-op]").value;
    row.querySelector("[data-filter-value-field]").hidden = op === "exists";
    setText(row.querySelector("[data-filter-value-help]"), FILTER_VALUE_HELP[op] ?? "");
  }

  function addFilterRow(filter = null) {
    const base = nextId("filter");
    const pathInput = h("input", { id: `${base}-path`, type: "text", spellcheck: "false", autocomplete: "off", placeholder: "data.currentValue.status", value: filter?.path ?? "", "aria-describedby": `${base}-error`, "data-filter-path": "" });
    const op = filter?.op ?? "eq";
    const opSelect = h(
      "select",
      { id: `${base}-op`, "aria-describedby": `${base}-error`, "data-filter-op": "", onchange: () => syncFilterRow(row) },
      FILTER_OPS.map(([value, words]) => h("option", { value, selected: value === op }, words)),
    );
    const valueInput = h("input", { id: `${base}-value`, type: "text", spellcheck: "false", autocomplete: "off", value: filter ? formatFilterValue(filter) : "", "aria-describedby": `${base}-value-help ${base}-error`, "data-filter-value": "" });
    const row = h(
      "div",
      { class: "filter-row" },
      h("div", { class: "field" }, h("label", { for: pathInput.id }, "Field"), pathInput),
      h("div", { class: "field" }, h("label", { for: opSelect.id }, "Condition"), opSelect),
      h("div", { class: "field", "data-filter-value-field": "" }, h("label", { for: valueInput.id }, "Compared with"), valueInput, h("p", { id: `${base}-value-help`, class: "help", "data-filter-value-help": "" })),
      h(
        "button",
        {
          type: "button",
          class: "button-quiet",
          "aria-label": "Remove this condition",
          onclick: () => {
            row.remove();
            updateFilterButton();
            $("add-filter").focus();
          },
        },
        "Remove",
      ),
      h("p", { id: `${base}-error`, class: "field-error", hidden: true }),
    );
    $("filter-rows").append(row);
    syncFilterRow(row);
    updateFilterButton();
    return pathInput;
  }

  function updateFilterButton() {
    $("add-filter").disabled = $("filter-rows").children.length >= MAX_FILTERS;
  }

  function clearErrors() {
    fieldTargets = new Map();
    for (const error of document.querySelectorAll("#editor-form .field-error")) {
      error.textContent = "";
      error.hidden = true;
    }
    for (const control of document.querySelectorAll('#editor-form [aria-invalid="true"]')) control.removeAttribute("aria-invalid");
    const summary = $("editor-error");
    summary.replaceChildren();
    summary.hidden = true;
  }

  function target(field, control, error) {
    fieldTargets.set(field, { control, error });
  }

  /** `scopes[1].project_id` -> `scopes[1]` -> `scopes` -> "" (the form). */
  function parentPath(path) {
    const match = /^(.*?)(\.[^.[\]]*|\[\d+\])$/.exec(path);
    return match ? match[1] : "";
  }

  /** Puts `message` next to the control of `field` (or the nearest enclosing field) and says so on top. */
  function fieldError(field, message) {
    let path = field ?? "";
    let found = fieldTargets.get(path);
    while (!found && path) {
      path = parentPath(path);
      found = fieldTargets.get(path);
    }
    if (found?.error) {
      found.error.textContent = message;
      found.error.hidden = false;
      found.control?.setAttribute("aria-invalid", "true");
    }
    return found?.control ?? null;
  }

  function showErrors(errors) {
    const summary = $("editor-error");
    let first = null;
    for (const { field, message } of errors) {
      const control = fieldError(field, message);
      first ??= control;
    }
    setText(
      summary,
      errors.length === 1 ? "The webhook was not saved: " : "The webhook was not saved. Please fix the fields marked below.",
      errors.length === 1 ? errors[0].message : "",
    );
    summary.hidden = false;
    (first ?? summary).focus();
  }

  /** The request body, with a map from every API field path to its control; or the errors found here. */
  function collectForm() {
    const errors = [];
    const url = $("wh-url");
    target("url", url, $("wh-url-error"));
    target("name", $("wh-name"), $("wh-name-error"));
    target("description", $("wh-description"), $("wh-description-error"));
    target("rate_limit", $("wh-rate-limit"), $("wh-rate-limit-error"));
    target("", null, null);
    if (!url.value.trim()) errors.push({ field: "url", message: "Enter the address that should receive the events." });

    // Events: every box checked = all events (an empty list, which also covers types added later).
    const boxes = eventBoxes();
    const checked = boxes.filter((b) => b.checked);
    const events = checked.length === boxes.length ? [] : checked.map((b) => b.value);
    target("events", $("events-all"), $("events-error"));
    events.forEach((type, i) => {
      const box = checked.find((b) => b.value === type);
      const groupError = box.closest(".event-group").querySelector(".field-error");
      target(`events[${i}]`, box, groupError);
    });
    if (!checked.length) errors.push({ field: "events", message: "Choose at least one event, or all events." });

    // Scopes: for each included company, the whole company or one scope per project.
    const scopes = [];
    target("scopes", $("scopes-chosen"), $("scopes-error"));
    if ($("scopes-chosen").checked) {
      for (const company of document.querySelectorAll("#scope-companies .company")) {
        const include = company.querySelector('input[type="checkbox"]');
        if (!include.checked) continue;
        const companyId = company.dataset.company;
        const companyError = company.querySelector(":scope > .field-error");
        const projectsInput = company.querySelector("[data-projects] input");
        const projectsError = company.querySelector("[data-projects] .field-error");
        if (company.querySelector('input[value="whole"]').checked) {
          const i = scopes.push({ company_id: companyId }) - 1;
          target(`scopes[${i}]`, include, companyError);
          target(`scopes[${i}].company_id`, include, companyError);
          continue;
        }
        const projects = [...new Set(projectsInput.value.split(/[\s,;]+/).filter(Boolean))];
        if (!projects.length) {
          target(`local-${companyId}`, projectsInput, projectsError);
          errors.push({ field: `local-${companyId}`, message: "Type at least one project id, or choose the whole company." });
          continue;
        }
        for (const project of projects) {
          const i = scopes.push({ company_id: companyId, project_id: project }) - 1;
          target(`scopes[${i}]`, projectsInput, projectsError);
          target(`scopes[${i}].company_id`, include, companyError);
          target(`scopes[${i}].project_id`, projectsInput, projectsError);
          if (!IDENTIFIER.test(project)) {
            errors.push({ field: `scopes[${i}].project_id`, message: `“${project}” is not a project id: use letters, digits, - and _ (at most 64).` });
          }
        }
      }
      if (!scopes.length && !errors.some((e) => e.field.startsWith("local-"))) {
        errors.push({ field: "scopes", message: "Choose at least one company, or every company." });
      }
    }

    // Headers: empty rows are ignored; names must be unique ignoring case.
    const headers = {};
    target("headers", $("add-header"), $("headers-error"));
    const seen = new Set();
    for (const row of $("header-rows").children) {
      const nameInput = row.querySelector("[data-header-name]");
      const value = row.querySelector("[data-header-value]").value;
      const name = nameInput.value.trim();
      const error = row.querySelector(".field-error");
      if (!name && !value) continue;
      const local = `local-header-${nameInput.id}`;
      target(local, nameInput, error);
      if (!name) {
        errors.push({ field: local, message: "Give this header a name, or remove it." });
        continue;
      }
      if (seen.has(name.toLowerCase())) {
        errors.push({ field: local, message: `“${name}” is already set above (names ignore case).` });
        continue;
      }
      seen.add(name.toLowerCase());
      headers[name] = value;
      target(`headers.${name}`, nameInput, error);
    }

    // Pace: empty = no limit; otherwise a whole number the API checks (1 to 1000).
    const rateText = $("wh-rate-limit").value.trim();
    let rateLimit = null;
    if (rateText) {
      rateLimit = Number(rateText);
      if (!Number.isInteger(rateLimit) || rateLimit < 1 || rateLimit > 1000) {
        errors.push({ field: "rate_limit", message: "Enter a whole number of requests per second from 1 to 1000, or leave it empty for no limit." });
      }
    }

    // Conditions: empty rows are ignored; the API checks the fields' paths.
    const filters = [];
    target("filters", $("add-filter"), $("filters-error"));
    for (const row of $("filter-rows").children) {
      const pathInput = row.querySelector("[data-filter-path]");
      const opSelect = row.querySelector("[data-filter-op]");
      const valueInput = row.querySelector("[data-filter-value]");
      const error = row.querySelector(".field-error");
      const path = pathInput.value.trim();
      const op = opSelect.value;
      if (!path && (op === "exists" || !valueInput.value.trim())) continue;
      const i = filters.length;
      target(`filters[${i}]`, pathInput, error);
      target(`filters[${i}].path`, pathInput, error);
      target(`filters[${i}].op`, opSelect, error);
      target(`filters[${i}].value`, valueInput, error);
      const local = `local-filter-${pathInput.id}`;
      if (!path) {
        target(local, pathInput, error);
        errors.push({ field: local, message: "Say which field to test, or remove this condition." });
        continue;
      }
      const typed = filterValue(op, valueInput.value);
      if (typed.error) {
        target(local, valueInput, error);
        errors.push({ field: local, message: typed.error });
        continue;
      }
      filters.push(op === "exists" ? { path, op } : { path, op, value: typed.value });
    }

    target("signature_scheme", $("scheme-v1"), $("signature-scheme-error"));
    const scheme = document.querySelector('input[name="signature-scheme"]:checked')?.value ?? "v1";
    const body = { url: url.value.trim(), events, scopes, headers, filters, signature_scheme: scheme };
    if (state.editing || rateLimit !== null) body.rate_limit = rateLimit;
    const name = $("wh-name").value.trim();
    const description = $("wh-description").value.trim();
    if (state.editing) {
      body.name = name || null;
      body.description = description || null;
    } else {
      if (name) body.name = name;
      if (description) body.description = description;
    }
    return { body, errors };
  }

  /** A 403 on a scope names its field at the start of the message (`scopes[1].company_id: ...`). */
  function fieldOf(error) {
    if (error.field != null) return error.field;
    const match = /^(scopes\[\d+\]\.company_id|events\[\d+\]):/.exec(error.message);
    return match ? match[1] : "";
  }

  async function submitEditor(event) {
    event.preventDefault();
    clearErrors();
    const { body, errors } = collectForm();
    if (errors.length) {
      showErrors(errors);
      return;
    }
    const submit = $("editor-submit");
    const editing = state.editing;
    await busy(submit, async () => {
      try {
        if (editing) {
          const saved = await api("PATCH", webhookPath(editing.id), body);
          // A switch to a shared secret that made a new one: shown once, as at create.
          const secret = saved.secret;
          delete saved.secret;
          state.webhooks.set(saved.id, saved);
          flash(`Saved “${saved.name || saved.url}”.`);
          await navigate("#/");
          if (secret) {
            const heading = $(`webhook-${saved.id}`)?.querySelector("h2") ?? null;
            heading?.setAttribute("tabindex", "-1");
            showSecret(secret, `Requests are signed with this secret from now on. The previous key also signs them for ${ROTATION_GRACE_HOURS} hours.`, heading);
          }
        } else {
          const create = pendingCreate(body);
          const created = await api("POST", "/v1/webhooks", body, { "idempotency-key": create.key });
          // A repeat of a submit already answered (the same webhook, replayed): shown once.
          if (create.createdId === created.id) return;
          create.createdId = created.id;
          if (state.pendingCreate === create) state.pendingCreate = null;
          state.webhooks.set(created.id, created);
          const secret = created.secret;
          delete created.secret;
          flash(
            created.signature_scheme === "v1a"
              ? `Created “${created.name || created.url}”. Events are sent to it from now on; check them with the public key shown on it.`
              : `Created “${created.name || created.url}”. Events are sent to it from now on.`,
          );
          await navigate("#/");
          const heading = $(`webhook-${created.id}`)?.querySelector("h2") ?? null;
          heading?.setAttribute("tabindex", "-1");
          // A key pair has no secret to show: its public key is on the card.
          if (secret) showSecret(secret, null, heading);
        }
      } catch (error) {
        if (error.status === 401) return;
        // A repeat of a submit still being answered: that first submit shows the outcome.
        if (error.status === 409 && error.details?.reason === "idempotency_key_in_progress") return;
        if (error.status === 400 || (error.status === 403 && fieldOf(error))) {
          showErrors([{ field: fieldOf(error), message: error.message }]);
        } else {
          showErrors([{ field: "", message: error.message }]);
        }
      }
    });
  }

  // ------------------------------------------------------------------ the delivery log

  async function openDeliveries(id) {
    show("deliveries", "Deliveries");
    state.deliveries = { id, cursor: null };
    $("deliveries-rows").replaceChildren();
    $("deliveries-table").hidden = true;
    $("deliveries-empty").hidden = true;
    let webhook = state.webhooks.get(id);
    try {
      webhook ??= await api("GET", webhookPath(id));
    } catch (error) {
      flash(`This webhook could not be loaded: ${error.message}`, "error");
      return;
    }
    setText($("deliveries-title"), "Deliveries of ", webhook.name ? `“${webhook.name}”` : "an unnamed webhook");
    setText($("deliveries-target"), h("span", { class: "visually-hidden" }, "Address: "), h("code", { class: "url" }, webhook.url));
    for (const filter of ["deliveries-type", "deliveries-since", "deliveries-until"]) $(filter).value = "";
    $("replay-since").value = localInputValue(new Date(Date.now() - REPLAY_DEFAULT_MS));
    setText($("replay-result"));
    flash("");
    focusHeading("deliveries");
    await fillTypeFilter();
    await loadDeliveries(false);
  }

  /** How far back "Send again" reaches unless told: an hour covers most outages noticed. */
  const REPLAY_DEFAULT_MS = 60 * 60 * 1000;

  /** A `datetime-local` value (the browser's time zone) for a date. */
  function localInputValue(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  /** RFC 3339 (UTC) of a `datetime-local` value; "" when empty, null when not a time. */
  function isoOfLocal(value) {
    if (!value) return "";
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? null : date.toISOString();
  }

  /** The event type filter's options: the catalog's types, and health checks. */
  async function fillTypeFilter() {
    const select = $("deliveries-type");
    if (select.options.length > 1) return;
    let types = [];
    try {
      types = await loadEventTypes();
    } catch {
      return; // the filter stays at "All event types"
    }
    for (const t of types) select.append(h("option", { value: t.type, title: t.description }, t.type));
    select.append(h("option", { value: "WEBHOOK_HEALTH_CHECK" }, "Health checks and tests"));
  }

  async function replayRange(status, button) {
    const { id } = state.deliveries;
    const result = $("replay-result");
    const since = isoOfLocal($("replay-since").value);
    if (!since) {
      setText(result, "Choose the time to send again from.");
      $("replay-since").focus();
      return;
    }
    await busy(button, async () => {
      try {
        const answer = await api("POST", webhookPath(id, "/replay"), { since, status });
        const n = answer.scheduled ?? 0;
        setText(
          result,
          n ? `${plural(n, "event is", "events are")} being sent again; they show up here once sent.` : status === "failed" ? "Nothing failed since then." : "Nothing was sent since then.",
        );
      } catch (error) {
        if (error.status === 401) return;
        setText(result, error.status === 409 ? "This webhook is disabled: enable it first." : `Could not send again: ${error.message}`);
      }
    });
  }

  async function loadDeliveries(more) {
    const { id, cursor } = state.deliveries;
    if (!id) return;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    const status = $("deliveries-status").value;
    if (status) params.set("status", status);
    const type = $("deliveries-type").value;
    if (type) params.set("event_type", type);
    for (const [name, input] of [["since", "deliveries-since"], ["until", "deliveries-until"]]) {
      const iso = isoOfLocal($(input).value);
      if (iso) params.set(name, iso);
    }
    const filtered = [...params.keys()].some((k) => k !== "limit" && k !== "cursor");
    if (more && cursor) params.set("cursor", cursor);
    const rows = $("deliveries-rows");
    const table = $("deliveries-table");
    table.setAttribute("aria-busy", "true");
    let page;
    try {
      page = await api("GET", webhookPath(id, `/deliveries?${params}`));
    } catch (error) {
      table.removeAttribute("aria-busy");
      if (error.status !== 401) flash(`The deliveries could not be loaded: ${error.message}`, "error");
      return;
    }
    table.removeAttribute("aria-busy");
    if (state.deliveries.id !== id) return;
    if (!more) rows.replaceChildren();
    for (const entry of page.data ?? []) rows.append(deliveryRow(id, entry));
    state.deliveries.cursor = page.next_cursor ?? null;
    $("deliveries-more").hidden = !state.deliveries.cursor;
    table.hidden = rows.children.length === 0;
    $("deliveries-empty").hidden = rows.children.length > 0;
    setText($("deliveries-empty"), filtered ? "No deliveries match these filters." : "No deliveries yet.");
  }

  function deliveryRow(id, entry) {
    const status = LOG_STATUSES[entry.status] ?? { label: entry.status, kind: "muted" };
    const isHealthCheck = entry.type === "WEBHOOK_HEALTH_CHECK";
    // Sent by "Send test" (or enable): logged without a source, and not kept for sending again.
    const isCheck = isHealthCheck || entry.source == null;
    const result = h("span", { class: "row-result", role: "status", "aria-live": "polite" });
    const details = [];
    if (extraError(entry.error, entry.status_code)) details.push(h("p", { class: "error-text" }, entry.error));
    if (entry.status === "pending" && entry.next_attempt_at) details.push(h("p", {}, "Next try ", when(entry.next_attempt_at)));
    if (entry.response_body) {
      details.push(h("details", {}, h("summary", {}, "Response from your system"), h("pre", { class: "response-body" }, entry.response_body)));
    }
    const redeliver = isCheck || !entry.webhook_message_id
      ? null
      : h(
          "button",
          {
            type: "button",
            class: "button-small",
            "aria-label": `Send event ${entry.event_id} again`,
            onclick: async (e) => {
              const button = e.currentTarget;
              await busy(button, async () => {
                try {
                  await api("POST", webhookPath(id, `/deliveries/${encodeURIComponent(entry.webhook_message_id)}/redeliver`));
                  setText(result, "Queued: it shows up here once sent.");
                } catch (error) {
                  setText(result, error.status === 404 ? "Its content is no longer kept, so it cannot be sent again." : `Could not send again: ${error.message}`);
                }
              });
            },
          },
          "Send again",
        );
    // One wrapper per cell: on phones a cell is a label and this, side by side.
    const cell = (label, ...content) => h("td", { "data-label": label }, h("div", {}, ...content));
    return h(
      "tr",
      { class: `delivery delivery-${entry.status}` },
      cell("When", when(entry.attempted_at) ?? "—"),
      cell(
        "Event",
        isHealthCheck ? h("span", { class: "type-code" }, "Health check") : typeCode(entry.type),
        isCheck && !isHealthCheck ? h("span", { class: "muted small" }, " (test)") : null,
        h("br"),
        h("span", { class: "muted small event-id" }, entry.event_id),
      ),
      cell("Attempt", entry.attempt ?? "—"),
      cell(
        "Result",
        h("span", { class: `badge badge-${status.kind}` }, status.label),
        entry.status_code != null ? h("span", { class: "small" }, ` HTTP ${entry.status_code}`) : null,
        entry.duration_ms != null ? h("span", { class: "muted small" }, ` · ${entry.duration_ms} ms`) : null,
      ),
      cell("Details", details.length ? details : h("span", { class: "muted" }, "—")),
      cell("", redeliver, result),
    );
  }

  // ------------------------------------------------------------------ wiring

  function start() {
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      let key = $("api-key").value.trim();
      key = key.replace(/^Bearer\s+/i, "");
      if (!key) {
        showSigninError("Paste your API key: it starts with whk_.");
        $("api-key").focus();
        return;
      }
      signIn(key);
    });
    $("api-key-show").addEventListener("change", (event) => {
      $("api-key").type = event.target.checked ? "text" : "password";
    });
    $("sign-out").addEventListener("click", () => signOut("Signed out. The key was removed from this browser tab.", "ok"));
    $("refresh-list").addEventListener("click", () => busy($("refresh-list"), () => loadWebhooks(false)));
    $("list-more").addEventListener("click", () => busy($("list-more"), () => loadWebhooks(true)));
    $("editor-form").addEventListener("submit", submitEditor);
    $("events-all").addEventListener("change", (event) => setGroup(null, event.target.checked));
    $("scopes-everything").addEventListener("change", syncScopes);
    $("scopes-chosen").addEventListener("change", syncScopes);
    $("add-header").addEventListener("click", () => addHeaderRow().focus());
    $("add-filter").addEventListener("click", () => addFilterRow().focus());
    $("refresh-deliveries").addEventListener("click", () => busy($("refresh-deliveries"), () => loadDeliveries(false)));
    $("deliveries-more").addEventListener("click", () => busy($("deliveries-more"), () => loadDeliveries(true)));
    for (const filter of ["deliveries-status", "deliveries-type", "deliveries-since", "deliveries-until"]) {
      $(filter).addEventListener("change", () => loadDeliveries(false));
    }
    $("replay-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const button = event.submitter ?? $("replay-failed");
      replayRange(button.value === "all" ? "all" : "failed", button);
    });
    $("secret-copy").addEventListener("click", copySecret);
    for (const dialog of document.querySelectorAll("dialog")) {
      dialog.querySelector("form").addEventListener("submit", (event) => {
        event.preventDefault();
        dialog.close(event.submitter?.value ?? "");
      });
    }
    // Links, back and forward all change the fragment; navigate() changes it without this event.
    window.addEventListener("hashchange", () => {
      flash("");
      route();
    });

    const saved = sessionStorage.getItem(KEY_STORAGE);
    if (saved) signIn(saved);
    else route();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
