// Odock console: the little the pages do in the browser. Loaded from /assets (the CSP forbids
// inline script). Pages work without it, except the playground and the copy buttons.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  let text = source.textContent.trim();
  if (source.dataset.absolute && text.startsWith("/")) text = window.location.origin + text;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch (_) {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
});

// "Use in the playground": the fresh secret stays in this tab's session storage only.
const SAVED_PREFIX = "odock-playground-key:";
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-remember]");
  if (!button) return;
  const source = document.getElementById(button.dataset.secretOf);
  if (!source) return;
  window.sessionStorage.setItem(SAVED_PREFIX + button.dataset.remember,
    JSON.stringify({ name: button.dataset.name, secret: source.textContent.trim() }));
  button.textContent = "Saved for the playground (this tab)";
});

// The playground: a real client call to the gateway with the pasted key.
(function playground() {
  const form = document.getElementById("playground");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const set = (id, text) => { $(id).textContent = text; };
  const reset = () => {
    $("p-output").textContent = "";
    for (const id of ["p-status", "p-ttft", "p-latency", "p-tokens", "p-cost", "p-request"]) set(id, "—");
  };
  $("p-clear").addEventListener("click", () => { form.reset(); reset(); });

  // The key picker: a secret this tab saved for the chosen key fills the field; otherwise the
  // field asks for that key's secret (the server only knows its preview).
  const saved = $("p-saved");
  if (saved) {
    saved.addEventListener("change", () => {
      const option = saved.selectedOptions[0];
      let entry = null;
      try { entry = JSON.parse(window.sessionStorage.getItem(SAVED_PREFIX + saved.value)); } catch (_) { /* none */ }
      $("p-key").value = entry && entry.secret ? entry.secret : "";
      $("p-key").placeholder = saved.value ? `secret of ${option.textContent}` : "sk_…";
      if (!$("p-key").value) $("p-key").focus();
    });
  }

  const readImage = (file) => new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = reject;
    reader.readAsDataURL(file);
  });

  // Usage records are written a moment after the call; ask a few times for its cost.
  const showCost = async (requestId) => {
    const usage = form.dataset.usage;
    if (!usage || !requestId) return;
    for (let attempt = 0; attempt < 10; attempt++) {
      const answer = await fetch(`${usage}?requestId=${encodeURIComponent(requestId)}`, { credentials: "same-origin" });
      if (answer.ok) {
        const list = await answer.json();
        if (list.data && list.data.length) {
          const record = list.data[0];
          set("p-cost", `$${(record.costNanosUsd / 1e9).toFixed(9)}`);
          if (record.tokens) set("p-tokens", `${record.tokens.input} in / ${record.tokens.output} out`);
          return;
        }
      }
      await new Promise((r) => setTimeout(r, 700));
    }
    set("p-cost", "not recorded yet: see the usage page");
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    reset();
    const data = new FormData(form);
    const stream = data.get("mode") === "stream";
    const messages = [];
    if (data.get("system")) messages.push({ role: "system", content: data.get("system") });
    const image = $("p-image").files[0];
    if (image) {
      messages.push({ role: "user", content: [
        { type: "text", text: data.get("prompt") },
        { type: "image_url", image_url: { url: await readImage(image) } },
      ] });
    } else {
      messages.push({ role: "user", content: data.get("prompt") });
    }
    const body = { model: data.get("model"), messages, stream };
    if (stream) body.stream_options = { include_usage: true };
    const started = performance.now();
    let firstToken = null;
    let response;
    try {
      response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${data.get("key")}` },
        body: JSON.stringify(body),
        credentials: "omit",
      });
    } catch (error) {
      set("p-status", `network error: ${error}`);
      return;
    }
    set("p-status", String(response.status));
    const requestId = response.headers.get("x-request-id");
    set("p-request", requestId || "—");
    const out = $("p-output");
    if (!response.ok) {
      const text = await response.text();
      try { out.textContent = JSON.parse(text).error.message; } catch (_) { out.textContent = text; }
      set("p-latency", `${Math.round(performance.now() - started)} ms`);
      return;
    }
    if (stream && response.body) {
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, cut).trim();
          buffer = buffer.slice(cut + 1);
          if (!line.startsWith("data:")) continue;
          const payload = line.slice(5).trim();
          if (payload === "[DONE]") continue;
          try {
            const chunk = JSON.parse(payload);
            const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
            if (delta && delta.content) {
              if (firstToken === null) {
                firstToken = performance.now();
                set("p-ttft", `${Math.round(firstToken - started)} ms`);
              }
              out.textContent += delta.content;
            }
            if (chunk.usage) set("p-tokens", `${chunk.usage.prompt_tokens} in / ${chunk.usage.completion_tokens} out`);
          } catch (_) { /* a partial or non-JSON line: skip */ }
        }
      }
    } else {
      const answer = await response.json();
      out.textContent = (answer.choices && answer.choices[0] && answer.choices[0].message && answer.choices[0].message.content) || "";
      if (answer.usage) set("p-tokens", `${answer.usage.prompt_tokens} in / ${answer.usage.completion_tokens} out`);
    }
    set("p-latency", `${Math.round(performance.now() - started)} ms`);
    showCost(requestId);
  });
})();
