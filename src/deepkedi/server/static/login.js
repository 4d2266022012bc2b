// The sign-in page: POST /api/login, then back to the page that asked (only one of the viewer's own).
"use strict";

(() => {
  const form = document.getElementById("login-form");

  function next() {
    const wanted = new URLSearchParams(location.search).get("next") || "";
    // Only a path of the viewer on this origin: never an address elsewhere (an open redirect).
    return /^\/viewer\/[A-Za-z0-9/?=&._%-]*$/.test(wanted) && !wanted.startsWith("//") ? wanted : "/viewer/";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    Kedi.show("message", "");
    const button = document.getElementById("sign-in");
    button.disabled = true;
    try {
      const response = await fetch("/api/login", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({
          username: document.getElementById("username").value,
          password: document.getElementById("password").value,
        }),
      });
      if (response.ok) {
        location.assign(next());
        return;
      }
      document.getElementById("password").value = "";
      Kedi.show("message", await Kedi.detail(response), "error");
    } catch (error) {
      Kedi.show("message", "The service cannot be reached: " + error.message, "error");
    } finally {
      button.disabled = false;
    }
  });
})();
