"""A customer in real Chromium on the chat page, against daphne + a Celery worker + the real model."""

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


async def bot_text_samples(page, timeout_s: float = 60) -> list[str]:
    """Sample the bot bubble's text while it streams, until the reply is done."""
    samples: list[str] = []
    await page.wait_for_selector(".msg--bot", timeout=timeout_s * 1000)
    for _ in range(int(timeout_s / 0.02)):
        classes, text = await page.eval_on_selector(
            ".msg--bot:last-child", "el => [el.className, el.querySelector('span').textContent]"
        )
        if not samples or samples[-1] != text:
            samples.append(text)
        if "msg--streaming" not in classes:
            return samples
        await page.wait_for_timeout(20)
    raise AssertionError(f"the reply did not finish; last text: {samples[-1:]}")


async def test_customer_sees_the_reply_stream_and_keeps_it_after_reload(browser, production_server, artifacts_dir):
    context = await browser.new_context(
        locale="en-US", timezone_id="Europe/Paris", viewport={"width": 900, "height": 700}
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(production_server + "/")
    await page.wait_for_selector("#chat-status:has-text('Online')")

    await page.fill("#chat-input", "How do I reset my password?")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(".msg--customer:has-text('reset my password')")
    samples = await bot_text_samples(page)
    final = samples[-1]
    intermediate = [s for s in samples[:-1] if s]
    assert len(intermediate) >= 3, samples  # the reply appeared progressively, not all at once
    assert all(final.startswith(s.strip()[:20]) for s in intermediate)
    assert await page.is_hidden("#chat-typing")  # the typing indicator stopped
    await page.screenshot(path=str(artifacts_dir / "chat-page-en.png"))

    await page.reload()
    await page.wait_for_selector("#chat-status:has-text('Online')")
    await page.wait_for_selector(".msg--bot")
    assert await page.locator(".msg").count() == 2
    assert (await page.text_content(".msg--bot span")).strip() == final.strip()
    assert errors == []
    await context.close()
