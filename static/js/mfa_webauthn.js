// WebAuthn for the MFA pages (registration on /account/mfa/, authentication on /login/mfa/).
// Written by hand, no dependency: the server (py_webauthn) sends options as JSON with base64url
// binary fields; this turns them into ArrayBuffers, calls navigator.credentials, and posts the
// answer back as JSON with base64url fields. CSRF: the token of the page's own form.
(function () {
  "use strict";

  function b64urlToBuffer(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function bufferToB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error((data.error && data.error.message) || "Request failed.");
        return data;
      });
    });
  }

  function showError(message) {
    var box = document.getElementById("mfa-key-error");
    if (box) { box.textContent = message; box.classList.remove("d-none"); }
  }

  function descriptors(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, {id: b64urlToBuffer(c.id)}); });
  }

  function register(root) {
    var nameInput = document.getElementById("mfa-key-name");
    postJSON(root.dataset.optionsUrl).then(function (options) {
      options.challenge = b64urlToBuffer(options.challenge);
      options.user.id = b64urlToBuffer(options.user.id);
      options.excludeCredentials = descriptors(options.excludeCredentials);
      return navigator.credentials.create({publicKey: options});
    }).then(function (credential) {
      var response = credential.response;
      return postJSON(root.dataset.registerUrl, {
        name: nameInput ? nameInput.value : "Security key",
        credential: {
          id: credential.id, rawId: bufferToB64url(credential.rawId), type: credential.type,
          response: {
            clientDataJSON: bufferToB64url(response.clientDataJSON),
            attestationObject: bufferToB64url(response.attestationObject),
            transports: response.getTransports ? response.getTransports() : [],
          },
          clientExtensionResults: credential.getClientExtensionResults(),
        },
      });
    }).then(function (result) {
      if (result.recovery_codes && result.recovery_codes.length) {
        var pre = document.getElementById("mfa-key-recovery-codes");
        pre.textContent = "Your recovery codes (shown only now; each works once):\n" + result.recovery_codes.join("\n");
        pre.classList.remove("d-none");
      } else {
        window.location.reload();
      }
    }).catch(function (error) { showError(error.message || String(error)); });
  }

  function authenticate(root) {
    postJSON(root.dataset.optionsUrl).then(function (options) {
      options.challenge = b64urlToBuffer(options.challenge);
      options.allowCredentials = descriptors(options.allowCredentials);
      return navigator.credentials.get({publicKey: options});
    }).then(function (credential) {
      var response = credential.response;
      return postJSON(root.dataset.verifyUrl, {
        id: credential.id, rawId: bufferToB64url(credential.rawId), type: credential.type,
        response: {
          clientDataJSON: bufferToB64url(response.clientDataJSON),
          authenticatorData: bufferToB64url(response.authenticatorData),
          signature: bufferToB64url(response.signature),
          userHandle: response.userHandle ? bufferToB64url(response.userHandle) : null,
        },
        clientExtensionResults: credential.getClientExtensionResults(),
      });
    }).then(function (result) {
      window.location.assign(result.redirect);
    }).catch(function (error) { showError(error.message || String(error)); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var registration = document.getElementById("mfa-key-register");
    var registerButton = document.getElementById("mfa-key-register-button");
    if (registration && registerButton) registerButton.addEventListener("click", function () { register(registration); });
    var login = document.getElementById("mfa-key-login");
    var loginButton = document.getElementById("mfa-key-login-button");
    if (login && loginButton) loginButton.addEventListener("click", function () { authenticate(login); });
  });
})();
