"""The console in a real browser (Debian's chromium and chromium-driver, through selenium):
log in, see both agents, trigger a rule and see its alert arrive without a reload, open it and
see the process chain, isolate a host through the confirmation and see it isolated (wanted and
reported), log out and be refused. Screenshots go to SHOTS. Exit 0 when every step held.

Python selenium rather than a Rust WebDriver client: Debian packages it next to chromium, and
it handles the driver's session, waits and dialogs without adding a crate to the build.

Usage: AURORA_CONSOLE_PASSWORD=… console_browser.py URL USER MARKER RULE_TITLE HOST SHOTS
(the password in the environment, not on a command line every process can read)
"""
import os
import subprocess
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

url, user, marker, title, host, shots = sys.argv[1:7]
password = os.environ["AURORA_CONSOLE_PASSWORD"]


def step(s):
    print("step:", s, flush=True)


def click(css):
    """Click what `css` finds, again if the live table redrew it meanwhile."""
    for _ in range(50):
        try:
            wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, css))).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError(f"{css} kept going stale")


def text_of(css):
    return d.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : null", css)


opts = Options()
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,950"]:
    opts.add_argument(a)
opts.binary_location = "/usr/bin/chromium"
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
wait = WebDriverWait(d, 40)
try:
    d.get(url + "/")
    wait.until(EC.presence_of_element_located((By.ID, "login")))
    step("anonymous: sent to the login page")
    d.find_element(By.ID, "user").send_keys(user)
    d.find_element(By.ID, "password").send_keys(password)
    d.find_element(By.ID, "login").click()
    wait.until(lambda d: d.find_elements(By.ID, "host-hosta") and d.find_elements(By.ID, "host-hostb"))
    step("two agents listed")

    d.find_element(By.ID, "nav-alerts").click()
    wait.until(EC.presence_of_element_located((By.ID, "alerts")))
    time.sleep(1.5)  # the page has loaded the list and listens
    # A mark that a reload would erase; the newest alert listed before the trigger.
    newest = d.execute_script(
        "window.auroraMark = 1;"
        "return Math.max(0, ...[...document.querySelectorAll('tr.alert')].map(r => +r.dataset.seq))"
    )
    subprocess.run(["sh", "-c", f"echo {marker} > /dev/null"], check=True)
    # Read in the page (the table is redrawn on every alert, so no element is held across).
    href = wait.until(lambda d: d.execute_script(
        "for (const r of document.querySelectorAll('tr.alert'))"
        "  if (+r.dataset.seq > arguments[1] && r.textContent.includes(arguments[0]))"
        "    return r.querySelector('a').href;"
        "return null;", title, newest))
    assert d.execute_script("return window.auroraMark") == 1, "the page was reloaded"
    step("the alert arrived live")
    d.get(href)
    wait.until(EC.presence_of_element_located((By.ID, "chain")))
    chain = d.find_elements(By.CSS_SELECTOR, "#chain tr.process")
    assert len(chain) >= 2, f"process chain of {len(chain)}"
    assert marker in chain[0].text, chain[0].text
    step(f"process chain of {len(chain)}: " + " <- ".join(r.find_elements(By.TAG_NAME, "td")[2].text for r in chain))
    d.save_screenshot(f"{shots}/alert.png")

    d.find_element(By.ID, "nav-agents").click()
    click(f"#host-{host} button.isolate")
    wait.until(EC.alert_is_present())
    d.switch_to.alert.accept()
    wait.until(lambda d: text_of(f"#host-{host} td.isolation") == "isolated / isolated")
    step(f"{host} isolated, wanted and reported")
    d.save_screenshot(f"{shots}/agents.png")

    d.find_element(By.ID, "logout").click()
    wait.until(EC.presence_of_element_located((By.ID, "login")))
    d.get(url + "/")
    wait.until(EC.presence_of_element_located((By.ID, "login")))
    assert not d.find_elements(By.ID, "agents")
    step("logged out: refused")
except Exception:
    # What the page and the API held when a step failed.
    print("page:", d.current_url, d.find_element(By.TAG_NAME, "main").text[:3000], flush=True)
    print("api:", d.execute_script(
        "const x=new XMLHttpRequest();x.open('GET','/api/alerts?limit=5',false);x.send();return x.status+' '+x.responseText"
    )[:3000], flush=True)
    raise
finally:
    d.quit()
print("ok")
