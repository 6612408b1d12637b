"""The studio in a real headless Chromium: the demo marketer generates images with the demo's
default model (the trained ``shapes`` model) on a real worker, sees them appear, and they show
what was asked for; the demo reviewer approves one and rejects one with the keyboard; an
outsider who pastes the job URL gets a 404; an admin promotes a version after confirming; an
owner uploads a catalog, sees its row report, runs it, watches it finish, reviews the run's
images and downloads its export. Screenshots of the main pages land in docs/screenshots/."""

from __future__ import annotations

import csv
import io
import time
import urllib.request
import zipfile

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from generation.models import GenerationJob, ImageReview, JobStatus
from models_registry.builtin import switch_demo_to
from models_registry.engine.shapes_report import classify_background, classify_colour
from tenants.demo import DEMO_PASSWORD, seed_tenancy
from tests.factories import make_org, make_persona
from tests.studio.conftest import make_category

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

JOB_SECONDS = 300
WORKER_START_SECONDS = 300


def _wait_for_worker(worker) -> None:  # type: ignore[no-untyped-def]
    """Block until the worker has started (importing torch can take minutes on a busy CPU)."""
    deadline = time.monotonic() + WORKER_START_SECONDS
    while time.monotonic() < deadline and worker.poll() is None:
        if " ready." in worker.log_path.read_text(errors="replace"):
            return
        time.sleep(0.5)
    tail = worker.log_path.read_text(errors="replace")[-3000:]
    pytest.fail(f"The Celery worker did not start. Log tail:\n{tail}")


def _sign_in(browser, base: str, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    browser.delete_all_cookies()
    browser.get(f"{base}/studio/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".who")))


def _press(browser, key: str) -> None:  # type: ignore[no-untyped-def]
    browser.execute_script("document.activeElement && document.activeElement.blur()")
    ActionChains(browser).send_keys(key).perform()


def _decided(browser) -> list[str]:  # type: ignore[no-untyped-def]
    tiles = browser.find_elements(By.CSS_SELECTOR, "[data-review-tile][data-decision]")
    return [tile.get_attribute("data-decision") for tile in tiles]


def test_marketer_generates_reviewer_decides_by_keyboard_outsider_gets_404(
    browser, screenshot, live_server, shapes_base_model, celery_worker_process, settings, tmp_path
):
    settings.VAR_DIR = tmp_path  # the demo key file goes here, not into the checkout's var/
    demo = seed_tenancy()
    switch_demo_to(shapes_base_model.name)  # what the background build does when it is ready
    demo.org.refresh_from_db()
    assert demo.org.default_model == "shapes"
    make_category(demo.org, slug="mugs", versions=2)
    base = live_server.url

    # The marketer generates two images with the organization's default model.
    _sign_in(browser, base, "marketer", DEMO_PASSWORD)
    nav = browser.find_element(By.CSS_SELECTOR, "nav.mainnav").text
    assert "Generate" in nav and "Review" not in nav
    browser.find_element(By.LINK_TEXT, "Generate").click()
    browser.find_element(By.NAME, "prompt").send_keys("a red apple on a white background")
    browser.find_element(By.NAME, "seed").send_keys("42")
    num_images = browser.find_element(By.NAME, "num_images")
    num_images.clear()
    num_images.send_keys("2")
    screenshot("generate")
    _wait_for_worker(celery_worker_process)
    browser.find_element(By.ID, "submit-generation").click()
    WebDriverWait(browser, 10).until(ec.url_contains("/studio/jobs/"))
    job_url = browser.current_url
    job = GenerationJob.objects.get(organization=demo.org)
    assert str(job.pk) in job_url and job.base_model.name == "shapes"

    # The job page polls until the worker has drawn both images, then shows them.
    WebDriverWait(browser, JOB_SECONDS, poll_frequency=0.5).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "[data-testid=job-images] img")) == 2
    )
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error_message
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=job-status]").text == "succeeded"
    WebDriverWait(browser, 20).until(  # the browser really loaded both images
        lambda b: b.execute_script(
            "return [...document.querySelectorAll('[data-testid=job-images] img')]"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
    )
    screenshot("job")
    # What the worker drew is what was asked for: a red product on a white background.
    for image in job.images.order_by("index"):
        with default_storage.open(image.storage_key, "rb") as fh:
            pixels = np.asarray(Image.open(fh).convert("RGB"))
        assert classify_colour(pixels) == "red", f"image {image.index}"
        assert classify_background(pixels) == "white", f"image {image.index}"

    # The reviewer approves the first image with "a" and rejects the second with "r".
    _sign_in(browser, base, "reviewer", DEMO_PASSWORD)
    browser.find_element(By.LINK_TEXT, "Review").click()
    WebDriverWait(browser, 10).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "[data-review-tile].current")
    )
    screenshot("review-queue")
    _press(browser, "a")
    WebDriverWait(browser, 10).until(lambda b: _decided(b) == ["approved"])
    _press(browser, "r")
    alert = WebDriverWait(browser, 10).until(ec.alert_is_present())
    alert.send_keys("Apple is the wrong colour")
    alert.accept()
    WebDriverWait(browser, 10).until(lambda b: sorted(_decided(b)) == ["approved", "rejected"])
    decisions = {
        r.image.index: (r.status, r.reason) for r in ImageReview.objects.select_related("image")
    }
    assert decisions == {0: ("approved", ""), 1: ("rejected", "Apple is the wrong colour")}

    browser.get(f"{base}/studio/gallery/")
    screenshot("gallery")
    browser.find_element(By.CSS_SELECTOR, ".tile a").click()
    WebDriverWait(browser, 10).until(ec.url_contains("/studio/images/"))
    assert "a red apple on a white background" in browser.page_source
    screenshot("image-detail")
    browser.get(f"{base}/studio/review/report/")
    screenshot("review-report")

    # Someone from another organization pastes the job URL: 404, and nothing of the job shows.
    org_b = make_org("globex")
    outsider = make_persona(*org_b, "owner")
    outsider.user.set_password("outsider-pw")
    outsider.user.save()
    _sign_in(browser, base, outsider.user.username, "outsider-pw")
    browser.get(job_url)
    assert "Not Found" in browser.page_source
    assert "red apple" not in browser.page_source


def test_admin_promotes_a_version_after_confirming(
    browser, screenshot, live_server, settings, tmp_path
):
    settings.VAR_DIR = tmp_path
    demo = seed_tenancy()
    category = make_category(demo.org, slug="mugs", versions=2)
    first, second = category.versions.order_by("id")
    _sign_in(browser, live_server.url, "admin", DEMO_PASSWORD)
    browser.find_element(By.LINK_TEXT, "Models").click()
    screenshot("models")
    browser.find_element(By.LINK_TEXT, "Mugs").click()

    def promote(version_id: int, *, confirm: bool) -> None:
        row = browser.find_element(By.CSS_SELECTOR, f"tr[data-version='{version_id}']")
        row.find_element(By.XPATH, ".//button[text()='Promote to production']").click()
        alert = WebDriverWait(browser, 5).until(ec.alert_is_present())
        assert "production alias" in alert.text
        alert.accept() if confirm else alert.dismiss()

    promote(first.pk, confirm=False)  # dismissing the confirmation changes nothing
    assert not category.aliases.exists()
    promote(first.pk, confirm=True)
    WebDriverWait(browser, 10).until(lambda b: "is now production" in b.page_source)
    promote(second.pk, confirm=True)
    WebDriverWait(browser, 10).until(
        lambda b: f"Version {second.pk} is now production" in b.page_source
    )
    assert category.aliases.get(name="production").version_id == second.pk
    screenshot("category")


def _wait_for_jobs(jobs: list[GenerationJob]) -> None:
    deadline = time.monotonic() + JOB_SECONDS
    while time.monotonic() < deadline:
        statuses = {j.status for j in GenerationJob.objects.filter(pk__in=[j.pk for j in jobs])}
        if statuses <= {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.FAILED_QUALITY}:
            return
        time.sleep(0.5)
    pytest.fail(f"jobs did not finish in {JOB_SECONDS} s: {statuses}")


def _filter_queue(browser, **values: str) -> list[str]:  # type: ignore[no-untyped-def]
    for name in ("min_score", "max_score"):
        field = browser.find_element(By.NAME, name)
        field.clear()
        field.send_keys(values.get(name, ""))
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.XPATH, "//form[@class='filters']//button[text()='Filter']").click()
    # The new page, not the URL: a second filtering starts from a URL that already matches.
    WebDriverWait(browser, 10).until(ec.staleness_of(page))
    WebDriverWait(browser, 10).until(ec.url_contains("min_score="))
    return [
        t.get_attribute("data-image")
        for t in browser.find_elements(By.CSS_SELECTOR, "[data-review-tile]")
    ]


def test_reviewer_filters_by_the_gates_score_and_the_report_shows_agreement(
    browser, live_server, shapes_base_model, celery_worker_process, settings, tmp_path
):
    from generation.demo import seed_templates
    from generation.services import generation_job_create
    from generation.template_services import prompt_template_create

    settings.VAR_DIR = tmp_path
    demo = seed_tenancy()
    switch_demo_to(shapes_base_model.name)
    demo.org.refresh_from_db()
    seed_templates(demo.owner)
    # A lenient template whose third question a white-background shot always fails: its images
    # pass the gate with a score of 2/3, the demo template's with 1.
    prompt_template_create(
        actor=demo.owner,
        application="tile-lenient",
        text="a {color} {product} on a white background",
        rubric=[
            {"question": "Is the product {color}?", "judge": "check", "check": "colour"},
            {"question": "Is the product the main subject?", "judge": "check", "check": "subject"},
            {"question": "Is the background dark?", "judge": "check", "check": "backdrop"},
        ],
        pass_threshold=0.5,
    )
    variables = {"color": "red", "product": "box"}
    _wait_for_worker(celery_worker_process)
    jobs = [
        generation_job_create(
            actor=demo.owner,
            data={
                "template": "product-shot",
                "variables": variables | {"background": "white"},
                "seed": 7,
            },
        ),
        generation_job_create(
            actor=demo.owner, data={"template": "tile-lenient", "variables": variables, "seed": 7}
        ),
    ]
    _wait_for_jobs(jobs)
    for job in jobs:
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, job.error_message
    strict, lenient = (job.images.get(is_result=True) for job in jobs)
    assert strict.scores["score"] == 1.0
    assert lenient.scores["score"] == pytest.approx(2 / 3, abs=1e-3)

    base = live_server.url
    _sign_in(browser, base, "reviewer", DEMO_PASSWORD)
    browser.get(f"{base}/studio/review/")
    assert _filter_queue(browser, min_score="0.9") == [str(strict.pk)]
    _press(browser, "a")  # approve the image the gate scored 1
    WebDriverWait(browser, 10).until(lambda b: _decided(b) == ["approved"])
    assert _filter_queue(browser, max_score="0.8") == [str(lenient.pk)]
    _press(browser, "r")  # reject the one it let through at 2/3
    alert = WebDriverWait(browser, 10).until(ec.alert_is_present())
    alert.send_keys("The background should be plain")
    alert.accept()
    WebDriverWait(browser, 10).until(lambda b: _decided(b) == ["rejected"])

    browser.get(f"{base}/studio/review/report/")
    cell = browser.find_element(By.CSS_SELECTOR, "[data-cell=approved-passed]")
    assert cell.text == "1"
    assert browser.find_element(By.CSS_SELECTOR, "[data-cell=rejected-passed]").text == "1"
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=agreement]").text == "50 %"
    rows = {
        row.get_attribute("data-template"): row.find_element(By.CSS_SELECTOR, ".rate").text
        for row in browser.find_elements(By.CSS_SELECTOR, "[data-template]")
    }
    assert rows == {"product-shot": "100 %", "tile-lenient": "0 %"}


def _star_photo(path, i: int):  # type: ignore[no-untyped-def]
    """A cyan star on a white backdrop: a product the shapes model never saw."""
    import math

    from PIL import ImageDraw

    image = Image.new("RGB", (64, 64), (246, 246, 243))
    centre, outer, inner = (32 + (i % 3) - 1, 32 - (i % 2)), 22 - i, 9 - i / 3
    points = [
        (
            centre[0] + (outer if k % 2 == 0 else inner) * math.sin(k * math.pi / 5 + i / 10),
            centre[1] - (outer if k % 2 == 0 else inner) * math.cos(k * math.pi / 5 + i / 10),
        )
        for k in range(10)
    ]
    ImageDraw.Draw(image).polygon(points, fill=(20, 200, 210))
    image.save(path)
    return path


def test_editor_trains_admin_promotes_and_generations_use_the_new_version(
    browser, live_server, shapes_base_model, celery_worker_process, settings, tmp_path
):
    from generation.services import generation_job_create
    from models_registry.models import Category
    from training.models import TrainingJob, TrainingStatus

    settings.VAR_DIR = tmp_path
    settings.EASEL_TRAINING_WORK_DIR = tmp_path / "training"
    demo = seed_tenancy()
    Category.objects.create(
        organization=demo.org, slug="stars", name="Stars", base_model=shapes_base_model
    )
    photos = [_star_photo(tmp_path / f"star-{i}.png", i) for i in range(4)]
    base = live_server.url

    _sign_in(browser, base, "marketer", DEMO_PASSWORD)
    browser.find_element(By.LINK_TEXT, "Training").click()
    browser.find_element(By.NAME, "rare_token").clear()
    browser.find_element(By.NAME, "rare_token").send_keys("sks")
    browser.find_element(By.NAME, "class_prompt").send_keys("a box on a white background")
    browser.find_element(By.NAME, "instance_prompt").send_keys("a sks star on a white background")
    browser.find_element(By.NAME, "max_steps").send_keys("30")
    browser.find_element(By.NAME, "images").send_keys("\n".join(str(p) for p in photos))
    _wait_for_worker(celery_worker_process)
    browser.find_element(By.ID, "start-training").click()
    WebDriverWait(browser, 10).until(ec.url_contains("/studio/training/"))
    job = TrainingJob.objects.get(organization=demo.org)
    assert job.images.count() == 4 and job.created_by.username == "marketer"

    # The page follows the job live until the candidate's validation images appear.
    WebDriverWait(browser, JOB_SECONDS, poll_frequency=0.5).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "[data-testid=candidate-image]")
    )
    job.refresh_from_db()
    assert job.status == TrainingStatus.SUCCEEDED, job.error_message
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=loss-curve]")
    WebDriverWait(browser, 20).until(
        lambda b: b.execute_script(
            "return [...document.querySelectorAll('[data-testid=validation-images] img')]"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
    )
    assert not browser.find_elements(By.ID, "promote-candidate")  # an editor may not promote

    # An admin promotes the candidate, after confirming.
    _sign_in(browser, base, "admin", DEMO_PASSWORD)
    browser.get(f"{base}/studio/training/{job.pk}/")
    browser.find_element(By.ID, "promote-candidate").click()
    WebDriverWait(browser, 5).until(ec.alert_is_present()).accept()
    WebDriverWait(browser, 10).until(
        lambda b: f"Version {job.output_version_id} is now production" in b.page_source
    )
    assert 'data-testid="lineage"' in browser.page_source  # the version card says where from

    # A generation for the category now uses the new version.
    generation = generation_job_create(
        actor=demo.owner, data={"category": "stars", "prompt": "a sks star on a white background"}
    )
    assert generation.model_version_id == job.output_version_id
    deadline = time.monotonic() + JOB_SECONDS
    while (
        time.monotonic() < deadline and not GenerationJob.objects.get(pk=generation.pk).is_finished
    ):
        time.sleep(0.5)
    generation.refresh_from_db()
    assert generation.status in (JobStatus.SUCCEEDED, JobStatus.FAILED_QUALITY), (
        generation.error_message
    )
    assert generation.images.exists()


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the test's own S3
        return response.read()


def _export_links(browser) -> dict[str, str]:  # type: ignore[no-untyped-def]
    links = browser.find_elements(By.CSS_SELECTOR, "[data-testid=export-links] a")
    return {a.get_attribute("data-testid"): a.get_attribute("href") for a in links}


def test_owner_uploads_a_catalog_runs_it_reviews_its_images_and_downloads_the_export(
    browser, screenshot, live_server, tiny_base_model, catalog_worker, tmp_path
):
    from catalog.models import CatalogRun, Product
    from generation.template_services import prompt_template_create
    from models_registry import services as registry

    org, owner, team = make_org("acme")
    person = make_persona(org, owner, team, "owner")
    person.user.set_password("owner-pw")
    person.user.save()
    registry.category_create(
        actor=owner, slug="produce", name="Produce", base_model=tiny_base_model
    )
    prompt_template_create(
        actor=owner,
        application="listing",
        text="a {colour} {name} on a white background",
        default_params={"steps": 2},  # the tiny model, two steps: each job takes a moment
    )
    base = live_server.url
    _sign_in(browser, base, person.user.username, "owner-pw")

    # A new catalog whose rows use the listing template unless they name another.
    browser.find_element(By.LINK_TEXT, "Catalogs").click()
    browser.find_element(By.NAME, "slug").send_keys("spring")
    browser.find_element(By.NAME, "name").send_keys("Spring range")
    browser.find_element(
        By.CSS_SELECTOR, "select[name=default_template] option[value=listing]"
    ).click()
    browser.find_element(By.ID, "create-catalog").click()
    WebDriverWait(browser, 10).until(ec.url_contains("/studio/catalogs/spring/"))

    # Six rows, the third (line 4 of the file) in a category the organization does not have.
    rows = ["sku,name,category,colour"] + [f"SKU-{i},Apple {i},produce,red" for i in range(1, 6)]
    rows.insert(3, "SKU-99,Steak,meat,red")
    upload = tmp_path / "spring.csv"
    upload.write_text("\n".join(rows) + "\n")
    browser.find_element(By.NAME, "file").send_keys(str(upload))
    browser.find_element(By.ID, "upload-products").click()
    report = WebDriverWait(browser, 20).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=import-report]"))
    )
    rejected = report.find_elements(By.CSS_SELECTOR, "[data-testid=rejection]")
    assert [r.get_attribute("data-line") for r in rejected] == ["4"]
    assert "unknown category 'meat'" in rejected[0].text and "SKU-99" in rejected[0].text
    assert report.find_element(By.CSS_SELECTOR, "[data-count=created]").text == "5"
    assert len(browser.find_elements(By.CSS_SELECTOR, "[data-testid=products] tr[data-sku]")) == 5
    screenshot("catalog")

    # A "missing" run: every product, none has an approved image yet. The page follows it live.
    browser.find_element(By.CSS_SELECTOR, "select[name=mode] option[value=missing]").click()
    _wait_for_worker(catalog_worker)
    browser.find_element(By.ID, "start-run").click()
    WebDriverWait(browser, 10).until(ec.url_contains("/studio/catalog-runs/"))
    run = CatalogRun.objects.get(catalog__slug="spring")
    assert str(run.pk) in browser.current_url and run.mode == "missing"
    # The status is swapped in by htmx as it polls: an element read mid-swap is stale.
    WebDriverWait(
        browser,
        JOB_SECONDS,
        poll_frequency=0.5,
        ignored_exceptions=(StaleElementReferenceException,),
    ).until(
        lambda b: b.find_element(By.CSS_SELECTOR, "[data-testid=run-status]").text == "completed"
    )
    counts = {
        row.get_attribute("data-item-status"): int(row.find_element(By.CSS_SELECTOR, ".count").text)
        for row in browser.find_elements(By.CSS_SELECTOR, "[data-item-status]")
    }
    assert counts["succeeded"] + counts["failed_quality"] == 5, counts
    assert counts["succeeded"] >= 1, counts
    # A completed run builds its own export; the page keeps polling until its links are there.
    WebDriverWait(browser, 60, poll_frequency=0.5).until(lambda b: len(_export_links(b)) == 2)
    screenshot("catalog-run")

    # The run's images in the review queue, and nothing else; approving one publishes it.
    browser.find_element(By.ID, "review-run").click()
    WebDriverWait(browser, 10).until(ec.url_contains(f"/studio/review/?run={run.pk}"))
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=active-filter]")
    tiles = browser.find_elements(By.CSS_SELECTOR, "[data-review-tile]")
    assert len(tiles) == counts["succeeded"]
    WebDriverWait(browser, 10).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "[data-review-tile].current")
    )
    _press(browser, "a")
    WebDriverWait(browser, 10).until(lambda b: _decided(b) == ["approved"])
    published = Product.objects.get(published_image__isnull=False)

    # Rebuilt, the export names the approval and holds the approved image under its SKU.
    browser.get(f"{base}/studio/catalog-runs/{run.pk}/")
    browser.find_element(By.ID, "build-export").click()
    WebDriverWait(browser, 60, poll_frequency=0.5).until(lambda b: len(_export_links(b)) == 2)
    links = _export_links(browser)
    manifest = list(csv.DictReader(io.StringIO(_fetch(links["export-manifest"]).decode())))
    assert sorted(row["sku"] for row in manifest) == [f"SKU-{i}" for i in range(1, 6)]
    reviews = {row["sku"]: row["review_status"] for row in manifest}
    assert reviews[published.sku] == "approved"
    assert list(reviews.values()).count("approved") == 1
    with zipfile.ZipFile(io.BytesIO(_fetch(links["export-zip"]))) as archive:
        assert archive.namelist() == [f"{published.sku}.png"]
