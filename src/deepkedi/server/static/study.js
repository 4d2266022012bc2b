// The study page: the image viewer (slices, window/level rendered by the server, zoom and pan) for the
// roles that see images, the stored ciphertext for a revoked study, and the audit history for admins
// and auditors. Images are fetched with the session cookie and drawn on a canvas; nothing is cached
// on disk (the server answers Cache-Control: no-store).
"use strict";

(() => {
  const { el } = Kedi;
  const pseudonym = new URLSearchParams(location.search).get("study") || "";
  const canvas = document.getElementById("image");
  const viewport = document.getElementById("viewport");
  const context = canvas.getContext("2d");

  const CT_PRESETS = [
    ["Soft tissue", 40, 400],
    ["Lung", -600, 1500],
    ["Bone", 400, 1800],
    ["Brain", 40, 80],
    ["Liver", 60, 160],
  ];

  const state = {
    mode: "none", // "decrypted", "cipher" or "none"
    slices: [], // [{url, label}]
    index: 0,
    window: null, // [center, width], or null: the file's own window
    fileWindow: null,
    zoom: 1,
    panX: 0,
    panY: 0,
    bitmap: null,
    shown: "", // the key of the image on the canvas
    loading: false,
  };
  const bitmaps = new Map(); // url -> ImageBitmap, the last few (memory only)

  // ------------------------------------------------------------------ drawing

  function draw() {
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.fillStyle = "#000";
    context.fillRect(0, 0, canvas.width, canvas.height);
    const bitmap = state.bitmap;
    if (bitmap) {
      const fit = Math.min(canvas.width / bitmap.width, canvas.height / bitmap.height);
      const scale = fit * state.zoom;
      const width = bitmap.width * scale;
      const height = bitmap.height * scale;
      // The cipher image is shown pixel for pixel: smoothing would blur the noise it is.
      context.imageSmoothingEnabled = state.mode !== "cipher";
      context.drawImage(
        bitmap,
        (canvas.width - width) / 2 + state.panX,
        (canvas.height - height) / 2 + state.panY,
        width,
        height
      );
    }
    overlays();
    canvas.dataset.zoom = String(Math.round(state.zoom * 100));
  }

  function windowKey() {
    return state.window ? state.window[0] + "," + state.window[1] : "file";
  }

  function overlays() {
    const total = state.slices.length;
    const sliceText = total ? state.index + 1 + " / " + total : "";
    document.getElementById("ov-slice").textContent = total ? "slice " + sliceText : "";
    document.getElementById("slice-label").textContent = sliceText;
    const shownWindow = state.window || state.fileWindow;
    document.getElementById("ov-window").textContent =
      state.mode === "decrypted"
        ? shownWindow
          ? "W " + shownWindow[1] + "  L " + shownWindow[0] + (state.window ? "" : " (file)")
          : "W/L: full range"
        : "";
    document.getElementById("ov-zoom").textContent = total ? "zoom " + Math.round(state.zoom * 100) + "%" : "";
    document.getElementById("zoom-label").textContent = Math.round(state.zoom * 100) + "%";
    document.getElementById("ov-mode").textContent = state.mode === "cipher" ? "STORED CIPHERTEXT" : "";
  }

  // ------------------------------------------------------------------ loading images

  function frameUrl() {
    const slice = state.slices[state.index];
    if (!slice) return null;
    if (state.mode === "cipher" || !state.window) return slice.url;
    return slice.url + "?window=" + encodeURIComponent(state.window[0] + "," + state.window[1]);
  }

  function wantedKey() {
    return state.mode + ":" + (state.index + 1) + ":" + (state.mode === "decrypted" ? windowKey() : "-");
  }

  // Fetch and show the wanted image; while one is in flight, newer wishes (a drag, fast scrolling)
  // coalesce into the next fetch.
  async function refresh() {
    if (state.loading) return;
    state.loading = true;
    let failure = null;
    try {
      while (state.slices.length && state.shown !== wantedKey()) {
        const key = wantedKey();
        const url = frameUrl();
        let bitmap = bitmaps.get(url);
        if (!bitmap) {
          document.body.dataset.state = "loading";
          const response = await Kedi.request(url, { accept: "image/png" });
          if (!response.ok) {
            failure = response;
            break;
          }
          bitmap = await createImageBitmap(await response.blob());
          bitmaps.set(url, bitmap);
          if (bitmaps.size > 48) {
            const oldest = bitmaps.keys().next().value;
            const evicted = bitmaps.get(oldest);
            bitmaps.delete(oldest);
            if (evicted !== state.bitmap) evicted.close(); // the one on screen is still drawn at each zoom
          }
        }
        if (key === wantedKey()) {
          state.bitmap = bitmap;
          state.shown = key;
          canvas.dataset.shown = key;
          draw();
        }
      }
    } finally {
      state.loading = false;
    }
    if (failure) await refused(failure);
    else document.body.dataset.state = "ready";
  }

  function noImage() {
    state.mode = "none";
    state.slices = [];
    state.bitmap = null;
    state.shown = "";
    canvas.dataset.shown = "none";
    for (const bitmap of bitmaps.values()) bitmap.close();
    bitmaps.clear();
    draw();
  }

  // What a refused image request means, said on the page; no image is left on the canvas.
  async function refused(response) {
    const reason = await Kedi.detail(response);
    if (response.status === 410) {
      // Revoked while open: show what is left, the ciphertext.
      noImage();
      await open();
      return;
    }
    noImage();
    const text =
      response.status === 404
        ? "No such study, or you are not allowed to see it."
        : response.status === 403
          ? "Your role may not view images."
          : "This image cannot be shown: " + reason;
    Kedi.show("message", text, "error");
    document.body.dataset.state = "refused";
  }

  // ------------------------------------------------------------------ controls

  function goTo(index) {
    if (!state.slices.length) return;
    state.index = Math.max(0, Math.min(state.slices.length - 1, index));
    document.getElementById("slice").value = String(state.index + 1);
    overlays();
    refresh();
  }

  function setWindow(center, width, { load = true } = {}) {
    if (state.mode !== "decrypted") return;
    if (center === null) {
      state.window = null;
    } else {
      state.window = [Math.round(center), Math.max(1, Math.round(width))];
    }
    const shown = state.window || state.fileWindow;
    document.getElementById("wc").value = shown ? String(shown[0]) : "";
    document.getElementById("ww").value = shown ? String(shown[1]) : "";
    overlays();
    if (load) refresh();
  }

  function setZoom(zoom) {
    state.zoom = Math.max(0.25, Math.min(8, zoom));
    document.getElementById("zoom").value = String(Math.round(state.zoom * 100));
    draw();
  }

  function fit() {
    state.panX = 0;
    state.panY = 0;
    setZoom(1);
  }

  function preset(number) {
    const select = document.getElementById("preset");
    if (number < select.options.length) {
      select.selectedIndex = number;
      select.dispatchEvent(new Event("change"));
    }
  }

  function wireControls() {
    document.getElementById("slice").addEventListener("input", (event) => goTo(Number(event.target.value) - 1));
    document.getElementById("slice-prev").addEventListener("click", () => goTo(state.index - 1));
    document.getElementById("slice-next").addEventListener("click", () => goTo(state.index + 1));
    document.getElementById("preset").addEventListener("change", (event) => {
      const value = event.target.value;
      if (!value) setWindow(null, null);
      else setWindow(...value.split(",").map(Number));
    });
    const apply = () => {
      const center = Number(document.getElementById("wc").value);
      const width = Number(document.getElementById("ww").value);
      if (Number.isFinite(center) && Number.isFinite(width) && width > 0) {
        document.getElementById("preset").value = "";
        setWindow(center, width);
      }
    };
    document.getElementById("apply-window").addEventListener("click", apply);
    for (const id of ["wc", "ww"]) {
      document.getElementById(id).addEventListener("keydown", (event) => {
        if (event.key === "Enter") apply();
      });
    }
    document.getElementById("zoom").addEventListener("input", (event) => setZoom(Number(event.target.value) / 100));
    document.getElementById("zoom-in").addEventListener("click", () => setZoom(state.zoom * 1.25));
    document.getElementById("zoom-out").addEventListener("click", () => setZoom(state.zoom / 1.25));
    document.getElementById("zoom-fit").addEventListener("click", fit);

    viewport.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        if (event.ctrlKey || event.metaKey) setZoom(state.zoom * (event.deltaY < 0 ? 1.1 : 1 / 1.1));
        else if (event.deltaY !== 0) goTo(state.index + Math.sign(event.deltaY));
      },
      { passive: false }
    );

    // Drag: window/level (right-left: width, down-up: level); Shift+drag or the middle button: pan.
    let drag = null;
    viewport.addEventListener("pointerdown", (event) => {
      viewport.focus();
      const pan = event.shiftKey || event.button === 1;
      const base = state.window || state.fileWindow;
      if (!pan && (event.button !== 0 || state.mode !== "decrypted" || !base)) return;
      drag = { pan, x: event.clientX, y: event.clientY, panX: state.panX, panY: state.panY, base };
      viewport.setPointerCapture(event.pointerId);
      event.preventDefault();
    });
    viewport.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (drag.pan) {
        state.panX = drag.panX + dx;
        state.panY = drag.panY + dy;
        draw();
      } else {
        const step = Math.max(1, drag.base[1] / 256);
        document.getElementById("preset").value = "";
        setWindow(drag.base[0] + dy * step, drag.base[1] + dx * step);
      }
    });
    const end = () => {
      drag = null;
    };
    viewport.addEventListener("pointerup", end);
    viewport.addEventListener("pointercancel", end);
    viewport.addEventListener("dblclick", fit);

    document.addEventListener("keydown", (event) => {
      const target = event.target;
      if (target instanceof HTMLInputElement && target.type !== "range") return;
      if (target instanceof HTMLSelectElement) return;
      const keys = {
        ArrowDown: () => goTo(state.index + 1),
        ArrowRight: () => goTo(state.index + 1),
        PageDown: () => goTo(state.index + 5),
        ArrowUp: () => goTo(state.index - 1),
        ArrowLeft: () => goTo(state.index - 1),
        PageUp: () => goTo(state.index - 5),
        Home: () => goTo(0),
        End: () => goTo(state.slices.length - 1),
        "+": () => setZoom(state.zoom * 1.25),
        "=": () => setZoom(state.zoom * 1.25),
        "-": () => setZoom(state.zoom / 1.25),
        0: fit,
        r: () => preset(0),
        R: () => preset(0),
      };
      for (let n = 1; n <= 5; n += 1) keys[String(n)] = () => preset(n);
      const action = keys[event.key];
      if (action && state.mode !== "none") {
        event.preventDefault();
        action();
      }
    });
  }

  function presets(modality) {
    const select = document.getElementById("preset");
    const fileLabel = state.fileWindow ? "File (W " + state.fileWindow[1] + " L " + state.fileWindow[0] + ")" : "File / full range";
    const options = [el("option", { value: "", text: fileLabel })];
    if (modality === "CT") {
      for (const [name, center, width] of CT_PRESETS) {
        options.push(el("option", { value: center + "," + width, text: name + " (W " + width + " L " + center + ")" }));
      }
    }
    select.replaceChildren(...options);
  }

  // ------------------------------------------------------------------ the study

  function info(study) {
    const fields = [];
    const add = (label, value) => {
      if (value) fields.push(el("span", { class: "field" }, label, el("b", { text: value })));
    };
    if (study.revoked || !Kedi.mayViewImages({ role: document.body.dataset.role })) {
      add("Study", study.pseudonym);
      add("State", study.revoked ? "revoked" : "active");
    } else {
      add("Patient", study.patient_name);
      add("ID", study.patient_id);
      add("Date", Kedi.date(study.study_date));
      add("Study", study.description);
      add("Pseudonym", study.pseudonym);
    }
    add("Modalities", study.modalities.join(", "));
    add("Images", String(study.instances));
    document.getElementById("study-info").replaceChildren(...fields);
  }

  function number(value) {
    const parsed = Number(Array.isArray(value) ? value[0] : value);
    return Number.isFinite(parsed) ? parsed : null;
  }

  async function decrypted(study) {
    const base = "/dicomweb/studies/" + encodeURIComponent(study.study_uid);
    const response = await Kedi.request(base + "/instances", { accept: "application/dicom+json" });
    if (!response.ok) {
      await refused(response);
      return;
    }
    const instances = (await response.json()).map((item) => ({
      series: Kedi.dicomValue(item, "0020000E"),
      sop: Kedi.dicomValue(item, "00080018"),
      number: number(Kedi.dicomValue(item, "00200013")) ?? 0,
      frames: number(Kedi.dicomValue(item, "00280008")) ?? 1,
    }));
    // Series in the order the archive lists them, instances by Instance Number within each.
    const seriesOrder = [...new Set(instances.map((i) => i.series))];
    instances.sort((a, b) => seriesOrder.indexOf(a.series) - seriesOrder.indexOf(b.series) || a.number - b.number);
    const slices = [];
    for (const instance of instances) {
      const url = base + "/series/" + encodeURIComponent(instance.series) + "/instances/" + encodeURIComponent(instance.sop);
      for (let frame = 1; frame <= Math.max(1, instance.frames); frame += 1) {
        slices.push({ url: url + "/frames/" + frame + "/rendered", metadata: url + "/metadata" });
      }
    }
    if (!slices.length) {
      Kedi.show("message", "This study holds no image.", "warn");
      return;
    }
    // The file's own window and the modality, from the first instance's metadata.
    let modality = (study.modalities || [])[0] || "";
    const meta = await Kedi.request(slices[0].metadata, { accept: "application/dicom+json" });
    if (meta.ok) {
      const first = (await meta.json())[0] || {};
      const center = number(Kedi.dicomValue(first, "00281050"));
      const width = number(Kedi.dicomValue(first, "00281051"));
      if (center !== null && width !== null && width > 0) state.fileWindow = [center, width];
      modality = Kedi.dicomValue(first, "00080060") || modality;
    }
    state.mode = "decrypted";
    state.slices = slices;
    document.getElementById("window-controls").disabled = false;
    presets(modality);
    setWindow(null, null, { load: false });
    start();
  }

  function cipher(study) {
    Kedi.show(
      "message",
      "This study's key was revoked: its images can no longer be decrypted. Shown: the stored ciphertext.",
      "warn"
    );
    state.mode = "cipher";
    state.window = null;
    state.slices = Array.from({ length: study.instances }, (_, n) => ({
      url: "/api/studies/" + encodeURIComponent(study.pseudonym) + "/ciphertext/" + (n + 1),
    }));
    document.getElementById("window-controls").disabled = true;
    document.getElementById("preset").replaceChildren();
    if (!state.slices.length) {
      Kedi.show("message", "This study's key was revoked, and it holds no stored object.", "warn");
      return;
    }
    start();
  }

  function start() {
    const slider = document.getElementById("slice");
    slider.max = String(state.slices.length);
    state.index = Math.min(state.index, state.slices.length - 1);
    slider.value = String(state.index + 1);
    document.getElementById("viewer").hidden = false;
    fit();
    refresh();
  }

  // ------------------------------------------------------------------ audit history (admin, auditor)

  // The entries about this study, newest first: GET /api/studies/{pseudonym}/audit, page by page.
  async function auditEntries() {
    const base = "/api/studies/" + encodeURIComponent(pseudonym) + "/audit?limit=1000";
    const entries = [];
    let before = null;
    for (let pages = 0; pages < 20; pages += 1) {
      const response = await Kedi.request(base + (before ? "&before=" + before : ""));
      if (!response.ok) throw new Error(await Kedi.detail(response));
      const page = await response.json();
      entries.push(...page.entries);
      if (!page.next_before) break;
      before = page.next_before;
    }
    return entries;
  }

  async function audit() {
    document.getElementById("audit").hidden = false;
    let entries;
    try {
      entries = await auditEntries();
    } catch (error) {
      if (error instanceof Kedi.SignedOut) throw error;
      document.getElementById("audit-status").textContent = "The audit history cannot be read: " + error.message;
      return;
    }
    const shown = new Set(["outcome", "role", "address", "target"]);
    document.getElementById("audit-table").tBodies[0].replaceChildren(
      ...entries.map((entry) => {
        const details = entry.details || {};
        const rest = Object.entries(details)
          .filter(([name]) => !shown.has(name))
          .map(([name, value]) => name + "=" + JSON.stringify(value))
          .join(" ");
        return el(
          "tr",
          { "data-operation": entry.operation },
          el("td", { text: String(entry.seq) }),
          el("td", { class: "mono", text: String(entry.time).replace("T", " ").replace(/\+00:00$|Z$/, "") }),
          el("td", { text: entry.actor }),
          el("td", { text: details.role || "" }),
          el("td", { class: "mono", text: entry.operation }),
          el("td", { class: "outcome-" + (details.outcome || ""), text: details.outcome || "" }),
          el("td", { class: "mono", text: details.address || "" }),
          el("td", { class: "details", text: rest })
        );
      })
    );
    document.getElementById("audit-status").textContent =
      entries.length + " entries about this study, newest first (they name it by its pseudonym, never by a UID or a patient's name).";
  }

  // ------------------------------------------------------------------ start

  async function open() {
    const response = await Kedi.request("/api/viewer/studies/" + encodeURIComponent(pseudonym));
    if (!response.ok) {
      noImage();
      Kedi.show(
        "message",
        response.status === 404
          ? "No such study, or you are not allowed to see it." +
              (document.body.dataset.role === "radiologist"
                ? " In an emergency, break the glass from the study list."
                : "")
          : await Kedi.detail(response),
        "error"
      );
      document.body.dataset.state = "refused";
      return;
    }
    const study = await response.json();
    info(study);
    if (study.break_glass) {
      Kedi.show(
        "message",
        "Opened by break-glass (grant " + study.break_glass.grant_id + ") until " +
          study.break_glass.expires.replace("T", " ").replace("Z", " UTC") +
          ": every access is flagged in the audit trail for review.",
        "warn"
      );
    }
    if (!study.images) {
      Kedi.show(
        "message",
        "Your role (" + document.body.dataset.role + ") does not view images: the study's audit history is below."
      );
      await audit();
      document.body.dataset.state = "ready";
      return;
    }
    if (study.revoked) cipher(study);
    else await decrypted(study);
  }

  async function main() {
    await Kedi.session();
    wireControls();
    draw();
    await open();
  }

  Kedi.start(main);
})();
