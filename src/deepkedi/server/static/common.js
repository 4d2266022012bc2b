// deepkedi's web viewer: what every page shares. No framework; data only ever goes in as text.
"use strict";

const Kedi = (() => {
  let csrfToken = null;

  class SignedOut extends Error {}

  function toLogin() {
    const here = location.pathname + location.search;
    location.assign("/viewer/login?next=" + encodeURIComponent(here));
  }

  // fetch on this origin with the session cookie; the CSRF token on every state-changing call.
  // A 401 sends the browser to the sign-in page (and throws SignedOut).
  async function request(path, { method = "GET", body, accept = "application/json" } = {}) {
    const headers = { Accept: accept };
    if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      toLogin();
      throw new SignedOut("signed out");
    }
    return response;
  }

  async function detail(response) {
    try {
      const payload = await response.clone().json();
      if (payload && typeof payload.detail === "string") return payload.detail;
    } catch (_) {
      // not JSON
    }
    return response.statusText || "HTTP " + response.status;
  }

  // Who is signed in ({username, role, group, csrf_token}); null (and off to sign in) if nobody.
  async function session() {
    const response = await request("/api/session");
    if (!response.ok) throw new Error(await detail(response));
    const me = await response.json();
    csrfToken = me.csrf_token || null;
    const who = document.getElementById("who");
    if (who) who.textContent = me.username + " · " + me.role + (me.group ? " (" + me.group + ")" : "");
    const logout = document.getElementById("logout");
    if (logout) {
      logout.addEventListener("click", async () => {
        try {
          await request("/api/logout", { method: "POST" });
        } finally {
          location.assign("/viewer/login");
        }
      });
    }
    document.body.dataset.role = me.role;
    return me;
  }

  // An element with attributes and children (strings become text nodes: never parsed as HTML).
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function show(id, text, kind = "") {
    const node = document.getElementById(id);
    if (!node) return;
    node.textContent = text;
    node.className = "message" + (kind ? " " + kind : "");
    node.hidden = !text;
  }

  // A DICOM date (YYYYMMDD) as YYYY-MM-DD; anything else as it is.
  function date(value) {
    const text = value == null ? "" : String(value);
    return /^\d{8}$/.test(text) ? text.slice(0, 4) + "-" + text.slice(4, 6) + "-" + text.slice(6) : text;
  }

  // The first value of a DICOM JSON attribute (PS3.18 F.2), a person name as its alphabetic form.
  function dicomValue(item, tag) {
    const element = item && item[tag];
    if (!element || !Array.isArray(element.Value) || element.Value.length === 0) return null;
    const first = element.Value[0];
    return first && typeof first === "object" && "Alphabetic" in first ? first.Alphabetic : first;
  }

  const IMAGE_ROLES = ["technologist", "radiologist", "researcher"];

  function mayViewImages(me) {
    return IMAGE_ROLES.includes(me.role);
  }

  // Run a page's main function; a sign-out on the way is not an error worth showing.
  function start(main) {
    main().catch((error) => {
      if (error instanceof SignedOut) return;
      show("message", "Something went wrong: " + error.message, "error");
      document.body.dataset.state = "error";
    });
  }

  return { SignedOut, request, detail, session, el, show, date, dicomValue, mayViewImages, start };
})();
