/* The integrations page's script: runs in the iframe on the service's origin. It receives the
 * user token (and the mount options) by postMessage from the SDK, asks the server for the
 * rendered content (POST /modal/api/page, token in a header), runs the page's actions, asks
 * the SDK to open the modal for installs, and reports its height. Protocol: docs/page.md.
 * On the hosted page (a single-use link) the content and the token come inline in the HTML,
 * and the page opens the modal inside itself, doing the SDK's part of the handshake. */
(function () {
  "use strict";

  var main = document.getElementById("eup-main");
  var token = null;
  var parentOrigin = null;
  var options = {};
  var filters = { q: "", category: "" };
  var THEMES = { auto: 1, light: 1, dark: 1 };
  var pending = null; // the install/update/reconnect the SDK is showing in its modal
  var acting = null; // the action button the user pressed, to keep the keyboard there
  var retryWith = null; // the failed action a retry runs again (null: reload the list)
  var inline = document.getElementById("eup-init");
  var hosted = inline ? JSON.parse(inline.textContent) : null;
  var modal = null; // the hosted page's own modal: {frame, op, params, opener}

  function tell(message) {
    if (window.parent !== window && parentOrigin) window.parent.postMessage(message, parentOrigin);
  }

  function list(value) {
    return value ? value.split(",").filter(Boolean) : [];
  }

  // -- talking to the server ------------------------------------------------------------

  function load(action) {
    main.setAttribute("aria-busy", "true");
    var payload = {
      integrations: options.integrations || list(document.body.getAttribute("data-integrations")),
      categories: options.categories || list(document.body.getAttribute("data-categories")),
      q: filters.q,
      category: filters.category,
    };
    if (action) payload.action = action;
    return fetch("/modal/api/page", {
      method: "POST",
      credentials: "omit",
      headers: {
        Authorization: "Bearer " + token,
        Accept: "application/json",
        "Content-Type": "application/json",
      },
      body: JSON.stringify(payload),
    })
      .then(function (response) {
        return response.json().then(
          function (data) {
            if (!response.ok) throw failure(data.message || "The request failed.", response.status);
            return data;
          },
          function () {
            throw failure("The service answered with something unexpected (" + response.status + ").", response.status);
          }
        );
      })
      .then(show, function (error) {
        showError(error, action);
      });
  }

  function failure(message, status) {
    var error = new Error(message);
    error.status = status;
    return error;
  }

  function show(result) {
    // Keep the keyboard where it was: the same kind of control of the same workflow, else the
    // status message (the control is gone after an upgrade or uninstall), else the same id.
    var active = acting || document.activeElement; // a disabled button has lost focus
    acting = null;
    var workflow = active && active.getAttribute && active.getAttribute("data-workflow");
    var kind = active && active.className;
    var id = active && active.id;
    main.innerHTML = result.html; // rendered and escaped by the server's Jinja2 templates
    main.setAttribute("aria-busy", "false");
    applyFilters();
    var again = null;
    if (workflow) {
      again =
        main.querySelector("." + kind.split(" ")[0] + "[data-workflow='" + workflow + "']:not([hidden])") ||
        document.getElementById("eup-notice");
    } else if (id) {
      again = document.getElementById(id);
    }
    if (again) again.focus();
    if (result.event) tell({ type: "eui:event", event: result.event });
    resize();
  }

  function showError(error, action) {
    main.setAttribute("aria-busy", "false");
    // The page stays as it was, its controls usable again. A retry runs the action again when
    // it may work the second time (no answer, 429, 5xx); otherwise (the installation changed,
    // the token was refused) it reloads the list.
    if (acting) acting.disabled = false;
    acting = null;
    var status = error.status || 0;
    retryWith = action && (!status || status === 429 || status >= 500) ? action : null;
    var box = document.createElement("div");
    box.className = "eup-error";
    box.setAttribute("role", "alert");
    var text = document.createElement("p");
    text.textContent =
      hosted && status === 401
        ? "This page's session has ended: open it again from the app you came from."
        : error.message || String(error);
    var retry = document.createElement("button");
    retry.type = "button";
    retry.className = "eup-secondary";
    retry.textContent = action && !retryWith ? "Reload the list" : "Try again";
    retry.setAttribute("data-retry", "");
    box.appendChild(text);
    box.appendChild(retry);
    var old = main.querySelector(".eup-error");
    if (old) old.parentNode.removeChild(old);
    var loading = main.querySelector(".eup-loading");
    if (loading) loading.parentNode.removeChild(loading);
    main.insertBefore(box, main.firstChild);
    tell({ type: "eui:error", message: text.textContent });
    retry.focus();
    resize();
  }

  // -- search and category, in the page (the server applies the same on each render) -------

  function applyFilters() {
    var words = filters.q.toLowerCase().split(/\s+/).filter(Boolean);
    var cards = main.querySelectorAll("[data-card]");
    var shown = 0;
    for (var i = 0; i < cards.length; i++) {
      var card = cards[i];
      var text = card.getAttribute("data-search");
      var ok =
        (!filters.category || (" " + card.getAttribute("data-categories") + " ").indexOf(" " + filters.category + " ") >= 0) &&
        words.every(function (word) {
          return text.indexOf(word) >= 0;
        });
      card.hidden = !ok;
      if (ok) shown++;
    }
    var empty = main.querySelector("[data-empty]");
    if (empty) empty.hidden = shown > 0;
    resize();
  }

  function readFilters() {
    var q = document.getElementById("eup-q");
    var category = document.getElementById("eup-category");
    filters.q = q ? q.value.trim() : "";
    filters.category = category ? category.value : "";
    applyFilters();
  }

  main.addEventListener("input", readFilters);
  main.addEventListener("change", readFilters);
  main.addEventListener("submit", function (event) {
    event.preventDefault();
    readFilters();
  });

  // -- actions ------------------------------------------------------------------------------

  // Copy a webhook URL or secret: the selected text through execCommand (works in a frame
  // without the clipboard permission), else the Clipboard API; the field stays selected.
  function copy(button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    var status = button.closest("[data-hook]").querySelector("[data-copied]");
    function say(ok) {
      status.textContent = ok ? "Copied." : "Press Ctrl+C (or Cmd+C) to copy the selected text.";
    }
    field.focus();
    field.select();
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {}
    if (ok || !navigator.clipboard) return say(ok);
    navigator.clipboard.writeText(field.value).then(function () { say(true); }, function () { say(false); });
  }

  main.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("button") : null;
    if (!target || target.disabled) return;
    var confirmId = target.getAttribute("data-confirm");
    if (target.hasAttribute("data-copy")) {
      copy(target);
    } else if (confirmId) {
      var box = document.getElementById(confirmId);
      box.hidden = false;
      target.hidden = true;
      box.querySelector("[data-action]").focus();
      resize();
    } else if (target.hasAttribute("data-cancel")) {
      var group = target.closest(".eup-confirm");
      group.hidden = true;
      var opener = main.querySelector("[data-confirm='" + group.id + "']");
      opener.hidden = false;
      opener.focus();
      resize();
    } else if (target.hasAttribute("data-retry")) {
      var again = retryWith;
      retryWith = null;
      acting = again && main.querySelector("[data-action='" + again.type + "'][data-workflow='" + again.workflowId + "']");
      if (acting) acting.disabled = true;
      load(again);
    } else if (target.getAttribute("data-action")) {
      acting = target;
      target.disabled = true;
      load({ type: target.getAttribute("data-action"), workflowId: target.getAttribute("data-workflow") });
    } else if (target.getAttribute("data-open")) {
      // The modal covers the ISV's whole page, so the SDK opens it; it reloads us after. The
      // hosted page has no SDK: it opens the modal inside itself.
      var open = target.getAttribute("data-open");
      pending = { type: open, integrationId: target.getAttribute("data-integration") };
      var request = {
        type: "eui:install",
        op: open === "reconnect" ? "edit" : open,
        reconnect: open === "reconnect",
        integrationId: pending.integrationId,
      };
      if (hosted) openModal(request, target);
      else tell(request);
    }
  });

  // -- the hosted page's own modal (the SDK's part of docs/sdk.md's protocol) ------------------

  function openModal(request, opener) {
    var frame = document.createElement("iframe");
    frame.className = "eup-modal";
    frame.title = "Connect an integration";
    frame.src = "/modal/" + encodeURIComponent(hosted.workspace) + "/" + encodeURIComponent(hosted.environment);
    modal = {
      frame: frame,
      op: request.op,
      params: { integrationId: request.integrationId, alwaysShowAuthentication: request.reconnect },
      opener: opener,
    };
    main.setAttribute("inert", "");
    document.body.appendChild(frame);
    frame.focus();
  }

  function closeModal(result) {
    var ended = modal;
    modal = null;
    ended.frame.parentNode.removeChild(ended.frame);
    main.removeAttribute("inert");
    if (ended.opener && document.body.contains(ended.opener)) ended.opener.focus();
    finished(result);
  }

  function fromModal(event) {
    var data = event.data;
    if (!modal || event.source !== modal.frame.contentWindow || event.origin !== window.location.origin) return;
    if (data.type === "eui:ready") {
      modal.frame.contentWindow.postMessage(
        { type: "eui:init", token: token, operation: modal.op, params: modal.params },
        window.location.origin
      );
    } else if (data.type === "eui:open") {
      modal.frame.focus();
    } else if (data.type === "eui:success") {
      closeModal({ success: true, workflowIds: data.result && data.result.workflowIds });
    } else if (data.type === "eui:close") {
      closeModal({ success: false });
    }
  }

  // -- size ---------------------------------------------------------------------------------

  var lastHeight = 0;
  function resize() {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height !== lastHeight) {
      lastHeight = height;
      tell({ type: "eui:resize", height: height });
    }
  }
  if (window.ResizeObserver) new ResizeObserver(resize).observe(document.body);

  // -- the handshake --------------------------------------------------------------------------

  function applyTheme(theme) {
    if (!theme || typeof theme !== "object") return;
    if (THEMES[theme.scheme]) document.documentElement.setAttribute("data-scheme", theme.scheme);
    var query = [];
    for (var key in theme) {
      if (typeof theme[key] === "string") query.push(encodeURIComponent(key) + "=" + encodeURIComponent(theme[key]));
    }
    if (!query.length) return;
    var link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = "/page/theme.css?" + query.join("&");
    link.onerror = function () {
      tell({ type: "eui:error", message: "The theme was refused: check its options (docs/page.md)." });
    };
    document.head.appendChild(link);
  }

  // The modal ended: tell the ISV what it did, and show the result.
  function finished(result) {
    if (pending && result.success) {
      pending.result = { success: true, workflowIds: result.workflowIds };
      tell({ type: "eui:event", event: pending });
    }
    pending = null;
    load();
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || typeof data !== "object") return;
    if (hosted) return fromModal(event); // nothing from a framing page is taken
    if (event.source !== window.parent) return;
    if (data.type === "eui:init" && typeof data.token === "string") {
      // A new token (a later eui:init) replaces the old one; the origin is learnt once.
      if (parentOrigin && event.origin !== parentOrigin) return;
      var first = token === null;
      parentOrigin = event.origin;
      token = data.token;
      if (first) {
        options = data.params && typeof data.params === "object" ? data.params : {};
        applyTheme(options.theme);
      }
      load();
    } else if (data.type === "eui:refresh" && token && event.origin === parentOrigin) {
      finished(data.result && typeof data.result === "object" ? data.result : {});
    }
  });

  var scheme = new URLSearchParams(window.location.search).get("scheme");
  if (THEMES[scheme]) document.documentElement.setAttribute("data-scheme", scheme);
  if (hosted) {
    // The server rendered the content with this token's user: nothing to ask for yet.
    token = hosted.token;
  } else if (window.parent !== window) {
    // Carries nothing: it only says the page can receive eui:init.
    window.parent.postMessage({ type: "eui:ready" }, "*");
  } else {
    var loading = main.querySelector(".eup-loading");
    if (loading) loading.textContent = "Open this page from your app: it is shown inside it once you are signed in.";
    main.setAttribute("aria-busy", "false");
  }
})();
