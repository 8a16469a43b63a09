// The customer chat page: opens (or resumes) a conversation, streams bot replies, survives reconnects.
// Text is only ever inserted with textContent, never as HTML.
(function () {
  "use strict";

  const STORE_KEY = "helpdesk.conversation";
  const log = document.getElementById("chat-log");
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-input");
  const statusEl = document.getElementById("chat-status");
  const typingEl = document.getElementById("chat-typing");
  const errorEl = document.getElementById("chat-error");

  let conv = loadConversation();      // {id, secret}
  let socket = null;
  let ready = false;
  let retry = 0;
  const rendered = new Map();         // seq -> {li, body}
  let lastSeq = 0;                    // newest finished message on this page: where a reconnect resumes
  const outbox = new Map();           // client_id -> content, until acknowledged

  function loadConversation() {
    try { return JSON.parse(localStorage.getItem(STORE_KEY)); } catch (e) { return null; }
  }
  function saveConversation() { localStorage.setItem(STORE_KEY, JSON.stringify(conv)); }

  function csrfToken() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  async function startConversation() {
    const resp = await fetch("/chat/conversations", {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
      credentials: "same-origin",
      body: JSON.stringify({
        language: navigator.language || "en",
        region: Intl.DateTimeFormat().resolvedOptions().timeZone || "",
      }),
    });
    if (!resp.ok) throw new Error("could not start a conversation (" + resp.status + ")");
    const data = await resp.json();
    conv = {id: data.id, secret: data.secret};
    saveConversation();
  }

  function setStatus(text) { statusEl.textContent = text; }
  const ratingForm = document.getElementById("chat-rating");
  const contactForm = document.getElementById("chat-contact");
  let agentTypingTimer = null, typingTimer = null, typingSent = false;
  function applyStatus(status) {
    setStatus({queued: "Waiting for an agent", agent: "Chatting with an agent", resolved: "Resolved"}[status] || "Online");
    ratingForm.hidden = status !== "resolved" || rated;
  }
  let rated = false;
  function showError(text) { errorEl.textContent = text; errorEl.hidden = !text; }
  function setTyping(on) { typingEl.hidden = !on; }

  function render(message) {
    let item = rendered.get(message.seq);
    if (!item) {
      const li = document.createElement("li");
      const body = document.createElement("span");
      li.appendChild(body);
      item = {li, body};
      rendered.set(message.seq, item);
      // Keep the log in sequence order even when a replay and a live event cross.
      const after = [...log.children].find((el) => Number(el.dataset.seq) > message.seq);
      li.dataset.seq = message.seq;
      log.insertBefore(li, after || null);
    }
    item.li.className = "msg msg--" + message.role + " msg--" + message.state;
    item.body.textContent = message.content;
    item.li.querySelectorAll(".msg__note").forEach((el) => el.remove());
    if (message.state === "failed") {
      const note = document.createElement("small");
      note.className = "msg__note";
      note.textContent = "The assistant could not finish this reply. Please try again, or ask for a person.";
      item.li.appendChild(note);
    }
    if (message.client_id) outbox.delete(message.client_id);
    // A streaming reply is not "seen" until done: a reconnect mid-stream replays it whole.
    if (message.state !== "streaming") lastSeq = Math.max(lastSeq, message.seq);
    const streaming = log.querySelectorAll(".msg--streaming").length > 0;
    if (streaming) typingEl.textContent = "The assistant is typing…";
    setTyping(streaming);
    log.scrollTop = log.scrollHeight;
  }

  function appendDelta(seq, text) {
    const item = rendered.get(seq);
    if (!item) return;  // the done frame will bring the whole text
    item.body.textContent += text;
    log.scrollTop = log.scrollHeight;
  }

  // A reply the bot started but must not finish (the conversation went to a person): take it off the page.
  function withdraw(seq) {
    const item = rendered.get(seq);
    if (item) { item.li.remove(); rendered.delete(seq); }
    setTyping(log.querySelectorAll(".msg--streaming").length > 0);
  }

  function send(frame) { socket.send(JSON.stringify(frame)); }

  // Messages not yet acknowledged are sent again; the server stores each client_id once.
  function flushOutbox() {
    if (!ready) return;
    for (const [clientId, content] of outbox) send({type: "message", content, client_id: clientId});
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/chat/" + conv.id + "/");
    socket.onopen = () => send({type: "hello", secret: conv.secret, last_seq: lastSeq});
    socket.onmessage = (ev) => {
      const frame = JSON.parse(ev.data);
      switch (frame.type) {
        case "ready":
          ready = true; retry = 0; applyStatus(frame.conversation.status); showError("");
          flushOutbox();
          break;
        case "message": case "done": render(frame.message); break;
        case "delta": appendDelta(frame.seq, frame.text); break;
        case "withdrawn": withdraw(frame.seq); break;
        case "status": applyStatus(frame.status); break;
        case "typing":
          if (frame.role === "agent") {
            typingEl.textContent = "The agent is typing…";
            setTyping(frame.on);
            clearTimeout(agentTypingTimer);
            // A lost "stopped typing" never leaves the indicator on.
            if (frame.on) agentTypingTimer = setTimeout(() => setTyping(false), 6000);
          }
          break;
        case "contact_request": contactForm.hidden = false; break;
        case "contact_saved": contactForm.hidden = true; showError(""); break;
        case "rated": ratingForm.hidden = true; showError(""); setStatus("Thank you for your rating!"); break;
        case "ack": outbox.delete(frame.client_id); break;
        case "error":
          if (frame.code === "access_denied") { localStorage.removeItem(STORE_KEY); conv = null; }
          if (frame.code === "service_unavailable") setTimeout(flushOutbox, 2000);
          showError(frame.message);
          break;
      }
    };
    socket.onclose = () => {
      ready = false;
      setTyping(false);
      setStatus("Reconnecting…");
      const delay = Math.min(10000, 500 * 2 ** retry++) * (0.75 + Math.random() / 2);
      setTimeout(boot, delay);
    };
  }

  async function boot() {
    try {
      if (!conv) await startConversation();
      connect();
    } catch (e) {
      setStatus("Offline");
      showError(e.message);
      setTimeout(boot, Math.min(10000, 500 * 2 ** retry++));
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const content = input.value.trim();
    if (!content) return;
    const clientId = crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random();
    outbox.set(clientId, content);
    if (ready) send({type: "message", content, client_id: clientId});
    if (typingSent) { send({type: "typing", on: false}); typingSent = false; }
    input.value = "";
    input.focus();
  });
  contactForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(contactForm);
    send({type: "contact", name: data.get("name") || "", email: data.get("email") || ""});
  });
  ratingForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(ratingForm);
    send({type: "rate", score: Number(data.get("score")), comment: data.get("comment") || ""});
    rated = true;
  });
  input.addEventListener("input", () => {
    if (!ready) return;
    if (!typingSent) { send({type: "typing", on: true}); typingSent = true; }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => { send({type: "typing", on: false}); typingSent = false; }, 3000);
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });

  boot();
})();
