"""The generate form's editors in a real headless Chromium: a marketer drags a box on the layout
canvas, names it, and the job is created with that layout on the grounded model; from an
image's page they choose "Repaint part of it", paint over the source, and the job is an inpaint
of that image whose stored mask is white where they painted. The jobs are only created here (the
worker's side of layouts and inpainting has its own tests)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from generation import storage
from generation.models import GenerationJob
from models_registry.engine.shapes_data import render_shots
from tenants.demo import DEMO_PASSWORD, seed_tenancy
from tests.e2e.test_studio_browser import _sign_in
from tests.factories import make_image_row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _drag(browser, element, start: tuple[float, float], end: tuple[float, float]) -> None:  # type: ignore[no-untyped-def]
    """Press at ``start`` and release at ``end``, both relative to ``element`` (0–1)."""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    width, height = element.size["width"], element.size["height"]

    def offset(point: tuple[float, float]) -> tuple[int, int]:
        return round((point[0] - 0.5) * width), round((point[1] - 0.5) * height)

    chain = ActionChains(browser).move_to_element_with_offset(element, *offset(start))
    chain.click_and_hold()
    for step in (0.25, 0.5, 0.75, 1.0):
        x = start[0] + (end[0] - start[0]) * step
        y = start[1] + (end[1] - start[1]) * step
        chain.move_to_element_with_offset(element, *offset((x, y)))
    chain.release().perform()


def test_a_marketer_draws_a_layout_and_paints_a_mask_over_an_image(
    browser, live_server, tiny_gligen_base_model, tiny_base_model, isolated_broker, settings,
    tmp_path,
):  # fmt: skip
    settings.VAR_DIR = tmp_path
    demo = seed_tenancy()
    base = live_server.url
    _sign_in(browser, base, "marketer", DEMO_PASSWORD)

    # A box over the left half, named "red apple", on the grounded tiny model.
    browser.get(f"{base}/studio/generate/")
    browser.find_element(
        By.CSS_SELECTOR, "select[name=target] option[value='model:tiny-gligen']"
    ).click()
    browser.find_element(By.NAME, "prompt").send_keys("a red apple on a white background")
    canvas = browser.find_element(By.CSS_SELECTOR, "[data-layout-canvas]")
    _drag(browser, canvas, (0.05, 0.3), (0.45, 0.9))
    phrase = WebDriverWait(browser, 5).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "[data-layout-phrase='1']"))
    )
    assert phrase.get_attribute("value") == "red apple"  # taken from the prompt
    browser.find_element(By.ID, "submit-generation").click()
    WebDriverWait(browser, 10).until(ec.url_contains("/studio/jobs/"))
    job = GenerationJob.objects.get(organization=demo.org)
    (item,) = job.params["layout"]
    assert item["phrase"] == "red apple"
    assert np.allclose(item["box"], [0.05, 0.3, 0.45, 0.9], atol=0.03), item["box"]

    # Repaint the middle of an image of the organization's: the mask is white where painted.
    shot = Image.fromarray(render_shots(["red"], ["apple"], ["white"], seed=1, size=64)[0])
    image = make_image_row(job)
    buffer = io.BytesIO()
    shot.save(buffer, format="PNG")
    storage.write_object(image.storage_key, buffer.getvalue())
    browser.get(f"{base}/studio/images/{image.pk}/")
    browser.find_element(By.ID, "inpaint-image").click()
    WebDriverWait(browser, 10).until(ec.url_contains("mode=inpaint"))
    painting = browser.find_element(By.CSS_SELECTOR, "[data-mask-canvas]")
    _drag(browser, painting, (0.4, 0.5), (0.6, 0.5))
    browser.find_element(By.ID, "submit-generation").click()
    WebDriverWait(browser, 10).until(ec.url_contains("/studio/jobs/"))
    varied = GenerationJob.objects.filter(organization=demo.org).latest("created_at")
    assert varied.params["mode"] == "inpaint" and varied.source_image_id == image.pk
    lineage = browser.find_element(By.ID, "job-lineage").text
    assert lineage.startswith("inpaint at strength 1.0 of image " + str(image.pk)[:8])
    mask = Image.open(io.BytesIO(storage.read_object(varied.params["mask"]["storage_key"])))
    white = np.asarray(mask.convert("L").resize((64, 64))) > 127
    assert white[32, 32] and not white[4, 4] and not white[60, 60]
    browser.get(f"{base}/studio/images/{image.pk}/")
    assert "Variations of this image" in browser.page_source

    # An uploaded file as the source: it shows under the mask canvas as soon as it is chosen.
    path = tmp_path / "shelf.png"
    shot.save(path)
    browser.get(f"{base}/studio/generate/")
    browser.find_element(By.NAME, "prompt").send_keys("a red apple on a white background")
    browser.find_element(By.CSS_SELECTOR, "select[name=mode] option[value=inpaint]").click()
    browser.find_element(By.NAME, "source_file").send_keys(str(path))
    painting = browser.find_element(By.CSS_SELECTOR, "[data-mask-canvas]")
    WebDriverWait(browser, 5).until(lambda b: painting.is_displayed())
    _drag(browser, painting, (0.1, 0.1), (0.3, 0.1))
    browser.find_element(By.ID, "submit-generation").click()
    WebDriverWait(browser, 10).until(ec.url_contains("/studio/jobs/"))
    uploaded = GenerationJob.objects.filter(organization=demo.org).latest("created_at")
    assert uploaded.source_upload.file_name == "shelf.png" and uploaded.params["mode"] == "inpaint"
    mask = Image.open(io.BytesIO(storage.read_object(uploaded.params["mask"]["storage_key"])))
    white = np.asarray(mask.convert("L").resize((64, 64))) > 127
    assert white[6, 12] and not white[48, 48]
