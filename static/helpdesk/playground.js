// The staff playground: a test chat through the customers' pipeline with chosen sampling parameters, engine and
// (draft) system prompt; per-turn figures; the transcript exported as JSON. Text is only inserted with textContent.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const config = JSON.parse($("playground-config").textContent);
  const sliders = [...document.querySelectorAll("input[type=range][data-param]")];
  const promptEl = $("prompt"), messageEl = $("message"), transcriptEl = $("transcript");
  let active = {template: config.prompt.template, version: config.prompt.version};
  let turns = [];  // {role, content, params_sent, params_applied, engine, model, stats, finish_reason, handoff}
  let running = null;  // {controller, started, timer, chars, bot}

  // --- helpers -------------------------------------------------------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showError(text) { $("error").textContent = text || ""; $("error").hidden = !text; }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  async function postJson(url, body, signal) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
      body: JSON.stringify(body),
      signal,
    });
  }

  // The message of a refused request: the server's {"error": {...}} when there is one.
  async function refusal(response) {
    if (response.redirected || response.status === 401) return "Your session has ended: sign in again (reload the page).";
    if (response.status === 403) {
      try { return (await response.json()).error.message; } catch (err) { return "Refused (403): reload the page and try again."; }
    }
    try {
      const error = (await response.json()).error;
      return error.message + (error.code ? " (" + error.code + ")" : "");
    } catch (err) {
      return "The server answered " + response.status + " " + response.statusText + ".";
    }
  }

  const fmt = {
    int: (v) => (v === null || v === undefined ? "—" : String(Math.round(v))),
    ms: (v) => (v === null || v === undefined ? "—" : Math.round(v) + " ms"),
    tps: (v) => (v === null || v === undefined ? "—" : Number(v).toFixed(1)),
  };

  // --- settings ------------------------------------------------------------------------------------------------
  function sliderValue(input) { return Number(Number(input.value).toFixed(Number(input.dataset.digits))); }

  function showSlider(input) {
    $(input.id + "-value").textContent = sliderValue(input).toFixed(Number(input.dataset.digits));
  }

  function paramsNow() {
    const params = {};
    for (const input of sliders) params[input.dataset.param] = sliderValue(input);
    return params;
  }

  function paramsReset() {
    for (const input of sliders) {
      input.value = String(config.defaults[input.dataset.param]);
      showSlider(input);
    }
  }

  for (const input of sliders) {
    const [low, high] = config.bounds[input.dataset.param];
    input.min = String(low);
    input.max = String(high);
    input.addEventListener("input", () => showSlider(input));
  }
  paramsReset();
  $("params-reset").addEventListener("click", paramsReset);

  for (const engine of config.engines) {
    $("engine").appendChild(new Option(engine.name + " — " + engine.adapter + " · " + engine.model, engine.name));
  }
  const engineChosen = () => config.engines.find((e) => e.name === $("engine").value) || config.engines[0];
  const engineTitle = () => { $("engine").title = $("engine").selectedOptions[0].textContent; };
  $("engine").addEventListener("change", engineTitle);
  engineTitle();

  // --- system prompt -------------------------------------------------------------------------------------------
  $("prompt-help").textContent = "Variables: " + config.variables.map((name) => "{{" + name + "}}").join(", ");
  const isDraft = () => promptEl.value !== active.template;

  function showPromptState() {
    $("prompt-version").textContent = active.version ? "v" + active.version + " (active)" : "built-in default";
    $("prompt-draft").hidden = !isDraft();
    $("prompt-reset").disabled = !isDraft();
    $("prompt-save").disabled = !isDraft() || !promptEl.value.trim();
  }

  promptEl.value = active.template;
  $("publish").hidden = !config.can_publish;
  $("publish-denied").hidden = config.can_publish;
  showPromptState();
  promptEl.addEventListener("input", () => { $("prompt-status").textContent = ""; showPromptState(); });
  $("prompt-reset").addEventListener("click", () => {
    promptEl.value = active.template;
    showPromptState();
    promptEl.focus();
  });

  $("publish").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!isDraft()) return;
    const template = promptEl.value;
    $("prompt-save").disabled = true;
    showError("");
    try {
      const response = await postJson("/playground/prompt", {template, note: $("prompt-note").value});
      if (response.status !== 201) { showError("Not saved: " + (await refusal(response))); return; }
      const saved = await response.json();
      active = {template, version: saved.version};
      $("prompt-note").value = "";
      $("prompt-status").textContent = "Saved as v" + saved.version + ": the bot uses it from now on.";
    } catch (err) {
      showError("Not saved: " + err.message);
    } finally {
      showPromptState();
    }
  });

  // --- transcript ----------------------------------------------------------------------------------------------
  function showEmpty() { $("transcript-empty").hidden = transcriptEl.children.length > 0; }

  function renderUser(turn) {
    const li = el("li", "msg msg--customer turn turn--user");
    li.append(el("small", "", "You, as the customer"), el("span", "turn__text", turn.content));
    transcriptEl.appendChild(li);
    showEmpty();
    return li;
  }

  function renderBot(draft) {
    const li = el("li", "msg msg--bot turn turn--bot turn--streaming");
    const meta = el("small", "", draft ? "Bot · draft prompt" : "Bot");
    const text = el("span", "turn__text");
    const figs = el("dl", "turn__figs");
    figs.hidden = true;
    li.append(meta, text, figs);
    transcriptEl.appendChild(li);
    showEmpty();
    return {li, meta, text, figs};
  }

  function renderFigures(view, turn) {
    const stats = turn.stats || {};
    const rows = [
      ["prompt_tokens", "Prompt tokens", fmt.int(stats.prompt_tokens)],
      ["completion_tokens", "Completion tokens", fmt.int(stats.completion_tokens)],
      ["ttft_ms", "TTFT", fmt.ms(stats.ttft_ms)],
      ["tokens_per_s", "Tokens/s", fmt.tps(stats.tokens_per_s)],
      ["finish_reason", "Finish", turn.finish_reason || "—"],
      ["engine", "Engine", (turn.engine || "?") + " · " + (turn.model || stats.engine || "?")],
    ];
    view.figs.replaceChildren();
    for (const [key, label, value] of rows) {
      const pair = el("div");
      const dd = el("dd", "", value);
      dd.dataset.fig = key;
      pair.append(el("dt", "", label), dd);
      view.figs.appendChild(pair);
    }
    view.figs.hidden = false;
    if (turn.handoff) view.li.appendChild(el("p", "turn__handoff", "handoff: the model would pass this to a person"));
  }

  function scrollDown() { transcriptEl.scrollTop = transcriptEl.scrollHeight; }

  // --- live figures --------------------------------------------------------------------------------------------
  function live(values) {
    for (const [key, value] of Object.entries(values)) $("live-" + key).textContent = value;
  }

  function liveStart() {
    live({state: "waiting for the first token", elapsed: "0 ms", chars: "0", prompt: "—", completion: "—",
          ttft: "—", tps: "—", finish: "—"});
    running.timer = setInterval(() => live({elapsed: Math.round(performance.now() - running.started) + " ms"}), 100);
  }

  function liveEnd(state) {
    clearInterval(running.timer);
    live({state, elapsed: Math.round(performance.now() - running.started) + " ms"});
  }

  function liveDone(turn) {
    const stats = turn.stats || {};
    live({prompt: fmt.int(stats.prompt_tokens), completion: fmt.int(stats.completion_tokens), ttft: fmt.ms(stats.ttft_ms),
          tps: fmt.tps(stats.tokens_per_s), finish: turn.finish_reason || "—"});
  }

  // --- one test turn -------------------------------------------------------------------------------------------
  function setRunning(on) {
    $("btn-send").disabled = on;
    $("btn-stop").disabled = !on;
  }

  // Server-Sent Events from a POST: fetch's body stream, split into frames by blank lines.
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      const frames = buffer.split(/\r?\n\r?\n/);
      buffer = frames.pop();
      for (const frame of frames) {
        let event = "message";
        const data = [];
        for (const line of frame.split(/\r?\n/)) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length && onEvent(event, JSON.parse(data.join("\n"))) === false) return;
      }
    }
  }

  // What the engine is sent as history: turns with text (a handoff-only or stopped-empty reply has none).
  function history() {
    return turns.filter((t) => t.content).map((t) => ({role: t.role, content: t.content}));
  }

  async function send(text) {
    showError("");
    const params = paramsNow();
    const engine = engineChosen();
    const draft = isDraft();
    const body = {
      messages: [...history(), {role: "user", content: text}],
      engine: engine.name,
      system_prompt: draft ? promptEl.value : null,
      params,
      language: $("language").value,
      region: $("region").value.trim(),
      mode: $("answer-mode").value,
    };
    const userTurn = {role: "user", content: text, params_sent: null, params_applied: null, stats: null,
                      finish_reason: null, handoff: null};
    const botTurn = {role: "assistant", content: "", params_sent: params, params_applied: null, engine: engine.name,
                     model: engine.model, system_prompt_draft: draft, stats: null, finish_reason: null, handoff: false};
    const userView = renderUser(userTurn);
    const bot = renderBot(draft);
    scrollDown();
    running = {controller: new AbortController(), started: performance.now(), timer: null, chars: 0};
    setRunning(true);
    liveStart();

    // Undo a turn that produced nothing, and give the typed text back.
    const giveBack = () => {
      userView.remove();
      bot.li.remove();
      if (!messageEl.value.trim()) messageEl.value = text;
      else messageEl.value = text + "\n" + messageEl.value;
      showEmpty();
    };
    const keep = () => { turns.push(userTurn, botTurn); bot.li.classList.remove("turn--streaming"); };

    let ended = false;
    try {
      const response = await postJson("/playground/generate", body, running.controller.signal);
      const type = response.headers.get("Content-Type") || "";
      if (!response.ok || response.redirected || !type.startsWith("text/event-stream")) {
        liveEnd("refused");
        giveBack();
        showError(await refusal(response));
        return;
      }
      await readEvents(response, (event, data) => {
        if (event === "start") {
          botTurn.params_applied = data.params;
          botTurn.engine = data.engine;
          botTurn.model = data.model;
        } else if (event === "delta") {
          if (!running.chars) live({state: "streaming", ttft: Math.round(performance.now() - running.started) + " ms (seen)"});
          botTurn.content += data.text;
          bot.text.textContent = botTurn.content;
          running.chars += data.text.length;
          live({chars: String(running.chars)});
          scrollDown();
        } else if (event === "done") {
          ended = true;
          Object.assign(botTurn, {content: data.text, handoff: data.handoff, finish_reason: data.finish_reason, stats: data.stats});
          bot.text.textContent = data.text;
          keep();
          liveEnd("done");
          live({chars: String(data.text.length)});
          liveDone(botTurn);
          renderFigures(bot, botTurn);
          scrollDown();
          return false;
        } else if (event === "error") {
          ended = true;
          liveEnd("error");
          if (botTurn.content) {
            botTurn.finish_reason = "error";
            keep();
            renderFigures(bot, botTurn);
          } else {
            giveBack();
          }
          showError(data.message + (data.code ? " (" + data.code + ")" : ""));
          return false;
        }
        return true;
      });
      if (!ended) throw new Error("the reply stream ended early");
    } catch (err) {
      if (ended) return;
      const stopped = err.name === "AbortError";
      liveEnd(stopped ? "stopped" : "failed");
      if (botTurn.content) {
        botTurn.finish_reason = stopped ? "stopped" : "failed";
        keep();
        renderFigures(bot, botTurn);
      } else {
        giveBack();
      }
      if (!stopped) showError("The test turn failed: " + err.message);
    } finally {
      clearInterval(running.timer);
      running = null;
      setRunning(false);
    }
  }

  $("chat-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = messageEl.value.trim();
    if (!text || running) return;
    messageEl.value = "";
    send(text);
  });
  messageEl.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); $("chat-form").requestSubmit(); }
  });
  $("btn-stop").addEventListener("click", () => { if (running) running.controller.abort(); });
  $("btn-clear").addEventListener("click", () => {
    if (running) running.controller.abort();
    turns = [];
    transcriptEl.replaceChildren();
    showEmpty();
    showError("");
    live({state: "idle", elapsed: "—", chars: "—", prompt: "—", completion: "—", ttft: "—", tps: "—", finish: "—"});
    messageEl.focus();
  });

  // --- export --------------------------------------------------------------------------------------------------
  $("btn-export").addEventListener("click", () => {
    const now = new Date();
    const engine = engineChosen();
    const data = {
      exported_at: now.toISOString(),
      engine: engine.name,
      model: engine.model,
      system_prompt: {draft: isDraft(), text: promptEl.value, version: active.version},
      language: $("language").value,
      region: $("region").value.trim(),
      params: paramsNow(),
      turns: turns.map((t) => ({
        role: t.role,
        content: t.content,
        params_sent: t.params_sent,
        params_applied: t.params_applied,
        engine: t.role === "assistant" ? t.engine : null,
        model: t.role === "assistant" ? t.model : null,
        system_prompt_draft: t.role === "assistant" ? t.system_prompt_draft : null,
        stats: t.stats,
        finish_reason: t.finish_reason,
        handoff: t.handoff,
      })),
    };
    const blob = new Blob([JSON.stringify(data, null, 2)], {type: "application/json"});
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "playground-" + now.toISOString().replace(/[:.]/g, "-") + ".json";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  });

  // --- tabs: the test chat and the retrieval test -------------------------------------------------------------
  const tabs = [$("tab-chat"), $("tab-retrieval")];

  function tabShow(tab) {
    for (const other of tabs) {
      const chosen = other === tab;
      other.setAttribute("aria-selected", String(chosen));
      other.tabIndex = chosen ? 0 : -1;
      $(other.getAttribute("aria-controls")).hidden = !chosen;
    }
  }

  for (const tab of tabs) {
    tab.addEventListener("click", () => tabShow(tab));
    tab.addEventListener("keydown", (ev) => {
      if (ev.key !== "ArrowLeft" && ev.key !== "ArrowRight") return;
      const next = tabs[(tabs.indexOf(tab) + (ev.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      tabShow(next);
      next.focus();
    });
  }

  // --- retrieval test: the knowledge step alone (no model) ----------------------------------------------------
  const score = (v) => (v === null || v === undefined ? "—" : Number(v).toFixed(3));

  function showRetrievalError(text) { $("rt-error").textContent = text || ""; $("rt-error").hidden = !text; }

  function scoreCell(value, threshold, fused) {
    const td = el("td", "num");
    td.appendChild(el(fused ? "strong" : "span", "", score(value)));
    if (fused) {
      const bar = el("span", "rt__bar");
      const fill = el("span");
      fill.style.width = Math.max(0, Math.min(1, value)) * 100 + "%";
      const mark = el("i");
      mark.style.left = Math.max(0, Math.min(1, threshold)) * 100 + "%";
      mark.title = "threshold " + score(threshold);
      bar.append(fill, mark);
      td.appendChild(bar);
    }
    return td;
  }

  function thresholdRow(threshold) {
    const tr = el("tr", "rt__threshold");
    const td = el("td");
    td.colSpan = 6;
    td.appendChild(el("div", "", "threshold " + score(threshold) + " — passages under this line are not used"));
    tr.appendChild(td);
    return tr;
  }

  function renderRetrieval(data) {
    const outcome = $("rt-outcome");
    outcome.textContent = data.outcome_label;
    outcome.className = data.handed_off ? "rt__outcome--handoff" : "";
    $("rt-mode-used").textContent = data.mode + " (" + data.mode_reason + ")";
    $("rt-language-used").textContent = data.searched
      ? data.language + (data.language !== data.language_requested ? " (asked in " + data.language_requested + ")" : "")
      : "not searched";
    $("rt-threshold").textContent = score(data.threshold);
    $("rt-terms").textContent = data.query_terms.length ? data.query_terms.join(" · ") : "—";
    $("rt-note").textContent = data.note;
    $("rt-note").hidden = !data.note;
    const hasAnswer = typeof data.answer === "string";
    $("rt-answer").textContent = hasAnswer ? data.answer : "";
    $("rt-answer").hidden = !hasAnswer;
    $("rt-answer-label").hidden = !hasAnswer;

    const body = $("rt-passages");
    body.replaceChildren();
    let lineDrawn = false;
    data.passages.forEach((passage, index) => {
      if (!passage.relevant && !lineDrawn) { body.appendChild(thresholdRow(data.threshold)); lineDrawn = true; }
      const tr = el("tr", passage.relevant ? "" : "rt__under");
      tr.appendChild(el("td", "num", String(index + 1)));
      const text = el("td");
      const title = el("div", "rt__title");
      if (passage.url) {
        const link = el("a", "", passage.title);
        link.href = passage.url;
        link.target = "_blank";
        link.rel = "noopener";
        title.appendChild(link);
      } else {
        title.textContent = passage.title;
      }
      if (passage.is_faq) title.append(" ", el("span", "tag", "curated answer"));
      text.append(title);
      if (passage.heading) text.appendChild(el("div", "rt__heading", passage.heading));
      text.appendChild(el("div", "rt__snippet", passage.snippet));
      tr.appendChild(text);
      tr.appendChild(scoreCell(passage.score, data.threshold, true));
      tr.appendChild(scoreCell(passage.lexical));
      tr.appendChild(scoreCell(passage.semantic));
      const use = el("td");
      if (passage.used) use.appendChild(el("span", "tag", data.grounding === "generative" ? "to the model" : "answers"));
      tr.appendChild(use);
      body.appendChild(tr);
    });
    if (data.passages.length && !lineDrawn) body.appendChild(thresholdRow(data.threshold));
    $("rt-table").hidden = !data.passages.length;
    $("rt-none").textContent = data.searched ? "The search found no passage for this question." : "";
    $("rt-none").hidden = !data.searched || data.passages.length > 0;
    $("rt-result").hidden = false;
  }

  $("rt-language").value = $("language").value;
  $("rt-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const question = $("rt-question").value.trim();
    showRetrievalError("");
    if (!question) { showRetrievalError("Write a question to search for."); $("rt-question").focus(); return; }
    const body = {
      question,
      language: $("rt-language").value,
      site: $("rt-site").value,
      mode: $("rt-mode").value,
      previous: $("rt-previous").value.split(/\r?\n/).map((line) => line.trim()).filter(Boolean),
      engine: engineChosen().name,
    };
    $("rt-submit").disabled = true;
    try {
      const response = await postJson("/playground/retrieval", body);
      const type = response.headers.get("Content-Type") || "";
      if (!response.ok || response.redirected || !type.startsWith("application/json")) {
        showRetrievalError(await refusal(response));
        return;
      }
      renderRetrieval(await response.json());
    } catch (err) {
      showRetrievalError("The retrieval test failed: " + err.message);
    } finally {
      $("rt-submit").disabled = false;
    }
  });
  $("rt-question").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); $("rt-form").requestSubmit(); }
  });

  showEmpty();
})();
