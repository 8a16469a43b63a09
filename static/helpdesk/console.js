// The agents' console: views of the conversations (with filters, live timers and unread counts), one open
// conversation, replies, private notes, hand back, snooze, resolve and reopen, and who else is viewing it.
// Text is only ever inserted with textContent.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const queueEl = $("queue"), logEl = $("conv-log"), input = $("reply-input");
  const me = document.querySelector(".top__user").textContent.trim();
  let socket = null, retry = 0, current = null;  // current: the open conversation's data
  const queue = new Map();  // conversation id -> list entry, with `since` (ms, the agent's clock) for its timers
  const rendered = new Map();  // seq -> {li, body}
  let typingTimer = null, typingSent = false, customerTypingTimer = null, agentTypingTimer = null;
  let pendingReply = null;  // {clientId, content} of the reply or note sent and not yet acknowledged
  let nextCursor = null;  // the resolved view's next page
  const viewers = new Set();  // the other agents viewing the open conversation
  const knownQueued = new Set();  // conversations known to be waiting: a newcomer among them is alerted once
  const seen = new Map();  // conversation id -> {customer, assignee} as last listed, in any view
  const VIEWS = ["queue", "mine", "unassigned", "all", "snoozed", "resolved"];
  const EMPTY = {queue: "Nobody is waiting.", mine: "No conversations of yours.", unassigned: "Nobody is waiting.",
                 all: "No open conversations.", snoozed: "Nothing snoozed.", resolved: "Nothing resolved yet."};
  const STATUS = {bot: "bot", queued: "waiting", agent: "with an agent", snoozed: "snoozed", resolved: "resolved"};

  // What the agent chose stays with the browser: the view, the filters, the alerts and the unread counts.
  function stored(key, fallback) {
    try { const value = JSON.parse(localStorage.getItem("hd." + key)); return value ?? fallback; } catch (e) { return fallback; }
  }
  function store(key, value) { try { localStorage.setItem("hd." + key, JSON.stringify(value)); } catch (e) { /* private mode */ } }
  let view = VIEWS.includes(stored("view", "queue")) ? stored("view", "queue") : "queue";
  let filters = stored("filters", {});
  const unread = stored("unread", {});  // conversation id -> customer messages since the agent last opened it

  // A long conversation opens with its latest messages; this asks for the page before the oldest one shown.
  const earlierButton = document.createElement("button");
  earlierButton.type = "button";
  earlierButton.id = "btn-earlier";
  earlierButton.className = "secondary";
  earlierButton.textContent = "Load earlier messages";
  earlierButton.hidden = true;
  logEl.before(earlierButton);

  function send(frame) { if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame)); }
  function showError(text) { $("conv-error").textContent = text; $("conv-error").hidden = !text; }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A <time>: the time of day, and the full date in its tooltip.
  function timeEl(iso) {
    const node = el("time");
    const date = new Date(iso);
    if (!iso || Number.isNaN(date.getTime())) return node;
    node.dateTime = iso;
    node.textContent = date.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
    node.title = date.toLocaleString([], {dateStyle: "full", timeStyle: "medium"});
    return node;
  }

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    const min = Math.floor(s / 60);
    return min < 60 ? min + " min" : Math.floor(min / 60) + " h " + (min % 60) + " min";
  }

  function when(iso) {
    const date = new Date(iso);
    if (!iso || Number.isNaN(date.getTime())) return "";
    const today = date.toDateString() === new Date().toDateString();
    return today ? date.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})
      : date.toLocaleString([], {dateStyle: "medium", timeStyle: "short"});
  }

  // --- Alerts (opt-in): a short beep and a desktop notification -----------------------------------------------
  let alertsOn = stored("alerts", false) === true, audio = null;
  $("alerts").checked = alertsOn;
  $("alerts").addEventListener("change", (ev) => {
    alertsOn = ev.target.checked;
    store("alerts", alertsOn);
    if (!alertsOn) return;
    // Both need the agent's gesture: this click.
    try { audio = audio || new (window.AudioContext || window.webkitAudioContext)(); } catch (e) { audio = null; }
    if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
  });

  function beep() {
    if (!audio) return;
    try {
      const oscillator = audio.createOscillator(), gain = audio.createGain();
      oscillator.frequency.value = 880;
      gain.gain.value = 0.08;
      oscillator.connect(gain);
      gain.connect(audio.destination);
      oscillator.start();
      oscillator.stop(audio.currentTime + 0.15);
    } catch (e) { /* no sound device */ }
  }

  function alertAgent(text) {
    $("alert-text").textContent = text;  // for screen readers, alerts on or not
    if (!alertsOn) return;
    beep();
    if ("Notification" in window && Notification.permission === "granted") new Notification("Helpdesk", {body: text});
  }

  // --- The list of conversations: a view with filters ---------------------------------------------------------
  function cleanFilters() {
    const result = {};
    for (const [name, value] of Object.entries(filters || {})) if (value !== "" && value != null) result[name] = value;
    return result;
  }

  function requestList(before) {
    const frame = {type: "list", view, filters: cleanFilters()};
    if (before) frame.before = before;
    send(frame);
  }

  function showView() {
    document.querySelectorAll(".views [data-view]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.view === view)));
    $("filter-site").value = filters.site || "";
    $("filter-language").value = filters.language || "";
    $("filter-tag").value = filters.tag || "";
    $("filter-priority").value = filters.priority ? String(filters.priority) : "";
  }

  function entrySet(item) {
    queue.set(item.id, {...item, since: Date.now() - (item.waiting_s || 0) * 1000});
    seen.set(item.id, {customer: item.customer, assignee: item.status === "resolved" ? null : item.assignee});
    if (item.status === "queued") knownQueued.add(item.id); else knownQueued.delete(item.id);
  }

  function listReplace(items, append) {
    if (!append) queue.clear();
    items.forEach(entrySet);
    renderQueue();
  }

  // One entry changed: it is in this view now (item) or not (removed); a customer who starts waiting is alerted.
  function entryNews(id, status, item) {
    if (status === "queued" && !knownQueued.has(id)) alertAgent("A customer is waiting" + (item ? ": " + item.customer : "."));
    if (item) entrySet(item);
    else {
      queue.delete(id);
      if (status === "queued") knownQueued.add(id); else knownQueued.delete(id);
    }
    renderQueue();
  }

  function sortedEntries() {
    const items = [...queue.values()];
    if (view === "resolved") return items.sort((a, b) => String(b.resolved_at).localeCompare(String(a.resolved_at)));
    // First come, first served within priority, as the server orders it.
    return items.sort((a, b) => (b.priority || 0) - (a.priority || 0) || a.since - b.since);
  }

  function timerText(item) {
    if (item.status === "queued") return "waiting " + duration(Date.now() - item.since);
    if (item.status === "snoozed") return item.snoozed_until ? "snoozed until " + when(item.snoozed_until) : "snoozed until the customer replies";
    if (item.status === "resolved") return "resolved " + when(item.resolved_at) + (item.rating ? " · rated " + item.rating + "/5" : "");
    return item.last_message_at ? "last message " + duration(Date.now() - new Date(item.last_message_at).getTime()) + " ago" : "";
  }

  function renderQueue() {
    queueEl.replaceChildren();
    const items = sortedEntries();
    $("queue-empty").hidden = items.length > 0;
    $("queue-empty").textContent = EMPTY[view];
    for (const item of items) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.conversation = item.id;
      const mine = item.assignee === me && item.status !== "resolved";
      if (mine) button.classList.add("mine");
      if (current && current.id === item.id) button.setAttribute("aria-current", "true");
      const title = el("strong", "", item.customer);
      const badge = item.status === "queued" ? "waiting" : mine ? (item.status === "snoozed" ? "snoozed · yours" : "yours")
        : item.assignee ? item.assignee : STATUS[item.status] || item.status;
      title.append(el("span", "row__status", badge));
      if (item.identity_verified) title.append(el("span", "row__status row__verified", "verified"));
      const count = unread[item.id] || 0;
      if (count) {
        const counter = el("span", "unread", String(count));
        counter.title = count + " unread";
        button.append(counter);
      }
      const detail = el("div", "muted");
      detail.append(el("span", "", [item.subject, item.site_name, item.language].filter(Boolean).join(" · ") + " · "));
      const timer = el("span", "timer", timerText(item));
      timer.dataset.conversation = item.id;
      detail.append(timer);
      button.append(title, detail);
      button.addEventListener("click", () => openConversation(item.id));
      li.appendChild(button);
      queueEl.appendChild(li);
    }
    $("btn-more").hidden = !(view === "resolved" && nextCursor);
  }

  // The timers move on every few seconds without redrawing the list.
  function tick() {
    document.querySelectorAll("#queue .timer").forEach((span) => {
      const item = queue.get(span.dataset.conversation);
      if (item) span.textContent = timerText(item);
    });
  }

  function unreadSet(id, count) {
    if (count) unread[id] = count; else delete unread[id];
    store("unread", unread);
  }

  function openConversation(id) {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return;
    send({type: "open", conversation: id});
  }

  // --- The open conversation ------------------------------------------------------------------------------------
  function renderMessage(message, keepScroll) {
    let item = rendered.get(message.seq);
    if (!item) {
      const li = document.createElement("li");
      const meta = document.createElement("small");
      const body = document.createElement("span");
      const about = document.createElement("div");
      about.className = "msg__about";
      li.append(meta, body, about);
      li.dataset.seq = message.seq;
      const after = [...logEl.children].find((node) => Number(node.dataset.seq) > message.seq);
      logEl.insertBefore(li, after || null);
      item = {li, meta, body, about};
      rendered.set(message.seq, item);
    }
    item.li.className = "msg msg--" + message.role;
    const who = {customer: "Customer", bot: "Bot", agent: message.author || "Agent", note: "Note · " + (message.author || ""), system: ""};
    item.meta.replaceChildren(who[message.role] || "");
    if (message.created_at) item.meta.append(timeEl(message.created_at));
    if (message.via === "email") {
      const via = document.createElement("span");
      via.className = "msg__via";
      via.textContent = "by email";
      item.meta.append(" ", via);
    }
    item.body.textContent = message.content;
    renderFiles(item, message.attachments);
    renderAbout(item.about, message);
    if (!keepScroll) logEl.scrollTop = logEl.scrollHeight;
  }

  function setHasMore(hasMore) {
    earlierButton.hidden = !hasMore;
    earlierButton.disabled = false;
  }

  // An older page: its messages go above those shown, and the view stays where the agent was reading.
  function renderHistory(frame) {
    const fromBottom = logEl.scrollHeight - logEl.scrollTop;
    frame.messages.forEach((m) => renderMessage(m, true));
    logEl.scrollTop = logEl.scrollHeight - fromBottom;
    setHasMore(frame.has_more);
  }

  // How a finished bot reply was made, and the knowledge-base articles it rests on.
  const GROUNDING = {
    extractive: "quoted from the help center",
    curated: "curated answer",
    generative: "generated from the help center",
    no_knowledge: "no knowledge — handed off",
    small_talk: "small talk",
    rules: "keyword rule",
    attachment: "file received — fixed reply",
  };

  // Files sent with a message: an image's thumbnail opening the full image, any other file as a link. The URLs
  // answer signed-in staff (and the conversation's customer), never anyone else.
  function sameSitePath(url) { return typeof url === "string" && /^\/[^/\\]/.test(url) ? url : ""; }

  function renderFiles(item, attachments) {
    if (item.files) item.files.remove();
    item.files = null;
    const list = Array.isArray(attachments) ? attachments : [];
    if (!list.length) return;
    const box = el("div", "msg__files");
    for (const file of list) {
      const url = sameSitePath(file && file.url);
      if (!url) continue;
      const link = el("a");
      link.href = url;
      const thumb = file.is_image ? sameSitePath(file.thumbnail_url) : "";
      // An image opens in a tab; any other file (a PDF too, served as a download) is saved under its name.
      if (file.is_image) {
        link.target = "_blank";
        link.rel = "noopener";
      } else link.download = file.name || "file";
      if (thumb) {
        const img = el("img");
        const w = Number(file.width) || 0, h = Number(file.height) || 0;
        if (w > 0 && h > 0) {  // its room kept before it loads, so the log stays scrolled to the newest message
          const scale = Math.min(1, 240 / w, 240 / h);
          img.width = Math.max(1, Math.round(w * scale));
          img.height = Math.max(1, Math.round(h * scale));
        }
        img.src = thumb;
        img.alt = file.name || "image";
        link.title = (file.name || "image") + " (open the full image)";
        link.append(img);
      } else {
        link.className = "msg__file";
        link.textContent = (file.name || "file") + " · " + fileSize(Number(file.size) || 0);
      }
      box.append(link);
    }
    item.about.before(box);
    item.files = box;
  }

  function fileSize(bytes) {
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  // The assignee sends a file; the reply box's text, if any, goes with it as its caption.
  async function sendFile(file) {
    if (!file || !current || !isMine()) return;
    const id = current.id, caption = input.value.trim(), button = $("btn-attach"), form = new FormData();
    form.append("file", file, file.name);
    form.append("caption", caption);
    form.append("client_id", crypto.randomUUID ? crypto.randomUUID() : String(Date.now()));
    button.disabled = true;
    button.textContent = "Sending…";
    showError("");
    let response = null, body = {};
    try {
      response = await fetch("/console/conversations/" + id + "/attachments", {
        method: "POST", credentials: "same-origin", headers: {"X-CSRFToken": csrfToken()}, body: form,
      });
      body = (await response.json().catch(() => ({}))) || {};
    } catch (e) {
      response = null;
    }
    button.textContent = "Attach file";
    if (current) setStatus(current.status);
    if (!response || !response.ok) {
      showError((body.error && body.error.message) || "The file could not be sent; try again.");
      return;
    }
    if (caption && input.value.trim() === caption) { input.value = ""; stopTyping(); }
    if (current && current.id === id && body.message) renderMessage(body.message);
  }

  function httpUrl(url) {
    try {
      const parsed = new URL(String(url || ""));
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : "";
    } catch (e) {
      return "";
    }
  }

  function renderAbout(about, message) {
    about.replaceChildren();
    if (message.role !== "bot") return;
    const badges = el("div", "msg__badges");
    const label = GROUNDING[message.grounding];
    if (label) badges.append(el("span", "tag tag--grounding", label));
    if (message.fact_guard_tripped) badges.append(el("span", "tag tag--warn", "fact guard replaced the model's text"));
    if (badges.childElementCount) about.append(badges);
    // One line per article, with its best-scoring passage.
    const articles = new Map();
    for (const source of Array.isArray(message.sources) ? message.sources : []) {
      if (!source || !source.title) continue;
      const key = source.article_id ?? source.title + "\n" + (source.url || "");
      const seen = articles.get(key);
      if (!seen || (Number(source.score) || 0) > (Number(seen.score) || 0)) articles.set(key, source);
    }
    if (!articles.size) return;
    const list = el("ul", "msg__sources");
    list.setAttribute("aria-label", "Sources");
    for (const source of articles.values()) {
      const li = el("li");
      const url = httpUrl(source.url);
      if (url) {
        const link = el("a", "", source.title);
        link.href = url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        li.append(link);
      } else li.append(el("span", "", source.title));
      if (typeof source.score === "number" && Number.isFinite(source.score)) {
        li.append(" ", el("span", "muted", "score " + Number(source.score).toFixed(2)));
      }
      list.append(li);
    }
    about.append(el("div", "msg__sources-label muted", "Sources"), list);
  }

  function renderConversation(conv) {
    const switched = !current || current.id !== conv.id;
    current = conv;
    rendered.clear();
    logEl.replaceChildren();
    if (switched) { viewers.clear(); agentTyping(null, false); }
    renderViewers();
    $("conv").hidden = false;
    $("conv-customer").textContent = conv.customer + (conv.email ? " <" + conv.email + ">" : "");
    $("conv-profile").hidden = !conv.email && !conv.contact;
    if (conv.email) $("conv-profile").href = "/console/customers/?email=" + encodeURIComponent(conv.email);
    if (conv.contact) $("conv-profile").href = "/console/customers/?contact=" + conv.contact.id;
    // Verified: the site signed this customer's identity (its own user id shown beside it).
    $("conv-verified").hidden = !conv.identity_verified;
    $("conv-verified").textContent = "verified" + (conv.contact && conv.contact.external_id ? " · " + conv.contact.external_id : "");
    $("conv-origin").textContent = [conv.site, conv.page_url, conv.region, conv.language].filter(Boolean).join(" · ");
    $("conv-reason").textContent = conv.reason_label ? "Handed off: " + conv.reason_label + "." : "";
    $("conv-summary").textContent = conv.summary || "";
    renderRating(conv.rating);
    conv.messages.forEach((m) => renderMessage(m));
    setHasMore(conv.has_more);
    renderTicket(conv.ticket);
    fillSelect($("canned"), "Canned…", (conv.canned || []).map((c) => [c.text, c.title + (c.shortcut ? " (/" + c.shortcut + ")" : "")]));
    fillSelect($("transfer-to"), "Transfer to…", (conv.agents || []).map((a) => [a, a]));
    setStatus(conv.status, conv.assignee);
    unreadSet(conv.id, 0);
    renderQueue();
    // The address names the open conversation: a reload (or a link from search) opens it again.
    if (location.hash !== "#c=" + conv.id) history.replaceState(null, "", "#c=" + conv.id);
  }

  function renderRating(rating) {
    const box = $("conv-rating");
    box.hidden = !rating;
    if (!rating) return;
    box.replaceChildren(el("strong", "", "Rated " + rating.score + "/5"));
    if (rating.comment) box.append(" · “" + rating.comment + "”");
    if (rating.created_at) box.append(" · ", timeEl(rating.created_at));
  }

  function renderViewers() {
    const others = [...viewers].filter((name) => name !== me).sort();
    $("conv-viewers").hidden = !others.length;
    $("conv-viewers").textContent = others.length ? "Also viewing: " + others.join(", ") : "";
  }

  function agentTyping(username, on) {
    const line = $("conv-agent-typing");
    clearTimeout(agentTypingTimer);
    line.hidden = !on;
    line.textContent = on ? username + " is typing…" : "";
    // A lost "stopped typing" never leaves the indicator on.
    if (on) agentTypingTimer = setTimeout(() => { line.hidden = true; }, 6000);
  }

  function renderTicket(ticket) {
    $("ticket-form").hidden = !ticket;
    if (!ticket) return;
    $("ticket-id").textContent = "Ticket #" + ticket.id;
    $("ticket-status").value = ticket.status;
    $("ticket-priority").value = String(ticket.priority);
    $("ticket-tags").value = ticket.tags;
  }

  function fillSelect(select, placeholder, options) {
    select.replaceChildren(new Option(placeholder, ""));
    for (const [value, label] of options) select.appendChild(new Option(label, value));
  }

  function isMine() {
    return !!current && (current.status === "agent" || current.status === "snoozed") && current.assignee === me;
  }

  // What the agent may do follows the status and who holds the conversation: only the assignee replies.
  function setStatus(status, assignee) {
    current.status = status;
    if (assignee !== undefined) current.assignee = assignee;
    $("conv-status").textContent = STATUS[status] || status;
    const mine = isMine();
    const held = (status === "agent" || status === "snoozed") && current.assignee && !mine;
    $("btn-claim").disabled = status !== "queued";
    $("btn-hand-back").disabled = !(mine && status === "agent");
    $("btn-resolve").disabled = status === "resolved" || !!held;
    $("btn-resolve").hidden = status === "resolved";
    $("btn-reopen").hidden = status !== "resolved";
    $("btn-snooze").disabled = !(mine && status === "agent");
    $("btn-transfer").disabled = !mine;
    $("btn-send").disabled = !mine;
    $("btn-note").disabled = false;  // a private note, for colleagues, on any conversation
    $("btn-suggest").disabled = !mine;
    $("btn-attach").disabled = !(mine && status === "agent");
    input.placeholder = held ? "Only " + current.assignee + " can reply; you can leave a private note." : "Reply to the customer…";
    $("conv-lock").hidden = !held;
    $("conv-lock-text").textContent = held ? current.assignee + " is replying to this customer; take it over to reply." : "";
    $("btn-take-over").disabled = status !== "agent";
  }

  function forCurrent(frame) { return current && frame.conversation === current.id; }

  // A customer's message: unread unless the agent is looking at it, and an alert in one of theirs.
  function customerWrote(frame) {
    const looking = forCurrent(frame) && !document.hidden;
    if (!forCurrent(frame)) {
      unreadSet(frame.conversation, (unread[frame.conversation] || 0) + 1);
      renderQueue();
    }
    const entry = seen.get(frame.conversation);
    const mine = (entry && entry.assignee === me) || (forCurrent(frame) && isMine());
    if (mine && !looking) alertAgent("New message from " + (entry ? entry.customer : current.customer) + ".");
  }

  function hashConversation() {
    const match = /^#c=([0-9a-f-]{36})$/i.exec(location.hash);
    return match ? match[1] : null;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/console/");
    socket.onopen = () => {
      retry = 0;
      $("connection").textContent = "Online";
      requestList();
      const wanted = current ? current.id : hashConversation();
      if (wanted) openConversation(wanted);
    };
    socket.onmessage = (ev) => {
      const frame = JSON.parse(ev.data);
      switch (frame.type) {
        case "queue":  // the default view, on connect and refreshed now and then
          if (view === "queue" && !Object.keys(cleanFilters()).length) listReplace(frame.conversations, false);
          break;
        case "list":
          if (frame.view !== view) break;  // an answer to a view the agent already left
          if (Array.isArray(frame.sites)) fillSites(frame.sites);
          nextCursor = frame.next;
          listReplace(frame.conversations, frame.append);
          break;
        case "queue_item": entryNews(frame.item.id, frame.item.status, frame.item); break;
        case "queue_remove": entryNews(frame.conversation, frame.waiting ? "queued" : null, null); break;
        case "conversation": renderConversation(frame.conversation); showError(""); break;
        case "history": if (forCurrent(frame)) renderHistory(frame); break;
        case "message":
          if (frame.message && frame.message.role === "customer") customerWrote(frame);
          if (forCurrent(frame)) renderMessage(frame.message);
          break;
        case "done": case "note": if (forCurrent(frame)) renderMessage(frame.message); break;
        case "delta":
          if (forCurrent(frame) && rendered.has(frame.seq)) rendered.get(frame.seq).body.textContent += frame.text;
          break;
        case "withdrawn":
          if (forCurrent(frame) && rendered.has(frame.seq)) { rendered.get(frame.seq).li.remove(); rendered.delete(frame.seq); }
          break;
        case "status":
          if (forCurrent(frame)) {
            setStatus(frame.status, frame.assignee || null);
            const ticketStatus = $("ticket-status");
            if (frame.status === "resolved") ticketStatus.value = "resolved";  // resolved with the chat
            // Reopened (by the customer or an agent): the server opened its ticket again.
            else if (frame.status !== "snoozed" && ["resolved", "closed"].includes(ticketStatus.value)) ticketStatus.value = "open";
            if (frame.status !== "agent") agentTyping(null, false);
          }
          break;
        case "typing":
          if (!forCurrent(frame)) break;
          if (frame.role === "customer") {
            $("conv-typing").hidden = !frame.on;
            clearTimeout(customerTypingTimer);
            // A lost "stopped typing" never leaves the indicator on.
            if (frame.on) customerTypingTimer = setTimeout(() => { $("conv-typing").hidden = true; }, 6000);
          } else if (frame.role === "agent" && frame.username && frame.username !== me) {
            agentTyping(frame.username, frame.on);
          }
          break;
        case "viewer":
          if (!forCurrent(frame)) break;
          if (frame.on) viewers.add(frame.username); else viewers.delete(frame.username);
          renderViewers();
          break;
        case "presence": $("presence").value = frame.status; break;
        case "ticket": if (forCurrent(frame)) renderTicket(frame.ticket); break;
        case "summary": if (forCurrent(frame)) $("conv-summary").textContent = frame.summary; break;
        case "suggestion":
          if (forCurrent(frame)) {
            $("btn-suggest").disabled = false;
            if (frame.text) { input.value = frame.text; input.focus(); } else showError("No suggestion this time.");
          }
          break;
        case "ack":
          if (pendingReply && frame.client_id === pendingReply.clientId) {
            if (input.value.trim() === pendingReply.content) { input.value = ""; stopTyping(); }
            pendingReply = null;
          }
          break;
        case "error":
          // A typing signal refused for its rate is worth nothing later: drop it, say nothing.
          if (frame.code === "rate_limited" && frame.for === "typing") break;
          pendingReply = null;  // a reply waiting for its ack was not taken: it is still in the box, to send again
          if (frame.code === "rate_limited" && frame.for === "history") earlierButton.disabled = false;
          showError(frame.message);
          break;
      }
    };
    socket.onclose = () => {
      pendingReply = null;
      $("connection").textContent = "Reconnecting…";
      setTimeout(connect, Math.min(10000, 500 * 2 ** retry++));
    };
  }

  function fillSites(sites) {
    const select = $("filter-site");
    fillSelect(select, "Any", sites.map((s) => [s.key, s.name]));
    select.value = filters.site || "";
  }

  function stopTyping() {
    if (typingSent && current) send({type: "typing", conversation: current.id, on: false});
    typingSent = false;
  }

  // Snooze choices: an hour from now, tomorrow at 9:00 (the agent's time), or until the customer writes (null).
  function snoozeUntil(choice) {
    if (choice === "reply") return null;
    if (choice === "hour") return new Date(Date.now() + 3600 * 1000).toISOString();
    const tomorrow = new Date();
    tomorrow.setDate(tomorrow.getDate() + 1);
    tomorrow.setHours(9, 0, 0, 0);
    return tomorrow.toISOString();
  }

  document.querySelectorAll(".views [data-view]").forEach((button) => button.addEventListener("click", () => {
    view = button.dataset.view;
    store("view", view);
    queue.clear();
    nextCursor = null;
    showView();
    renderQueue();
    requestList();
  }));
  $("filters").addEventListener("change", () => {
    const priority = $("filter-priority").value;
    filters = {site: $("filter-site").value, language: $("filter-language").value,
               tag: $("filter-tag").value.trim(), priority: priority ? Number(priority) : ""};
    store("filters", cleanFilters());
    requestList();
  });
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); $("filters").dispatchEvent(new Event("change")); });
  $("btn-more").addEventListener("click", () => { if (nextCursor) requestList(nextCursor); });
  window.addEventListener("hashchange", () => {
    const wanted = hashConversation();
    if (wanted && (!current || current.id !== wanted)) openConversation(wanted);
  });
  earlierButton.addEventListener("click", () => {
    const seqs = [...rendered.keys()];
    if (!current || !seqs.length) return;
    earlierButton.disabled = true;  // until the page arrives
    send({type: "history", conversation: current.id, before_seq: Math.min(...seqs)});
  });
  $("btn-claim").addEventListener("click", () => send({type: "claim", conversation: current.id}));
  $("btn-take-over").addEventListener("click", () => send({type: "take_over", conversation: current.id}));
  $("btn-reopen").addEventListener("click", () => send({type: "reopen", conversation: current.id}));
  $("btn-snooze").addEventListener("click", () => {
    send({type: "snooze", conversation: current.id, until: snoozeUntil($("snooze-until").value)});
  });
  $("canned").addEventListener("change", (ev) => {
    if (ev.target.value) { input.value = ev.target.value; input.focus(); }
    ev.target.value = "";
  });
  $("btn-transfer").addEventListener("click", () => {
    const to = $("transfer-to").value;
    if (to && current) send({type: "transfer", conversation: current.id, to});
  });
  $("btn-attach").addEventListener("click", () => $("attach-input").click());
  $("attach-input").addEventListener("change", (ev) => {
    const file = ev.target.files[0];
    ev.target.value = "";
    sendFile(file);
  });
  $("btn-hand-back").addEventListener("click", () => send({type: "hand_back", conversation: current.id}));
  $("btn-resolve").addEventListener("click", () => send({type: "resolve", conversation: current.id}));
  $("reply-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const content = input.value.trim();
    if (!content || !current || pendingReply || !isMine()) return;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showError("Not connected: your reply stays in the box; send it again once the console is online.");
      return;
    }
    // The reply stays in the box until the server acknowledges it: an error or a lost connection loses nothing.
    pendingReply = {clientId: crypto.randomUUID ? crypto.randomUUID() : String(Date.now()), content};
    send({type: "message", conversation: current.id, content, client_id: pendingReply.clientId});
  });
  $("btn-note").addEventListener("click", () => {
    const content = input.value.trim();
    if (!content || !current || pendingReply) return;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showError("Not connected: your note stays in the box; add it again once the console is online.");
      return;
    }
    // As a reply: the note stays in the box until the server acknowledges it.
    pendingReply = {clientId: crypto.randomUUID ? crypto.randomUUID() : String(Date.now()), content};
    send({type: "note", conversation: current.id, content, client_id: pendingReply.clientId});
  });
  $("ticket-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!current) return;
    send({type: "ticket", conversation: current.id, status: $("ticket-status").value,
          priority: Number($("ticket-priority").value), tags: $("ticket-tags").value});
  });
  $("presence").addEventListener("change", (ev) => send({type: "presence", status: ev.target.value}));
  $("btn-suggest").addEventListener("click", () => {
    if (!current) return;
    $("btn-suggest").disabled = true;  // re-enabled when the draft arrives
    send({type: "suggest", conversation: current.id});
  });
  input.addEventListener("input", () => {
    if (!isMine() || current.status !== "agent") return;
    if (!typingSent) { send({type: "typing", conversation: current.id, on: true}); typingSent = true; }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 3000);
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("reply-form").requestSubmit(); }
  });
  $("search-form").addEventListener("submit", (ev) => { if (!$("search-q").value.trim()) ev.preventDefault(); });

  showView();
  renderQueue();
  setInterval(tick, 5000);  // waiting times move on between updates
  connect();
})();
