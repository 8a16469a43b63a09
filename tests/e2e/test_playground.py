"""The staff playground in real Chromium against daphne + a Celery worker + the real model: sliders moved with the
keyboard reach the engine (greedy decoding, a length stop), a draft system prompt is tried then saved, the figures
and the JSON export. A test turn goes through the customers' grounded pipeline, so the question is one the demo
knowledge base answers and the stack answers generatively (the model writes from the passages): without them it
would be answered "I can't confirm..." without the engine. The screenshot is kept in artifacts/playground.png."""

import json
import re

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from inference.models import SystemPrompt
from inference.prompt import DEFAULT_SYSTEM_PROMPT
from tests import stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUESTION = "Can I change the delivery address?"  # the demo base's "Changing or canceling an order"
# Much longer than the built-in default, and without {{current_time}} so that two runs see the very same prompt.
DRAFT = (
    "You are the friendly customer-service assistant of {{company_name}}, an online shop for shoes and bags.\n"
    "The customer is in {{user_region}}. Answer in {{language}}, politely and concisely, in one or two sentences.\n"
    "The shop ships within three working days; returns are free within thirty days of delivery.\n"
    "Customers pay by card, bank transfer or invoice; invoices are due within fourteen days.\n"
    "Shoe sizes follow the European system; the size guide is on every product page.\n"
    "The support team works from Monday to Friday, nine to six, and answers emails within one day.\n"
    "If you need information to help (an order number, an email address), ask for it.\n"
    "Never invent facts, prices, dates or policies; if you are not sure, say that you cannot confirm it yet.\n"
    "If you cannot help, or the customer needs a person, answer only [[HANDOFF]] and a human agent will take over."
)

# Records every text the newest bot turn shows, to see it stream.
WATCH_STREAM = """() => {
  window.streamStates = [];
  new MutationObserver(() => {
    const texts = document.querySelectorAll("#transcript .turn--bot .turn__text");
    const text = texts.length ? texts[texts.length - 1].textContent : "";
    if (window.streamStates[window.streamStates.length - 1] !== text) window.streamStates.push(text);
  }).observe(document.getElementById("transcript"), {subtree: true, childList: true, characterData: true});
}"""

# Presses Stop the moment the reply's first text shows, however fast the engine is.
STOP_ON_FIRST_TEXT = """() => {
  const observer = new MutationObserver(() => {
    if (document.getElementById("live-state").textContent === "streaming") {
      observer.disconnect();
      document.getElementById("btn-stop").click();
    }
  });
  observer.observe(document.getElementById("live-state"), {childList: true, characterData: true, subtree: true});
}"""

POST_GENERATE = """async ([csrf, redirect]) => {
  const headers = {"Content-Type": "application/json"};
  if (csrf) headers["X-CSRFToken"] = document.cookie.match(/csrftoken=([^;]+)/)[1];
  const body = {messages: [{role: "user", content: "hi"}], params: {temperature: 0, top_p: 1, max_tokens: 4,
                frequency_penalty: 0}};
  const response = await fetch("/playground/generate", {method: "POST", headers, body: JSON.stringify(body), redirect});
  return {status: response.status, type: response.type, contentType: response.headers.get("Content-Type")};
}"""


@pytest.fixture(scope="module")
def two_engine_server(production_env, logs_dir):  # generative, as production_env
    """daphne and a worker on their own queue with a second engine configured (the shared stack has one)."""
    env = {
        **production_env,
        "CELERY_QUEUE": production_env["CELERY_QUEUE"] + "-engines",
        "INFERENCE_ENGINES": json.dumps({"small-context": {"max_model_len": 2048}}),
    }
    worker = stack.start_worker(env, logs_dir, concurrency=2, name="celery-engines")
    try:
        web, base_url = stack.start_web(env, logs_dir, name="daphne-engines")
    except Exception:
        worker.stop()
        raise
    yield base_url
    web.stop()
    worker.stop()


@database_sync_to_async
def make_user(username: str, *, staff: bool = True, publish: bool = True) -> None:
    user = get_user_model().objects.create_user(username, password=f"{username}-pass-123", is_staff=staff)
    if staff:  # the playground and the prompt it edits need their permissions (any staff account is not enough)
        user.user_permissions.add(
            Permission.objects.get(codename="use_playground", content_type__app_label="helpdesk"),
            Permission.objects.get(codename="view_systemprompt", content_type__app_label="inference"),
        )
    if publish:
        user.user_permissions.add(
            Permission.objects.get(codename="add_systemprompt", content_type__app_label="inference")
        )


@database_sync_to_async
def prompt_rows() -> list[tuple]:
    return list(SystemPrompt.objects.order_by("version").values_list("version", "template", "is_active", "note"))


async def sign_in(browser, base: str, username: str):
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    await page.goto(f"{base}/accounts/login/?next=/playground/")
    await page.fill("#id_username", username)
    await page.fill("#id_password", f"{username}-pass-123")
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    return context, page


async def press(page, slider: str, *keys: str) -> str:
    """Move a range slider with the keyboard, as a person would; returns the value it shows."""
    await page.focus(f"#p-{slider}")
    for key in keys:
        await page.keyboard.press(key)
    return await page.text_content(f"#p-{slider}-value")


async def ask(page, question: str) -> dict:
    """Send a question and wait for the reply's figures; returns the reply and the figures shown under it."""
    done_before = await page.locator("#transcript .turn--bot .turn__figs:visible").count()
    await page.fill("#message", question)
    await page.keyboard.press("Enter")
    await page.locator("#transcript .turn--bot .turn__figs:visible").nth(done_before).wait_for(timeout=60_000)
    turn = page.locator("#transcript .turn--bot").last
    shown = {"text": await turn.locator(".turn__text").text_content()}
    for dd in await turn.locator("dd[data-fig]").all():
        shown[await dd.get_attribute("data-fig")] = await dd.text_content()
    return shown


async def test_playground_parameters_reach_the_engine_and_a_draft_prompt_is_tried_then_saved(
    browser, production_server, demo_knowledge, artifacts_dir
):
    await make_user("pat")
    context, page = await sign_in(browser, production_server, "pat")
    assert page.url == production_server + "/playground/"
    assert await page.input_value("#prompt") == DEFAULT_SYSTEM_PROMPT
    assert await page.text_content("#prompt-version") == "built-in default"
    assert await page.is_hidden("#prompt-draft")
    assert "default — llamacpp" in await page.text_content("#engine option")

    # The sliders, moved with the keyboard: each shows its value.
    assert await page.text_content("#p-temperature-value") == "0.00"  # INFERENCE_TEMPERATURE of the stack
    assert await press(page, "temperature", "End") != "0.00"
    assert await press(page, "temperature", "Home") == "0.00"
    assert await press(page, "top_p", "ArrowLeft", "ArrowLeft") == "0.80"
    assert await press(page, "frequency_penalty", "ArrowRight") == "0.4"
    assert await page.text_content("#p-max_tokens-value") == "96"  # INFERENCE_MAX_TOKENS of the stack
    assert await press(page, "max_tokens", *["ArrowLeft"] * 48) == "48"

    # (a) The reply streams in (a sentence at a time: the fact guard checks each), and (b) its figures are real.
    await page.evaluate(WATCH_STREAM)
    first = await ask(page, QUESTION)
    states = await page.evaluate("window.streamStates")
    final = first["text"]
    assert final.strip(), first
    partial = {s for s in states if s and s != final}
    assert len(partial) >= 1, states  # shown before it was done (a sentence at a time, so there may be only one)
    prompt_tokens_active = int(first["prompt_tokens"])
    assert prompt_tokens_active > 0 and 0 < int(first["completion_tokens"]) <= 48
    assert float(first["tokens_per_s"]) > 0 and re.fullmatch(r"\d+ ms", first["ttft_ms"])
    assert await page.text_content("#live-state") == "done"
    assert await page.text_content("#live-completion") == first["completion_tokens"]

    # A draft that cannot be rendered is refused visibly, and the typed question is kept.
    assert await press(page, "max_tokens", *["ArrowLeft"] * 40) == "8"
    await page.click("#btn-clear")
    await page.fill("#prompt", DRAFT + " {{shoe_size}}")
    assert await page.is_visible("#prompt-draft")
    await page.fill("#message", QUESTION)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#error:has-text('shoe_size')")
    assert await page.input_value("#message") == QUESTION
    assert await page.locator("#transcript li").count() == 0

    # (b) max_tokens reached the engine: it stopped at 8. (d) The draft, tried without saving, is a longer prompt.
    await page.fill("#prompt", DRAFT)
    await page.fill("#message", "")
    drafted = await ask(page, QUESTION)
    assert await page.is_hidden("#error")
    assert (drafted["completion_tokens"], drafted["finish_reason"]) == ("8", "length"), drafted
    assert int(drafted["prompt_tokens"]) > prompt_tokens_active + 30
    assert await page.text_content("#live-finish") == "length"
    assert await prompt_rows() == []

    # (c) temperature 0 reached the engine: greedy decoding gives the same reply again in a cleared chat.
    await page.click("#btn-clear")
    assert await page.locator("#transcript li").count() == 0
    again = await ask(page, QUESTION)
    assert again["text"] == drafted["text"] and again["prompt_tokens"] == drafted["prompt_tokens"]
    assert await prompt_rows() == []

    # (d) Saved with one click: exactly one new version, the active one, with the draft's text.
    await page.fill("#prompt-note", "Opening hours and shipping")
    await page.click("#prompt-save")
    await page.wait_for_selector("#prompt-status:has-text('Saved as v1')")
    assert await page.text_content("#prompt-version") == "v1 (active)"
    assert await page.is_hidden("#prompt-draft")
    assert await prompt_rows() == [(1, DRAFT, True, "Opening hours and shipping")]
    await page.screenshot(path=str(artifacts_dir / "playground.png"))

    # (e) The export: the parameters as set and as applied by the worker, and the figures shown.
    async with page.expect_download() as download_info:
        await page.click("#btn-export")
    download = await download_info.value
    assert re.fullmatch(r"playground-[\dTZ-]+\.json", download.suggested_filename)
    exported = json.loads((await download.path()).read_text())
    assert (exported["engine"], exported["system_prompt"]) == ("default", {"draft": False, "text": DRAFT, "version": 1})
    sliders = {"temperature": 0, "top_p": 0.8, "max_tokens": 8, "frequency_penalty": 0.4}
    assert exported["params"] == sliders
    assert [turn["role"] for turn in exported["turns"]] == ["user", "assistant"]
    user, reply = exported["turns"]
    assert user["content"] == QUESTION and reply["content"] == again["text"]
    assert reply["params_sent"] == sliders
    applied = {name: reply["params_applied"][name] for name in sliders}
    assert applied == {"max_tokens": 8, "temperature": 0.0, "top_p": 0.8, "frequency_penalty": 0.4}
    assert (reply["finish_reason"], reply["handoff"], reply["system_prompt_draft"]) == ("length", False, True)
    stats = reply["stats"]
    assert str(stats["prompt_tokens"]) == again["prompt_tokens"]
    assert str(stats["completion_tokens"]) == again["completion_tokens"] == "8"
    assert f"{stats['ttft_ms']} ms" == again["ttft_ms"]
    assert f"{stats['tokens_per_s']:.1f}" == again["tokens_per_s"]
    assert stats["engine"] in again["engine"] or reply["model"] in again["engine"]
    await context.close()


async def test_playground_is_for_staff_only_and_needs_the_csrf_token(browser, production_server):
    await make_user("pat")
    await make_user("nat", staff=False)
    await make_user("sam", publish=False)

    anonymous = await browser.new_context()
    page = await anonymous.new_page()
    await page.goto(production_server + "/playground/")
    assert "/login/" in page.url and "next=/playground/" in page.url
    await anonymous.close()

    # Staff, but a POST without the CSRF token is refused; with it, the request is answered (here: 400, bad input).
    context, page = await sign_in(browser, production_server, "pat")
    assert (await page.evaluate(POST_GENERATE, [False, "follow"]))["status"] == 403
    answer = await page.evaluate(
        """async () => (await fetch("/playground/generate", {method: "POST", body: "{}",
             headers: {"X-CSRFToken": document.cookie.match(/csrftoken=([^;]+)/)[1]}})).status"""
    )
    assert answer == 400
    await context.close()

    # Without the playground permission: the page is refused (403, no playground on it) and the endpoint does not run.
    context, page = await sign_in(browser, production_server, "nat")
    assert await page.evaluate('async () => (await fetch("/playground/")).status') == 403
    assert await page.locator("#playground-config").count() == 0
    refused = await page.evaluate(POST_GENERATE, [True, "manual"])
    assert refused["status"] == 403 and refused["contentType"] == "application/json"
    await context.close()

    # Staff without the permission to add system prompts may try drafts but not save them.
    context, page = await sign_in(browser, production_server, "sam")
    assert page.url == production_server + "/playground/"
    assert await page.is_hidden("#publish") and await page.is_visible("#publish-denied")
    status = await page.evaluate(
        """async () => (await fetch("/playground/prompt", {method: "POST", body: JSON.stringify({template: "Hi"}),
             headers: {"X-CSRFToken": document.cookie.match(/csrftoken=([^;]+)/)[1]}})).status"""
    )
    assert status == 403
    assert await prompt_rows() == []
    await context.close()


async def test_playground_runs_the_engine_chosen_and_stop_ends_a_reply(browser, two_engine_server, demo_knowledge):
    await make_user("pat")
    context, page = await sign_in(browser, two_engine_server, "pat")
    options = await page.locator("#engine option").all_text_contents()
    assert options == [
        "default — llamacpp · bundled SmolLM2-135M-Instruct",
        "small-context — llamacpp · bundled SmolLM2-135M-Instruct",
    ]
    await page.focus("#engine")
    await page.keyboard.press("ArrowDown")
    assert await page.input_value("#engine") == "small-context"
    assert await press(page, "max_tokens", "Home", *["ArrowRight"] * 7) == "8"
    reply = await ask(page, QUESTION)
    assert reply["engine"].startswith("small-context · ") and reply["completion_tokens"] == "8", reply

    # Stop aborts the request: the partial reply stays, marked stopped, and the page is ready for the next one.
    await page.click("#params-reset")
    assert await page.text_content("#p-max_tokens-value") == "96"
    assert await press(page, "max_tokens", *["ArrowLeft"] * 72) == "24"
    # The longest reply the slider allows, so the stop lands mid-stream even on a loaded machine: 24 tokens could
    # arrive with the end of the reply in one network read, before the page ever shows "streaming".
    assert int(await press(page, "max_tokens", "End")) > 96
    await page.evaluate(STOP_ON_FIRST_TEXT)
    await page.fill("#message", QUESTION)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#live-state:has-text('stopped')", timeout=60_000)
    stopped = page.locator("#transcript .turn--bot").last
    assert await stopped.locator(".turn__text").text_content()
    assert await stopped.locator("dd[data-fig=finish_reason]").text_content() == "stopped"
    assert await stopped.locator("dd[data-fig=completion_tokens]").text_content() == "—"
    assert await page.is_enabled("#btn-send") and await page.is_disabled("#btn-stop")
    assert await page.is_hidden("#error")
    await context.close()
