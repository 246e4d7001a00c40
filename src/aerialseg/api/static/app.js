// aerialseg web page: upload an image, show the predicted mask over it, legend, downloads.
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;
let chosen = null; // the file last chosen: a change of Bands segments it again
let latest = null; // the request under way: a newer choice aborts it
let sentBands = null; // the Bands of the last request: a change of Bands alone sends again
let awaitingToken = null; // a file chosen before the token was given: sent once it is
let choices = 0; // counts the choices: a result is shown only if no newer one was made
const urls = [];
const layers = { classes: null, confidence: null }; // what #mask can show

function show(el, visible) { el.hidden = !visible; }

function setStatus(text) { $("status").textContent = text; }

function setError(text) {
  $("error").textContent = text;
  show($("error"), Boolean(text));
}

function track(blob) {
  const url = URL.createObjectURL(blob);
  urls.push(url); // revoked when the next image is segmented
  return url;
}

function blobUrl(base64, type) {
  return track(new Blob([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], { type }));
}

// A server started with --token wants it on every /v1 request: asked once, kept for the tab.
const TOKEN_KEY = "aerialseg-token";

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

function askForToken(message) {
  setError(message);
  show($("token-form"), true);
  $("token").focus();
}

function formatArea(entry) {
  // a plain image (no CRS) has no ground area: its measure is its pixels
  const m2 = entry.area_m2;
  // one locale for every figure, the reader's (a review: px in English, km² with a dot)
  if (m2 === null || m2 === undefined) return entry.pixels.toLocaleString() + " px";
  if (m2 >= 1e6) return (m2 / 1e6).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + " km²";
  return Math.round(m2).toLocaleString() + " m²";
}

async function loadModel() {
  const response = await fetch("/v1/model", { headers: authHeaders() });
  if (response.status === 401) {
    model = null; // a token the server no longer takes: nothing is sent until a new one is
    const wrong = sessionStorage.getItem(TOKEN_KEY) !== null;
    sessionStorage.removeItem(TOKEN_KEY);
    askForToken(wrong ? "That token was not accepted; enter the server's token." : "Enter the token this server was started with.");
    return;
  }
  if (!response.ok) {
    // an error body is no model description: uploads wait for one (a review: "model:
    // undefined", then a TypeError after every prediction)
    model = null;
    throw new Error(`the server answered ${response.status}`);
  }
  model = await response.json();
  show($("token-form"), false);
  setError("");
  $("model-name").textContent = "model: " + model.name;
  const mib = (model.input.max_upload_bytes / 2 ** 20).toLocaleString("en", { maximumFractionDigits: 2 });
  $("limits").textContent = `JPEG, PNG, TIFF or GeoTIFF, up to ${mib} MiB`;
  // the API's rule, less its advice to use bands=: this field is how the page sets them
  $("bands-rule").textContent = `(empty: ${model.input.bands.replace(/; others with bands=$/, "")})`;
}

function renderLegend(areas) {
  const body = $("legend").querySelector("tbody");
  body.replaceChildren();
  model.classes.forEach((cls, i) => {
    const row = body.insertRow();
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = cls.color;
    row.insertCell().append(swatch);
    row.insertCell().textContent = cls.name;
    row.insertCell().textContent = (100 * areas[i].share).toFixed(1) + " %";
    row.insertCell().textContent = formatArea(areas[i]);
  });
}

async function doubtLayer(base64) {
  // The confidence preview holds percentages (0-100; 255: nodata) for every upload format:
  // paint doubt red, opaque at 50 % confidence and below, clear at 100 % and no data.
  const img = new Image();
  img.src = blobUrl(base64, "image/png");
  await img.decode();
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [img.naturalWidth, img.naturalHeight];
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const px = pixels.data;
  for (let i = 0; i < px.length; i += 4) {
    const percent = px[i];
    const doubt = percent > 100 ? 0 : Math.min(1, 2 * (1 - percent / 100));
    [px[i], px[i + 1], px[i + 2], px[i + 3]] = [220, 20, 60, Math.round(255 * doubt)];
  }
  ctx.putImageData(pixels, 0, 0);
  return track(await new Promise((resolve) => canvas.toBlob(resolve, "image/png")));
}

// FastAPI's own validation errors give a list of {loc, msg}; aerialseg's a sentence.
function detailText(detail, name) {
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).slice(-1)[0] || "request"}: ${d.msg}`).join("; ");
  if (typeof detail !== "string") return "";
  // the API's words name its query parameter and call the file "upload"; on this page the
  // Bands field sets the one, and the user chose the other by its name
  return detail
    .replace(/with \?bands=, e\.g\. \?bands=(\S+)/g, "in the Bands field, e.g. $1")
    .replace(/\??bands= ?/g, "Bands ")
    .replace(/^upload(?=:)/, () => name);
}

// "4 3 2", "4, 3, 2" and "4,3,2" alike, as the command line takes them
function bandsText() {
  return $("bands").value.trim().split(/[\s,]+/).filter(Boolean).join(",");
}

function upload(file) {
  // XMLHttpRequest, not fetch: it reports upload progress.
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    if (latest) latest.abort();
    latest = xhr;
    const bands = bandsText();
    sentBands = bands;
    awaitingToken = null; // set again if this one is refused for its token
    const query = "format=json&overlay=true&polygons=true&confidence=true&preview=true" + (bands ? "&bands=" + encodeURIComponent(bands) : "");
    xhr.open("POST", "/v1/segment?" + query);
    Object.entries(authHeaders()).forEach(([name, value]) => xhr.setRequestHeader(name, value));
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) setStatus(`Uploading… ${Math.round((100 * e.loaded) / e.total)} %`);
    };
    const started = Date.now();
    let timer = null;
    xhr.upload.onload = () => {
      timer = setInterval(() => setStatus(`Predicting… ${Math.round((Date.now() - started) / 1000)} s`), 500);
      setStatus("Predicting…");
    };
    xhr.onload = () => {
      clearInterval(timer);
      if (xhr.status === 200) resolve(xhr.response);
      else if (xhr.status === 401) {
        awaitingToken = file; // sent again once a token is accepted
        sessionStorage.removeItem(TOKEN_KEY);
        reject(new Error("the server needs a token"));
      }
      else reject(new Error(detailText(xhr.response && xhr.response.detail, file.name) || `server answered ${xhr.status}`));
    };
    xhr.onerror = () => { clearInterval(timer); reject(new Error("could not reach the server")); };
    xhr.onabort = () => { clearInterval(timer); reject(new Error("aborted")); };
    const form = new FormData();
    form.append("file", file);
    xhr.send(form);
  });
}

async function segment(file) {
  chosen = file;
  const choice = ++choices;
  sentBands = null; // until this choice is sent: a later change of Bands sends it
  // a new choice ends the request under way, even one this page then refuses (a review: a
  // refused file's error showed over the result of the file before it)
  if (latest) { latest.abort(); latest = null; }
  setStatus("");
  setError("");
  show($("result"), false);
  if (!model) {
    if (!$("token-form").hidden) {
      awaitingToken = file; // a review: "reload the page" while the token was asked for
      askForToken(`Enter this server's token first; ${file.name} is sent once it is accepted.`);
      return;
    }
    setError("the server has not described its model yet: reload the page when it is up");
    return;
  }
  if (file.size === 0) { // a review: the API's words, "the field named file is empty"
    setError(`${file.name} is empty (0 bytes): choose an image`);
    return;
  }
  const bands = $("bands");
  if (!bands.checkValidity()) {
    setError("Bands: band numbers separated by commas or spaces, e.g. 4,3,2");
    return;
  }
  // The server refuses a larger upload before reading it and closes the connection, which
  // a browser reports as "could not reach the server" (a review): said here instead.
  const limit = model.input.max_upload_bytes;
  if (file.size > limit) {
    const mib = (n) => (n / 2 ** 20).toLocaleString("en", { maximumFractionDigits: 2 });
    setError(`${file.name} is ${mib(file.size)} MiB; this server takes uploads of up to ${mib(limit)} MiB`);
    return;
  }
  setStatus(`Uploading ${file.name}…`);
  let result;
  const request = upload(file);
  const mine = latest;
  try {
    result = await request;
  } catch (err) {
    if (latest !== mine) return; // a newer choice took over: its own answer is the one to show
    setStatus("");
    if (awaitingToken === file) askForToken(`Enter the token this server was started with; ${file.name} is sent once it is accepted.`);
    else setError(err.message);
    return;
  }
  if (latest !== mine || choice !== choices) return;
  latest = null;
  urls.splice(0).forEach((u) => URL.revokeObjectURL(u));
  try {
    const overlayUrl = blobUrl(result.overlay_png, "image/png");
    // Two layers for every format, GeoTIFF too: the image as the model saw it under the
    // class colours, so the opacity slider blends them.
    const base = $("base");
    base.src = blobUrl(result.preview.image, "image/png");
    layers.classes = blobUrl(result.preview.color, "image/png");
    layers.confidence = await doubtLayer(result.preview.confidence);
    await base.decode();
    // a newer choice made while this one was drawn is the one to show (a review)
    if (choice !== choices) return;
    // a small image is shown larger, its pixels square (a review: 5 x 5 px was a dot);
    // a large one is scaled down smoothly
    document.querySelector(".stack").classList.toggle("small", base.naturalWidth < 320);
    $("layer").value = "classes";
    $("mask").src = layers.classes;
    renderLegend(result.areas);
    const stem = file.name.replace(/\.[^.]+$/, "") || "image"; // ".png" alone: no stem
    // The mask zipped with its sidecars: the class names (.aux.xml) and the QGIS style.
    $("dl-mask").href = blobUrl(result.mask_zip, "application/zip");
    $("dl-mask").download = stem + "_classes.zip";
    $("dl-overlay").href = overlayUrl;
    $("dl-overlay").download = stem + "_overlay.png";
    $("dl-geojson").href = track(new Blob([JSON.stringify(result.geojson)], { type: "application/geo+json" }));
    $("dl-geojson").download = stem + "_polygons.geojson";
    const confidenceIsPng = result.confidence.media_type === "image/png";
    $("dl-confidence").href = blobUrl(result.confidence.base64, result.confidence.media_type);
    $("dl-confidence").download = stem + "_confidence" + (confidenceIsPng ? ".png" : ".tif");
    setStatus(`${file.name}: done`);
    show($("result"), true);
  } catch (err) {
    setStatus("");
    setError(err.message);
  }
}

$("opacity").addEventListener("input", (e) => { $("mask").style.opacity = e.target.value / 100; });
$("mask").style.opacity = 0.6;
$("layer").addEventListener("change", (e) => { $("mask").src = layers[e.target.value] || layers.classes; });
$("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  e.target.value = ""; // choosing the same file again (after setting Bands) fires again
  if (file) segment(file);
});
// a change of Bands sends the file again; leaving the field unchanged since the last
// request does not (a review: a download's click re-ran the prediction)
$("bands").addEventListener("change", () => { if (chosen && bandsText() !== sentBands) segment(chosen); });
const drop = $("drop");
drop.addEventListener("keydown", (e) => {
  if (e.target !== drop) return; // the Bands field's own keys (a review: no space in "3 2 1")
  if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); }
});
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (e) => { if (e.dataTransfer.files[0]) segment(e.dataTransfer.files[0]); });
$("token-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const token = $("token").value.trim();
  if (!token) { askForToken("Enter the token this server was started with."); return; }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  try { await loadModel(); } catch (err) { modelFailed(err); return; }
  if (model && awaitingToken) { const file = awaitingToken; awaitingToken = null; segment(file); }
});
function modelFailed(err) {
  $("model-name").textContent = "";
  setError(`could not load the model description from the server (${err.message}): reload the page when it is up`);
}
loadModel().catch(modelFailed);
