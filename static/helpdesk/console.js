// The agents' console: a live queue, one open conversation, replies, private notes, hand back and resolve.
// Text is only ever inserted with textContent.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const queueEl = $("queue"), logEl = $("conv-log"), input = $("reply-input");
  const me = document.querySelector(".top__user").textContent.trim();
  let socket = null, retry = 0, current = null;  // current: the open conversation's data
  const queue = new Map();  // conversation id -> queue entry, with `since` (ms) for its waiting time
  const rendered = new Map();  // seq -> {li, body}
  let typingTimer = null, typingSent = false, customerTypingTimer = null;
  let pendingReply = null;  // {clientId, content} of the reply sent and not yet acknowledged
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

  // The whole list ("queue") or one entry at a time ("queue_item", "queue_remove"); new waiting customers notify.
  function queueUpdate(items, replace) {
    const before = new Set(queue.keys());
    if (replace) queue.clear();
    for (const item of items) queue.set(item.id, {...item, since: Date.now() - item.waiting_s * 1000});
    renderQueue();
    const fresh = items.filter((c) => c.status === "queued" && !before.has(c.id));
    if (fresh.length) notify(fresh.length + " customer(s) waiting");
  }

  function renderQueue() {
    // First come, first served within priority, as the server orders it.
    const items = [...queue.values()].sort((a, b) => (b.priority || 0) - (a.priority || 0) || a.since - b.since);
    queueEl.replaceChildren();
    $("queue-empty").hidden = items.length > 0;
    for (const item of items) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.conversation = item.id;
      if (item.status === "agent") button.classList.add("mine");
      if (current && current.id === item.id) button.setAttribute("aria-current", "true");
      const title = document.createElement("strong");
      title.textContent = item.customer + (item.status === "agent" ? " · yours" : "");
      const detail = document.createElement("div");
      detail.className = "muted";
      detail.textContent = (item.subject || "") + " · waiting " + Math.round((Date.now() - item.since) / 60000) + " min";
      button.append(title, detail);
      button.addEventListener("click", () => send({type: "open", conversation: item.id}));
      li.appendChild(button);
      queueEl.appendChild(li);
    }
  }

  function notify(text) {
    if ("Notification" in window && Notification.permission === "granted") new Notification("Helpdesk", {body: text});
  }

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
      const after = [...logEl.children].find((el) => Number(el.dataset.seq) > message.seq);
      logEl.insertBefore(li, after || null);
      item = {li, meta, body, about};
      rendered.set(message.seq, item);
    }
    item.li.className = "msg msg--" + message.role;
    const who = {customer: "Customer", bot: "Bot", agent: message.author || "Agent", note: "Note · " + (message.author || ""), system: ""};
    item.meta.textContent = who[message.role] || "";
    item.body.textContent = message.content;
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
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
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
    current = conv;
    rendered.clear();
    logEl.replaceChildren();
    $("conv").hidden = false;
    $("conv-customer").textContent = conv.customer + (conv.email ? " <" + conv.email + ">" : "");
    $("conv-origin").textContent = [conv.site, conv.page_url, conv.region, conv.language].filter(Boolean).join(" · ");
    $("conv-reason").textContent = conv.reason_label ? "Handed off: " + conv.reason_label + "." : "";
    $("conv-summary").textContent = conv.summary || "";
    conv.messages.forEach((m) => renderMessage(m));
    setHasMore(conv.has_more);
    renderTicket(conv.ticket);
    fillSelect($("canned"), "Canned…", (conv.canned || []).map((c) => [c.text, c.title + (c.shortcut ? " (/" + c.shortcut + ")" : "")]));
    fillSelect($("transfer-to"), "Transfer to…", (conv.agents || []).map((a) => [a, a]));
    setStatus(conv.status, conv.assignee);
    document.querySelectorAll("#queue button").forEach((b) =>
      b.setAttribute("aria-current", String(b.dataset.conversation === conv.id)));
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

  function setStatus(status, assignee) {
    current.status = status;
    if (assignee !== undefined) current.assignee = assignee;
    $("conv-status").textContent = status;
    const mine = status === "agent" && current.assignee === me;
    $("btn-claim").disabled = status !== "queued";
    $("btn-hand-back").disabled = !mine;
    $("btn-resolve").disabled = status === "resolved";
    $("btn-send").disabled = !mine;
    $("btn-transfer").disabled = !mine;
  }

  function forCurrent(frame) { return current && frame.conversation === current.id; }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/console/");
    socket.onopen = () => { retry = 0; $("connection").textContent = "Online"; if (current) send({type: "open", conversation: current.id}); };
    socket.onmessage = (ev) => {
      const frame = JSON.parse(ev.data);
      switch (frame.type) {
        case "queue": queueUpdate(frame.conversations, true); break;
        case "queue_item": queueUpdate([frame.item], false); break;
        case "queue_remove": queue.delete(frame.conversation); renderQueue(); break;
        case "conversation": renderConversation(frame.conversation); showError(""); break;
        case "history": if (forCurrent(frame)) renderHistory(frame); break;
        case "message": case "done": case "note": if (forCurrent(frame)) renderMessage(frame.message); break;
        case "delta":
          if (forCurrent(frame) && rendered.has(frame.seq)) rendered.get(frame.seq).body.textContent += frame.text;
          break;
        case "withdrawn":
          if (forCurrent(frame) && rendered.has(frame.seq)) { rendered.get(frame.seq).li.remove(); rendered.delete(frame.seq); }
          break;
        case "status":
          if (forCurrent(frame)) {
            setStatus(frame.status, frame.assignee || null);
            if (frame.status === "resolved") $("ticket-status").value = "resolved";  // resolved with the chat
          }
          break;
        case "typing":
          if (forCurrent(frame) && frame.role === "customer") {
            $("conv-typing").hidden = !frame.on;
            clearTimeout(customerTypingTimer);
            // A lost "stopped typing" never leaves the indicator on.
            if (frame.on) customerTypingTimer = setTimeout(() => { $("conv-typing").hidden = true; }, 6000);
          }
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

  function stopTyping() {
    if (typingSent && current) send({type: "typing", conversation: current.id, on: false});
    typingSent = false;
  }

  earlierButton.addEventListener("click", () => {
    const seqs = [...rendered.keys()];
    if (!current || !seqs.length) return;
    earlierButton.disabled = true;  // until the page arrives
    send({type: "history", conversation: current.id, before_seq: Math.min(...seqs)});
  });
  $("btn-claim").addEventListener("click", () => send({type: "claim", conversation: current.id}));
  $("canned").addEventListener("change", (ev) => {
    if (ev.target.value) { input.value = ev.target.value; input.focus(); }
    ev.target.value = "";
  });
  $("btn-transfer").addEventListener("click", () => {
    const to = $("transfer-to").value;
    if (to && current) send({type: "transfer", conversation: current.id, to});
  });
  $("btn-hand-back").addEventListener("click", () => send({type: "hand_back", conversation: current.id}));
  $("btn-resolve").addEventListener("click", () => send({type: "resolve", conversation: current.id}));
  $("reply-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const content = input.value.trim();
    if (!content || !current || pendingReply) return;
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
    if (!content || !current) return;
    send({type: "note", conversation: current.id, content});
    input.value = "";
    stopTyping();
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
    if (!current || current.status !== "agent") return;
    if (!typingSent) { send({type: "typing", conversation: current.id, on: true}); typingSent = true; }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 3000);
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("reply-form").requestSubmit(); }
  });
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();

  setInterval(renderQueue, 30000);  // waiting times move on between updates
  connect();
})();
