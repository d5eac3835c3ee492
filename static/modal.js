/* The install modal's script: runs inside the iframe (or the hosted install page) on the
 * service's origin. It receives the user token by postMessage from the SDK, asks the server
 * for each step (POST /modal/api/step with the token in a header), shows the HTML the server
 * rendered, and reports to the SDK with eui:* messages. Protocol: docs/sdk.md. */
(function () {
  "use strict";

  var body = document.getElementById("eui-body");
  var titleEl = document.getElementById("eui-title");
  var dialog = document.querySelector(".eui-dialog");
  var mode = document.body.getAttribute("data-mode");
  var token = null;
  var parentOrigin = null; // learnt from the eui:init message; every later message goes there
  var operation = null;
  var params = null;
  var state = null;
  var opened = false;
  var finished = false;
  var lastRequest = null;
  var oauthPoll = null;
  var succeeded = null; // an install's result, kept while its done step stays open

  function tell(message) {
    if (mode !== "frame" || window.parent === window || !parentOrigin) return;
    window.parent.postMessage(message, parentOrigin);
  }

  // -- talking to the server ------------------------------------------------------------

  function api(method, path, payload) {
    var options = {
      method: method,
      credentials: "omit",
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
    };
    if (payload !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload);
    }
    return fetch(path, options).then(function (response) {
      return response.json().then(
        function (data) {
          if (!response.ok) throw new Error(data.message || "The request failed.");
          return data;
        },
        function () {
          throw new Error("The service answered with something unexpected (" + response.status + ").");
        }
      );
    });
  }

  function step(action, input) {
    lastRequest = { action: action, input: input || {} };
    setBusy(true);
    return api("POST", "/modal/api/step", {
      operation: operation,
      params: params,
      state: state,
      action: action,
      input: input || {},
    }).then(show, showError);
  }

  // -- showing steps ----------------------------------------------------------------------

  function setBusy(busy) {
    dialog.setAttribute("aria-busy", busy ? "true" : "false");
    var buttons = body.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = busy;
  }

  function show(result) {
    state = result.state;
    titleEl.textContent = result.title;
    body.innerHTML = result.html; // rendered and escaped by the server's Jinja2 templates
    setBusy(false);
    if (result.done) {
      finished = true;
      if (result.keepOpen) {
        // Something to do by hand first (a webhook URL to paste): the SDK hears of the success
        // when the merchant closes the modal.
        succeeded = result.result;
        if (!opened) {
          opened = true;
          tell({ type: "eui:open" });
        }
        focusFirst();
        return;
      }
      if (mode === "frame") tell({ type: "eui:success", result: result.result });
      else document.body.classList.add("eui--done");
      return;
    }
    if (result.needsInput && !opened) {
      opened = true;
      tell({ type: "eui:open" });
    }
    focusFirst();
  }

  function showError(error) {
    setBusy(false);
    var box = document.createElement("div");
    box.className = "eui-error";
    box.setAttribute("role", "alert");
    box.id = "eui-error";
    var text = document.createElement("p");
    text.textContent = error.message || String(error);
    var retry = document.createElement("button");
    retry.type = "button";
    retry.className = "eui-secondary";
    retry.textContent = "Try again";
    retry.setAttribute("data-retry", "");
    box.appendChild(text);
    box.appendChild(retry);
    var old = document.getElementById("eui-error");
    if (old) old.parentNode.removeChild(old);
    body.insertBefore(box, body.firstChild);
    if (!opened) {
      opened = true;
      tell({ type: "eui:open" });
    }
    tell({ type: "eui:error", message: text.textContent });
    retry.focus();
  }

  function focusables() {
    return Array.prototype.filter.call(
      dialog.querySelectorAll("button, input, select, textarea, a[href], [tabindex]"),
      function (el) {
        return !el.disabled && el.tabIndex >= 0 && el.offsetParent !== null;
      }
    );
  }

  function focusFirst() {
    var invalid = body.querySelector("[aria-invalid=true]");
    var target = invalid || body.querySelector("input, select, textarea, button");
    if (target) target.focus();
  }

  // -- reading forms ----------------------------------------------------------------------

  function fieldsOf(form) {
    var fields = {};
    var inputs = form.querySelectorAll("input[name]");
    for (var i = 0; i < inputs.length; i++) fields[inputs[i].name] = inputs[i].value.trim();
    return fields;
  }

  // Patterns come from the catalog; checking them here saves a round trip, the server checks
  // them again either way.
  function checkPatterns(form) {
    var inputs = form.querySelectorAll("input[name]");
    for (var i = 0; i < inputs.length; i++) {
      var input = inputs[i];
      var pattern = input.getAttribute("data-pattern");
      var value = input.value.trim();
      var bad = !value || (pattern && !new RegExp(pattern).test(value));
      input.setAttribute("aria-invalid", bad ? "true" : "false");
      if (bad) {
        var label = form.querySelector("label[for='" + input.id + "']");
        showError(
          new Error(
            (label ? label.textContent : input.name) +
              (value ? " does not have the expected format." : " is required.")
          )
        );
        input.focus();
        return false;
      }
    }
    return true;
  }

  function configuredValues(form) {
    var values = {};
    var inputs = form.querySelectorAll("[data-workflow]");
    for (var i = 0; i < inputs.length; i++) {
      var el = inputs[i];
      var workflow = el.getAttribute("data-workflow");
      values[workflow] = values[workflow] || {};
      values[workflow][el.getAttribute("data-key")] =
        el.getAttribute("data-kind") === "boolean" ? el.checked : el.value;
    }
    return values;
  }

  // -- OAuth in a popup -------------------------------------------------------------------

  function startOAuth(form) {
    if (!checkPatterns(form)) return;
    // Open the window now, inside the click, or popup blockers refuse it; point it at the
    // start page once the server has made the flow.
    var popup = window.open("", "eui_oauth", "popup,width=520,height=700");
    setBusy(true);
    api("POST", "/modal/api/oauth/flows", {
      app: form.getAttribute("data-app"),
      purpose: operation === "authenticate" ? "authenticate" : "install",
      connection: fieldsOf(form),
    }).then(function (flow) {
      if (!popup || popup.closed) {
        throw new Error("Your browser blocked the sign-in window. Allow pop-ups and try again.");
      }
      popup.location.href = flow.startUrl;
      watchOAuth(flow.flowId, popup);
    }, function (error) {
      if (popup) popup.close();
      throw error;
    }).catch(showError);
  }

  function watchOAuth(flowId, popup) {
    var closedChecks = 0;
    function check() {
      api("GET", "/modal/api/oauth/flows/" + encodeURIComponent(flowId)).then(function (flow) {
        if (flow.status === "succeeded" || flow.status === "failed") {
          stopWatching();
          if (popup && !popup.closed) popup.close();
          step("oauth", { flowId: flowId });
        } else if (flow.status === "cancelled") {
          stopWatching();
          showError(new Error("The sign-in was cancelled."));
        } else if (popup.closed && ++closedChecks > 1) {
          // Asked once more after the window closed: it really ended unfinished.
          stopWatching();
          api("POST", "/modal/api/oauth/flows/" + encodeURIComponent(flowId) + "/cancel", {})
            .catch(function () {});
          showError(new Error("The sign-in window was closed before it finished."));
        }
      }, function (error) {
        stopWatching();
        showError(error);
      });
    }
    stopWatching();
    oauthPoll = {
      flowId: flowId,
      popup: popup,
      check: check,
      timer: window.setInterval(check, 1000),
    };
  }

  function stopWatching() {
    if (oauthPoll) window.clearInterval(oauthPoll.timer);
    oauthPoll = null;
  }

  // -- events -----------------------------------------------------------------------------

  function close() {
    stopWatching();
    if (succeeded) tell({ type: "eui:success", result: succeeded });
    else tell({ type: "eui:close" });
  }

  // Copy a webhook URL or secret: the selected text through execCommand (works in a frame
  // without the clipboard permission), else the Clipboard API; the field stays selected.
  function copy(button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    var group = button.closest("[data-hook]");
    var status = group && group.querySelector("[data-copied]");
    function say(ok) {
      if (status) status.textContent = ok ? "Copied." : "Press Ctrl+C (or Cmd+C) to copy the selected text.";
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

  body.addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    var action = form.getAttribute("data-action");
    if (action === "choose") {
      var picked = [];
      var boxes = form.querySelectorAll("input[name=workflowIds]:checked");
      for (var i = 0; i < boxes.length; i++) picked.push(boxes[i].value);
      step("choose", { workflowIds: picked });
    } else if (action === "credential") {
      if (checkPatterns(form)) {
        step("credential", { type: form.getAttribute("data-type"), fields: fieldsOf(form) });
      }
    } else if (action === "oauth") {
      startOAuth(form);
    } else if (action === "configure") {
      step("configure", { values: configuredValues(form) });
    } else if (action === "install") {
      step("install", {});
    }
  });

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-close], [data-retry], [data-copy], [data-action=use_credential]") : null;
    if (!target) return;
    if (target.hasAttribute("data-copy")) copy(target);
    else if (target.hasAttribute("data-close")) close();
    else if (target.hasAttribute("data-retry")) {
      if (lastRequest) step(lastRequest.action, lastRequest.input);
    } else step("use_credential", { credentialId: target.getAttribute("data-credential") });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && mode === "frame") {
      event.preventDefault();
      close();
    } else if (event.key === "Tab") {
      // Keep focus inside the dialog.
      var items = focusables();
      if (!items.length) return;
      var first = items[0];
      var last = items[items.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      } else if (!dialog.contains(document.activeElement)) {
        event.preventDefault();
        first.focus();
      }
    }
  });

  // The OAuth popup's fast path: it tells its opener the flow finished.
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || typeof data !== "object" || typeof data.type !== "string") return;
    if (data.type === "eui:oauth") {
      if (
        event.origin === window.location.origin &&
        oauthPoll &&
        event.source === oauthPoll.popup &&
        data.flowId === oauthPoll.flowId
      ) {
        oauthPoll.check();
      }
      return;
    }
    if (data.type !== "eui:init" || token !== null || event.source !== window.parent) return;
    if (typeof data.token !== "string" || !data.params || typeof data.params !== "object") return;
    parentOrigin = event.origin;
    begin(data.token, data.operation, data.params);
  });

  function begin(userToken, op, options) {
    token = userToken;
    operation = op;
    params = options;
    state = null;
    if (params.title) titleEl.textContent = params.title;
    step("start", {});
  }

  if (mode === "page") {
    var init = JSON.parse(document.getElementById("eui-init").textContent);
    begin(init.token, init.operation, init.params);
  } else if (window.parent !== window) {
    // Carries nothing: it only says the page can receive eui:init.
    window.parent.postMessage({ type: "eui:ready" }, "*");
  }
})();
