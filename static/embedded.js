/*
 * embedded-ui browser SDK: window.Alloy. The contract is docs/sdk.md.
 *
 * Written by hand, runs as written (no build step), served minified by rjsmin (comments and
 * whitespace stripped), so comments cost nothing. Budget: 2,160 bytes gzipped as served.
 *
 * Security properties (docs/sdk.md, security anchors section 5):
 * - the user token stays in this closure; it reaches the modal only by postMessage with the
 *   service's exact origin as target, after the modal's own "eui:ready";
 * - a message counts only if it comes from the service's origin AND from the current iframe's
 *   window, and has a known string "type"; everything else is ignored;
 * - nothing from a message is written as HTML.
 */
(function (w, d) {
  "use strict";
  // Loaded twice: keep the first Alloy and add nothing (no second listener).
  if (w.Alloy && w.Alloy.setToken) return;

  // The service's origin comes from this script's own src.
  var origin = new URL(d.currentScript.src).origin;
  var token, claims; // the user token and its (unverified) payload
  var current; // the open call: {f: iframe, op, p: params, cb: callback, shown}
  var back; // the element that had focus before the modal opened
  var handlers = {};
  var EVENTS = ["open", "close", "success", "error"];
  // Option name -> expected type; "strings" is an array of strings.
  var TYPES = {
    integrationId: "string",
    workflowIds: "strings",
    versionIds: "strings",
    alwaysShowAuthentication: "boolean",
    hide: "boolean",
    title: "string",
    preFilledValues: "object",
    app: "string",
    callback: "function",
  };

  function fail(name, expected) {
    throw new Error("Alloy." + name + ": expected " + expected);
  }

  function needToken(name) {
    if (!token) fail(name, "a user token first: call Alloy.setToken(token)");
  }

  // Run user code; an exception in it neither stops the others nor breaks our state.
  function safe(fn, arg) {
    try {
      fn(arg);
    } catch (e) {
      setTimeout(function () {
        throw e;
      });
    }
  }

  function emit(event, arg) {
    (handlers[event] || []).slice().forEach(function (fn) {
      safe(fn, arg);
    });
  }

  // End the current call: remove its iframe, give focus back, then tell the page.
  // The callback fires here at most once, since `current` is cleared first.
  function finish(result) {
    var c = current;
    if (!c) return;
    current = null;
    c.f.remove();
    if (back && back.focus) back.focus();
    back = null;
    if (c.cb) safe(c.cb, result);
    if (result.success) emit("success", result);
    emit("close");
  }

  // Check options against TYPES and `required`, then open the modal for `op`.
  function open(name, op, options, required, expected) {
    needToken(name);
    var o = options,
      params = {},
      k,
      t,
      v;
    if (!o || typeof o != "object") fail(name, "an options object");
    for (k in TYPES) {
      v = o[k];
      if (v == null) continue;
      t = TYPES[k];
      if (
        t == "strings"
          ? !Array.isArray(v) ||
            v.some(function (s) {
              return typeof s != "string";
            })
          : typeof v != t || (t == "object" && Array.isArray(v))
      )
        fail(name, k + " (" + (t == "strings" ? "array of strings" : t) + ")");
      if (k != "callback") params[k] = v;
    }
    if (!required(o)) fail(name, expected);

    finish({ success: false }); // a new call replaces the open one
    back = d.activeElement;
    var f = d.createElement("iframe");
    f.src = origin + "/modal/" + encodeURIComponent(claims.workspace) + "/" + encodeURIComponent(claims.environment);
    f.title = o.title || "Integrations";
    f.style.cssText =
      "position:fixed;inset:0;width:100%;height:100%;border:0;margin:0;padding:0;" +
      "background:transparent;color-scheme:normal;z-index:2147483647" +
      (o.hide ? ";visibility:hidden" : "");
    current = { f: f, op: op, p: params, cb: o.callback };
    (d.body || d.documentElement).appendChild(f);
    if (!o.hide) f.focus();
  }

  function workflows(o) {
    return o.integrationId || o.workflowIds;
  }

  var INSTALL = "integrationId (string) or workflowIds (array of strings)";

  // The JSON API with the user token in a header: never a cookie, never the URL.
  function api(name, method, path, body) {
    needToken(name);
    return fetch(origin + "/2024-03/" + path, {
      method: method,
      headers: body
        ? { "x-alloy-user-token": token, "content-type": "application/json" }
        : { "x-alloy-user-token": token },
      body: body && JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    }).then(function (r) {
      return r
        .json()
        .catch(function () {
          return {};
        })
        .then(function (b) {
          b = b || {};
          if (!r.ok) throw new Error(b.message || "HTTP " + r.status);
          return "data" in b ? b.data : b;
        });
    });
  }

  function toggle(name, path) {
    return function (o) {
      needToken(name);
      if (!o || typeof o.workflowId != "string") fail(name, "{workflowId} (string)");
      return api(name, "PUT", "workflows/" + path, { workflowId: o.workflowId });
    };
  }

  function operation(op) {
    return function (o) {
      open(op, op, o, workflows, INSTALL);
    };
  }

  w.addEventListener("message", function (e) {
    var c = current,
      m = e.data;
    if (!c || e.origin !== origin || e.source !== c.f.contentWindow || !m || typeof m.type != "string") return;
    switch (m.type) {
      case "eui:ready":
        // The only message that carries the token; its target is the service's exact origin.
        c.f.contentWindow.postMessage({ type: "eui:init", token: token, operation: c.op, params: c.p }, origin);
        break;
      case "eui:open":
        c.f.style.visibility = "";
        if (d.activeElement !== c.f) c.f.focus();
        if (!c.shown) emit("open");
        c.shown = 1;
        break;
      case "eui:success":
        var r = m.result && typeof m.result == "object" ? m.result : {};
        var result = { success: true };
        if (Array.isArray(r.workflowIds)) result.workflowIds = r.workflowIds;
        if (typeof r.credentialId == "string") result.credentialId = r.credentialId;
        finish(result);
        break;
      case "eui:error":
        emit("error", { message: String(m.message) });
        break;
      case "eui:close":
        finish({ success: false });
    }
  });

  w.Alloy = {
    setToken: function (jwt) {
      var parts = typeof jwt == "string" ? jwt.split(".") : [];
      try {
        // base64url JSON, read but not verified: the server verifies it.
        var c = JSON.parse(atob(parts[1].replace(/-/g, "+").replace(/_/g, "/")));
      } catch (e) {}
      if (parts.length != 3 || !c || typeof c.workspace != "string" || typeof c.environment != "string")
        fail("setToken", "a user token (the JWT from GET /2024-03/users/{userId}/token)");
      token = jwt;
      claims = c;
    },
    install: operation("install"),
    edit: operation("edit"),
    update: operation("update"),
    authenticate: function (o) {
      open("authenticate", "authenticate", o, function (o) {
        return o.app;
      }, "app (string)");
    },
    getIntegrations: function () {
      return api("getIntegrations", "GET", "integrations");
    },
    getWorkflows: function () {
      return api("getWorkflows", "GET", "workflows");
    },
    deactivate: toggle("deactivate", "deactivate"),
    reactivate: toggle("reactivate", "activate"),
    on: function (event, fn) {
      if (EVENTS.indexOf(event) < 0 || typeof fn != "function")
        fail("on", "an event (" + EVENTS.join(", ") + ") and a function");
      (handlers[event] = handlers[event] || []).push(fn);
    },
    off: function (event, fn) {
      var list = handlers[event] || [],
        i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    },
    close: function () {
      finish({ success: false });
    },
    destroy: function () {
      finish({ success: false });
      token = claims = null;
      handlers = {};
    },
  };
})(window, document);
