"""The page end to end in a real headless browser (Debian's chromium, driven by Selenium): drop a
built-in dataset video, see the right class on top and the timeline and maps appear.

Skipped where chromium and chromium-driver are not installed, unless ``ARTNET_REQUIRE_BROWSER=1``
(``.ci/run`` installs them and sets it, so CI always runs this test).
"""

import os
import shutil

import pytest

# The drop itself: a file chosen in a hidden input (what Selenium can fill in), handed to the page's
# drop zone in a DataTransfer, as the browser does when a file is dropped on it.
DROP = """
const file = document.getElementById("test-source").files[0];
const data = new DataTransfer();
data.items.add(file);
document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
"""
ADD_SOURCE = """
const input = document.createElement("input");
input.type = "file"; input.id = "test-source"; input.style.display = "none";
document.body.appendChild(input);
"""
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


@pytest.fixture
def browser(tmp_path):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        message = "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("ARTNET_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=Service(driver))
    session.set_page_load_timeout(60)
    try:
        yield session
    finally:
        session.quit()


@pytest.mark.slow
def test_drop_a_video_and_see_its_class_and_the_pictures(browser, loopback_server, trained_run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    label = trained_run.dataset.label("Rising")
    video = next(path for path, of in trained_run.dataset.clips("test") if of == label)
    browser.get(loopback_server.url + "/")
    wait = WebDriverWait(browser, 120)
    wait.until(lambda b: "classes" in b.find_element(By.ID, "model").text)
    assert "12 classes" in browser.find_element(By.ID, "model").text

    browser.execute_script(ADD_SOURCE)
    browser.find_element(By.ID, "test-source").send_keys(str(video))
    browser.execute_script(DROP)
    wait.until(
        lambda b: (
            b.find_element(By.ID, "result").is_displayed() or "error" in b.find_element(By.ID, "status").get_attribute("class")
        )
    )
    status = browser.find_element(By.ID, "status").text
    assert status.startswith(f"{video.name}: 20 frames"), status

    labels = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#top li .label")]
    assert len(labels) == 5 and labels[0] == trained_run.dataset.classes[label].name == "Rising"
    for image in ("timeline", "maps"):
        wait.until(
            lambda b: b.execute_script(
                f"const i = document.getElementById('{image}'); return i.complete && i.naturalWidth > 300;"
            )
        )
    assert "at conv4_1" in browser.find_element(By.ID, "maps-caption").text
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000
