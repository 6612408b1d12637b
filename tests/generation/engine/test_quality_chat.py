"""The quality gate's chat-completions client, its VLM judge and its prompt-refining LLM, against a
real local HTTP server that speaks the OpenAI-compatible protocol: what the server receives (the
model, the question, the image as a data URL), what the judges answer, and how failures — 5xx,
429 with Retry-After, timeouts, refused connections, replies with no yes or no — come back.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from generation.engine.quality.chat import ChatClient, ChatError, extract_json, image_content
from generation.engine.quality.judges import JudgedImage, Question
from generation.engine.quality.llm import LlmError, draft_rubric, refine_prompt
from generation.engine.quality.vlm import SYSTEM_PROMPT, VlmJudge, parse_yes_no
from models_registry.engine.shapes_data import render_shots
from tests.chat_server import MODEL, ChatServer, Reply, failing, said  # noqa: F401

ROOT = Path(__file__).resolve().parents[3]
CLIENT_TIMEOUT = 0.2


@pytest.fixture
def sleeps() -> list[float]:
    """The delays the client chose between attempts (recorded instead of slept)."""
    return []


def client_for(
    server: ChatServer, sleeps: list[float], *, max_retries: int = 2, **kwargs: Any
) -> ChatClient:
    return ChatClient(
        server.url,
        MODEL,
        timeout=CLIENT_TIMEOUT,
        max_retries=max_retries,
        backoff=0.1,
        sleep=sleeps.append,
        jitter=lambda: 0.5,  # jitter factor 1.0: the delays are exactly the backoff
        **kwargs,
    )


def png_of(size: int = 32) -> bytes:
    pixels = render_shots(["red"], ["apple"], ["white"], seed=0, size=size)[0]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def judged(png: bytes) -> JudgedImage:
    pixels = render_shots(["red"], ["apple"], ["white"], seed=0, size=32)[0]
    return JudgedImage(pixels=pixels, png=png, prompt="a red apple on a white background")


RED = Question(key="q1", text="Is the apple red?", judge="vlm")
WHITE = Question(key="q2", text="Is the background white?", judge="vlm")


# --- ChatClient ----------------------------------------------------------------------------------


def test_client_posts_the_model_and_messages_and_returns_the_first_choice(chat_server, sleeps):
    chat_server.script(said("A red apple."))
    client = client_for(chat_server, sleeps, api_key="sk-test")

    text = client.complete([{"role": "user", "content": "What is this?"}], max_tokens=20)

    assert text == "A red apple."
    (request,) = chat_server.received
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["json"] == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is this?"}],
        "max_tokens": 20,
        "temperature": 0.0,
    }
    assert "sk-test" not in repr(client)


def test_client_retries_a_500_and_returns_the_answer_that_follows(chat_server, sleeps):
    chat_server.script(failing(500), said("Yes."))
    assert client_for(chat_server, sleeps).complete([], max_tokens=5) == "Yes."
    assert len(chat_server.received) == 2
    assert sleeps == [pytest.approx(0.1)]


def test_client_gives_up_after_every_attempt_fails_with_backoff_doubling(chat_server, sleeps):
    chat_server.script(failing(503))
    with pytest.raises(ChatError) as caught:
        client_for(chat_server, sleeps, max_retries=3).complete([], max_tokens=5)
    assert caught.value.kind == "http_error"
    assert caught.value.status == 503
    assert caught.value.attempts == 4
    assert "HTTP 503" in caught.value.message
    assert "4 attempts" in caught.value.message
    assert len(chat_server.received) == 4
    assert sleeps == [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.4)]


def test_jitter_spreads_the_backoff_between_half_and_one_and_a_half_times(chat_server):
    chat_server.script(failing(500))
    waited: list[float] = []
    client = ChatClient(chat_server.url, MODEL, timeout=0.2, backoff=1.0, sleep=waited.append)
    for _ in range(5):
        with pytest.raises(ChatError):
            client.complete([], max_tokens=5)
    first_waits = waited[::2]
    assert all(0.5 <= wait < 1.5 for wait in first_waits)
    assert len(set(first_waits)) > 1


def test_client_waits_as_long_as_retry_after_asks_up_to_the_cap(chat_server, sleeps):
    chat_server.script(failing(429, **{"Retry-After": "7"}), said("Yes."))
    assert client_for(chat_server, sleeps).complete([], max_tokens=5) == "Yes."
    assert sleeps == [7.0]

    sleeps.clear()
    chat_server.script(failing(429, **{"Retry-After": "3600"}), said("Yes."))
    client_for(chat_server, sleeps, retry_after_cap=12.0).complete([], max_tokens=5)
    assert sleeps == [12.0]


def test_retry_after_as_an_http_date_counts_from_now(chat_server, sleeps):
    from datetime import UTC, datetime

    chat_server.script(
        failing(429, **{"Retry-After": "Wed, 21 Oct 2026 07:28:05 GMT"}), said("Yes.")
    )
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    client_for(chat_server, sleeps, now=lambda: now).complete([], max_tokens=5)
    assert sleeps == [5.0]


def test_a_400_is_not_retried(chat_server, sleeps):
    chat_server.script(failing(400))
    with pytest.raises(ChatError) as caught:
        client_for(chat_server, sleeps).complete([], max_tokens=5)
    assert (caught.value.kind, caught.value.status, caught.value.attempts) == ("http_error", 400, 1)
    assert "not retried" in caught.value.message
    assert len(chat_server.received) == 1
    assert sleeps == []


def test_a_server_slower_than_the_timeout_is_a_timeout_after_every_attempt(chat_server, sleeps):
    chat_server.script(Reply(body=said("Yes.").body, delay=CLIENT_TIMEOUT * 3))
    started = time.monotonic()
    with pytest.raises(ChatError) as caught:
        client_for(chat_server, sleeps).complete([], max_tokens=5)
    assert caught.value.kind == "timeout"
    assert caught.value.attempts == 3
    assert len(chat_server.received) == 3
    # Each attempt waited about the read timeout, not the server's delay.
    assert time.monotonic() - started < 3 * CLIENT_TIMEOUT * 2.5


def test_a_refused_connection_is_a_connection_error():
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ChatClient(f"http://127.0.0.1:{port}/v1", MODEL, timeout=0.2, sleep=lambda _: None)
    with pytest.raises(ChatError) as caught:
        client.complete([], max_tokens=5)
    assert (caught.value.kind, caught.value.attempts) == ("connection", 3)
    assert "could not connect" in caught.value.message


@pytest.mark.parametrize(
    "reply",
    [Reply(body="<html>gateway</html>"), Reply(body={"choices": []}), Reply(body={"id": "x"})],
)
def test_a_200_without_a_message_is_a_bad_response(chat_server, sleeps, reply):
    chat_server.script(reply)
    with pytest.raises(ChatError) as caught:
        client_for(chat_server, sleeps).complete([], max_tokens=5)
    assert caught.value.kind == "bad_response"
    assert len(chat_server.received) == 1


def test_image_content_is_a_png_data_url():
    png = png_of()
    part = image_content(png)
    assert part["type"] == "image_url"
    prefix = "data:image/png;base64,"
    assert part["image_url"]["url"].startswith(prefix)
    assert base64.b64decode(part["image_url"]["url"][len(prefix) :]) == png


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure! Here it is:\n```json\n{"prompt": "x"}\n```\nEnjoy.', {"prompt": "x"}),
        ("I think {this} is it: [1, 2] and more", [1, 2]),
        ("no json at all", None),
    ],
)
def test_extract_json_finds_json_in_chatter(text, expected):
    assert extract_json(text) == expected


# --- parse_yes_no --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes.", (True, "")),
        ("no – the background is grey", (False, "The background is grey")),
        ("**Yes**, the apple is clearly red.", (True, "The apple is clearly red.")),
        ("Answer: No", (False, "")),
        ("### Answer: yes\nThe product is centred.", (True, "The product is centred.")),
        ('{"answer": "yes", "reason": "The apple is red."}', (True, "The apple is red.")),
        ('```json\n{"answer": "No", "reason": "It is green."}\n```', (False, "It is green.")),
        ('{"answer": false, "explanation": "Grey backdrop."}', (False, "Grey backdrop.")),
        ("No, it is not.", (False, "It is not.")),
        ("No it is green", (False, "It is green")),
        (
            "Yes, it is red, so no retouching is needed.",
            (True, "It is red, so no retouching is needed."),
        ),
    ],
)
def test_parse_yes_no_reads_a_leading_answer(text, expected):
    assert parse_yes_no(text) == expected


def test_parse_yes_no_reads_an_answer_concluded_after_chatter():
    text = "Looking at the image, I can see a red apple on white, so the answer is yes."
    assert parse_yes_no(text) == (True, text)
    assert parse_yes_no("The backdrop looks grey to me. Therefore, no.")[0] is False
    assert parse_yes_no('From what I see the answer is "No".')[0] is False


@pytest.mark.parametrize(
    "text",
    [
        "yes and no",
        "Yes and no: the apple is red but the backdrop is grey.",
        "I cannot tell from this image.",
        "It's hard to say.",
        "No visible defects; the apple sits on a white background.",  # "no" as a determiner
        "Yes, the apple is red... so the answer is no.",  # contradicts itself
        "The apple is red.",
        "",
        '{"answer": "maybe"}',
    ],
)
def test_parse_yes_no_refuses_replies_that_do_not_commit(text):
    assert parse_yes_no(text) is None


# --- VlmJudge ------------------------------------------------------------------------------------


def test_vlm_judge_asks_each_question_with_the_image_and_reads_the_answers(chat_server, sleeps):
    chat_server.script(
        said("Yes. The apple is a bright red."),
        said("Looking closely at the backdrop, it is an off-white, so the answer is yes."),
    )
    png = png_of()
    (answers,) = VlmJudge(client_for(chat_server, sleeps)).answer([judged(png)], [RED, WHITE])

    assert [(a.key, a.judge, a.answer, a.error) for a in answers] == [
        ("q1", "vlm", True, ""),
        ("q2", "vlm", True, ""),
    ]
    assert answers[0].confidence == 0.9
    assert answers[0].reason == "The apple is a bright red."
    assert answers[1].confidence == 0.7
    assert "off-white" in answers[1].reason

    first, second = chat_server.bodies
    assert first["model"] == MODEL
    assert first["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    text_part, image_part = first["messages"][1]["content"]
    assert text_part == {"type": "text", "text": "Is the apple red?"}
    assert image_part == image_content(png)
    assert second["messages"][1]["content"][0]["text"] == "Is the background white?"


def test_vlm_judge_answers_every_image_and_question_in_order(chat_server, sleeps):
    chat_server.script(said("Yes."), said("No."), said("No."), said("Yes."))
    images = [judged(png_of(32)), judged(png_of(48))]
    answers = VlmJudge(client_for(chat_server, sleeps)).answer(images, [RED, WHITE])
    assert [[a.answer for a in row] for row in answers] == [[True, False], [False, True]]
    urls = [body["messages"][1]["content"][1]["image_url"]["url"] for body in chat_server.bodies]
    sent = [base64.b64decode(url.removeprefix("data:image/png;base64,")) for url in urls]
    assert [Image.open(io.BytesIO(png)).size for png in sent] == [(32, 32)] * 2 + [(48, 48)] * 2


def test_vlm_judge_records_an_unparseable_reply_quoting_it(chat_server, sleeps):
    chat_server.script(said("I cannot tell, the image is too small " + "really " * 40))
    (answers,) = VlmJudge(client_for(chat_server, sleeps)).answer([judged(png_of())], [RED])
    (answer,) = answers
    assert (answer.answer, answer.error, answer.confidence) == (None, "unparseable", 0.0)
    assert "I cannot tell, the image is too small" in answer.reason
    assert len(answer.reason) < 200


def test_vlm_judge_survives_a_500_that_passes_on_retry(chat_server, sleeps):
    chat_server.script(failing(500), said("No, it is green."))
    (answers,) = VlmJudge(client_for(chat_server, sleeps)).answer([judged(png_of())], [RED])
    assert (answers[0].answer, answers[0].reason) == (False, "It is green.")
    assert len(chat_server.received) == 2


def test_vlm_judge_stops_asking_once_the_endpoint_keeps_failing(chat_server, sleeps):
    chat_server.script(failing(500))
    images = [judged(png_of()), judged(png_of())]
    answers = VlmJudge(client_for(chat_server, sleeps)).answer(images, [RED, WHITE])

    assert [[(a.answer, a.error) for a in row] for row in answers] == [
        [(None, "http_error")] * 2
    ] * 2
    assert "HTTP 500" in answers[0][0].reason and "3 attempts" in answers[0][0].reason
    assert answers[1][1].reason.startswith("Not asked")
    # Only the first question was sent (three attempts), not 4 questions × 3 attempts.
    assert len(chat_server.received) == 3


def test_vlm_judge_records_a_timeout(chat_server, sleeps):
    chat_server.script(Reply(body=said("Yes.").body, delay=CLIENT_TIMEOUT * 3))
    judge = VlmJudge(client_for(chat_server, sleeps, max_retries=1))
    (answers,) = judge.answer([judged(png_of())], [RED, WHITE])
    assert [(a.answer, a.error) for a in answers] == [(None, "timeout")] * 2
    assert len(chat_server.received) == 2


def test_vlm_judge_goes_on_after_a_refused_question(chat_server, sleeps):
    chat_server.script(failing(400), said("Yes."))
    (answers,) = VlmJudge(client_for(chat_server, sleeps)).answer([judged(png_of())], [RED, WHITE])
    assert [(a.answer, a.error) for a in answers] == [(None, "http_error"), (True, "")]


# --- refine_prompt and draft_rubric --------------------------------------------------------------


def test_refine_prompt_sends_the_failures_and_reads_fenced_json(chat_server, sleeps):
    chat_server.script(
        said(
            "Here is the improved prompt:\n```json\n"
            '{"prompt": "a bright red apple on a pure white background, studio light", '
            '"negative_prompt": "grey, shadowy background", '
            '"note": "Asked for a pure white backdrop."}\n```\nHope this helps!'
        )
    )
    refinement = refine_prompt(
        client_for(chat_server, sleeps),
        prompt="a red apple on a white background",
        negative_prompt="blurry",
        failures=[("Is the background white?", "The backdrop is light grey.")],
    )
    assert refinement.prompt == "a bright red apple on a pure white background, studio light"
    assert refinement.negative_prompt == "grey, shadowy background"
    assert refinement.note == "Asked for a pure white backdrop."
    (body,) = chat_server.bodies
    user = body["messages"][1]["content"]
    assert "a red apple on a white background" in user and "blurry" in user
    assert "Is the background white?" in user and "The backdrop is light grey." in user


def test_refine_prompt_without_a_note_says_what_it_refined_for(chat_server, sleeps):
    chat_server.script(said('{"prompt": "a red apple", "negative_prompt": ""}'))
    refinement = refine_prompt(
        client_for(chat_server, sleeps),
        prompt="an apple",
        negative_prompt="",
        failures=[("Is the apple red?", "It is green."), ("Is it centred?", "Off to the left.")],
    )
    assert refinement == type(refinement)("a red apple", "", "Rewritten for 2 failed questions.")


@pytest.mark.parametrize(
    ("content", "kind", "message"),
    [
        ('{"prompt": "   ", "negative_prompt": ""}', "invalid_output", "empty prompt"),
        (json.dumps({"prompt": "red " * 300}), "invalid_output", "at most 1000"),
        ('{"negative_prompt": "x"}', "invalid_output", 'no "prompt"'),
        ('["a red apple"]', "invalid_output", "not an object"),
        ("Sorry, I can't help with that.", "bad_response", "no JSON"),
    ],
)
def test_refine_prompt_refuses_output_that_would_make_a_bad_job(
    chat_server, sleeps, content, kind, message
):
    chat_server.script(said(content))
    with pytest.raises(LlmError) as caught:
        refine_prompt(
            client_for(chat_server, sleeps),
            prompt="an apple",
            negative_prompt="",
            failures=[("Is the apple red?", "It is green.")],
        )
    assert caught.value.kind == kind
    assert message in caught.value.message


def test_an_endpoint_failure_reaches_the_caller_as_an_llm_error_with_its_kind(chat_server, sleeps):
    chat_server.script(failing(502))
    with pytest.raises(LlmError) as caught:
        refine_prompt(
            client_for(chat_server, sleeps, max_retries=1),
            prompt="an apple",
            negative_prompt="",
            failures=[("Is the apple red?", "It is green.")],
        )
    assert caught.value.kind == "http_error"
    assert "HTTP 502" in caught.value.message
    assert len(chat_server.received) == 2


def test_draft_rubric_keeps_valid_questions_and_drops_bad_ones(chat_server, sleeps, caplog):
    def item(question: str, expected: object, judge: str, **rest: object) -> dict:
        return {"question": question, "expected": expected, "judge": judge, **rest}

    drafted = [
        item("Is the {colour} apple whole?", "yes", "vlm", weight=2),
        item("Is the product {colour}?", "Yes", "check", check="colour"),
        item("Is the image blurry?", False, "clip", weight=1.5),
        item("Is it shiny?", "yes", "magic"),
        item("Is the logo visible?", "yes", "check", check="logo"),
        item("Is the {size} right?", "yes", "vlm"),
        item("Is it centred?", "maybe", "vlm"),
        item("Is it lit?", "yes", "vlm", weight=50),
    ]
    chat_server.script(said("Here you go:\n" + json.dumps(drafted)))

    rubric = draft_rubric(
        client_for(chat_server, sleeps),
        description="Apples in six colours, studio shots",
        variables=["colour"],
    )

    assert rubric == [
        item("Is the {colour} apple whole?", "yes", "vlm", weight=2.0, check=""),
        item("Is the product {colour}?", "yes", "check", weight=1.0, check="colour"),
        item("Is the image blurry?", "no", "clip", weight=1.5, check=""),
    ]
    dropped = caplog.text
    assert "item 4: judge must be one of check, clip, vlm" in dropped
    assert "item 5: check must be one of colour, backdrop, subject" in dropped
    assert "item 6: question uses unknown template variables ['size']" in dropped
    assert "item 7: expected must be" in dropped
    assert "item 8: weight must be in" in dropped
    user = chat_server.bodies[0]["messages"][1]["content"]
    assert "Apples in six colours" in user and "{colour}" in user


def test_draft_rubric_with_no_usable_question_says_why(chat_server, sleeps):
    chat_server.script(said('[{"question": "Shiny?", "expected": "yes", "judge": "magic"}, 7]'))
    with pytest.raises(LlmError) as caught:
        draft_rubric(client_for(chat_server, sleeps), description="Apples", variables=[])
    assert caught.value.kind == "invalid_output"
    assert "item 1: judge must be one of" in caught.value.message
    assert "item 2: not an object" in caught.value.message


def test_the_chat_judges_import_neither_django_nor_torch():
    code = (
        "import sys, generation.engine.quality.vlm, generation.engine.quality.llm; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'torch', 'cv2'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"
