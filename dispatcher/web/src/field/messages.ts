// The messages screen: operators' messages, read receipts and replies.

import { language, say, words } from "./i18n.js";
import { act } from "./actions.js";
import { byId, clock, page, render } from "./state.js";

export function drawMessages(): void {
  const list = byId("messages");
  const sorted = [...page.messages.values()].sort((a, b) => Number(b.message.sentAtMs - a.message.sentAtMs));
  byId("no-messages").hidden = sorted.length > 0;
  const unread = sorted.filter((entry) => !entry.read).length;
  byId("tab-messages").textContent = unread > 0 ? `${words().tabs.messages} (${unread})` : words().tabs.messages;
  // Keep a reply being typed: redraw only when what is shown changed.
  const shape = JSON.stringify([language(), sorted.map((entry) => [entry.message.id, entry.read, entry.replied])]);
  if (list.dataset.shape === shape) {
    return;
  }
  list.dataset.shape = shape;
  list.replaceChildren(
    ...sorted.map((entry) => {
      const { message } = entry;
      const item = document.createElement("li");
      item.className = entry.read ? "message" : "message unread";
      item.dataset.messageId = message.id;
      const head = document.createElement("p");
      head.className = "from";
      head.textContent = `${message.from.replace(/^operator:/, "")} · ${clock(message.sentAtMs)}${entry.read ? "" : ` · ${say("unread")}`}`;
      const text = document.createElement("p");
      text.className = "text";
      text.textContent = message.text;
      item.append(head, text);
      const form = document.createElement("form");
      form.className = "reply";
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "text";
      input.id = `reply-${message.id}`;
      label.htmlFor = input.id;
      label.textContent = entry.replied ? say("replied") : say("reply");
      const buttons = document.createElement("div");
      buttons.className = "actions";
      if (!entry.read) {
        const read = document.createElement("button");
        read.type = "button";
        read.className = "secondary mark-read";
        read.textContent = say("markRead");
        read.addEventListener("click", () => markRead(entry.message.id));
        buttons.append(read);
      }
      const send = document.createElement("button");
      send.type = "submit";
      send.className = "primary";
      send.textContent = say("replySend");
      buttons.append(send);
      form.append(label, input, buttons);
      form.addEventListener("submit", (submitted) => {
        submitted.preventDefault();
        const reply = input.value.trim();
        if (reply === "") {
          input.focus();
          return;
        }
        entry.replied = true;
        markRead(message.id);
        void act("reply", { messageId: message.id, text: reply });
      });
      item.append(form);
      return item;
    }),
  );
}

export function markRead(messageId: string): void {
  const entry = page.messages.get(messageId);
  if (!entry || entry.read) {
    render();
    return;
  }
  entry.read = true;
  render();
  void act("read", { messageId });
}
