// Embeddable chat: <script src="https://HOST/static/chat/widget.js" data-site-key="KEY" async></script>
// Optional: data-language="en|zh", data-open="true". Renders in a shadow root; text only via textContent.
// A signed-in user: data-user-id, -name, -email and -hash (hex HMAC-SHA256 of the id under the site's identity secret).
(function () {
  "use strict";
  if (window.__helpdeskWidget) return;
  const script = document.currentScript || document.querySelector('script[data-site-key][src*="widget.js"]');
  const KEY = script && script.getAttribute("data-site-key");
  if (!KEY) return;
  window.__helpdeskWidget = true;

  const ORIGIN = new URL(script.src, location.href).origin;
  const WS_ORIGIN = ORIGIN.replace(/^http/, "ws");
  const API = ORIGIN + "/widget/v1/sites/" + encodeURIComponent(KEY);
  const SK = "helpdesk:" + KEY, OUTBOX_SK = SK + ":outbox", OPEN_SK = SK + ":open";
  const ROLES = ["customer", "bot", "agent", "system"], STATES = ["streaming", "complete", "failed"];
  const ua = (n) => (script.getAttribute("data-user-" + n) || "").trim();
  const USER = ua("id") ? { user_id: ua("id"), user_hash: ua("hash"), name: ua("name"), email: ua("email") } : null;
  const ME = USER && USER.user_id;
  let LINK = null; // #hd-conversation=ID&hd-token=T (a link in an email) opens that conversation
  try {
    const p = new URLSearchParams(location.hash.slice(1));
    if (p.get("hd-conversation") && p.get("hd-token")) {
      LINK = { id: p.get("hd-conversation"), secret: p.get("hd-token") };
      history.replaceState(history.state, "", location.pathname + location.search);
    }
  } catch (e) {}

  // strings: [en, zh]
  const S = {
    open: ["Open chat", "打开对话"],
    openUnread: ["Open chat ({n} unread)", "打开对话({n} 条未读)"],
    close: ["Close chat", "关闭对话"],
    support: ["Support", "在线客服"],
    online: ["Online", "在线"],
    queued: ["Waiting for an agent", "正在等待人工客服"],
    agent: ["Chatting with an agent", "正在与人工客服对话"],
    resolved: ["Resolved", "已结束"],
    reconnecting: ["Reconnecting…", "正在重新连接…"],
    connecting: ["Connecting…", "正在连接…"],
    offline: ["Offline", "离线"],
    loading: ["Loading…", "正在加载…"],
    unavailable: ["Chat is not available on this site.", "此网站未开通在线客服。"],
    retrying: ["Can't reach support right now. Retrying…", "暂时无法连接客服,正在重试…"],
    netError: ["Can't reach support right now. Please try again.", "暂时无法连接客服,请稍后再试。"],
    tooManyChats: ["Too many new chats from your network. Please try again in {n} minutes.", "您所在网络发起的新对话过多,请 {n} 分钟后再试。"],
    tooManyChatsH: ["Too many new chats from your network. Please try again in {n} hours.", "您所在网络发起的新对话过多,请 {n} 小时后再试。"],
    name: ["Name", "姓名"],
    email: ["Email", "邮箱"],
    req: ["(required)", "(必填)"],
    opt: ["(optional)", "(选填)"],
    start: ["Start chat", "开始对话"],
    away: ["We're away right now. Leave a message and we'll reply by email.", "我们暂时不在线。请留言,我们会通过邮件回复您。"],
    content: ["Message", "留言内容"],
    sendMsg: ["Send message", "提交留言"],
    field_required: ["This field is required.", "此项为必填项。"],
    invalid_email: ["Please enter a valid email address.", "请输入有效的邮箱地址。"],
    log: ["Conversation", "对话记录"],
    input: ["Type your message…", "输入消息…"],
    send: ["Send", "发送"],
    end: ["End chat", "结束对话"],
    endQ: ["End this chat?", "确定要结束本次对话吗?"],
    transcript: ["Email me the transcript", "将对话记录发送到我的邮箱"],
    transcriptSent: ["Transcript sent to your email.", "对话记录已发送到您的邮箱。"],
    no_email: ["We don't know your email address yet: leave it first, then ask again.", "我们还没有您的邮箱地址:请先留下邮箱,再试一次。"],
    email_unsubscribed: ["This email address unsubscribed from our emails.", "此邮箱已退订我们的邮件。"],
    cancel: ["Cancel", "取消"],
    botTyping: ["The assistant is typing…", "助手正在输入…"],
    agentTyping: ["The agent is typing…", "客服正在输入…"],
    failed: ["The assistant could not finish this reply.", "助手未能完成此回复。"],
    waiting: ["Waiting to send…", "等待发送…"],
    rateMsg: ["You are sending messages too quickly. Your message will be sent in {n} s.", "您发送消息过快,消息将在 {n} 秒后发送。"],
    message_too_long: ["Not sent: the message is too long.", "未发送:消息过长。"],
    tooLong: ["Your message is {n} characters; the limit is {max}. Shorten it to send.", "消息共 {n} 个字符,超过 {max} 个字符的上限,请删减后再发送。"],
    empty_message: ["Not sent: the message is empty.", "未发送:消息为空。"],
    invalid_message: ["Not sent.", "未发送。"],
    service_unavailable: ["Connection trouble; retrying…", "连接出现问题,正在重试…"],
    notConnected: ["Not connected yet.", "尚未连接。"],
    contactQ: ["Leave your contact details and we'll get back to you.", "请留下联系方式,我们会尽快回复您。"],
    save: ["Save", "保存"],
    rateQ: ["How did we do?", "请为本次服务评分"],
    star: ["{n} star", "{n} 星"],
    stars: ["{n} stars", "{n} 星"],
    comment: ["Comment (optional)", "评价(选填)"],
    sendRating: ["Send rating", "提交评分"],
    pickScore: ["Please choose a rating.", "请选择评分。"],
    thanks: ["Thank you for your rating!", "感谢您的评分!"],
    already_rated: ["You already rated this chat. Thank you!", "您已评过分,谢谢!"],
    sources: ["Sources: ", "来源："],
    sep: [", ", "、"],
    attach: ["Attach a file", "添加附件"],
    uploading: ["Sending {name}…", "正在发送 {name}…"],
    uploadFailed: ["The file could not be sent.", "文件发送失败。"],
    file_type_not_allowed: ["This file type is not allowed. You can send images (PNG, JPEG, GIF, WebP), PDF and text files.", "不支持此文件类型。可以发送图片(PNG、JPEG、GIF、WebP)、PDF 和文本文件。"],
    file_too_large: ["The file is too large: the limit is {max}.", "文件过大:上限为 {max}。"],
    image_too_large: ["The image is too large (too many pixels).", "图片尺寸过大。"],
    file_invalid: ["This file could not be read; it may be damaged.", "无法读取此文件,文件可能已损坏。"],
    file_empty: ["The file is empty.", "文件为空。"],
    openFile: ["Open {name}", "打开 {name}"],
    earlier: ["Earlier conversations ({n})", "历史对话({n})"],
    current: ["this one", "当前对话"],
    newChat: ["Start a new conversation", "开始新的对话"],
  };

  function browserLang() {
    for (const l of navigator.languages || [navigator.language || ""]) {
      const x = String(l).toLowerCase();
      if (x.startsWith("zh")) return "zh";
      if (x.startsWith("en")) return "en";
    }
    return null;
  }
  const attrLang = (script.getAttribute("data-language") || "").toLowerCase();
  const fixedLang = attrLang === "zh" || attrLang === "en" ? attrLang : browserLang();
  let lang = fixedLang || "en";

  function t(key, vars) {
    const s = S[key][lang === "zh" ? 1 : 0];
    return vars ? s.replace(/\{(\w+)\}/g, (_, k) => vars[k]) : s;
  }

  // small helpers
  function h(tag, props, ...kids) {
    const n = document.createElement(tag);
    for (const k in props || {}) {
      const v = props[k];
      if (v == null || v === false) continue;
      if (k === "class") n.className = v;
      else if (k === "text") n.textContent = v;
      else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v === true ? "" : v);
    }
    n.append(...kids.filter((c) => c != null && c !== false && c !== ""));
    return n;
  }
  function icon(d, cls) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg"), path = document.createElementNS(NS, "path");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", cls || "");
    path.setAttribute("d", d);
    svg.append(path);
    return svg;
  }
  const CHAT_D = "M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2zM6 9h12v2H6zm8 5H6v-2h8zm4-6H6V6h12z";
  const CLIP_D = "M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z";
  const FILE_D = "M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8zm-1 7V3.5L18.5 9z";
  const CLOSE_D = "M19 6.4 17.6 5 12 10.6 6.4 5 5 6.4 10.6 12 5 17.6 6.4 19 12 13.4 17.6 19 19 17.6 13.4 12z";

  function sget(area, k) {
    try { return JSON.parse(window[area].getItem(k)); } catch (e) { return null; }
  }
  function sset(area, k, v) {
    try { v == null ? window[area].removeItem(k) : window[area].setItem(k, JSON.stringify(v)); } catch (e) {}
  }
  function uid() {
    try { return crypto.randomUUID(); } catch (e) { /* insecure context */ }
    return "c" + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }
  function region() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }
  const pad = (n) => String(n).padStart(2, "0");
  const tx = (parent, s) => s && parent.append(s);
  const mkS = (s) => h("span", { class: "hd-mk", text: s }); // markup characters, hidden
  const mk = (parent, s) => s && parent.append(mkS(s));

  // Safe markdown subset. Every source character lands in exactly one text node (markup characters in hidden
  // .hd-mk spans), so a bubble's textContent equals its source, also while it streams.
  function safeUrl(u) {
    try {
      const x = new URL(u);
      return /^(https?|mailto):$/.test(x.protocol) ? x.href : "";
    } catch (e) {
      return "";
    }
  }
  const link = (href, text) => h("a", { href, target: "_blank", rel: "noopener noreferrer nofollow", text });
  const INLINE =
    /`([^`]+)`|\[([^\]]+)\]\(([^()\s]+)\)|\*\*(\S(?:.*?\S)?)\*\*|__(\S(?:.*?\S)?)__|\*(\S(?:[^*]*?\S)?)\*|_(\S(?:[^_]*?\S)?)_|\b(?:https?:\/\/|mailto:)[^\s<>]*[^\s<>.,;:!?'")\]*_]/g;

  function inline(parent, s) {
    const re = new RegExp(INLINE);
    let last = 0, m;
    while ((m = re.exec(s))) {
      const at = m.index, end = re.lastIndex;
      let nodes;
      if ((m[5] != null || m[7] != null) && (/\w/.test(s[at - 1] || "") || /\w/.test(s[end] || ""))) {
        nodes = null; // snake_case: not emphasis
      } else if (m[1] != null) {
        nodes = [mkS("`"), h("code", { text: m[1] }), mkS("`")];
      } else if (m[2] != null) {
        const href = safeUrl(m[3]);
        nodes = href && [mkS("["), link(href, m[2]), mkS("](" + m[3] + ")")];
      } else if (m[4] != null || m[5] != null) {
        const b = h("strong"), q = m[0].slice(0, 2);
        inline(b, m[4] ?? m[5]);
        nodes = [mkS(q), b, mkS(q)];
      } else if (m[6] != null || m[7] != null) {
        const e = h("em"), q = m[0][0];
        inline(e, m[6] ?? m[7]);
        nodes = [mkS(q), e, mkS(q)];
      } else {
        const href = safeUrl(m[0]);
        nodes = href && [link(href, m[0])];
      }
      if (!nodes) { re.lastIndex = at + 1; continue; } 
      tx(parent, s.slice(last, at));
      parent.append(...nodes);
      last = end;
    }
    tx(parent, s.slice(last));
  }

  function md(body, src) {
    const L = src.split("\n");
    let p = null, list = null, li = null, m;
    for (let i = 0; i < L.length; i++) {
      const line = L[i], nl = i ? "\n" : "";
      if (/^ {0,3}```/.test(line)) { // ``` fence; unclosed runs to the end
        p = list = null;
        tx(body, nl);
        mk(body, line);
        const code = [];
        let j = i + 1;
        while (j < L.length && !/^ {0,3}```\s*$/.test(L[j])) code.push(L[j++]);
        const closed = j < L.length;
        if (code.length || closed) mk(body, "\n");
        body.append(h("pre", null, h("code", { text: code.join("\n") })));
        if (closed) mk(body, (code.length ? "\n" : "") + L[j]);
        i = j;
      } else if (/^\s*$/.test(line)) {
        p = list = null;
        tx(body, nl + line);
      } else if ((m = /^(\s*)([-*+]|\d{1,9}[.)])(\s+)(.*)$/.exec(line))) {
        const ordered = /\d/.test(m[2]);
        p = null;
        if (list && list.ordered === ordered) tx(list.el, nl);
        else {
          tx(body, nl);
          list = { ordered, el: h(ordered ? "ol" : "ul") };
          if (ordered && parseInt(m[2], 10) !== 1) list.el.start = parseInt(m[2], 10);
          body.append(list.el);
        }
        li = h("li");
        mk(li, m[1] + m[2] + m[3]);
        inline(li, m[4]);
        list.el.append(li);
      } else if (list && /^\s+\S/.test(line)) { // list item continued
        li.append(h("br"));
        tx(li, nl);
        inline(li, line);
      } else if ((m = /^(#{1,6}\s+)(.*)$/.exec(line))) {
        p = list = null;
        tx(body, nl);
        const hp = h("p", { class: "hd-h" });
        mk(hp, m[1]);
        inline(hp, m[2]);
        body.append(hp);
      } else {
        if (p) {
          p.append(h("br"));
          tx(p, nl);
        } else {
          list = null;
          tx(body, nl);
          p = h("p");
          body.append(p);
        }
        inline(p, line);
      }
    }
  }

  // styles
  const CSS = `
:host{all:initial !important}
.hd-root{--a:var(--hd-accent,#1f6feb);--on:var(--hd-on-accent,#fff);--m:#57606a;--r:#cf222e;--b:1px solid #d0d7de;
 color:#1f2328;text-align:left;
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif}
*{box-sizing:border-box}
[hidden],.hd-mk,.hd-note:empty{display:none !important}
button,input,textarea{font:inherit;color:inherit;margin:0}
button{cursor:pointer}
:focus-visible{outline:2px solid var(--a);outline-offset:2px}
.hd-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
.hd-launcher,.hd-panel{position:fixed;right:20px;bottom:20px;z-index:2147483000}
.hd-launcher{width:56px;height:56px;padding:0;border:0;border-radius:50%;background:var(--a);color:var(--on);
 box-shadow:0 4px 16px #0004;display:flex;align-items:center;justify-content:center}
svg{width:24px;height:24px;fill:currentColor}
[aria-expanded=true] .hd-ic-chat,[aria-expanded=false] .hd-ic-close{display:none}
.hd-badge{position:absolute;top:-3px;right:-3px;min-width:20px;padding:0 5px;border-radius:10px;background:var(--r);
 color:#fff;font-size:12px;font-weight:700;line-height:20px}
.hd-panel{bottom:88px;width:380px;height:600px;max-width:calc(100vw - 40px);max-height:calc(100vh - 108px);display:flex;
 flex-direction:column;background:#fff;border-radius:14px;box-shadow:0 12px 48px #0005;overflow:hidden;animation:hd-in .18s}
@keyframes hd-in{from{opacity:0;transform:translateY(12px)}}
@media (max-width:480px){.hd-panel{inset:0;width:auto;height:auto;max-width:none;max-height:none;border-radius:0}
 .hd-open .hd-launcher{display:none}}
@media (prefers-reduced-motion:reduce){.hd-panel{animation:none}}
.hd-head{display:flex;align-items:center;gap:8px;padding:12px 10px 12px 16px;background:var(--a);color:var(--on)}
.hd-head :focus-visible{outline-color:currentColor}
.hd-headtext{flex:1;min-width:0}
.hd-title{margin:0;font-size:16px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.hd-status{font-size:12px;min-height:17px}
.hd-end,.hd-close{padding:3px 10px;border:1px solid;border-radius:6px;background:none;font-size:12px}
.hd-close{display:flex;padding:6px;border:0}
.hd-transcript{align-self:center;margin:4px auto 8px;padding:3px 10px;border:0;background:none;color:var(--m);font-size:12px;text-decoration:underline;cursor:pointer}
.hd-confirm{padding:10px 16px;background:#fff8e1}
.hd-confirm p,.hd-card p{margin:0 0 8px}
.hd-row{display:flex;gap:8px;justify-content:flex-end}
.hd-notice{margin:auto;padding:24px;text-align:center;color:var(--m)}
.hd-view{flex:1;min-height:0;display:flex;flex-direction:column}
.hd-scroll{flex:1;min-height:0;overflow-y:auto;padding:16px}
.hd-log{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:10px}
.hd-msg{display:flex;flex-direction:column;align-items:flex-start;max-width:85%}
.hd-msg--customer{align-self:flex-end;align-items:flex-end}
.hd-msg--system{align-self:center;align-items:center;text-align:center}
.hd-body{max-width:100%;padding:8px 12px;border-radius:14px 14px 14px 4px;background:#f1f3f5;overflow-wrap:anywhere}
.hd-msg--customer .hd-body{background:var(--a);color:var(--on);border-radius:14px 14px 4px 14px}
.hd-msg--customer .hd-body,.hd-msg--system .hd-body{white-space:pre-wrap}
.hd-msg--system .hd-body{background:none;color:var(--m);font-size:13px;padding:2px 8px}
.hd-msg--pending .hd-body{opacity:.65}
.hd-msg--rejected .hd-body{background:#eaeef2;color:var(--m)}
.hd-msg--streaming .hd-body:empty::after{content:"…"}
.hd-note,.hd-time,.hd-typing{font-size:12px;color:var(--m)}
.hd-note{margin-top:3px}
.hd-msg--failed .hd-note,.hd-msg--rejected .hd-note,.hd-ferr{color:var(--r)}
.hd-time{margin:2px 4px 0;font-size:11px}
.hd-src{margin:3px 4px 0;font-size:12px;color:var(--m)}
.hd-src a{color:inherit}
.hd-body p{margin:0 0 .5em}
.hd-body>:last-child{margin-bottom:0}
.hd-body ul,.hd-body ol{margin:.2em 0 .5em;padding-left:1.4em}
.hd-body ul{list-style:disc}
.hd-body pre{margin:.4em 0;padding:8px 10px;background:#fff;border:var(--b);border-radius:8px;overflow-x:auto}
code{font:.92em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#0000000f;padding:.1em .3em;border-radius:4px}
pre code{background:none;padding:0}
.hd-body a{color:#0969da}
.hd-h{font-weight:600}
.hd-typing{padding:4px 16px;font-style:italic}
.hd-over{margin:4px 12px;padding:6px 10px;border-radius:8px;background:#fff8c5;color:#7d4e00;font-size:13px}
.hd-error{margin:4px 12px;padding:6px 10px;border-radius:8px;background:#ffebe9;color:#a40e26;font-size:13px}
.hd-composer{display:flex;gap:8px;align-items:flex-end;padding:10px 12px;border-top:1px solid #e5e7eb}
.hd-input,.hd-field input,.hd-field textarea{width:100%;padding:9px 11px;border:var(--b);border-radius:8px;background:#fff}
.hd-input{flex:1;min-height:40px;max-height:120px;resize:none}
.hd-send,.hd-btn{padding:9px 16px;border:0;border-radius:10px;background:var(--a);color:var(--on);font-weight:600}
.hd-btn--ghost{background:#fff;color:inherit;border:var(--b)}
.hd-field{margin:0 0 12px}
.hd-field label,.hd-q{display:block;margin:0 0 4px;font-size:13px;font-weight:600}
.hd-field :focus-visible,.hd-input:focus-visible{outline-offset:0}
[aria-invalid=true]{border-color:var(--r) !important}
.hd-ferr{margin:4px 0 8px;font-size:13px}
.hd-welcome,.hd-away{margin:0 0 16px}
.hd-card{margin-top:12px;padding:12px;border:1px solid #e5e7eb;border-radius:12px;background:#f8f9fa}
.hd-stars{display:flex;gap:4px;margin:0 0 10px}
.hd-star{position:relative;font-size:28px;line-height:1;color:#c4cad1}
.hd-star input{position:absolute;inset:0;margin:0;opacity:0;cursor:pointer}
.hd-on{color:#f5a623}
.hd-star input:focus-visible+span{outline:2px solid var(--a);border-radius:4px}
.hd-thanks{margin:12px 0 0;text-align:center;color:#1a7f37;font-weight:600}
.hd-attach{display:flex;align-self:center;padding:6px;border:0;border-radius:8px;background:none;color:var(--m)}
.hd-attach[aria-busy=true]{opacity:.5;cursor:progress}
.hd-files{display:flex;flex-direction:column;gap:4px;margin-top:4px;align-items:inherit}
.hd-files a{color:inherit;text-decoration:none}
.hd-thumb img{display:block;max-width:220px;max-height:220px;width:auto;height:auto;border-radius:10px;border:var(--b);background:#f1f3f5}
.hd-file{display:flex;align-items:center;gap:6px;padding:6px 10px;border:var(--b);border-radius:10px;background:#fff;font-size:13px}
.hd-file svg{width:18px;height:18px;flex:none}
.hd-file span{overflow-wrap:anywhere}
.hd-msg--customer .hd-body:empty{display:none}
.hd-hist{border-bottom:var(--b);background:#f8f9fa;font-size:13px}
.hd-hist summary{padding:5px 16px}
.hd-hist ul{list-style:none;margin:0;padding:0;max-height:168px;overflow-y:auto}
.hd-hist button{display:block;width:100%;padding:4px 16px;border:0;background:none;text-align:left}
.hd-hist [aria-current]{font-weight:600}
.hd-hist small{display:block;color:var(--m);white-space:nowrap;overflow:hidden}
`;

  // state
  let config = null, unavailable = false, cfgTry = 0, cfgTimer, cfgBusy = false;
  let conv = null, outbox = []; // {id, secret, path}; [{client_id, content, wait}]
  const msgs = new Map(), pend = new Map(); // seq -> {role, content, state, at, li, t: last activity, gap}; client_id -> <li>
  let ws = null, ready = false, everReady = false, attempt = 0, retryTimer, pingTimer, pongTimer, conn = 0;
  let readySeq = 0, baseline = null, seenOnConn = new Set(), status = null, rated = false, askRate = false;
  let isOpen = false, focusPending = false, unread = 0, view = "notice", noticeKey = "loading";
  let maxChars = 4000, welcome = "", busy = false, peer = null, typingTick, errTimer;
  let maxBytes = 0, uploading = 0;
  const blobs = new Map(); // attachment URL -> Promise of a blob: URL (downloads need the secret header)
  let typingSentAt = 0, typingIdle, typingOn = false;
  let prechatForm, contactForm, rateForm;
  let earlier = []; // a verified customer's conversations: [{id, token, created_at, preview}]

  // shell (before the config arrives)
  const bound = [];
  const label = ([node, key, attr]) => (attr ? node.setAttribute(attr, t(key)) : (node.textContent = t(key)));
  function tr(node, key, attr) {
    bound.push([node, key, attr]);
    label([node, key, attr]);
    return node;
  }
  const host = h("div", { id: "helpdesk-widget" });
  const shadow = host.attachShadow({ mode: "open" });
  const badge = h("span", { class: "hd-badge", "aria-hidden": "true", hidden: true });
  const launcher = h(
    "button",
    { class: "hd-launcher", type: "button", "aria-controls": "hd-panel", "aria-expanded": "false", onclick: () => toggle() },
    icon(CHAT_D, "hd-ic-chat"), icon(CLOSE_D, "hd-ic-close"), badge
  );
  const title = h("h2", { id: "hd-title", class: "hd-title" });
  const statusEl = h("div", { class: "hd-status", role: "status" });
  const endBtn = tr(h("button", { class: "hd-end", type: "button", hidden: true, onclick: askEnd }), "end");
  const closeBtn = tr(h("button", { class: "hd-close", type: "button", onclick: () => close(true) }, icon(CLOSE_D)), "close", "aria-label");
  const confirmNo = tr(h("button", { class: "hd-btn hd-btn--ghost", type: "button", onclick: () => { confirmBox.hidden = true; endBtn.focus(); } }), "cancel");
  const confirmYes = tr(h("button", { class: "hd-btn", type: "button", onclick: doEnd }), "end");
  const confirmBox = h("div", { class: "hd-confirm", hidden: true }, tr(h("p"), "endQ"), h("div", { class: "hd-row" }, confirmNo, confirmYes));
  const notice = h("p", { class: "hd-notice" });
  const vPre = h("div", { class: "hd-view hd-scroll", hidden: true });
  const vOff = h("div", { class: "hd-view hd-scroll", hidden: true });
  const log = tr(h("ol", { class: "hd-log", role: "log", "aria-live": "polite" }), "log", "aria-label");
  const contactBox = h("div"), rateBox = h("div");
  const thanks = tr(h("p", { class: "hd-thanks", role: "status", hidden: true }), "thanks");
  const transcriptBtn = tr(h("button", { class: "hd-transcript", type: "button", hidden: true, onclick: askTranscript }), "transcript");
  // After a resolve, a new topic starts a new conversation rather than reopening this one.
  const newBtn = tr(h("button", { class: "hd-transcript", type: "button", hidden: true, onclick: () => forget() }), "newChat");
  const scroller = h("div", { class: "hd-scroll" }, log, contactBox, rateBox, thanks, transcriptBtn, newBtn);
  const typingEl = h("div", { class: "hd-typing", role: "status", hidden: true });
  const errorEl = h("div", { class: "hd-error", role: "alert", hidden: true });
  // No maxlength: it cut a long paste without a word. Over the limit, overEl says so and nothing is sent.
  const overEl = h("div", { class: "hd-over", id: "hd-over", role: "alert", hidden: true });
  const input = tr(h("textarea", { class: "hd-input", id: "hd-input", name: "message", rows: "1" }), "input", "placeholder");
  const sendBtn = tr(h("button", { class: "hd-send", type: "submit" }), "send");
  const ACCEPT = "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,.txt,.log,.csv";
  const fileInput = h("input", { type: "file", accept: ACCEPT, hidden: true, onchange: () => { const f = fileInput.files[0]; fileInput.value = ""; sendFile(f); } });
  const attachBtn = tr(tr(h("button", { class: "hd-attach", type: "button", onclick: () => fileInput.click() }, icon(CLIP_D)), "attach", "aria-label"), "attach", "title");
  const composer = h("form", { class: "hd-composer", onsubmit: onCompose }, tr(h("label", { class: "hd-sr", for: "hd-input" }), "input"), attachBtn, fileInput, input, sendBtn);
  const histSum = h("summary"), histList = h("ul"), histBox = h("details", { class: "hd-hist", hidden: true }, histSum, histList);
  const vChat = h("div", { class: "hd-view", hidden: true }, histBox, scroller, typingEl, errorEl, overEl, composer);
  const panel = h(
    "div",
    { id: "hd-panel", class: "hd-panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "hd-title", hidden: true },
    h("div", { class: "hd-head" }, h("div", { class: "hd-headtext" }, title, statusEl), endBtn, closeBtn),
    confirmBox, notice, vPre, vOff, vChat
  );
  const root = h("div", { class: "hd-root" }, panel, launcher);
  shadow.append(h("style", { text: CSS }), root);

  function relabel() {
    root.lang = lang;
    bound.forEach(label);
    if (!config) title.textContent = t("support");
    if (view === "notice") notice.textContent = t(noticeKey);
    updateLauncher();
    setStatus();
    renderHist();
  }

  // open / close / views
  function updateLauncher() {
    launcher.setAttribute("aria-expanded", String(isOpen));
    launcher.setAttribute("aria-label", isOpen ? t("close") : unread ? t("openUnread", { n: unread }) : t("open"));
    badge.hidden = isOpen || !unread;
    badge.textContent = unread > 9 ? "9+" : String(unread);
  }
  function open(focus = true) {
    if (!isOpen) {
      isOpen = true;
      panel.hidden = false;
      root.classList.add("hd-open");
      unread = 0;
      sset("sessionStorage", OPEN_SK, 1);
      updateLauncher();
      scroller.scrollTop = scroller.scrollHeight;
    }
    if (focus) {
      focusPending = true;
      focusFirst();
    }
  }
  function close(back) {
    if (!isOpen) return;
    isOpen = focusPending = false;
    panel.hidden = confirmBox.hidden = true;
    root.classList.remove("hd-open");
    sset("sessionStorage", OPEN_SK, 0);
    updateLauncher();
    if (back) launcher.focus();
  }
  function toggle() {
    isOpen ? close(true) : open();
  }
  function focusFirst() {
    let f = null;
    if (view === "chat") f = input;
    else if (view === "prechat" || view === "offline") f = (view === "prechat" ? vPre : vOff).querySelector("input,textarea");
    else if (noticeKey !== "loading") f = closeBtn;
    if (f) {
      f.focus();
      focusPending = false;
    }
  }
  function showView(v) {
    const refocus = isOpen && (focusPending || panel.contains(shadow.activeElement));
    view = v;
    notice.hidden = v !== "notice";
    vPre.hidden = v !== "prechat";
    vOff.hidden = v !== "offline";
    vChat.hidden = v !== "chat";
    if (v === "notice") notice.textContent = t(noticeKey);
    setStatus();
    if (refocus) {
      focusPending = true;
      focusFirst();
    }
  }
  function home() {
    const pc = config.site.prechat || {};
    if (config.availability && config.availability.mode === "offline") showView("offline");
    else if (fieldMode(pc.name) === "off" && fieldMode(pc.email) === "off") showView("chat");
    else showView("prechat");
  }
  const fieldMode = (v) => (v === "required" || v === "off" ? v : "optional");

  function setStatus() {
    let k = "";
    if (conv) k = ready ? { queued: "queued", agent: "agent", snoozed: "agent", resolved: "resolved" }[status] || "online" : everReady ? "reconnecting" : "connecting";
    else if (config) k = config.availability && config.availability.mode === "offline" ? "offline" : "online";
    statusEl.textContent = k && t(k);
    endBtn.hidden = !(conv && ready && status && status !== "resolved");
    if (endBtn.hidden) confirmBox.hidden = true;
    transcriptBtn.hidden = !(conv && ready);
    newBtn.hidden = !(conv && ready && status === "resolved");
    if (rateForm) {
      // asked once per conversation (the server says when: `rate`), and gone as soon as it is no longer resolved
      const show = status === "resolved" && askRate && !rated;
      if (show && rateForm.hidden) stick(() => (rateForm.hidden = false));
      rateForm.hidden = !show;
    }
    if (status !== "resolved") thanks.hidden = true;
  }
  function stick(fn) { // stay scrolled to the end
    const atEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    fn();
    if (atEnd) scroller.scrollTop = scroller.scrollHeight;
  }
  function showError(msg) {
    errorEl.textContent = msg;
    errorEl.hidden = false;
    clearTimeout(errTimer);
    errTimer = setTimeout(() => (errorEl.hidden = true), 10000);
  }
  const errText = (e) => (Array.isArray(S[e.code]) ? t(e.code) : e.message || t("netError"));

  // forms
  function field(form, name, mode, type) {
    const id = "hd-" + form + "-" + name, area = type === "textarea";
    const inp = h(area ? "textarea" : "input", {
      id, name, type: area ? null : type, rows: area ? 4 : null, required: mode === "required",
      autocomplete: area ? null : name, maxlength: area ? null : name === "email" ? 254 : 120,
      oninput: () => fieldError(inp, ""),
    });
    return h("div", { class: "hd-field" },
      h("label", { for: id, text: t(name) + " " + t(mode === "required" ? "req" : "opt") }),
      inp, h("div", { class: "hd-ferr", id: id + "-err", hidden: true }));
  }
  const formErr = () => h("div", { class: "hd-ferr hd-formerr", role: "alert", hidden: true });
  function fieldError(inp, msg) { // "" clears
    const err = shadow.getElementById(inp.id + "-err");
    err.textContent = msg;
    err.hidden = !msg;
    if (!msg) return ["aria-invalid", "aria-describedby"].forEach((a) => inp.removeAttribute(a));
    inp.setAttribute("aria-invalid", "true");
    inp.setAttribute("aria-describedby", err.id);
    inp.focus();
  }
  function formError(form, msg) {
    const err = form.querySelector(".hd-formerr");
    err.textContent = msg;
    err.hidden = !msg;
  }
  function clearErrors(form) {
    formError(form, "");
    form.querySelectorAll("[aria-invalid]").forEach((i) => fieldError(i, ""));
  }
  const val = (form, name) => (form.elements[name] ? form.elements[name].value.trim() : "");
  const vals = (f) => Object.assign({ name: val(f, "name"), email: val(f, "email") }, f.elements.content && { content: val(f, "content") });
  function mkForm(cls, button, submit, ...kids) {
    const f = h("form", { class: cls, onsubmit: (e) => {
      e.preventDefault();
      clearErrors(f);
      submit(f);
    } }, ...kids, formErr(), h("button", { class: "hd-btn", type: "submit", text: t(button) }));
    return f;
  }
  const sendOr = (f, frame) => send(frame) || formError(f, t("notConnected"));

  function buildForms() {
    const pc = config.site.prechat || {}, nm = fieldMode(pc.name), em = fieldMode(pc.email);
    prechatForm = mkForm("hd-prechat", "start", (f) => create("conversations", f, vals(f)),
      nm !== "off" && field("pc", "name", nm, "text"), em !== "off" && field("pc", "email", em, "email"));
    vPre.replaceChildren(...[welcome && h("p", { class: "hd-welcome", text: welcome }), prechatForm].filter(Boolean));

    vOff.replaceChildren(mkForm("hd-offline", "sendMsg", (f) => {
      const n = chars(val(f, "content"));
      n > maxChars ? fieldError(f.elements.content, t("tooLong", { n, max: maxChars })) : create("messages", f, vals(f));
    },
      h("p", { class: "hd-away", text: t("away") }), field("off", "name", nm === "required" ? nm : "optional", "text"),
      field("off", "email", "required", "email"), field("off", "content", "required", "textarea")));

    contactForm = mkForm("hd-contact hd-card", "save", (f) => sendOr(f, Object.assign({ type: "contact" }, vals(f))),
      h("p", { text: t("contactQ") }), field("ct", "name", "optional", "text"), field("ct", "email", "required", "email"));
    contactForm.hidden = true;
    contactBox.replaceChildren(contactForm);

    const stars = h("div", { class: "hd-stars", role: "radiogroup", "aria-labelledby": "hd-rate-q", onchange: () => {
      const v = +rateForm.elements.score.value;
      stars.querySelectorAll(".hd-star").forEach((l, i) => l.classList.toggle("hd-on", i < v));
    } });
    for (let i = 1; i <= 5; i++) {
      const name = t(i === 1 ? "star" : "stars", { n: i });
      stars.append(h("label", { class: "hd-star", "aria-label": name },
        h("input", { type: "radio", name: "score", value: i, "aria-label": name }), h("span", { "aria-hidden": "true", text: "★" })));
    }
    rateForm = mkForm("hd-rating hd-card", "sendRating", (f) => {
      const score = +f.elements.score.value;
      score ? sendOr(f, { type: "rate", score, comment: f.elements.comment.value.trim() }) : formError(f, t("pickScore"));
    },
      h("p", { id: "hd-rate-q", class: "hd-q", text: t("rateQ") }), stars,
      h("div", { class: "hd-field" }, h("label", { for: "hd-comment", text: t("comment") }),
        h("textarea", { id: "hd-comment", name: "comment", rows: 2, maxlength: 2000 })));
    rateForm.hidden = true;
    rateBox.replaceChildren(rateForm);
  }

  // HTTP
  async function loadConfig() {
    if (cfgBusy || config || unavailable) return;
    cfgBusy = true;
    clearTimeout(cfgTimer);
    let res = null, body = {};
    try {
      res = await fetch(API, { credentials: "omit" });
      body = await res.json().catch(() => ({}));
    } catch (e) {
      res = null;
    }
    cfgBusy = false;
    if (res && res.ok && body && body.site) return applyConfig(body);
    if (res && (res.status === 403 || res.status === 404)) return unavail();
    noticeKey = "retrying";
    showView("notice");
    const base = Math.min(30000, 1000 * 2 ** Math.min(cfgTry++, 5));
    cfgTimer = setTimeout(loadConfig, base / 2 + (Math.random() * base) / 2);
  }

  function unavail() { // 403/404: this page may not use the chat
    unavailable = true;
    noticeKey = "unavailable";
    showView("notice");
  }
  function applyConfig(c) {
    config = c;
    const site = c.site;
    if (/^#[0-9a-f]{6}$/i.test(site.theme_color || "")) {
      const n = parseInt(site.theme_color.slice(1), 16);
      const light = ((n >> 16) * 299 + ((n >> 8) & 255) * 587 + (n & 255) * 114) / 1000 > 165;
      host.style.setProperty("--hd-accent", site.theme_color);
      host.style.setProperty("--hd-on-accent", light ? "#111" : "#fff");
    }
    if (!fixedLang && (site.language === "zh" || site.language === "en")) lang = site.language;
    maxChars = +(c.limits && c.limits.max_message_chars) || 4000;
    maxBytes = +(c.limits && c.limits.max_attachment_bytes) || 0;
    welcome = (lang === "zh" && site.welcome_message_zh) || site.welcome_message || "";
    relabel();
    title.textContent = site.name || t("support");
    buildForms();
    let saved = LINK || sget("localStorage", SK);
    if (saved && saved.user && saved.user !== ME) saved = null; // another user's (or signed out): not shown here
    if (saved && saved.id && saved.secret) {
      const raw = !LINK && sget("localStorage", OUTBOX_SK);
      outbox = Array.isArray(raw) ? raw.filter((o) => o && typeof o.client_id === "string" && typeof o.content === "string") : [];
      resetLog();
      setConv(saved, true); // now this user's
    } else {
      sset("localStorage", OUTBOX_SK, null);
      sset("localStorage", SK, null);
      resetLog();
      home();
    }
    if (USER) identify();
  }

  async function identify() { // a signed-in user's conversations, when the site's signature proves who they are
    const body = await fetch(API + "/identity", {
      method: "POST", credentials: "omit", headers: { "Content-Type": "application/json" }, body: JSON.stringify(USER),
    }).then((r) => (r.ok ? r.json() : null)).catch(() => null);
    if (!body || !Array.isArray(body.conversations)) return;
    earlier = body.conversations.filter((c) => c && typeof c.id === "string" && typeof c.token === "string");
    if (!conv && earlier[0] && !busy) switchConv(earlier[0]); // none of theirs here: the newest, its history replayed
    renderHist();
  }
  function switchConv(c) {
    if (conv && conv.id === c.id) return;
    forget();
    setConv({ id: c.id, secret: c.token }, true);
    renderHist();
  }
  function renderHist() {
    histBox.hidden = !earlier.some((c) => !conv || c.id !== conv.id); // only with another to switch to
    histSum.textContent = t("earlier", { n: earlier.length });
    histList.replaceChildren(...earlier.map((c) => {
      const d = new Date(c.created_at), here = !!conv && conv.id === c.id;
      return h("li", null, h("button", { type: "button", "aria-current": here && "true", onclick: () => switchConv(c) },
        (isNaN(d) ? "" : d.toLocaleString(lang, { dateStyle: "medium", timeStyle: "short" })) + (here ? " · " + t("current") : ""),
        h("small", { text: String(c.preview || "") })));
    }));
  }

  async function create(kind, form, data) {
    if (busy) return;
    busy = true;
    const say = (msg) => (form ? formError(form, msg) : showError(msg));
    let res = null, body = {};
    try {
      // Origin and path only: the query and fragment of the customer's page can carry reset or OAuth tokens.
      const page = (location.origin + location.pathname).slice(0, 500);
      Object.assign(data, { language: lang, region: region(), page_url: page }, USER && { identity: USER });
      res = await fetch(API + "/" + kind, {
        method: "POST", credentials: "omit", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data),
      });
      body = (await res.json().catch(() => ({}))) || {};
    } catch (e) {
      res = null;
    }
    busy = false;
    if (!res || res.status >= 500) return say(t("netError"));
    if (res.ok && body.id && body.secret) {
      setConv(body, true);
      if (USER) identify(); // the new one joins the signed-in customer's list
      return;
    }
    const err = body.error || {};
    if (res.status === 429) {
      const min = Math.max(1, Math.ceil((+err.retry_after || 60) / 60));
      return say(min < 90 ? t("tooManyChats", { n: min }) : t("tooManyChatsH", { n: Math.round(min / 60) }));
    }
    if (res.status === 403 || res.status === 404) return unavail();
    const inp = form && err.field && form.elements[err.field];
    inp && inp.id ? fieldError(inp, errText(err)) : say(errText(err));
  }

  // conversation
  function setConv(c, fresh) {
    const id = String(c.id);
    conv = { id, secret: String(c.secret), path: typeof c.websocket === "string" && c.websocket[0] === "/" ? c.websocket : "/ws/chat/" + encodeURIComponent(id) + "/" };
    if (fresh) {
      sset("localStorage", SK, { id, secret: conv.secret, user: ME });
      if (+c.max_message_chars) maxChars = +c.max_message_chars;
      saveOutbox();
    }
    everReady = false;
    baseline = null;
    showView("chat");
    connect();
  }
  function forget() {
    conv = null;
    detach();
    clearTimeout(retryTimer);
    sset("localStorage", SK, null);
    outbox = [];
    saveOutbox();
    status = null;
    rated = askRate = false;
    contactForm.hidden = rateForm.hidden = thanks.hidden = true;
    resetLog();
    home();
  }
  function resetLog() {
    msgs.clear();
    pend.clear();
    log.replaceChildren();
    if (welcome) log.append(h("li", { class: "hd-msg hd-msg--welcome" }, h("div", { class: "hd-body", text: welcome })));
    outbox.forEach(addPending);
  }
  function saveOutbox() {
    sset("localStorage", OUTBOX_SK, outbox.length ? outbox.map((o) => ({ client_id: o.client_id, content: o.content })) : null);
  }
  function outboxRemove(cid) {
    const item = outbox.find((o) => o.client_id === cid);
    if (item) {
      outbox = outbox.filter((o) => o !== item);
      saveOutbox();
    }
    return item;
  }
  function dropPending(cid) {
    const item = outboxRemove(cid), li = pend.get(cid);
    if (li) li.remove();
    pend.delete(cid);
    return item;
  }
  function addPending(item) {
    const li = h("li", { class: "hd-msg hd-msg--customer hd-msg--pending", "data-client-id": item.client_id },
      h("div", { class: "hd-body", text: item.content }), h("div", { class: "hd-note" }));
    pend.set(item.client_id, li);
    stick(() => log.append(li));
  }
  function markWaiting(item, waiting) {
    const li = pend.get(item.client_id);
    if (!li) return;
    li.classList.toggle("hd-msg--waiting", waiting);
    li.querySelector(".hd-note").textContent = waiting ? t("waiting") : "";
  }

  function timeEl(iso) {
    const d = iso ? new Date(iso) : new Date();
    if (isNaN(d)) return null;
    return h("time", { class: "hd-time", datetime: d.toISOString(), text: pad(d.getHours()) + ":" + pad(d.getMinutes()) });
  }
  function draw(r) {
    const li = r.li, body = h("div", { class: "hd-body" });
    li.className = "hd-msg hd-msg--" + r.role + " hd-msg--" + r.state;
    li.dataset.seq = r.seq;
    li.setAttribute("aria-busy", String(r.state === "streaming"));
    if (r.role === "bot" || r.role === "agent") {
      if (r.content) md(body, r.content);
    } else body.textContent = r.content;
    li.replaceChildren(body);
    if (r.att.length) li.append(filesEl(r.att));
    if (r.state === "failed" && r.role === "bot") li.append(h("div", { class: "hd-note", text: t("failed") }));
    if (r.role === "bot" && r.state !== "streaming" && r.src.length) {
      const seen = new Set(), el = h("div", { class: "hd-src", text: t("sources") });
      for (const s of r.src) {
        const title = s && typeof s.title === "string" ? s.title : "", url = safeUrl(String(s && s.url || ""));
        if (!title || seen.has(title + url)) continue;
        el.append(seen.size ? t("sep") : "", url.startsWith("http") ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: title }) : title);
        seen.add(title + url);
      }
      if (seen.size) li.append(el);
    }
    const te = timeEl(r.at);
    if (te) li.append(te);
  }
  function place(li, seq) { // by seq; pending ones stay last
    log.insertBefore(li, [...log.children].find((c) => c.classList.contains("hd-msg--pending") || +c.dataset.seq > seq) || null);
  }
  function onMessage(m) {
    if (!m || !Number.isInteger(m.seq)) return;
    if (m.client_id) dropPending(m.client_id);
    const first = !seenOnConn.has(m.seq);
    seenOnConn.add(m.seq);
    let r = msgs.get(m.seq);
    const isNew = !r, state = STATES.includes(m.state) ? m.state : "complete";
    let content = typeof m.content === "string" ? m.content : "", gap = false;
    // replayed mid-stream: earlier deltas are lost, wait for "done"
    if (state === "streaming" && first && m.seq <= readySeq) gap = true;
    if (state === "streaming" && r && r.state === "streaming" && r.content.length > content.length) {
      content = r.content; // a streaming reply is stored empty: keep what was shown
      gap = gap || r.gap;
    }
    r = Object.assign(r || { seq: m.seq, li: h("li") }, {
      role: ROLES.includes(m.role) ? m.role : "system", content, state, gap, at: m.created_at, t: Date.now(),
      src: Array.isArray(m.sources) ? m.sources : [],
      att: Array.isArray(m.attachments) ? m.attachments : [],
    });
    msgs.set(m.seq, r);
    stick(() => {
      draw(r);
      if (isNew) place(r.li, m.seq);
    });
    if (isNew && !isOpen && r.role !== "customer" && baseline != null && m.seq > baseline) {
      unread++;
      updateLauncher();
    }
    updateTyping();
  }
  function removeMsg(seq) {
    const r = msgs.get(seq);
    if (r) {
      r.li.remove();
      msgs.delete(seq);
    }
    updateTyping();
  }
  function lastSeq() { // streaming replies are replayed whole
    const all = [...msgs.values()], min = Math.min(...all.filter((r) => r.state === "streaming").map((r) => r.seq));
    return Math.max(0, ...all.filter((r) => r.state !== "streaming" && r.seq < min).map((r) => r.seq));
  }

  function updateTyping() {
    const now = Date.now();
    let key = null;
    if (ready) {
      for (const r of msgs.values()) if (r.state === "streaming" && now - r.t < 30000) key = "botTyping";
      if (!key && peer && peer.until > now) key = peer.role === "bot" ? "botTyping" : "agentTyping";
    }
    typingEl.hidden = !key;
    if (key) typingEl.textContent = t(key);
    clearTimeout(typingTick);
    if (key) typingTick = setTimeout(updateTyping, 1000);
  }
  function typingReset() {
    for (const r of msgs.values()) if (r.state === "streaming") r.t = 0;
    peer = null;
    updateTyping();
  }

  // websocket
  function send(frame) {
    if (ws && ws.readyState === 1) {
      ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }
  function sendMsg(item) {
    if (ready && !item.wait) send({ type: "message", content: item.content, client_id: item.client_id });
  }
  const flushOutbox = () => outbox.forEach(sendMsg);

  function connect() {
    clearTimeout(retryTimer);
    if (!conv || ws) return;
    let s;
    try {
      s = new WebSocket(WS_ORIGIN + conv.path);
    } catch (e) {
      return reconnectLater();
    }
    ws = s;
    ready = false;
    seenOnConn = new Set();
    const my = ++conn;
    setStatus();
    s.onopen = () => {
      s.send(JSON.stringify({ type: "hello", secret: conv.secret, last_seq: lastSeq() }));
      pingTimer = setInterval(ping, 25000);
    };
    s.onmessage = (e) => {
      let f;
      try { f = JSON.parse(e.data); } catch (err) { return; }
      clearTimeout(pongTimer);
      if (f && typeof f === "object" && my === conn) onFrame(f);
    };
    s.onclose = (e) => {
      detach();
      if (e.code === 4403) return forget();
      reconnectLater();
    };
  }
  function detach() {
    const s = ws;
    ws = null;
    ready = false;
    conn++;
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
    if (s) {
      s.onopen = s.onmessage = s.onclose = null;
      try { s.close(); } catch (e) {}
    }
    updateTyping();
  }
  function reconnectLater() {
    setStatus();
    if (!conv) return;
    clearTimeout(retryTimer);
    const base = Math.min(10000, 500 * 2 ** Math.min(attempt++, 5));
    retryTimer = setTimeout(connect, base / 2 + (Math.random() * base) / 2);
  }
  function ping() {
    send({ type: "ping" });
    clearTimeout(pongTimer);
    pongTimer = setTimeout(() => { detach(); reconnectLater(); }, 10000); // half-open socket
  }
  function kick() {
    if (conv && !ws) {
      attempt = 0;
      connect();
    }
    if (!config) loadConfig();
  }

  function onFrame(f) {
    switch (f.type) {
      case "ready": {
        const c = f.conversation || {};
        ready = everReady = true;
        attempt = 0;
        readySeq = +c.last_seq || 0;
        if (baseline == null) baseline = readySeq;
        rated = !!c.rated;
        status = c.status;
        askRate = !!c.rate;
        errorEl.hidden = true;
        // streaming replies not replayed were withdrawn meanwhile
        const my = conn, stale = [...msgs.values()].filter((r) => r.state === "streaming" && r.seq <= readySeq);
        setTimeout(() => stale.forEach((r) => my === conn && !seenOnConn.has(r.seq) && msgs.get(r.seq) === r && removeMsg(r.seq)), 3000);
        setStatus();
        flushOutbox();
        updateTyping();
        break;
      }
      case "message":
      case "done":
        onMessage(f.message);
        break;
      case "delta": {
        const r = msgs.get(f.seq);
        if (!r || r.state !== "streaming" || typeof f.text !== "string") break;
        r.t = Date.now();
        // a piece that does not start where the last ended means one was lost: keep what is shown until "done"
        if (Number.isInteger(f.offset) && f.offset !== r.content.length) r.gap = true;
        if (!r.gap) {
          r.content += f.text;
          stick(() => draw(r));
        }
        updateTyping();
        break;
      }
      case "withdrawn":
        removeMsg(f.seq);
        break;
      case "status":
        status = f.status;
        askRate = status === "resolved" && !!f.rate;
        if (status !== "bot") typingReset();
        setStatus();
        break;
      case "typing":
        peer = f.on ? { role: f.role === "bot" ? "bot" : "agent", until: Date.now() + 6000 } : null;
        updateTyping();
        break;
      case "contact_request":
        stick(() => (contactForm.hidden = false));
        break;
      case "contact_saved":
        hideForm(contactForm);
        break;
      case "transcript_sent":
        transcriptBtn.textContent = t("transcriptSent");
        transcriptBtn.disabled = true;
        break;
      case "rated":
        rated = true;
        hideForm(rateForm);
        setStatus();
        stick(() => (thanks.hidden = false));
        break;
      case "ack": {
        const item = dropPending(f.client_id);
        if (item && Number.isInteger(f.seq) && !msgs.has(f.seq)) {
          onMessage({ seq: f.seq, role: "customer", content: item.content, state: "complete", created_at: new Date().toISOString() });
        }
        break;
      }
      case "error":
        onError(f);
        break;
    }
  }
  function onError(f) {
    // A typing signal refused for its rate is worth nothing later: drop it, say nothing.
    if (f.code === "rate_limited" && f.for === "typing") return;
    typingReset();
    const code = f.code || "", item = f.client_id && outbox.find((o) => o.client_id === f.client_id);
    if (code === "access_denied") return forget();
    if (item) {
      if (code === "rate_limited") {
        const secs = Math.max(1, +f.retry_after || 5);
        item.wait = true;
        markWaiting(item, true);
        setTimeout(() => {
          item.wait = false;
          markWaiting(item, false);
          sendMsg(item);
        }, secs * 1000);
        return showError(t("rateMsg", { n: secs }));
      }
      // refused for good: give the text back
      outboxRemove(item.client_id);
      const li = pend.get(item.client_id);
      pend.delete(item.client_id);
      if (li) {
        li.classList.remove("hd-msg--pending", "hd-msg--waiting");
        li.classList.add("hd-msg--rejected");
        li.querySelector(".hd-note").textContent = t(/^(message_too_long|empty_message)$/.test(code) ? code : "invalid_message");
      }
      if (!input.value) {
        input.value = item.content;
        overLimit();
      }
      return showError(errText(f));
    }
    if (code === "already_rated") {
      rated = true;
      setStatus();
    }
    if (code === "service_unavailable") setTimeout(flushOutbox, 2000);
    if (!contactForm.hidden && (code === "invalid_email" || code === "invalid_contact")) {
      return fieldError(contactForm.elements.email, errText(f));
    }
    showError(errText(f));
  }

  // attachments: sent with fetch and the secret header; shown from blob: URLs fetched the same way
  const sizeText = (n) => (n >= 1048576 ? +(n / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(n / 1024)) + " KB");
  function fetchBlob(url) {
    if (!blobs.has(url)) {
      const p = fetch(ORIGIN + url, { credentials: "omit", headers: { "X-Conversation-Secret": conv ? conv.secret : "" } })
        .then((res) => (res.ok ? res.blob() : Promise.reject(new Error(String(res.status)))))
        .then((b) => URL.createObjectURL(b));
      p.catch(() => blobs.delete(url));
      blobs.set(url, p);
    }
    return blobs.get(url);
  }
  function filesEl(list) {
    const box = h("div", { class: "hd-files" });
    for (const a of list) {
      if (!a || typeof a.url !== "string" || a.url[0] !== "/") continue;
      const name = String(a.name || "file"), thumb = a.is_image && typeof a.thumbnail_url === "string" && a.thumbnail_url[0] === "/";
      const link = h("a", { class: thumb ? "hd-thumb" : "hd-file", href: "#", title: t("openFile", { name }),
        onclick: (e) => { e.preventDefault(); openFile(a); } });
      if (thumb) {
        const img = h("img", { alt: name });
        if (a.width > 0 && a.height > 0) img.style.aspectRatio = a.width + " / " + a.height;
        fetchBlob(a.thumbnail_url).then((u) => (img.src = u), () => img.replaceWith(h("span", { text: name })));
        link.append(img);
      } else link.append(icon(FILE_D), h("span", { text: name + " · " + sizeText(+a.size || 0) }));
      box.append(link);
    }
    return box;
  }
  function openFile(a) {
    // Images and PDFs open in a tab opened now, during the click (no popup blocker); other files are downloaded.
    const inline = a.is_image || a.content_type === "application/pdf", w = inline ? window.open("", "_blank") : null;
    fetchBlob(a.url).then((u) => {
      if (w) w.location.href = u;
      else h("a", { href: u, download: String(a.name || "file") }).click();
    }, () => {
      if (w) w.close();
      showError(t("netError"));
    });
  }
  function fileError(res, body) {
    const e = (body && body.error) || {};
    if (e.code === "file_too_large" || (res && res.status === 413)) return t("file_too_large", { max: sizeText(maxBytes || 10485760) });
    if (Array.isArray(S[e.code]) && /^(file_|image_)/.test(e.code)) return t(e.code);
    if (e.code === "rate_limited") return t("rateMsg", { n: Math.max(1, +e.retry_after || 5) });
    return (res && res.status < 500 && e.message) || t("uploadFailed");
  }
  async function sendFile(file) {
    if (!file) return;
    const cid = uid(), li = h("li", { class: "hd-msg hd-msg--customer hd-msg--pending", "data-client-id": cid },
      h("div", { class: "hd-body", text: t("uploading", { name: file.name }) }), h("div", { class: "hd-note" }));
    const fail = (msg) => {
      pend.delete(cid);
      li.classList.replace("hd-msg--pending", "hd-msg--rejected");
      li.querySelector(".hd-body").textContent = file.name;
      li.querySelector(".hd-note").textContent = msg;
      showError(msg);
    };
    pend.set(cid, li);
    stick(() => log.append(li));
    scroller.scrollTop = scroller.scrollHeight;
    if (maxBytes && file.size > maxBytes) return fail(t("file_too_large", { max: sizeText(maxBytes) }));
    if (!conv) await create("conversations", null, { name: "", email: "" });
    if (!conv) return fail(t("netError"));
    const caption = input.value.trim(), form = new FormData();
    const withCaption = caption && !overLimit();
    form.append("file", file, file.name);
    form.append("caption", withCaption ? caption : "");
    form.append("client_id", cid);
    attachBtn.setAttribute("aria-busy", String(++uploading > 0));
    let res = null, body = {};
    try {
      res = await fetch(ORIGIN + "/widget/v1/conversations/" + encodeURIComponent(conv.id) + "/attachments", {
        method: "POST", credentials: "omit", headers: { "X-Conversation-Secret": conv.secret }, body: form,
      });
      body = (await res.json().catch(() => ({}))) || {};
    } catch (e) {
      res = null;
    }
    attachBtn.setAttribute("aria-busy", String(--uploading > 0));
    if (!res || !res.ok || !body.message) return fail(fileError(res, body));
    if (withCaption && input.value.trim() === caption) {
      input.value = "";
      autosize();
      overLimit();
    }
    dropPending(cid);
    onMessage(body.message);
  }

  // composer
  function onCompose(e) {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    if (overLimit()) return input.focus();
    input.value = "";
    autosize();
    overLimit();
    typingStop();
    const item = { client_id: uid(), content: text };
    outbox.push(item);
    saveOutbox();
    addPending(item);
    scroller.scrollTop = scroller.scrollHeight;
    if (conv) sendMsg(item);
    else create("conversations", null, { name: "", email: "" });
  }
  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
  }
  function typingStop() {
    clearTimeout(typingIdle);
    if (typingOn) send({ type: "typing", on: false });
    typingOn = false;
    typingSentAt = 0;
  }
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendBtn.click();
    }
  });
  const chars = (text) => [...text].length; // code points, as the server counts
  function overLimit() { // shows (or clears) the warning; true while the message is too long to send
    const n = chars(input.value.trim()), over = n > maxChars;
    overEl.hidden = !over;
    if (over) overEl.textContent = t("tooLong", { n, max: maxChars });
    sendBtn.setAttribute("aria-disabled", String(over));
    over ? input.setAttribute("aria-describedby", "hd-over") : input.removeAttribute("aria-describedby");
    input.setAttribute("aria-invalid", String(over));
    return over;
  }
  input.addEventListener("input", () => {
    autosize();
    overLimit();
    if (!input.value) return typingStop();
    const now = Date.now();
    if (ready && now - typingSentAt > 3000 && send({ type: "typing", on: true })) {
      typingSentAt = now;
      typingOn = true;
    }
    clearTimeout(typingIdle);
    typingIdle = setTimeout(typingStop, 3000);
  });

  function hideForm(f) { // without losing the focus
    const had = f.contains(shadow.activeElement);
    f.hidden = true;
    if (had) input.focus();
  }
  function askEnd() {
    confirmBox.hidden = false;
    confirmNo.focus();
  }
  function doEnd() {
    confirmBox.hidden = true;
    if (!send({ type: "resolve" })) showError(t("notConnected"));
    input.focus();
  }
  function askTranscript() {
    if (!send({ type: "transcript" })) showError(t("notConnected"));
  }

  // start
  shadow.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && isOpen) {
      e.preventDefault();
      close(true);
    }
  });
  window.addEventListener("online", kick);
  document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && kick());
  window.HelpdeskWidget = { open: () => open(), close: () => close(false), toggle };

  function init() {
    document.body.append(host);
    relabel();
    showView("notice");
    const remembered = sget("sessionStorage", OPEN_SK), auto = script.getAttribute("data-open") === "true";
    if (remembered === 1 || (remembered !== 0 && auto)) open(auto);
    loadConfig();
  }
  if (document.body) init();
  else document.addEventListener("DOMContentLoaded", init);
})();
