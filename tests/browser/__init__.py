"""Browser tests: Playwright drives Debian's /usr/bin/chromium against a real
`storykeep serve` process, and checks the issue's quality bars on every page."""
