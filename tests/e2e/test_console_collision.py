"""Two agents in two real Chromium contexts open one conversation: each sees the other viewing, only the assignee
can reply (the other's composer is disabled and the server refuses their message), and after "Take over" the other
agent replies. Screenshots are kept in artifacts/."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from chat import services as chat_services
from chat.models import HandoffReason, Message
from helpdesk import services

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# A second console socket from the agent's own page (their session cookie) sends a reply to the conversation: what
# the server answers, whatever the page's buttons allow.
RAW_REPLY = """async (conversation) => await new Promise((resolve) => {
  const socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/console/");
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "queue") {
      socket.send(JSON.stringify({type: "message", conversation, content: "Sneaking in", client_id: "raw-1"}));
    } else if (frame.type === "error" || frame.type === "ack") {
      socket.close();
      resolve(frame.type === "error" ? frame.code : "ack");
    }
  };
  socket.onclose = () => resolve("closed");
})"""


@database_sync_to_async
def team_and_conversation() -> str:
    for username in ("ann", "bob"):
        user = get_user_model().objects.create_user(username, password=f"{username}-pass-123")
        user.user_permissions.add(Permission.objects.get(codename="use_console"))
    conversation, _ = chat_services.conversation_start(customer_name="Li Lei", customer_email="li@example.com")
    chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    assert services.conversation_claim(
        conversation_id=conversation.id, agent=get_user_model().objects.get(username="ann")
    )
    chat_services.message_post_customer(conversation_id=conversation.id, content="My parcel arrived damaged")
    return str(conversation.id)


async def console_of(browser, server: str, username: str, conversation_id: str):
    context = await browser.new_context(viewport={"width": 1200, "height": 760})
    page = await context.new_page()
    await page.goto(server + "/console/")
    await page.fill("#id_username", username)
    await page.fill("#id_password", f"{username}-pass-123")
    await page.click("button[type=submit]")
    await page.wait_for_selector("#connection:has-text('Online')")
    await page.goto(f"{server}/console/#c={conversation_id}")  # a link to one conversation opens it
    await page.wait_for_selector("#conv-log .msg--customer:has-text('arrived damaged')")
    return context, page


async def test_two_agents_see_each_other_and_only_the_assignee_replies_until_a_take_over(
    browser, production_server, artifacts_dir
):
    conversation_id = await team_and_conversation()
    ann_ctx, ann = await console_of(browser, production_server, "ann", conversation_id)
    bob_ctx, bob = await console_of(browser, production_server, "bob", conversation_id)

    # Each sees the other viewing.
    await ann.wait_for_selector("#conv-viewers:has-text('Also viewing: bob')")
    await bob.wait_for_selector("#conv-viewers:has-text('Also viewing: ann')")

    # Bob, who does not hold it, reads but cannot reply: his send button is disabled, and the server refuses anyway.
    await bob.wait_for_selector("#conv-lock:has-text('ann is replying')")
    assert await bob.is_disabled("#btn-send") and await ann.is_enabled("#btn-send")
    assert await ann.is_hidden("#conv-lock") and await ann.is_enabled("#reply-input")
    assert await bob.evaluate(RAW_REPLY, conversation_id) == "forbidden"
    # He may leave a private note for Ann, which she sees at once (the customer never does).
    assert "private note" in await bob.get_attribute("#reply-input", "placeholder")
    await bob.fill("#reply-input", "She called about this yesterday too")
    await bob.press("#reply-input", "Enter")  # Enter sends a reply, which is not his to send: nothing goes
    await bob.click("#btn-note")
    await ann.wait_for_selector("#conv-log .msg--note:has-text('called about this yesterday')")
    await bob.wait_for_function("() => document.querySelector('#reply-input').value === ''")  # acknowledged
    # Every message shows its time, with the full date in its tooltip.
    stamp = bob.locator("#conv-log .msg--customer time").first
    assert await stamp.get_attribute("title") and await stamp.get_attribute("datetime")

    # Ann typing shows on Bob's screen with her name.
    await ann.fill("#reply-input", "Let me check")
    await ann.type("#reply-input", "…")
    await bob.wait_for_selector("#conv-agent-typing:has-text('ann is typing')")
    await bob.screenshot(path=str(artifacts_dir / "console-collision-viewer.png"))

    # Bob takes over: now he replies, and Ann's composer is the disabled one.
    await bob.click("#btn-take-over")
    await bob.wait_for_selector("#conv-lock", state="hidden")
    assert await bob.is_enabled("#reply-input")
    await ann.wait_for_selector("#conv-lock:has-text('bob is replying')")
    assert await ann.is_disabled("#btn-send")
    await bob.fill("#reply-input", "Hi, Bob here, I'll sort out the replacement.")
    await bob.keyboard.press("Enter")
    for page in (ann, bob):
        await page.wait_for_selector("#conv-log .msg--agent:has-text('Bob here')")
        await page.wait_for_selector("#conv-log .msg--system:has-text('another member of our team')")
    await ann.screenshot(path=str(artifacts_dir / "console-collision-taken-over.png"))

    # The views follow: it is in Bob's "Mine" now, and Ann's "All open" shows that Bob has it.
    await bob.click(".views [data-view=mine]")
    await bob.wait_for_selector("#queue button:has-text('Li Lei'):has-text('yours')")
    await ann.click(".views [data-view=all]")
    await ann.wait_for_selector("#queue button:has-text('Li Lei'):has-text('bob')")
    await ann.click(".views [data-view=mine]")
    await ann.wait_for_selector("#queue-empty:has-text('No conversations of yours')")

    replies = await database_sync_to_async(list)(
        Message.objects.filter(conversation_id=conversation_id, role="agent").values_list("author__username", "content")
    )
    assert replies == [("bob", "Hi, Bob here, I'll sort out the replacement.")]
    await bob_ctx.close()
    await ann_ctx.close()
