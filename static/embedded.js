/*
 * embedded-ui browser SDK: window.Alloy. The contract is docs/sdk.md (and docs/page.md for
 * mountIntegrations).
 *
 * Written by hand, runs as written (no build step), served minified by rjsmin (comments and
 * whitespace stripped, names kept as written). Budget: 2,160 bytes gzipped as served, so
 * comments cost nothing and the closure's names are one letter, with this legend:
 *
 *   O  the service's origin (from this script's own src)
 *   K  the user token; C its (unverified) payload {workspace, environment}
 *   M  the open modal call: {f: iframe, op, p: params, cb: callback, o: {}, shown}
 *   P  mounted integrations pages: {f: iframe, op: "page", p: params, o: the mount options}
 *   B  the element that had focus before the modal opened
 *   H  event listeners by event name; V the event names
 *   T  option name -> expected type, as the error message says it
 *   X  fail(name, expected): throws "Alloy.<name>: expected <expected>"
 *   N  need(name): X unless there is a token
 *   S  safe(fn, arg): runs ISV code; what it throws is rethrown later, stopping nothing
 *   E  emit(event, arg)
 *   F  finish(result): ends the modal call (iframe out, focus back, callback, events)
 *   G  frame(path, options, css): an iframe on O for the token's workspace and environment
 *   U  open(name, op, options, required, expected): checks the options, opens the modal
 *   A  api(name, method, path, body): the JSON API with the token in a header
 *   W  post(call, message) to that call's iframe, target origin O
 *   Y  toggle(name, path): deactivate / reactivate;  Z  operation(op): install / edit / update
 *
 * Security properties (docs/sdk.md, security anchors section 5):
 * - the user token stays in this closure; it reaches an iframe (the modal or a mounted page)
 *   only by postMessage with the service's exact origin as target, after that iframe's own
 *   "eui:ready";
 * - a message counts only if it comes from the service's origin AND from one of our iframes'
 *   windows, and has a string "type"; everything else is ignored;
 * - nothing from a message is written as HTML.
 */
(function (w, d) {
  // Loaded twice: keep the first Alloy and add nothing (no second listener).
  if (w.Alloy && w.Alloy.setToken) return;

  var O = new URL(d.currentScript.src).origin,
    K,
    C,
    M,
    B,
    P = [],
    H = {},
    V = ["open", "close", "success", "error"],
    T = {
      integrationId: "string",
      workflowIds: "array of strings",
      versionIds: "array of strings",
      alwaysShowAuthentication: "boolean",
      hide: "boolean",
      title: "string",
      preFilledValues: "object",
      app: "string",
      callback: "function"
    },
    X = (n, x) => {
      throw new Error("Alloy." + n + ": expected " + x);
    },
    N = n => K || X(n, "a user token first: call Alloy.setToken(token)"),
    S = (fn, a) => {
      try {
        fn(a);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    },
    E = (v, a) => (H[v] || []).forEach(fn => S(fn, a)),
    // The callback fires here at most once, since M is cleared first; a callback may start
    // the next call.
    F = r => {
      var c = M;
      if (!c) return;
      M = null;
      c.f.remove();
      if (B && B.focus) B.focus();
      B = null;
      if (c.cb) S(c.cb, r);
      if (r.success) E("success", r);
      E("close");
    },
    G = (path, o, css) => {
      var f = d.createElement("iframe");
      f.src = O + "/" + path + "/" + encodeURIComponent(C.workspace) + "/" + encodeURIComponent(C.environment);
      f.title = o.title || "Integrations";
      f.style.cssText = "width:100%;border:0;" + css;
      return f;
    },
    U = (n, op, o, required, x) => {
      N(n);
      var p = {},
        k,
        t,
        v;
      if (!o || typeof o != "object") X(n, "an options object");
      for (k in T) {
        v = o[k];
        t = T[k];
        if (v == null) continue;
        if (
          t[0] == "a"
            ? !Array.isArray(v) || v.some(s => typeof s != "string")
            : typeof v != t || (t == "object" && Array.isArray(v))
        )
          X(n, k + " (" + t + ")");
        if (k != "callback") p[k] = v;
      }
      if (!required(o)) X(n, x);

      F({ success: false }); // a new call replaces the open one
      B = d.activeElement;
      var f = G("modal", o, "position:fixed;inset:0;height:100%;color-scheme:normal;z-index:2147483647" + (o.hide ? ";visibility:hidden" : ""));
      M = { f, op, p, cb: o.callback, o: {} };
      (d.body || d.documentElement).append(f);
      if (!o.hide) f.focus();
    },
    // Never a cookie, never the URL.
    A = (n, method, path, body) => {
      N(n);
      var headers = { "x-alloy-user-token": K };
      if (body) headers["content-type"] = "application/json";
      return fetch(O + "/2024-03/" + path, {
        method,
        headers,
        body: body && JSON.stringify(body),
        credentials: "omit",
        cache: "no-store"
      }).then(r =>
        r
          .json()
          .catch(() => ({}))
          .then(b => {
            b = b || {};
            if (!r.ok) throw new Error(b.message || "HTTP " + r.status);
            return "data" in b ? b.data : b;
          })
      );
    },
    Y = (n, path) => o => {
      N(n);
      if (!o || typeof o.workflowId != "string") X(n, "{workflowId} (string)");
      return A(n, "PUT", "workflows/" + path, { workflowId: o.workflowId });
    },
    Z = op => o => U(op, op, o, o => o.integrationId || o.workflowIds, "integrationId (string) or workflowIds (array of strings)"),
    W = (c, m) => c.f.contentWindow.postMessage(m, O);

  w.addEventListener("message", e => {
    var m = e.data,
      c = [M].concat(P).find(c => c && e.source == c.f.contentWindow),
      t = m && m.type;
    if (!c || e.origin != O || typeof t != "string") return;
    // The only message that carries the token; its target is the service's exact origin.
    if (t == "eui:ready") W(c, { type: "eui:init", token: K, operation: c.op, params: c.p });
    // From a mounted page (c.o is its options): its height, its own event, or an install to
    // open in the modal (which covers the whole ISV page); the page reloads when it ends.
    if (t == "eui:resize") c.f.style.height = m.height + "px";
    if (t == "eui:event" && c.o.onEvent) S(c.o.onEvent, m.event);
    if (t == "eui:install" && /^(install|update|edit)$/.test(m.op))
      w.Alloy[m.op]({
        integrationId: m.integrationId,
        alwaysShowAuthentication: !!m.reconnect,
        callback: r => W(c, { type: "eui:refresh", result: r })
      });
    // From the modal.
    if (t == "eui:open") {
      c.f.style.visibility = "";
      if (d.activeElement != c.f) c.f.focus();
      if (!c.shown) E("open");
      c.shown = 1;
    }
    if (t == "eui:success") {
      // Built here: only these fields of the modal's result are passed on.
      var r = Object(m.result),
        res = { success: true };
      if (Array.isArray(r.workflowIds)) res.workflowIds = r.workflowIds;
      if (typeof r.credentialId == "string") res.credentialId = r.credentialId;
      F(res);
    }
    if (t == "eui:error") E("error", { message: String(m.message) });
    if (t == "eui:close") F({ success: false });
  });

  w.Alloy = {
    setToken: jwt => {
      var q = typeof jwt == "string" ? jwt.split(".") : [];
      try {
        // base64url JSON, read but not verified: the server verifies it.
        var c = JSON.parse(atob(q[1].replace(/-/g, "+").replace(/_/g, "/")));
      } catch (e) {}
      if (q.length != 3 || !c || typeof c.workspace != "string" || typeof c.environment != "string")
        X("setToken", "a user token (the JWT from GET /2024-03/users/{userId}/token)");
      K = jwt;
      C = c;
    },
    install: Z("install"),
    edit: Z("edit"),
    update: Z("update"),
    authenticate: o => U("authenticate", "authenticate", o, o => o.app, "app (string)"),
    getIntegrations: () => A("getIntegrations", "GET", "integrations"),
    getWorkflows: () => A("getWorkflows", "GET", "workflows"),
    deactivate: Y("deactivate", "deactivate"),
    reactivate: Y("reactivate", "activate"),
    // The integrations page in the ISV's element (docs/page.md). The options reach the page
    // as data (JSON drops onEvent); returns the iframe (remove it to unmount).
    mountIntegrations: (el, o) => {
      N("mountIntegrations");
      o = o || {};
      el = el && el.big ? d.querySelector(el) : el;
      if (!el || !el.append) X("mountIntegrations", "an element or a selector");
      var c = { f: G("page", o, "height:240px"), op: "page", p: JSON.parse(JSON.stringify(o)), o };
      P.push(c);
      el.append(c.f);
      return c.f;
    },
    on: (v, fn) => {
      if (!V.includes(v) || typeof fn != "function") X("on", "an event (" + V.join(", ") + ") and a function");
      (H[v] = H[v] || []).push(fn);
    },
    // Every registration of fn goes; a new array, so an emit under way is not disturbed.
    off: (v, fn) => (H[v] = (H[v] || []).filter(g => g != fn)),
    close: () => F({ success: false }),
    destroy: () => {
      F({ success: false });
      P.forEach(c => c.f.remove());
      P = [];
      K = C = null;
      H = {};
    }
  };
})(window, document);
