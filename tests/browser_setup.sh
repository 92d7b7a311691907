#!/usr/bin/env bash
# What tests/test_browser.py needs, installed only when missing (safe to run again; quiet):
# Debian's Chromium and its matching chromedriver, and selenium in the active Python.
# Called by .ci/run with the virtual environment active; PYTHON picks another interpreter.
# Selenium is always handed /usr/bin/chromedriver, so it never downloads a browser or a driver.
set -euo pipefail

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

"${PYTHON:-python}" -m pip install --quiet "selenium>=4.11"
