// The study list: GET /api/viewer/studies for what one may see (revoked studies flagged), and QIDO-RS
// (GET /dicomweb/studies) for searches, which applies the same access policy on the server.
"use strict";

(() => {
  const { el } = Kedi;
  let studies = [];

  function studyLink(study, label) {
    return el("a", { href: "/viewer/study?study=" + encodeURIComponent(study.pseudonym), class: "open" }, label);
  }

  function renderImages(rows) {
    const table = document.getElementById("studies");
    const head = table.tHead;
    head.replaceChildren(
      el("tr", {}, ...["Patient", "Patient ID", "Date", "Description", "Modalities", "Images", ""].map((t) => el("th", { text: t })))
    );
    table.tBodies[0].replaceChildren(
      ...rows.map((s) =>
        el(
          "tr",
          { "data-pseudonym": s.pseudonym },
          el("td", { text: s.patient_name || "—" }),
          el("td", { text: s.patient_id || "—" }),
          el("td", { text: Kedi.date(s.study_date) || "—" }),
          el("td", { text: s.description || "" }),
          el("td", { text: s.modalities.join(", ") }),
          el("td", { text: String(s.instances) }),
          el("td", {}, studyLink(s, "Open"), s.break_glass ? el("span", { class: "flag", text: " break-glass" }) : null)
        )
      )
    );
    table.hidden = rows.length === 0;
  }

  // Radiologists: open a study not assigned to them, for a reason (POST /api/break-glass, with the CSRF token).
  function wireBreakGlass() {
    const section = document.getElementById("break-glass");
    section.hidden = false;
    document.getElementById("break-glass-form").addEventListener("submit", (event) => {
      event.preventDefault();
      Kedi.start(async () => {
        Kedi.show("bg-message", "");
        const response = await Kedi.request("/api/break-glass", {
          method: "POST",
          body: {
            study_uid: document.getElementById("bg-uid").value.trim(),
            reason: document.getElementById("bg-reason").value,
          },
        });
        if (response.ok) {
          const grant = await response.json();
          location.assign("/viewer/study?study=" + encodeURIComponent(grant.study));
          return;
        }
        Kedi.show("bg-message", await Kedi.detail(response), "error");
        document.body.dataset.state = "ready";
      });
    });
  }

  function renderRevoked(rows) {
    const section = document.getElementById("revoked-section");
    document.getElementById("revoked").tBodies[0].replaceChildren(
      ...rows.map((s) =>
        el(
          "tr",
          { class: "revoked", "data-pseudonym": s.pseudonym },
          el("td", { class: "mono", text: s.pseudonym }),
          el("td", { text: s.modalities.join(", ") }),
          el("td", { text: String(s.instances) }),
          el("td", { text: s.created }),
          el("td", {}, studyLink(s, "Show ciphertext"))
        )
      )
    );
    section.hidden = rows.length === 0;
  }

  // Admins and auditors: every study by its pseudonym, no identifier, to open its audit history.
  function renderAuditView(rows) {
    const table = document.getElementById("studies");
    table.tHead.replaceChildren(
      el("tr", {}, ...["Study", "State", "Modalities", "Series", "Images", "Stored", ""].map((t) => el("th", { text: t })))
    );
    table.tBodies[0].replaceChildren(
      ...rows.map((s) =>
        el(
          "tr",
          { class: s.revoked ? "revoked" : "", "data-pseudonym": s.pseudonym },
          el("td", { class: "mono", text: s.pseudonym }),
          el("td", { text: s.revoked ? "revoked" : "active" }),
          el("td", { text: s.modalities.join(", ") }),
          el("td", { text: String(s.series) }),
          el("td", { text: String(s.instances) }),
          el("td", { text: s.created }),
          el("td", {}, studyLink(s, "Audit history"))
        )
      )
    );
    table.hidden = false;
  }

  function query() {
    const params = new URLSearchParams();
    const name = document.getElementById("q-name").value.trim();
    const id = document.getElementById("q-id").value.trim();
    const from = document.getElementById("q-from").value.replaceAll("-", "");
    const to = document.getElementById("q-to").value.replaceAll("-", "");
    const modality = document.getElementById("q-modality").value;
    if (name) params.set("PatientName", /[*?]/.test(name) ? name : "*" + name + "*");
    if (id) params.set("PatientID", id);
    if (from || to) params.set("StudyDate", from === to ? from : from + "-" + to);
    if (modality) params.set("ModalitiesInStudy", modality);
    return params;
  }

  async function search() {
    const live = studies.filter((s) => !s.revoked);
    const params = query();
    if ([...params.keys()].length === 0) {
      renderImages(live);
      Kedi.show("message", live.length ? "" : "No study to show.");
      document.body.dataset.state = "ready";
      return;
    }
    document.body.dataset.state = "searching";
    const response = await Kedi.request("/dicomweb/studies?" + params.toString(), { accept: "application/dicom+json" });
    if (!response.ok) {
      Kedi.show("message", "The search failed: " + (await Kedi.detail(response)), "error");
      document.body.dataset.state = "ready";
      return;
    }
    const found = new Set((await response.json()).map((item) => Kedi.dicomValue(item, "0020000D")));
    const rows = live.filter((s) => found.has(s.study_uid));
    renderImages(rows);
    Kedi.show("message", rows.length + " of " + live.length + " studies match.");
    document.body.dataset.state = "ready";
  }

  async function main() {
    const me = await Kedi.session();
    const response = await Kedi.request("/api/viewer/studies");
    if (!response.ok) {
      Kedi.show("message", await Kedi.detail(response), "error");
      return;
    }
    studies = (await response.json()).studies;
    if (!Kedi.mayViewImages(me)) {
      renderAuditView(studies);
      Kedi.show("message", "Your role (" + me.role + ") sees no images: open a study for its audit history.");
      document.body.dataset.state = "ready";
      return;
    }
    if (me.role === "radiologist") wireBreakGlass();
    const form = document.getElementById("search");
    form.hidden = false;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      Kedi.start(search);
    });
    document.getElementById("q-clear").addEventListener("click", () => {
      form.reset();
      Kedi.start(search);
    });
    renderRevoked(studies.filter((s) => s.revoked));
    await search();
  }

  Kedi.start(main);
})();
